"""mlipviz.finetune with MACE (mace's own train_one_epoch, evaluate, loss, optimizer set-up and moving average).

MACE-MP-0 weights cannot be downloaded here: the tests fine-tune the small MACE of tests/test_mace_adapter.py
(`build_small_mace`: a ScaleShiftMACE with random weights from a fixed seed, saved with torch.save as mace's
training does and loaded by path with trust=True, the path real MACE weights take) on four of the bundled
high-energy Si snapshots (GPAW PBE labels; three trained on, one held out), three epochs. Checked: the force
error on the training frames goes down; the saved .model file reloads through `load_model` and predicts the same
numbers; a run interrupted after its first epoch and resumed from its checkpoint ends with the weights of an
uninterrupted run; mace's process-wide torch setting is left as it was; a float64 model trains in float64.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

pytest.importorskip("mace")

import model_tests as common
from test_mace_adapter import build_small_mace

import mlipviz
from mlipviz.errors import UntrustedFileWarning
from mlipviz.models.safety import process_setting_kept

SETTINGS = {"epochs": 3, "patience": None, "seed": 7, "progress": False}
SETTING = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """On two CPU cores that other jobs share, torch's two threads wait on each other (this module ran 3x
    slower with them); one thread for this module, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small_model_path(tmp_path_factory):
    with process_setting_kept():  # the builder imports mace, which sets torch's process-wide setting
        return build_small_mace(tmp_path_factory.mktemp("mace") / "small.model")


@pytest.fixture(scope="module")
def si_frames():
    return common.si_snapshots()


@pytest.fixture(scope="module")
def small(small_model_path):
    return mlipviz.load_model(small_model_path, device="cpu", trust=True)


@pytest.fixture(scope="module")
def tuned(small, si_frames):
    before = os.environ.pop(SETTING, None)  # as if mace's import had restored it (mlipviz's loader does)
    try:
        model = mlipviz.finetune(small, si_frames, validation=[3], **SETTINGS)
        assert SETTING not in os.environ  # mace's training modules imported without leaving it set
    finally:
        if before is not None:
            os.environ[SETTING] = before
    return model


def test_training_lowers_the_error_on_the_training_frames(small, tuned, si_frames):
    meta = tuned.meta["finetune"]
    train = si_frames[meta["train_frames"]]
    assert meta["train_frames"] == [0, 1, 2] and meta["validation_frames"] == [3]
    assert common.force_mae(tuned, train) < 0.9 * common.force_mae(small, train)
    assert meta["improved"] and len(meta["history"]) == SETTINGS["epochs"]
    assert meta["history"][-1]["train_force_mae"] < meta["history"][0]["train_force_mae"]
    errors = {"train_energy_mae", "train_stress_mae_GPa", "val_force_mae", "val_stress_mae_GPa"}
    assert errors <= set(meta["history"][0])
    assert tuned.name == "small-finetuned" and tuned.meta["backend"] == "mace"
    # mace's naive fine-tuning example: --lr=0.01 --batch_size=2 (6 epochs)
    settings = meta["settings"]
    assert (settings["learning_rate"], settings["batch_size"]) == (0.01, 2)
    # every weight trained (mace_run_train --freeze is off); the original network untouched
    base, new = small.net.state_dict(), tuned.net.state_dict()
    assert all(not torch.equal(base[n], new[n]) for n, p in small.net.named_parameters() if p.numel() > 1)
    assert torch.equal(base["atomic_energies_fn.atomic_energies"], new["atomic_energies_fn.atomic_energies"])
    assert not any(p.requires_grad for p in small.net.parameters())


def test_an_unsaved_model_runs_in_maces_calculator(tuned, si_frames):
    atoms = si_frames.to_atoms(3)
    atoms.calc = tuned.calculator()  # MACECalculator on a copy of the network (no .model file)
    pred = tuned.predict(si_frames[[3]], progress=False)
    assert tuned.meta["weights"] is None
    assert atoms.get_potential_energy() == pytest.approx(pred.energy[0], abs=1e-4)
    np.testing.assert_allclose(atoms.get_forces(), pred.forces, rtol=0, atol=1e-4)


def test_saved_model_file_reloads_and_predicts_the_same(small, si_frames, tmp_path):
    path = tmp_path / "mace-si.model"
    model = mlipviz.finetune(small, si_frames, validation=[3], save=path, **{**SETTINGS, "epochs": 1})
    assert model.meta["weights"] == str(path) and model.meta["finetune"]["improved"]
    with pytest.warns(UntrustedFileWarning, match="pickled MACE model"):  # a pickled module from the user's path
        again = mlipviz.load_model(path, device="cpu")
    # the same module unpickled: bit for bit the same numbers
    a, b = model.predict(si_frames, progress=False), again.predict(si_frames, progress=False)
    np.testing.assert_array_equal(a.energy, b.energy)
    np.testing.assert_array_equal(a.forces, b.forces)
    np.testing.assert_array_equal(a.stress, b.stress)
    assert not np.array_equal(a.forces, small.predict(si_frames, progress=False).forces)
    # mace's own calculator reads the file
    atoms = si_frames.to_atoms(0)
    atoms.calc = again.calculator()
    assert atoms.get_potential_energy() == pytest.approx(a.energy[0], abs=1e-4)


def test_resume_gives_the_weights_of_an_uninterrupted_run(small, si_frames, tuned, tmp_path):
    path = tmp_path / "run.pt"
    resumed = common.resumed_after_interruption(small, si_frames, path, validation=[3], **SETTINGS)
    assert [h["epoch"] for h in resumed.meta["finetune"]["history"]] == [0, 1, 2]
    assert resumed.meta["finetune"]["history"] == tuned.meta["finetune"]["history"]
    # bit for bit: network, moving average (the weights kept) and optimizer all come back from the checkpoint
    for (name, a), b in zip(tuned.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_float64_model_trains_in_float64(small_model_path, si_frames):
    model = mlipviz.load_model(small_model_path, device="cpu", dtype="float64", trust=True)
    tuned = mlipviz.finetune(model, si_frames, validation=[3], **{**SETTINGS, "epochs": 1})
    assert tuned.dtype == "float64" and next(tuned.net.parameters()).dtype == torch.float64
    assert tuned.meta["finetune"]["history"][0]["train_force_mae"] > 0
