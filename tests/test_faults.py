"""Faults: interrupted runs resume with identical results; damaged checkpoints, stores and
cache entries are detected, reported with their path and computed again (never half-read);
a full disk while writing leaves the previous file readable; two Explorer runs at once do
not mix their results.

Real models only: ASE's EMT (instant). Faults are made the way they happen: a job killed
with SIGKILL, files cut short or overwritten, a write that fails with ENOSPC (injected at
h5py's write calls) or hits a real file-size limit (RLIMIT_FSIZE in a child process).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

import mlipviz
from mlipviz.errors import (
    CheckpointMismatchError,
    CorruptFileWarning,
    InputError,
    MlipvizError,
    ReadError,
    StoreWriteError,
)
from mlipviz.models.ase_adapter import CalculatorModel

N_FRAMES = 6
FIELDS = ("energy", "forces", "stress")


def _cells(element: str, a: float, n: int, seed: int) -> list:
    """``n`` rattled, strained 4-atom cells labelled with EMT. Each frame has its own cell, so
    EMT rebuilds its neighbour list every time and its numbers do not depend on what it
    computed before (a reused list sums in another order): resumed runs can be compared
    bit for bit."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk(element, "fcc", a=a, cubic=True)
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.normal(0, 0.01, (3, 3))), scale_atoms=True)
        atoms.calc = EMT()
        atoms.get_forces()
        atoms.get_stress()
        out.append(atoms)
    return out


@pytest.fixture(scope="module")
def cu():
    return mlipviz.read(_cells("Cu", 3.61, N_FRAMES, 0))


@pytest.fixture(scope="module")
def al():
    return mlipviz.read(_cells("Al", 4.05, N_FRAMES, 1))


