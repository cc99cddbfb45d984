"""Passes sized by a memory budget: cost estimates, the plan, out-of-memory back-off.

The back-off runs a real CHGNet on CPU under a budget kept by counting the bytes autograd
saves; GPU checks run only where torch sees a CUDA device.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.neighborlist import neighbor_list

from mlipviz import Frames
from mlipviz.errors import MlipvizError
from mlipviz.models.batching import BatchPlan, frame_costs

TOL_E, TOL_F, TOL_S = 1e-4, 1e-4, 1e-5  # float32 CHGNet, batched differently


def test_frame_costs_estimate_the_edges_of_a_crystal_and_count_those_of_a_molecule():
    silicon = bulk("Si", "diamond", a=5.43, cubic=True) * 2
    water = molecule("H2O")
    frames = Frames.from_atoms([silicon, water])
    cutoff = 5.0
    first, _ = neighbor_list("ij", silicon, cutoff)
    costs = frame_costs(frames, cutoff)
    assert 0.8 < costs[0] / (len(silicon) + len(first)) < 1.2
    assert costs[1] == 3 * (1 + 2)  # three atoms within the cutoff of each other: every pair
    assert np.array_equal(frame_costs(frames, None), frames.n_atoms)


def test_plan_keeps_atom_frame_cost_and_budget_limits_and_learns_and_splits():
    n_atoms, costs = [4] * 10, [10.0] * 10
    assert BatchPlan(n_atoms, costs, max_atoms=8).stop(0) == 2
    assert BatchPlan(n_atoms, costs, max_frames=3).stop(4) == 7
    assert BatchPlan(n_atoms, costs, max_cost=35.0).stop(1) == 4
    plan = BatchPlan(n_atoms, costs, budget=100.0, bytes_per_unit=2.0)
    assert plan.stop(0) == 4  # 0.8 * 100 / 2 = 40 cost units
    plan.measured(0, 4, nbytes=160.0)  # 4 bytes per unit measured
    assert plan.stop(4) == 6 and plan.largest_pass_bytes == 160.0
    plan.split(4, 6)
    assert plan.stop(4) == 5 and plan.splits == 1
    assert plan.passes == 1 and plan.largest_pass_atoms == 16
    assert BatchPlan([100], [1e9], budget=1.0, bytes_per_unit=1.0).stop(0) == 1  # always a frame
    with pytest.raises(ValueError, match="memory_budget"):
        BatchPlan(n_atoms, costs, budget=0)


@pytest.fixture(scope="module")
def chgnet():
    pytest.importorskip("chgnet")
    from mlipviz.models import load_model

    return load_model("chgnet", device="cpu")


def _bytes(model, frames) -> float:
    return model.predict(frames, memory_budget=1e15, progress=False).meta["largest_pass_bytes"]


def test_measured_bytes_grow_with_the_system(chgnet):
    small = Frames.from_atoms([bulk("Si", "diamond", a=5.43, cubic=True) * 2])
    large = Frames.from_atoms([bulk("Si", "diamond", a=5.43, cubic=True) * 3])
    ratio = _bytes(chgnet, large) / _bytes(chgnet, small)
    assert 0.8 * 27 / 8 < ratio < 1.25 * 27 / 8


def test_out_of_memory_back_off_gives_the_same_answers(chgnet, frames):
    one_by_one = chgnet.predict(frames, batch_size=1, progress=False)
    largest = max(_bytes(chgnet, frames[[i]]) for i in range(len(frames)))
    guess = chgnet.bytes_per_unit
    chgnet.bytes_per_unit = 1.0  # far too low, as for a model not measured before: the first pass overflows
    try:
        result = chgnet.predict(frames, memory_budget=1.2 * largest, progress=False)
    finally:
        chgnet.bytes_per_unit = guess
    assert result.meta["out_of_memory_splits"] >= 1
    assert result.meta["largest_pass_bytes"] <= 1.2 * largest
    np.testing.assert_allclose(result.energy, one_by_one.energy, atol=TOL_E)
    np.testing.assert_allclose(result.forces, one_by_one.forces, atol=TOL_F)
    np.testing.assert_allclose(result.stress, one_by_one.stress, atol=TOL_S)


def test_a_frame_over_the_budget_is_named_and_finished_frames_are_kept(chgnet, tmp_path):
    cell = bulk("Si", "diamond", a=5.43)
    data = Frames.from_atoms([cell, cell, bulk("Si", "diamond", a=5.43, cubic=True) * 2])
    small, big = _bytes(chgnet, data[[0]]), _bytes(chgnet, data[[2]])
    assert big > 4 * small
    checkpoint = tmp_path / "chgnet.h5"
    with pytest.raises(MlipvizError, match=r"frame 2 \(64 atoms, alone in its pass\).*kept in"):
        chgnet.predict(data, batch_size=1, memory_budget=np.sqrt(small * big), checkpoint=checkpoint,
                       progress=False)
    calls = []
    chgnet.predict(data, checkpoint=checkpoint, progress=False, callback=lambda *a: calls.append(a))
    assert calls == [(3, 3)]  # frames 0 and 1 came from the checkpoint, frame 2 in one pass


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="no CUDA GPU")
def test_gpu_matches_cpu_and_measures_its_passes(frames):
    from mlipviz.models import load_model

    pytest.importorskip("chgnet")
    cpu = load_model("chgnet", device="cpu").predict(frames, progress=False)
    gpu = load_model("chgnet", device="cuda").predict(frames, progress=False)
    np.testing.assert_allclose(gpu.energy, cpu.energy, atol=TOL_E)
    np.testing.assert_allclose(gpu.forces, cpu.forces, atol=TOL_F)
    np.testing.assert_allclose(gpu.stress, cpu.stress, atol=TOL_S)
    assert gpu.meta["largest_pass_bytes"] > 0
