"""The SevenNet adapter (real SevenNet-0 weights from the sevenn wheel) against SevenNetCalculator."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sevenn")

import model_tests as common
import torch

import mlipviz
from mlipviz.models import registry

ATOL = 1e-4  # float32


@pytest.fixture(scope="module")
def model():
    return mlipviz.load_model("sevennet-0", device="cpu")


@pytest.fixture(scope="module")
def calc(model):
    return model.calculator()


@pytest.fixture(scope="module")
def pred(model, frames):
    return model.predict(frames, batch_size=3, return_embeddings=True, progress=False)


# the tests every adapter gets (tests/model_tests.py)
test_backend = common.make_backend_test("model", "sevenn")
test_float64_is_refused = common.make_dtype_test("sevennet-0")
test_batched_predict_equals_calculator = common.make_calculator_consistency_test("model", "pred", ATOL, ATOL, ATOL)
# stress NaN for the molecule
test_isolated_molecule = common.make_calculator_consistency_test("model", None, ATOL, ATOL, ATOL, molecule=True)
test_site_energies_sum_to_energy = common.make_site_energy_sum_test("pred", ATOL)
test_batch_size_does_not_change_results = common.make_batch_consistency_test("model", "pred", ATOL, ATOL, ATOL)
# float32: energy rounding ~1e-5 eV over 2h = 1e-2 Å gives ~1e-3 eV/Å of noise; the frame with the strongest forces
test_forces_are_minus_energy_gradient = common.make_force_gradient_test("model", 5e-3, 2e-3)
test_unsupported_element_names_frame_and_atom = common.make_unsupported_element_test("model", None, 1, 2)


def test_model_attributes(model):
    import sevenn.util

    assert model.name == "sevennet-0"
    assert (model.device, model.dtype) == ("cpu", "float32")
    assert model.cutoff == pytest.approx(5.0)
    assert len(model.elements) == 89 and {1, 8, 11, 14, 29} <= model.elements
    assert model.has_stress and model.has_energies
    assert "128" in model.embedding_layer
    assert model.meta["weights"] == sevenn.util.pretrained_name_to_path("7net-0")
    assert model.meta["training_data"] == registry.get_card("sevennet-0").training_data


def test_package_weights_is_the_wheel_checkpoint():
    from mlipviz.models import sevenn_adapter

    sevenn_adapter._import_sevenn()  # e3nn import guard (see PITFALLS.md)
    import sevenn.util

    card = registry.get_card("sevennet-0")
    assert [str(p) for p in sevenn_adapter.package_weights(card)] == \
        [sevenn.util.pretrained_name_to_path(card.version)]


def test_embeddings(model, frames, pred):
    emb = pred.embeddings
    assert emb.shape == (frames.total_atoms, 128)
    assert np.isfinite(emb).all() and np.abs(emb).max() > 0
    again = model.predict(frames, batch_size=3, return_embeddings=True, progress=False)
    np.testing.assert_array_equal(again.embeddings, emb)  # deterministic
    single = model.predict(frames, batch_size=1, return_embeddings=True, progress=False)
    np.testing.assert_allclose(single.embeddings, emb, rtol=0, atol=1e-4)  # batch-independent
    plain = model.predict(frames, batch_size=3, progress=False)
    assert plain.embeddings is None
    np.testing.assert_allclose(plain.energy, pred.energy, rtol=0, atol=1e-6)
    np.testing.assert_allclose(plain.forces, pred.forces, rtol=0, atol=1e-6)


def test_embeddings_feed_the_energy_readout(model, frames, pred):
    """The embeddings are the input of SevenNet's readout: pushing them through its last
    modules (two linears, per-species scale and shift) gives the per-atom energies."""
    net = model.net
    with torch.no_grad():
        x = torch.tensor(pred.embeddings, dtype=torch.float32)
        x = net._modules["reduce_input_to_hidden"].linear(x)
        x = net._modules["reduce_hidden_to_energy"].linear(x).reshape(-1)
        rescale = net._modules["rescale_atomic_energy"]
        types = torch.tensor([net.type_map[int(z)] for z in frames.numbers])
        energies = (x * rescale.scale[types] + rescale.shift[types]).numpy()
    np.testing.assert_allclose(energies, pred.energies, rtol=0, atol=1e-4)


def test_embedding_layer_choice_equals_sevennet_calculator_features(model, calc, frames):
    """Block k's scalar channels equal those captured from SevenNet's own calculator (its own
    model instance) at the same module, one structure at a time."""
    import sevenn._keys as KEY

    assert model.embedding_layers == 5
    try:
        emb = model.use_embedding_layer(2).predict(frames, batch_size=3, return_embeddings=True,
                                                   progress=False).embeddings
        module, index, description = model._embedding_module, model._scalar_index, model.embedding_layer
    finally:
        model.use_embedding_layer(None)
    assert emb.shape[1] == len(index) and "block 2 of 5" in description
    captured = []
    hook = calc.model._modules[module].register_forward_hook(
        lambda mod, inputs, output: captured.append(output[KEY.NODE_FEATURE].detach()))
    try:
        for i in range(len(frames)):
            calc.get_potential_energy(frames.to_atoms(i))
            np.testing.assert_allclose(emb[frames.atoms_of(i)], captured[-1][:, index].numpy(), rtol=0, atol=1e-4)
    finally:
        hook.remove()


def test_checkpoints_from_user_paths_warn_once_shipped_ones_do_not(tmp_path):
    """A SevenNet checkpoint is unpickled in full (its config holds Python objects): the one in
    the sevenn wheel opens silently, a copy elsewhere warns once, naming the file."""
    import shutil
    import warnings

    from mlipviz.errors import ModelNotAvailableError, UntrustedFileWarning
    from mlipviz.models import sevenn_adapter

    shipped = sevenn_adapter.package_weights(registry.get_card("sevennet-0"))[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrustedFileWarning)
        mlipviz.load_model("sevennet-0", device="cpu")
    copy = tmp_path / "sevennet_copy.pth"
    shutil.copy(shipped, copy)
    with pytest.warns(UntrustedFileWarning, match="sevennet_copy.pth"):
        mlipviz.load_model(copy, device="cpu", backend="sevenn")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrustedFileWarning)
        mlipviz.load_model(copy, device="cpu", backend="sevenn", trust=True)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(ModelNotAvailableError, match="cannot read SevenNet checkpoint .*notes.pth"):
        mlipviz.load_model(text, device="cpu", backend="sevenn", trust=True)


# -- SevenNet-l3i5 (l_max 3, 5 interaction blocks), also shipped in the sevenn wheel ---------

@pytest.fixture(scope="module")
def l3i5():
    return mlipviz.load_model("sevennet-l3i5", device="cpu")


@pytest.fixture(scope="module")
def l3i5_pred(l3i5, frames):
    return l3i5.predict(frames, batch_size=3, progress=False)


test_l3i5_backend = common.make_backend_test("l3i5", "sevenn")
test_l3i5_equals_calculator = common.make_calculator_consistency_test("l3i5", "l3i5_pred", ATOL, ATOL, ATOL)
test_l3i5_site_energies_sum_to_energy = common.make_site_energy_sum_test("l3i5_pred", ATOL)
test_l3i5_batch_size_does_not_change_results = common.make_batch_consistency_test("l3i5", "l3i5_pred", ATOL, ATOL,
                                                                                  ATOL)
test_l3i5_forces_are_minus_energy_gradient = common.make_force_gradient_test(
    "l3i5", 5e-3, 2e-3, structure=2, components=[(0, 0), (1, 1), (2, 2), (3, 0), (3, 2)])
# float32 sums of SevenNet-l3i5 differ in the last bit between passes (1e-7 eV/Å), as for SevenNet-0
test_l3i5_embeddings = common.make_embedding_test("l3i5", "l3i5_pred", 128, atol=1e-6)
test_l3i5_unsupported_element = common.make_unsupported_element_test("l3i5", None, 1, 2)


def test_l3i5_is_the_wheel_checkpoint_with_five_blocks(l3i5):
    import sevenn.util

    assert l3i5.meta["weights"] == sevenn.util.pretrained_name_to_path("7net-l3i5")
    assert l3i5.embedding_layers == 5 and "4_equivariant_gate" in l3i5.embedding_layer