class Counting(EMT):
    """EMT that counts its calculations and raises KeyboardInterrupt (a user's Ctrl-C) after
    ``stop_after`` of them; ``stop_after=None`` runs on."""

    def __init__(self, stop_after: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.calls, self.stop_after = 0, stop_after

    def calculate(self, *args, **kwargs):
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt
        self.calls += 1
        super().calculate(*args, **kwargs)


def _model(calc=None) -> CalculatorModel:
    """EMT as a model; the calculator's class and parameters are part of a checkpoint's key,
    so runs that resume one another use `Counting` throughout."""
    return CalculatorModel(calc if calc is not None else Counting(), name="emt")


def _assert_same(a, b):
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.fixture(scope="module")
def fresh(cu):
    """The uninterrupted prediction on ``cu``."""
    return _model().predict(cu, progress=False)


def _interrupted_checkpoint(cu, path: Path, stop_after: int = 3) -> None:
    with pytest.raises(KeyboardInterrupt):
        _model(Counting(stop_after)).predict(cu, checkpoint=path, progress=False)


def _resume(cu, path: Path, **kw):
    calc = Counting()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _model(calc).predict(cu, checkpoint=path, progress=False, **kw)
    return result, calc.calls, [w for w in caught if issubclass(w.category, CorruptFileWarning)]


# -- predict checkpoints ----------------------------------------------------------------------
def test_interrupted_predict_resumes_with_identical_results(cu, fresh, tmp_path):
    path = tmp_path / "ckpt.h5"
    _interrupted_checkpoint(cu, path, stop_after=3)
    assert len(list((tmp_path / "ckpt.h5.batches").glob("batch-*.h5"))) == 3  # each batch whole on its own
    result, calls, corrupt = _resume(cu, path)
    assert calls == N_FRAMES - 3 and not corrupt
    _assert_same(result, fresh)
    # gathered into the one file once all frames are done, and read back from it alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.h5"]
    again, calls, corrupt = _resume(cu, path)
    assert calls == 0 and not corrupt
    _assert_same(again, fresh)


KILLED_PREDICT = """
import sys, time
from ase.calculators.emt import EMT
import mlipviz
from mlipviz.models.ase_adapter import CalculatorModel

class Counting(EMT):  # the class name is part of the checkpoint's key: the parent resumes with its own
    def calculate(self, *args, **kwargs):
        time.sleep(0.15)  # time for the parent to kill it in the middle of the run
        super().calculate(*args, **kwargs)

CalculatorModel(Counting(), name="emt").predict(mlipviz.read(sys.argv[1]), checkpoint=sys.argv[2], progress=False)
"""


def test_killed_predict_resumes_with_identical_results(cu, fresh, tmp_path):
    source, path = tmp_path / "cu.h5", tmp_path / "killed.h5"
    cu.write(source)
    job = subprocess.Popen([sys.executable, "-c", KILLED_PREDICT, str(source), str(path)], start_new_session=True)
    journal = tmp_path / "killed.h5.batches"
    try:
        deadline = time.time() + 120
        while len(list(journal.glob("batch-*.h5"))) < 2 and time.time() < deadline and job.poll() is None:
            time.sleep(0.02)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    finished = len(list(journal.glob("batch-*.h5")))
    assert 2 <= finished < N_FRAMES
    result, calls, corrupt = _resume(cu, path)
    assert calls == N_FRAMES - finished and not corrupt
    _assert_same(result, fresh)


def _spoil(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "random bytes":
        path.write_bytes(np.random.default_rng(5).bytes(len(data)))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "cut in half":
        path.write_bytes(data[: len(data) // 2])
    else:
        raise ValueError(how)


@pytest.mark.parametrize("how", ["random bytes", "empty", "cut in half"])
def test_unreadable_checkpoint_is_reported_moved_aside_and_recomputed(cu, fresh, tmp_path, how):
    path = tmp_path / "ckpt.h5"
    _model().predict(cu, checkpoint=path, progress=False)
    _spoil(path, how)
    damaged = path.read_bytes()
    result, calls, corrupt = _resume(cu, path)
    assert len(corrupt) == 1 and str(path) in str(corrupt[0].message)
    assert "moved to" in str(corrupt[0].message)
    assert calls == N_FRAMES
    _assert_same(result, fresh)
    assert (tmp_path / "ckpt.h5.corrupt").read_bytes() == damaged  # kept for a look, not read
    _again, calls, corrupt = _resume(cu, path)
    assert calls == 0 and not corrupt


def test_checkpoint_batch_missing_a_dataset_is_dropped_and_only_it_recomputed(cu, fresh, tmp_path):
    path = tmp_path / "ckpt.h5"
    _model().predict(cu, checkpoint=path, progress=False)
    with h5py.File(path, "a") as h5:
        name = sorted(h5)[2]
        del h5[name]["forces"]  # a half-written batch: energies there, forces not
    result, calls, corrupt = _resume(cu, path)
    assert len(corrupt) == 1 and str(path) in str(corrupt[0].message)
    assert name in str(corrupt[0].message) and "forces" in str(corrupt[0].message)
    assert calls == 1  # the other five batches were read
    _assert_same(result, fresh)
    assert result.forces is not None


def test_checkpoint_batch_file_cut_short_is_recomputed(cu, fresh, tmp_path):
    path = tmp_path / "ckpt.h5"
    _interrupted_checkpoint(cu, path, stop_after=3)
    batch = sorted((tmp_path / "ckpt.h5.batches").glob("batch-*.h5"))[1]
    _spoil(batch, "cut in half")  # e.g. a power cut before the bytes reached the disk
    result, calls, corrupt = _resume(cu, path)
    assert len(corrupt) == 1 and str(batch) in str(corrupt[0].message)
    assert calls == N_FRAMES - 2
    _assert_same(result, fresh)


def test_checkpoint_path_errors_come_before_any_evaluation(cu, tmp_path):
    calc = Counting()
    for bad, words in [(tmp_path, "is a folder"), (tmp_path / "no-such-folder" / "c.h5", "does not exist")]:
        with pytest.raises(InputError, match="checkpoint") as info:
            _model(calc).predict(cu, checkpoint=bad, progress=False)
        assert str(bad if words == "is a folder" else bad.parent) in str(info.value) and words in str(info.value)
    assert calc.calls == 0


def test_checkpoint_of_a_same_named_model_with_other_settings_is_refused(cu, tmp_path):
    path = tmp_path / "ckpt.h5"
    _model(Counting()).predict(cu, checkpoint=path, progress=False)
    with pytest.raises(CheckpointMismatchError, match="settings"):  # its batches are not this model's
        _model(Counting(asap_cutoff=True)).predict(cu, checkpoint=path, progress=False)


def test_an_hdf5_file_that_is_no_checkpoint_is_left_alone(cu, tmp_path):
    path = tmp_path / "mine.h5"
    cu.write(path)
    before = path.read_bytes()
    with pytest.raises(CheckpointMismatchError, match="no mlipviz checkpoint"):
        _model().predict(cu, checkpoint=path, progress=False)
    assert path.read_bytes() == before


# -- compare ------------------------------------------------------------------------------------
def test_interrupted_compare_resumes_with_identical_results(cu, tmp_path):
    whole = mlipviz.compare(_model(EMT(asap_cutoff=True)), cu, progress=False)

    def stop(name, done, total):
        if done >= 2:
            raise KeyboardInterrupt

    calc = Counting(asap_cutoff=True)
    with pytest.raises(KeyboardInterrupt):
        mlipviz.compare(_model(calc), cu, progress=False, checkpoint_dir=tmp_path, callback=stop)
    calls = calc.calls
    resumed = mlipviz.compare(_model(calc), cu, progress=False, checkpoint_dir=tmp_path)
    assert calc.calls - calls == N_FRAMES - 2
    _assert_same(resumed.predictions["emt"], whole.predictions["emt"])
    np.testing.assert_array_equal(resumed.per_atom.to_numpy(), whole.per_atom.to_numpy())


# -- saved comparisons --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def comparisons(cu):
    """Two comparisons of the same frames with different numbers."""
    return (mlipviz.compare(_model(EMT(asap_cutoff=True)), cu, progress=False),
            mlipviz.compare(_model(EMT()), mlipviz.read(_cells("Cu", 3.61, N_FRAMES, 9)), progress=False))


def _full_disk_after(monkeypatch, target, name: str, calls: int) -> list:
    """Make ``target.name`` (an h5py write) raise ENOSPC from its ``calls``-th call on."""
    original, seen = getattr(target, name), []

    def write(*args, **kwargs):
        seen.append(1)
        if len(seen) >= calls:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, write)
    return seen


def test_full_disk_while_saving_leaves_the_previous_file_readable(comparisons, tmp_path, monkeypatch):
    old, new = comparisons
    path = tmp_path / "cmp.h5"
    old.save(path)
    seen = _full_disk_after(monkeypatch, h5py.Group, "create_dataset", 4)
    with pytest.raises(StoreWriteError) as info:
        new.save(path)
    monkeypatch.undo()
    assert len(seen) >= 4  # it failed in the middle of writing
    assert str(path) in str(info.value) and "No space left" in str(info.value)
    assert isinstance(info.value, MlipvizError) and info.value.errno == errno.ENOSPC
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.ENOSPC
    back = mlipviz.load_comparison(path, lazy=False)
    _assert_same(back.predictions["emt"], old.predictions["emt"])
    np.testing.assert_array_equal(back.frames.positions, old.frames.positions)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmp.h5"]  # no temporary file left
    new.save(path)  # the disk has room again
    _assert_same(mlipviz.load_comparison(path).predictions["emt"], new.predictions["emt"])


@pytest.mark.parametrize("how", ["folder", "missing", "empty", "random bytes", "cut in half", "no forces",
                                 "no frames"])
def test_load_comparison_refuses_damaged_files_naming_them(comparisons, tmp_path, how):
    path = tmp_path / f"cmp-{how.replace(' ', '-')}.h5"
    if how == "folder":
        path.mkdir()
    elif how != "missing":
        comparisons[0].save(path)
        if how == "no forces":
            with h5py.File(path, "a") as h5:
                del h5["predictions/0/forces"]
        elif how == "no frames":
            with h5py.File(path, "a") as h5:
                del h5["frames"]
        else:
            _spoil(path, how)
    for lazy in (True, False):
        with pytest.raises(ReadError) as info:
            mlipviz.load_comparison(path, lazy=lazy)
        assert str(path) in str(info.value)
        assert "synchronously" not in str(info.value)


# -- evaluate -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def source(cu, tmp_path_factory):
    path = tmp_path_factory.mktemp("source") / "cu.h5"
    cu.write(path)
    return path


@pytest.fixture(scope="module")
def evaluated(source, tmp_path_factory):
    """The uninterrupted evaluation (two frames per chunk)."""
    store = tmp_path_factory.mktemp("whole") / "whole.h5"
    return mlipviz.evaluate(source, _model(Counting(asap_cutoff=True)), store=store, client=False,
                            chunk_frames=2, progress=False)


def _evaluate(source, store, calc, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = mlipviz.evaluate(source, _model(calc), store=store, client=False, chunk_frames=2,
                                  progress=False, **kw)
    return result, [w for w in caught if issubclass(w.category, CorruptFileWarning)]


def _run_info(store: Path) -> dict:
    import json

    with h5py.File(store, "r") as h5:
        return json.loads(h5.attrs["evaluation_run"])


def _assert_same_evaluation(a, b):
    _assert_same(a.predictions["emt"], b.predictions["emt"])
    _assert_same(a.reference, b.reference)
    np.testing.assert_array_equal(a.frames.positions, b.frames.positions)


def _interrupted_evaluation(source, store, calc: Counting, after: int) -> None:
    calc.stop_after = after
    with pytest.raises(KeyboardInterrupt):
        mlipviz.evaluate(source, _model(calc), store=store, client=False, chunk_frames=2, progress=False)
    calc.stop_after = None  # the same model object (the job's key names it), running on


def test_damaged_chunks_are_reported_and_recomputed(source, evaluated, tmp_path):
    store, calc = tmp_path / "ev.h5", Counting(asap_cutoff=True)
    _interrupted_evaluation(source, store, calc, after=4)  # chunks 0 and 1 finished, 2 not
    parts = tmp_path / "ev.h5.parts"
    chunks = sorted(parts.glob("chunk-*.h5"))
    assert len(chunks) == 2 and not store.exists()
    _spoil(chunks[0], "cut in half")
    with h5py.File(chunks[1], "a") as h5:
        del h5["predictions/0/forces"]
    result, corrupt = _evaluate(source, store, calc)
    assert sorted(str(w.message).split(" (")[0] for w in corrupt) == [
        f"evaluation chunk {chunks[0]}", f"evaluation chunk {chunks[1]}"]
    assert _run_info(store)["chunks_computed"] == 3
    _assert_same_evaluation(result, evaluated)


def test_a_damaged_job_file_is_rewritten_and_chunks_naming_the_job_kept(source, evaluated, tmp_path):
    store, calc = tmp_path / "ev.h5", Counting(asap_cutoff=True)
    _interrupted_evaluation(source, store, calc, after=4)
    job = tmp_path / "ev.h5.parts" / "job.json"
    job.write_text(job.read_text()[:20])  # cut short
    result, corrupt = _evaluate(source, store, calc)
    assert len(corrupt) == 1 and str(job) in str(corrupt[0].message)
    assert _run_info(store)["chunks_computed"] == 1  # the two finished chunks carry the job's key
    _assert_same_evaluation(result, evaluated)


def test_interrupted_evaluation_resumes_with_identical_results(source, evaluated, tmp_path):
    store, calc = tmp_path / "ev.h5", Counting(asap_cutoff=True)
    _interrupted_evaluation(source, store, calc, after=2)
    before = calc.calls
    result, corrupt = _evaluate(source, store, calc)
    assert not corrupt and _run_info(store)["chunks_computed"] == 2 and calc.calls - before == 4
    _assert_same_evaluation(result, evaluated)


def test_damaged_store_is_set_aside_and_recomputed(source, evaluated, tmp_path):
    store, calc = tmp_path / "ev.h5", Counting(asap_cutoff=True)
    _evaluate(source, store, calc)
    _spoil(store, "cut in half")
    damaged = store.read_bytes()
    result, corrupt = _evaluate(source, store, calc)
    assert len(corrupt) == 1 and f"store {store}" in str(corrupt[0].message)
    assert (tmp_path / "ev.h5.corrupt").read_bytes() == damaged
    _assert_same_evaluation(result, evaluated)
    _assert_same_evaluation(mlipviz.load_comparison(store), evaluated)


def test_full_disk_while_gathering_the_store_keeps_the_chunks(source, evaluated, tmp_path, monkeypatch):
    store, calc = tmp_path / "ev.h5", Counting(asap_cutoff=True)
    seen = _full_disk_after(monkeypatch, h5py.Dataset, "__setitem__", 5)  # chunk files use create_dataset
    with pytest.raises(StoreWriteError) as info:
        mlipviz.evaluate(source, _model(calc), store=store, client=False, chunk_frames=2, progress=False)
    monkeypatch.undo()
    assert len(seen) >= 5
    assert f"store {store}" in str(info.value) and info.value.errno == errno.ENOSPC
    assert isinstance(info.value.__cause__, OSError)
    assert not store.exists() and not list(tmp_path.glob(".*tmp"))
    assert len(list((tmp_path / "ev.h5.parts").glob("chunk-*.h5"))) == 3
    calls = calc.calls
    result, corrupt = _evaluate(source, store, calc)  # the disk has room again: only gathered
    assert not corrupt and calc.calls == calls and _run_info(store)["chunks_computed"] == 0
    _assert_same_evaluation(result, evaluated)


def test_full_disk_while_writing_a_chunk_keeps_the_finished_ones(source, evaluated, tmp_path, monkeypatch):
    store, calc = tmp_path / "ev.h5", Counting(asap_cutoff=True)
    # a chunk file makes 17 datasets here: the 40th falls in the third chunk
    _full_disk_after(monkeypatch, h5py.Group, "create_dataset", 40)
    with pytest.raises(StoreWriteError, match="evaluation chunk .*chunk-0000002.h5") as info:
        mlipviz.evaluate(source, _model(calc), store=store, client=False, chunk_frames=2, progress=False)
    monkeypatch.undo()
    parts = tmp_path / "ev.h5.parts"
    assert sorted(p.name for p in parts.iterdir()) == ["chunk-0000000.h5", "chunk-0000001.h5", "job.json"]
    assert info.value.errno == errno.ENOSPC
    result, corrupt = _evaluate(source, store, calc)
    assert not corrupt and _run_info(store)["chunks_computed"] == 1
    _assert_same_evaluation(result, evaluated)


FILE_SIZE_LIMIT = """
import resource, signal, sys
import mlipviz
from mlipviz.errors import StoreWriteError

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
comparison = mlipviz.load_comparison(sys.argv[1], lazy=False)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # from now on no file may pass 4 KiB
try:
    comparison.save(sys.argv[2])
except StoreWriteError as exc:
    print("StoreWriteError", exc.errno, exc.filename, exc)
"""


def test_a_real_write_failure_leaves_the_previous_file(comparisons, tmp_path):
    """No injected error: the operating system refuses to let the file grow past 4 KiB (as a
    full disk would), in a child process; the error is ours and the process lives on (HDF5
    itself can crash when its own write fails: the file is built in memory and written in
    one go)."""
    old, new = comparisons
    new_file, path = tmp_path / "new.h5", tmp_path / "cmp.h5"
    new.save(new_file)
    old.save(path)
    before = path.read_bytes()
    out = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT, str(new_file), str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith(f"StoreWriteError {errno.EFBIG} {path}"), out.stdout + out.stderr[-2000:]
    assert "File too large" in out.stdout and "the previous file is unchanged" in out.stdout
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["cmp.h5", "new.h5"]
    _assert_same(mlipviz.load_comparison(path).predictions["emt"], old.predictions["emt"])


def test_a_disk_without_room_for_the_store_is_refused_before_writing(source, evaluated, tmp_path, monkeypatch):
    """A store too large to build in memory is checked against the disk's free space first
    (the space the operating system reports is made small here)."""
    import shutil

    store, calc = tmp_path / "ev.h5", Counting(asap_cutoff=True)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=100_000))
    with pytest.raises(StoreWriteError, match=r"store .*ev\.h5: it needs about .* MiB free") as info:
        mlipviz.evaluate(source, _model(calc), store=store, client=False, chunk_frames=2, progress=False)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC and not store.exists()
    result, corrupt = _evaluate(source, store, calc)
    assert not corrupt and _run_info(store)["chunks_computed"] == 0
    _assert_same_evaluation(result, evaluated)


def test_store_path_errors_come_before_any_evaluation(source, tmp_path):
    calc = Counting(stop_after=0)
    for bad, words in [(tmp_path, "is a folder"), (tmp_path / "no-such-folder" / "ev.h5", "does not exist")]:
        with pytest.raises(InputError, match="store") as info:
            mlipviz.evaluate(source, _model(calc), store=bad, client=False, progress=False)
        assert str(bad if words == "is a folder" else bad.parent) in str(info.value) and words in str(info.value)
    assert calc.calls == 0


# -- reference cache ----------------------------------------------------------------------------
class EMTReference(mlipviz.reference.base.ReferenceCalculator):
    """A live reference calculator that runs EMT (counting its runs): the cache machinery of
    PySCF and GPAW with an instant level of theory."""

    code = "EMTtest"

    def __init__(self, stop_after: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.computed, self.stop_after = 0, stop_after

    def settings(self) -> dict:
        return {"emt": "asap_cutoff=False"}

    def level_of_theory(self) -> str:
        return "EMT (ASE)"

    def _compute(self, atoms) -> dict:
        if self.stop_after is not None and self.computed >= self.stop_after:
            raise KeyboardInterrupt
        self.computed += 1
        atoms.calc = EMT()
        return {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
                "stress": atoms.get_stress(voigt=False)}


def _label(frames, cache, **kw):
    calc = EMTReference(cache_dir=cache, **kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = calc.evaluate(frames, n_jobs=1, progress=False)
    return out, calc.computed, [w for w in caught if issubclass(w.category, CorruptFileWarning)]


def test_interrupted_reference_run_resumes_with_identical_results(cu, tmp_path):
    whole, _, _ = _label(cu, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        _label(cu, tmp_path / "cache", stop_after=4)
    resumed, computed, corrupt = _label(cu, tmp_path / "cache")
    assert computed == N_FRAMES - 4 and not corrupt
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(resumed, name), getattr(whole, name))


def _spoil_npz(path: Path, how: str) -> None:
    if how in ("random bytes", "empty", "cut in half"):
        _spoil(path, how)
        return
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    if how == "no forces":
        del arrays["forces"]
    elif how == "forces of another shape":
        arrays["forces"] = arrays["forces"][:2]
    np.savez(path.with_suffix(""), **arrays)  # savez adds the .npz


@pytest.mark.parametrize("how", ["random bytes", "empty", "cut in half", "no forces", "forces of another shape"])
def test_damaged_cache_entry_is_reported_deleted_and_recomputed(cu, tmp_path, how):
    cache = tmp_path / "cache"
    first, computed, _ = _label(cu, cache)
    entries = sorted(cache.rglob("*.npz"))
    assert computed == N_FRAMES and len(entries) == N_FRAMES
    entry = EMTReference(cache_dir=cache)._path(cu.to_atoms(3))
    _spoil_npz(entry, how)
    again, computed, corrupt = _label(cu, cache)
    assert computed == 1 and len(corrupt) == 1 and str(entry) in str(corrupt[0].message)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name))
    _, computed, corrupt = _label(cu, cache)  # the entry was written anew
    assert computed == 0 and not corrupt


def test_full_disk_while_caching_leaves_no_half_entry(cu, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    real = np.savez

    def full(file, *args, **kwargs):
        with open(file, "wb") as f:
            f.write(b"PK\x03\x04 half")  # some bytes made it, then the disk was full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(MlipvizError, match="frame 0.*reference cache entry .*npz: No space left") as info:
        EMTReference(cache_dir=cache).evaluate(cu[:1], n_jobs=1, progress=False)
    monkeypatch.setattr(np, "savez", real)
    cause = info.value.__cause__
    assert isinstance(cause, StoreWriteError) and cause.errno == errno.ENOSPC and cause.filename.endswith(".npz")
    assert not list(cache.rglob("*.npz*"))  # neither the entry nor its temporary file
    _, computed, corrupt = _label(cu[:1], cache)
    assert computed == 1 and not corrupt


# -- the Explorer -------------------------------------------------------------------------------
def _explorer(frames, calc):
    from mlipviz.widgets.explorer import Explorer

    app = Explorer(structures=[frames.to_atoms(i) for i in range(len(frames))], models=[calc])
    for name, box in app.model_boxes.items():
        box.value = name == calc.name
    return app


def test_run_pressed_twice_at_once_starts_one_run(cu):
    app = _explorer(cu, EMT())
    barrier = threading.Barrier(4)
    started = []

    def press():
        barrier.wait()
        started.append(app.run())

    presses = [threading.Thread(target=press) for _ in range(4)]
    for t in presses:
        t.start()
    for t in presses:
        t.join()
    assert len(started) == 4 and len({id(t) for t in started}) == 1  # one run, the others got it
    started[0].join()
    assert app.status.value == "done", app.message.value
    _assert_same(app.comparison.predictions["emt"], _model().predict(cu, progress=False))
    assert len(app.task_progress.children) == 1  # one progress row: no second run wrote into the views


def test_two_explorers_sharing_one_calculator_do_not_mix_results(cu, al):
    shared = EMT()  # one object, as when the same calculator is handed to two apps
    apps = [_explorer(cu, shared), _explorer(al, shared)]
    runs = [app.run() for app in apps]
    for run in runs:
        run.join()
    for app, frames in zip(apps, (cu, al)):
        assert app.status.value == "done", app.message.value
        expected = _model().predict(frames, progress=False)
        _assert_same(app.comparison.predictions["emt"], expected)
        np.testing.assert_array_equal(app.comparison.frames.positions, frames.positions)
    assert apps[0]._workdir.name != apps[1]._workdir.name  # checkpoints of their own


def test_loading_other_structures_during_a_run_does_not_change_its_results(cu, al):
    from mlipviz.widgets.explorer import object_lock

    calc = EMT()
    app = _explorer(cu, calc)
    with object_lock(calc):  # another run holds the calculator: this one waits, its frames taken
        run = app.run()
        deadline = time.time() + 30
        while "waiting" not in app.status.value and time.time() < deadline:
            time.sleep(0.01)
        assert "waiting for another run" in app.status.value
        app._object = [al.to_atoms(i) for i in range(len(al))]
        app.load()  # the user opens other structures meanwhile
    run.join()
    assert app.status.value == "done", app.message.value
    np.testing.assert_array_equal(app.comparison.frames.positions, cu.positions)
    _assert_same(app.comparison.predictions["emt"], _model().predict(cu, progress=False))
    assert len(app.frames) == len(al) and app.frames.numbers[0] == 13  # the app shows what was loaded
