"""`mlipviz.evaluate`: streamed sources, Dask LocalCluster against `compare` in-process,
resuming after a killed job, lazy stores, errors that name the file and frame.

Real CHGNet and the bundled GPAW PBE labels; nothing mocked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from ase import Atoms

import mlipviz
from mlipviz import Frames
from mlipviz.errors import CheckpointMismatchError, ReadError, UnsupportedElementError
from mlipviz.sources import FrameSource

TOL_E, TOL_F = 1e-4, 1e-4  # float32 CHGNet; passes group frames differently


@pytest.fixture(scope="module")
def labelled():
    """Twelve PBE-labelled frames of the bundled high-energy states (several solids)."""
    frames = mlipviz.examples.load("high-energy-states")
    return frames[np.linspace(0, len(frames) - 1, 12).astype(int)]


@pytest.fixture(scope="module")
def files(labelled, tmp_path_factory):
    """The first seven frames as extxyz, the other five as mlipviz HDF5."""
    folder = tmp_path_factory.mktemp("sources")
    xyz, h5 = folder / "first.extxyz", folder / "second.h5"
    labelled[:7].write(xyz)
    labelled[7:].write(h5)
    return [xyz, h5]


def _assert_same_frames(a: Frames, b: Frames):
    """Equal to the 8 decimals extxyz writes."""
    assert np.array_equal(a.n_atoms, b.n_atoms) and np.array_equal(a.numbers, b.numbers)
    for name in ("positions", "cells", "energy", "forces", "stress"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=0, atol=1e-7)


def test_sources_read_ranges_equal_to_whole_reads(files, labelled, tmp_path):
    from ase.io import write

    xyz, h5 = files
    source = FrameSource.open(xyz)
    assert source.kind == "xyz" and len(source) == 7
    _assert_same_frames(source.read(2, 5), mlipviz.read(xyz)[2:5])
    _assert_same_frames(source.part(2, 6).read(3, 5), labelled[3:5])
    _assert_same_frames(FrameSource.open(h5).read(1, 4), labelled[8:11])
    traj = tmp_path / "frames.traj"
    write(traj, list(labelled[:4]))
    assert FrameSource.open(traj).kind == "traj"
    _assert_same_frames(FrameSource.open(traj).read(1, 3), labelled[1:3])
    broken = tmp_path / "broken.xyz"
    broken.write_text(xyz.read_text() + "three\n")
    with pytest.raises(ReadError, match="atom count of frame 7.*broken.xyz, frame 7"):
        FrameSource.open(broken)


def _store(path) -> dict:
    import h5py

    with h5py.File(path, "r") as h5:
        return json.loads(h5.attrs["evaluation_run"])


def test_evaluate_on_a_local_cluster_equals_compare_in_process(files, labelled, tmp_path):
    pytest.importorskip("dask.distributed")
    pytest.importorskip("chgnet")
    import dask
    from dask.distributed import Client, LocalCluster

    from mlipviz.analysis.evaluate import DASK_CONFIG

    in_process = mlipviz.compare("chgnet", labelled, progress=False)
    with dask.config.set(DASK_CONFIG), \
            LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        result = mlipviz.evaluate(files, "chgnet", store=tmp_path / "eval.h5", client=client,
                                  chunk_frames=3, progress=False)
        workers = len(client.scheduler_info()["workers"])
        trim = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert workers == 2
    assert set(trim.values()) == {None}  # glibc's adaptive mmap threshold stays on in the workers
    assert _store(tmp_path / "eval.h5")["chunks_computed"] == 5  # 3 + 2 chunks of 3 frames
    _assert_same_frames(result.frames, labelled)
    pred, ref = result.predictions["chgnet"], in_process.predictions["chgnet"]
    np.testing.assert_allclose(pred.energy, ref.energy, atol=TOL_E)
    np.testing.assert_allclose(pred.forces, ref.forces, atol=TOL_F)
    np.testing.assert_allclose(result.reference.forces, in_process.reference.forces, atol=1e-7)
    a, b = result.summary(), in_process.summary()
    np.testing.assert_allclose(a["force_mae_eV_A"], b["force_mae_eV_A"], rtol=1e-4)
    assert [d["source"] for d in result.frames.info] == [str(files[0])] * 7 + [str(files[1])] * 5
    assert [d["source_frame"] for d in result.frames.info] == list(range(7)) + list(range(5))
    for array in (result.frames.positions, result.predictions["chgnet"].forces, result.reference.forces):
        assert _mapped(array) and not array.flags.writeable  # mapped from the store, not read


def _mapped(array) -> bool:
    while array is not None and not isinstance(array, np.memmap):
        array = array.base
    return array is not None


KILLED_JOB = """
import sys, mlipviz
mlipviz.evaluate(sys.argv[1], "chgnet", store=sys.argv[2], client=False, chunk_frames=1, progress=False)
"""


def test_a_killed_job_resumes_and_ends_with_identical_results(files, tmp_path):
    pytest.importorskip("chgnet")
    xyz = files[0]
    whole = mlipviz.evaluate(xyz, "chgnet", store=tmp_path / "whole.h5", client=False, chunk_frames=1,
                             progress=False)
    store = tmp_path / "killed.h5"
    parts = tmp_path / "killed.h5.parts"
    job = subprocess.Popen([sys.executable, "-c", KILLED_JOB, str(xyz), str(store)], start_new_session=True)
    try:
        deadline = time.time() + 300
        while len(list(parts.glob("chunk-*.h5"))) < 2 and time.time() < deadline and job.poll() is None:
            time.sleep(0.2)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    finished = len(list(parts.glob("chunk-*.h5")))
    assert 2 <= finished < 7 and not store.exists()
    resumed = mlipviz.evaluate(xyz, "chgnet", store=store, client=False, chunk_frames=1, progress=False)
    assert _store(store)["chunks_computed"] == 7 - finished
    assert not parts.exists()
    for name in ("energy", "forces", "stress"):
        np.testing.assert_allclose(getattr(resumed.predictions["chgnet"], name),
                                   getattr(whole.predictions["chgnet"], name), rtol=0, atol=1e-6)
    again = mlipviz.evaluate(xyz, "chgnet", store=store, client=False, chunk_frames=1, progress=False)
    assert np.array_equal(again.predictions["chgnet"].forces, resumed.predictions["chgnet"].forces)
    with pytest.raises(CheckpointMismatchError, match="another evaluation"):
        mlipviz.evaluate(xyz, "chgnet", store=store, client=False, chunk_frames=2, progress=False)


def test_a_bad_frame_is_named_by_file_and_frame_and_finished_chunks_are_kept(labelled, tmp_path):
    pytest.importorskip("chgnet")
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    images = list(labelled[:4])
    images.insert(3, Atoms("Og2", positions=[[0, 0, 0], [0, 0, 2.5]], cell=[8, 8, 8], pbc=True))
    images[3].calc = SinglePointCalculator(images[3], energy=0.0, forces=np.zeros((2, 3)),
                                           stress=np.zeros(6))
    path = tmp_path / "with-oganesson.extxyz"
    write(path, images)
    with pytest.raises(UnsupportedElementError, match=r"Og.*with-oganesson.extxyz, frame 3"):
        mlipviz.evaluate(path, "chgnet", store=tmp_path / "bad.h5", client=False, chunk_frames=2,
                         progress=False)
    assert sorted(p.name for p in (tmp_path / "bad.h5.parts").glob("chunk-*")) == ["chunk-0000000.h5"]
