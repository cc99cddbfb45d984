"""mlipviz.finetune: real CHGNet (chgnet's own trainer), M3GNet and TensorNet-MatPES (matgl's training
module) fine-tuned on a few of the bundled high-energy Si snapshots (GPAW PBE labels), a few epochs
each. Checked: the error on the training
frames goes down, the validation frames are never trained on, an interrupted run resumed from its
checkpoint ends with the same weights as an uninterrupted one, the saved weights reload through
`load_model` and predict the same numbers, and bad input is refused with mlipviz's own errors.
"""

from __future__ import annotations

import model_tests as common
import numpy as np
import pytest
import torch

import mlipviz
from mlipviz.errors import InputError, MissingLabelsError, MlipvizError, UnsupportedElementError

SETTINGS = {"epochs": 3, "patience": None, "seed": 7, "progress": False}


@pytest.fixture(scope="module")
def si_frames():
    return common.si_snapshots()


@pytest.fixture(scope="module")
def chgnet():
    return mlipviz.load_model("chgnet", device="cpu")


@pytest.fixture(scope="module")
def tuned(chgnet, si_frames):
    return mlipviz.finetune(chgnet, si_frames, validation=[3], **SETTINGS)


@pytest.fixture(scope="module", params=["chgnet", "m3gnet", "tensornet-matpes-pbe"])
def each_backend(request, si_frames):
    """A model of each backend that can be fine-tuned, and the same model fine-tuned."""
    base = mlipviz.load_model(request.param, device="cpu")
    return base, mlipviz.finetune(base, si_frames, validation=[3], **SETTINGS)


def test_training_lowers_the_error_on_the_training_frames(each_backend, si_frames):
    base, tuned = each_backend
    train = si_frames[tuned.meta["finetune"]["train_frames"]]
    assert common.force_mae(tuned, train) < common.force_mae(base, train)
    history = tuned.meta["finetune"]["history"]
    assert len(history) == SETTINGS["epochs"] and history[-1]["train_force_mae"] < history[0]["train_force_mae"]
    assert tuned.name == f"{base.name}-finetuned" and tuned.meta["backend"] == base.meta["backend"]


def test_validation_frames_are_never_trained_on(tuned, si_frames):
    meta = tuned.meta["finetune"]
    assert meta["validation_frames"] == [3] and meta["train_frames"] == [0, 1, 2]
    assert meta["n_train_frames"] == 3 and meta["n_validation_frames"] == 1
    # a share: at least one frame held out, chosen by the seed, disjoint from the training frames
    split = mlipviz.finetune("chgnet", si_frames, validation=0.25, epochs=1, progress=False, seed=3).meta["finetune"]
    assert len(split["validation_frames"]) == 1
    assert sorted(split["train_frames"] + split["validation_frames"]) == [0, 1, 2, 3]
    assert not set(split["train_frames"]) & set(split["validation_frames"])


def test_result_is_a_model_with_a_description(tuned, chgnet):
    assert tuned.name == "chgnet-finetuned" and tuned is not chgnet
    assert tuned.meta["finetune"]["base_model"] == "chgnet"
    assert tuned.meta["finetune"]["settings"]["learning_rate"] > 0
    # the original is untouched: its network still predicts as before
    assert not any(p.requires_grad for p in chgnet.net.parameters())


def test_resume_gives_the_weights_of_an_uninterrupted_run(chgnet, si_frames, tuned, tmp_path):
    # CHGNet through chgnet's Trainer; matgl's module below
    path = tmp_path / "run.pt"
    resumed = common.resumed_after_interruption(chgnet, si_frames, path, validation=[3], **SETTINGS)
    assert [h["epoch"] for h in resumed.meta["finetune"]["history"]] == [0, 1, 2]
    for (name, a), b in zip(tuned.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), name
    # another run's checkpoint is not resumed by mistake
    with pytest.raises(InputError, match="another fine-tuning run"):
        mlipviz.finetune(chgnet, si_frames, validation=[2], checkpoint=path, **SETTINGS)


@pytest.mark.parametrize(("name", "file"), [("chgnet", "chgnet-si.pth.tar"), ("m3gnet", "m3gnet-si")])
def test_saved_weights_reload_and_predict_the_same(name, file, si_frames, tmp_path):
    path = tmp_path / file  # a checkpoint file (CHGNet), a model folder (MatGL)
    model = mlipviz.finetune(name, si_frames, validation=[3], save=path, **{**SETTINGS, "epochs": 1})
    again = mlipviz.load_model(path, device="cpu")
    a, b = model.predict(si_frames, progress=False), again.predict(si_frames, progress=False)
    np.testing.assert_array_equal(a.energy, b.energy)
    # float32 rounding: matgl's forces move by 1e-7 eV/Å with what ran before in the process
    np.testing.assert_allclose(a.forces, b.forces, rtol=0, atol=1e-6)
    assert model.meta["weights"] == str(path)


