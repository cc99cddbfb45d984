"""MatGL (M3GNet) adapter against matgl's own ASE calculator and finite differences.

Real pretrained M3GNet-MP-2021.2.8-PES from $MLIPVIZ_MODELS; no mocks, no stored numbers.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

pytest.importorskip("matgl")

import model_tests as common
from physics import assert_matches_calculator

from mlipviz.errors import ModelNotAvailableError
from mlipviz.models import load_model
from mlipviz.models.registry import find_local_weights, get_card, models_dir

# float32: energies/forces agree with PESCalculator to ~1e-5, stress to ~3e-6 eV/Å^3 (0.5 MPa)
TOL_E, TOL_F, TOL_S = 1e-4, 1e-4, 1e-5
# float64: PESCalculator rounds its inputs to float32, which alone moves forces by ~|F| 1e-7 ... 1e-6
TOL64 = 1e-5


@pytest.fixture(scope="module")
def model():
    return load_model("m3gnet", device="cpu")


@pytest.fixture(scope="module")
def model64():
    return load_model("m3gnet", device="cpu", dtype="float64")


@pytest.fixture(scope="module")
def prediction(model, frames):
    return model.predict(frames, batch_size=3, progress=False)


# the tests every adapter gets (tests/model_tests.py)
test_backend = common.make_backend_test("model", "matgl")
test_batched_predict_matches_ase_calculator = common.make_calculator_consistency_test(
    "model", "prediction", TOL_E, TOL_F, TOL_S, energies=False)
test_site_energies_sum_to_energy = common.make_site_energy_sum_test("prediction", 1e-4)
test_batch_size_does_not_change_results = common.make_batch_consistency_test("model", "prediction", TOL_E, TOL_F,
                                                                             TOL_S)
# rattled Si, 2 atoms; float64 allows a small step
test_forces_are_minus_energy_gradient = common.make_force_gradient_test(
    "model64", 1e-4, 1e-6, structure=0, components=[(0, 0), (0, 2), (1, 1), (1, 2)])
# ASE convention: stress = (1/V) dE/d(strain) in eV/Å^3 (matgl's own unit is GPa)
test_stress_is_strain_derivative_ase_sign = common.make_stress_gradient_test("model64", 1e-4, 1e-6)
test_embeddings_same_pass_and_deterministic = common.make_embedding_test("model", "prediction", 64)
# Po: Z < 94 but not in M3GNet's element list
test_unsupported_element_names_frame_and_atom = common.make_unsupported_element_test("model", 84, 2, 5, "Po")
test_molecule_without_cell_matches_big_periodic_box = common.make_free_molecule_test("model", 20.0, TOL_E, TOL_F)


def test_attributes(model):
    from ase.data import atomic_numbers

    assert model.name == "m3gnet" and model.dtype == "float32"
    assert model.cutoff == model.net.cutoff == 5.0
    assert model.elements == frozenset(atomic_numbers[s] for s in model.net.element_types)
    assert len(model.elements) == 89 and 84 not in model.elements  # no Po in M3GNet's element list
    assert "node_feat" in model.embedding_layer and "64" in model.embedding_layer
    assert model.has_stress and model.has_energies
    assert model.meta["version"] == "M3GNet-MP-2021.2.8-PES"
    assert "MP" in model.meta["training_data"] and model.meta["package_version"]
    assert model.meta["weights"]


def test_float64_matches_ase_calculator(model64, frames):
    pred = model64.predict(frames, batch_size=3, progress=False)
    assert model64.dtype == "float64"
    assert_matches_calculator(pred, frames, model64.calculator(), TOL64, TOL64, TOL64, energies=False)


def test_bare_model_folder(frames, prediction):
    card = get_card("m3gnet")
    folder = models_dir() / card.filenames[0]
    for spec in (folder, folder / "model.json"):
        bare = load_model(str(spec), device="cpu", backend="matgl" if spec.is_file() else None)
        assert bare.name == folder.name
        pred = bare.predict(frames[:2], progress=False)
        np.testing.assert_allclose(pred.energy, prediction.energy[:2], rtol=0, atol=1e-6)


def test_weights_found_in_matgl_cache(tmp_path, monkeypatch):
    from mlipviz.models import matgl_adapter

    card = get_card("m3gnet")
    shared = models_dir() / card.filenames[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    cache = tmp_path / "matgl-cache"
    cache.mkdir()
    (cache / card.version).symlink_to(shared, target_is_directory=True)
    monkeypatch.setenv("MLIPVIZ_MODELS", str(empty))
    monkeypatch.setenv("MATGL_CACHE", str(cache))
    weights, _ = find_local_weights(card, matgl_adapter.package_weights(card))
    assert weights == cache / card.version / "model.json"
    loaded = load_model("m3gnet", device="cpu")
    assert loaded.meta["weights"] == str(cache / card.version)


def test_offline_without_weights_fails_fast(tmp_path, monkeypatch):
    from mlipviz.models import matgl_adapter
    from mlipviz.models.registry import reachable

    card = get_card("m3gnet")
    if reachable(matgl_adapter.download_source(card)):
        pytest.skip("the model hub is reachable: this test needs an offline machine")
    empty = tmp_path / "models"
    empty.mkdir()
    monkeypatch.setenv("MLIPVIZ_MODELS", str(empty))
    monkeypatch.setenv("MATGL_CACHE", str(tmp_path / "no-cache"))
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError) as info:
        load_model("m3gnet")
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "m3gnet" in message and str(empty) in message and "no-cache" in message
    assert "huggingface.co" in message


def test_embedding_layers_equal_matgl_feature_dict(model, frames):
    """Each block's embeddings equal the node features matgl's own calculator leaves in
    ``M3GNet.feature_dict`` after a separate single-structure pass."""
    calc = model.calculator()
    assert model.embedding_layers == 3
    try:
        for block in (1, 3):
            emb = model.use_embedding_layer(block).predict(frames, batch_size=3, return_embeddings=True,
                                                           progress=False).embeddings
            assert f"block {block} of 3" in model.embedding_layer
            for i in (0, len(frames) - 1):
                calc.get_potential_energy(frames.to_atoms(i))
                own = model.net.feature_dict[f"gc_{block}"]["node_feat"].detach().numpy()
                np.testing.assert_allclose(emb[frames.atoms_of(i)], own, rtol=0, atol=1e-4)
    finally:
        model.net.feature_dict = {}
        model.use_embedding_layer(None)


# -- TensorNet (MatPES-PBE), through the same adapter ----------------------------------------

@pytest.fixture(scope="module")
def tensornet():
    return load_model("tensornet-matpes-pbe", device="cpu")


@pytest.fixture(scope="module")
def tensornet_prediction(tensornet, frames):
    return tensornet.predict(frames, batch_size=3, progress=False)


test_tensornet_backend = common.make_backend_test("tensornet", "matgl")
test_tensornet_matches_ase_calculator = common.make_calculator_consistency_test(
    "tensornet", "tensornet_prediction", TOL_E, TOL_F, TOL_S, energies=False)
test_tensornet_molecule = common.make_calculator_consistency_test("tensornet", None, TOL_E, TOL_F, TOL_S,
                                                                 energies=False, molecule=True)
test_tensornet_site_energies_sum_to_energy = common.make_site_energy_sum_test("tensornet_prediction", 1e-4)
test_tensornet_batches = common.make_batch_consistency_test("tensornet", "tensornet_prediction", TOL_E, TOL_F, TOL_S)
# float32: h = 3e-3 Å balances truncation and rounding; every component of the frame with the strongest force
test_tensornet_forces_are_minus_energy_gradient = common.make_force_gradient_test("tensornet", 3e-3, 2e-3)
test_tensornet_embeddings = common.make_embedding_test("tensornet", "tensornet_prediction", 128)
test_tensornet_unsupported_element = common.make_unsupported_element_test("tensornet", 84, 1, 3, "Po")


def test_tensornet_embeddings_equal_its_readout_and_layer_norms(tensornet, frames):
    """The default embeddings are what TensorNet's final layer maps to each atom's energy (so
    its final layer on them gives the site energies); a layer's are the norms of its node
    tensors' three parts, computed from matgl's own feature_dict after a separate calculator
    pass (its attributions: tests/test_attribution.py)."""
    from matgl.utils.maths import decompose_tensor, tensor_norm

    pred = tensornet.predict(frames, batch_size=3, return_embeddings=True, progress=False)
    pot = tensornet.potential
    with torch.no_grad():
        atomic = tensornet.net.final_layer(torch.as_tensor(pred.embeddings, dtype=torch.float32)).reshape(-1)
    refs = pot.element_refs.property_offset[torch.as_tensor([tensornet.net.element_types.index(s) for s in
                                                             frames.to_atoms(0).get_chemical_symbols()])]
    rows = frames.atoms_of(0)
    site = (pot.data_std * atomic[rows] + pot.data_mean / len(refs) + refs).numpy()
    np.testing.assert_allclose(site, pred.energies[rows], rtol=0, atol=1e-4)
    calc = tensornet.calculator()
    try:
        layer = tensornet.use_embedding_layer(1).predict(frames, batch_size=3, return_embeddings=True,
                                                         progress=False).embeddings
        assert "layer 1 of 2" in tensornet.embedding_layer and layer.shape == (frames.total_atoms, 384)
        i = len(frames) - 1
        calc.get_potential_energy(frames.to_atoms(i))
        own = torch.cat([tensor_norm(p) for p in decompose_tensor(tensornet.net.feature_dict["gc_1"])], dim=-1)
        np.testing.assert_allclose(layer[frames.atoms_of(i)], own.detach().numpy(), rtol=0, atol=1e-4)
    finally:
        tensornet.net.feature_dict = {}
        tensornet.use_embedding_layer(None)
    assert "cosine cutoff" in tensornet.atom_gate


def test_tensornet_gate_does_not_reach_other_threads(tensornet, frames, tensornet_prediction):
    """While one thread attributes (TensorNet's cutoff gated), a prediction in another thread
    gets the plain cutoff: the same energies as without the gate."""
    import threading

    from mlipviz.models.matgl_adapter import _tensornet_cutoff_gated

    out = {}
    with _tensornet_cutoff_gated(torch.zeros(1)):  # a weight that fits no other pass's edges
        worker = threading.Thread(target=lambda: out.update(pred=tensornet.predict(frames, batch_size=3,
                                                                                  progress=False)))
        worker.start()
        worker.join()
    np.testing.assert_array_equal(out["pred"].energy, tensornet_prediction.energy)