def test_bad_input(chgnet, si_frames):
    with pytest.raises(InputError, match="at least 2 labelled frames"):
        mlipviz.finetune(chgnet, si_frames[:1], progress=False)
    with pytest.raises(InputError, match="fewer than all"):
        mlipviz.finetune(chgnet, si_frames, validation=[0, 1, 2, 3], progress=False)
    unlabelled = si_frames[[0, 1, 2, 3]]  # a copy: indexing with a list copies the arrays
    unlabelled.forces[unlabelled.atoms_of(2)] = np.nan
    with pytest.raises(MissingLabelsError, match="frame"):
        mlipviz.finetune(chgnet, unlabelled, validation=[3], progress=False)
    atoms = [si_frames.to_atoms(i) for i in range(2)]
    atoms[1].numbers[0] = 95  # Am: beyond CHGNet's element embedding
    with pytest.raises(UnsupportedElementError):
        mlipviz.finetune(chgnet, mlipviz.Frames.from_atoms(atoms), progress=False)
    from ase.calculators.lj import LennardJones

    with pytest.raises(MlipvizError, match="no network mlipviz can train"):
        mlipviz.finetune(LennardJones(), si_frames, progress=False)


def test_matgl_resume_gives_the_weights_of_an_uninterrupted_run(si_frames, tmp_path):
    m3gnet = mlipviz.load_model("m3gnet", device="cpu")
    settings = {**SETTINGS, "epochs": 2}
    whole = mlipviz.finetune(m3gnet, si_frames, validation=[3], **settings)

    def stop(epoch, errors):
        raise KeyboardInterrupt("interrupted by the test")

    path = tmp_path / "m3gnet.pt"
    with pytest.raises(KeyboardInterrupt):
        mlipviz.finetune(m3gnet, si_frames, validation=[3], checkpoint=path, callback=stop, **settings)
    resumed = mlipviz.finetune(m3gnet, si_frames, validation=[3], checkpoint=path, **settings)
    # equal to float32 rounding, not bit for bit: matgl's forward pass rounds differently depending
    # on what ran before it in the process (a validation pass before the first training step moves
    # the weights by 7e-7), while two uninterrupted runs agree bit for bit
    for (name, a), b in zip(whole.potential.state_dict().items(), resumed.potential.state_dict().values()):
        if a.dtype.is_floating_point:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)
    first, again = whole.meta["finetune"]["history"][0], resumed.meta["finetune"]["history"][0]  # read back
    assert again == pytest.approx(first, rel=1e-5)


def test_a_run_that_makes_the_model_worse_returns_it_unchanged(chgnet, si_frames):
    # a learning rate far too large: every epoch is worse on the validation frame than CHGNet itself
    with pytest.warns(mlipviz.errors.NotImprovedWarning, match="its own weights are returned"):
        worse = mlipviz.finetune(chgnet, si_frames, validation=[3], learning_rate=1.0, **{**SETTINGS, "epochs": 2})
    meta = worse.meta["finetune"]
    assert meta["best_epoch"] == -1 and not meta["improved"]
    assert all(h["val_force_mae"] > meta["baseline"]["val_force_mae"] for h in meta["history"])
    before, after = chgnet.predict(si_frames, progress=False), worse.predict(si_frames, progress=False)
    np.testing.assert_array_equal(after.forces, before.forces)


def test_labels_with_another_energy_zero_are_moved_to_the_models(chgnet):
    # all-electron PySCF PBE energies of Si2 (bundled): thousands of eV below the zero CHGNet learned
    dimers = mlipviz.examples.load("diatomics", level="pbe")
    si2 = dimers[[i for i, info in enumerate(dimers.info) if info["molecule"] == "Si2"]][8:16]
    tuned = mlipviz.finetune(chgnet, si2, validation=[0, 4], **SETTINGS)  # a molecule: in a vacuum box
    meta = tuned.meta["finetune"]
    gap = (si2.energy - chgnet.predict(si2, progress=False).energy) / si2.n_atoms
    train = meta["train_frames"]
    assert meta["energy_offsets_eV"]["Si"] == pytest.approx(np.mean(gap[train]), rel=1e-9)
    assert abs(meta["energy_offsets_eV"]["Si"]) > 1000 and meta["baseline"]["val_energy_mae"] < 1
    # the fine-tuned model keeps CHGNet's zero
    shift = tuned.predict(si2, progress=False).energy - chgnet.predict(si2, progress=False).energy
    assert np.abs(shift).max() < 5
    as_given = mlipviz.finetune(chgnet, si2, validation=[0, 4], energy_zero="labels", **{**SETTINGS, "epochs": 1})
    assert as_given.meta["finetune"]["energy_offsets_eV"] == {}
    assert as_given.meta["finetune"]["baseline"]["val_energy_mae"] > 1000


def test_choose_label_and_fine_tune(chgnet):
    """The recipe of docs/finetune.md on Si2 dimers: a committee picks the frames it disagrees
    on most, a live PySCF calculation labels them, CHGNet is fine-tuned on them."""
    pytest.importorskip("pyscf")
    dimers = mlipviz.examples.load("diatomics", level="pbe")
    si2 = dimers[[i for i, info in enumerate(dimers.info) if info["molecule"] == "Si2"]]
    bare = si2.with_labels(energy=None, forces=None)
    committee = mlipviz.compare(["chgnet", "m3gnet"], bare, reference=False, progress=False, device="cpu")
    picks = mlipviz.frames_to_label(committee, n=3, by="disagreement")
    pbe = mlipviz.reference.PySCF(method="PBE", basis="def2-SVP")
    labelled = pbe.evaluate(bare[picks.index.tolist()], progress=False)
    assert labelled.has_labels["forces"] and "PBE" in labelled.info[0]["reference"]
    tuned = mlipviz.finetune(chgnet, labelled, validation=1 / 3, **SETTINGS)
    assert tuned.meta["finetune"]["n_train_frames"] == 2 and tuned.meta["finetune"]["n_validation_frames"] == 1
