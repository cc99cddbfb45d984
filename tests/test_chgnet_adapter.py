"""CHGNet adapter against chgnet's own ASE calculator and against finite differences.

Real pretrained CHGNet 0.3.0 from the chgnet wheel; no mocks, no stored numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("chgnet")

import model_tests as common
from physics import assert_matches_calculator

from mlipviz import Frames
from mlipviz.models import load_model
from mlipviz.models.registry import get_card

# float32 network: energies/forces agree to ~1e-5, stress to ~1e-6 eV/Å^3 (0.2 MPa)
TOL_E, TOL_F, TOL_S = 1e-4, 1e-4, 1e-5


@pytest.fixture(scope="module")
def model():
    return load_model("chgnet", device="cpu")


@pytest.fixture(scope="module")
def prediction(model, frames):
    return model.predict(frames, batch_size=3, progress=False)


# the tests every adapter gets (tests/model_tests.py)
test_backend = common.make_backend_test("model", "chgnet")
test_float64_is_refused = common.make_dtype_test("chgnet")
# chgnet's own BatchedGraph (used by CHGNetCalculator) triggers this torch warning
test_batched_predict_matches_ase_calculator = pytest.mark.filterwarnings(
    "ignore:Converting a tensor with requires_grad")(
    common.make_calculator_consistency_test("model", "prediction", TOL_E, TOL_F, TOL_S))
test_site_energies_sum_to_energy = common.make_site_energy_sum_test("prediction", 1e-4)
test_batch_size_does_not_change_results = common.make_batch_consistency_test("model", "prediction", TOL_E, TOL_F,
                                                                             TOL_S)
# float32: h = 3e-3 Å balances truncation (~h^2) and rounding (~1e-6 eV / 2h) errors; rattled NaCl, 4 atoms
test_forces_are_minus_energy_gradient = common.make_force_gradient_test(
    "model", 3e-3, 2e-3, structure=2, components=[(0, 0), (1, 1), (2, 2), (3, 0), (3, 2)])
# eV/Å^3, float32 rounding-limited
test_stress_is_strain_derivative_ase_sign = common.make_stress_gradient_test("model", 5e-3, 1e-4)
test_embeddings_same_pass_and_deterministic = common.make_embedding_test("model", "prediction", 64)
# Am: beyond CHGNet's 94-row element embedding
test_unsupported_element_names_frame_and_atom = common.make_unsupported_element_test("model", 95, 1, 3, "Am")
test_molecule_without_cell_matches_big_periodic_box = common.make_free_molecule_test("model", 25.0, TOL_E, TOL_F)


def test_attributes(model):
    from chgnet.graph import CrystalGraphConverter

    assert model.name == "chgnet"
    assert model.dtype == "float32" and model.device == "cpu"
    assert model.cutoff == model.net.graph_converter.atom_graph_cutoff == 6.0
    assert isinstance(model.net.graph_converter, CrystalGraphConverter)
    assert model.elements == frozenset(range(1, model.net.atom_embedding.embedding.num_embeddings + 1))
    assert 94 in model.elements and 95 not in model.elements
    assert "atom_fea" in model.embedding_layer and "64" in model.embedding_layer
    assert model.has_stress and model.has_energies
    assert model.meta["version"] == "0.3.0"
    assert model.meta["weights"].endswith(".pth.tar")
    assert "MPtrj" in model.meta["training_data"]
    assert model.meta["package_version"]


def test_package_weights_and_source():
    from mlipviz.models import chgnet_adapter

    for name in ("chgnet", "chgnet-0.2.0", "chgnet-r2scan"):
        card = get_card(name)
        paths = chgnet_adapter.package_weights(card)
        assert paths and all(p.exists() and p.name.endswith(".pth.tar") for p in paths)
        assert chgnet_adapter.download_source(card).startswith("https://")


def test_fast_graphs_equal_chgnet_converter(model, mixed_structures):
    """The adapter's numpy graph builder reproduces chgnet's CrystalGraphConverter exactly."""
    from ase.build import bulk, fcc111
    from pymatgen.io.ase import AseAtomsAdaptor

    slab = fcc111("Al", (2, 2, 3), vacuum=6.0)
    slab.pbc = (True, True, False)
    one_atom = bulk("Cu", "fcc", a=3.6)  # every neighbour is a periodic image of atom 0
    for i, atoms in enumerate([*mixed_structures, slab, one_atom]):
        ref = model.net.graph_converter(AseAtomsAdaptor.get_structure(atoms))
        mine = model._frame_graph(atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc, i)
        np.testing.assert_array_equal(mine["atom_graph"], ref.atom_graph.numpy())
        np.testing.assert_array_equal(mine["image"], ref.neighbor_image.numpy())
        np.testing.assert_array_equal(mine["directed2undirected"], ref.directed2undirected.numpy())
        np.testing.assert_array_equal(mine["undirected2directed"], ref.undirected2directed.numpy())
        np.testing.assert_array_equal(mine["bond_graph"], ref.bond_graph.numpy().reshape(-1, 5))
        np.testing.assert_array_equal(mine["frac"].astype(np.float32), ref.atom_frac_coord.detach().numpy())
        assert len(mine["bond_graph"]) > 0


# chgnet's own BatchedGraph (used by CHGNetCalculator) triggers this torch warning


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
def test_frames_without_bond_angles(model):
    """bcc Cs has no bond shorter than 3 Å, so no angles; alone and mixed into a batch."""
    from ase.build import bulk

    cs = bulk("Cs", "bcc", a=6.1)
    cs2 = cs * (1, 1, 2)
    cs2.rattle(0.05, seed=1)
    si = bulk("Si", "diamond", a=5.43)
    si.rattle(0.05, seed=2)
    calc = model.calculator()
    for batch in ([cs, cs2], [cs, si, cs2]):
        frames = Frames.from_atoms(batch)
        pred = model.predict(frames, progress=False)
        assert_matches_calculator(pred, frames, calc, TOL_E, TOL_F, TOL_S, energies=False)


def test_bare_weights_path(model, frames, prediction):
    from mlipviz.models import chgnet_adapter

    path = chgnet_adapter.package_weights(get_card("chgnet"))[0]
    bare = load_model(str(path), device="cpu")
    assert bare.name == path.name[: -len(".pth.tar")] == "chgnet_0.3.0_e29f68s314m37"
    assert bare.meta["version"] == "0.3.0"
    pred = bare.predict(frames[:2], progress=False)
    np.testing.assert_allclose(pred.energy, prediction.energy[:2], rtol=0, atol=TOL_E)


def test_embeddings_equal_chgnet_atom_fea_and_layer_choice(model, frames, prediction):
    """Default embeddings are chgnet's own ``return_atom_feas`` output (a separate pass through
    ``CHGNet.predict_structure``); another block changes the features, not the predictions."""
    from pymatgen.io.ase import AseAtomsAdaptor

    emb = model.predict(frames, batch_size=3, return_embeddings=True, progress=False).embeddings
    for i in range(len(frames)):
        structure = AseAtomsAdaptor.get_structure(frames.to_atoms(i))
        own = model.net.predict_structure(structure, task="e", return_atom_feas=True)["atom_fea"]
        np.testing.assert_allclose(emb[frames.atoms_of(i)], own, rtol=0, atol=1e-4)
    assert model.embedding_layers == 4
    try:
        first = model.use_embedding_layer(1).predict(frames, batch_size=3, return_embeddings=True,
                                                     progress=False)
        assert "block 1 of 4" in model.embedding_layer
    finally:
        model.use_embedding_layer(None)
    assert first.embeddings.shape == emb.shape and not np.allclose(first.embeddings, emb)
    np.testing.assert_allclose(first.forces, prediction.forces, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="embedding_layer=0"):
        model.use_embedding_layer(0)


def test_weights_files_are_read_safely_and_bad_ones_named(frames, prediction, tmp_path):
    """CHGNet checkpoints are state dictionaries: read with weights_only=True. One that also
    holds other Python objects is refused unless trust=True; files that are no checkpoint are
    named in the error."""
    import argparse

    import torch

    from mlipviz.errors import ModelNotAvailableError
    from mlipviz.models import chgnet_adapter

    shipped = chgnet_adapter.package_weights(get_card("chgnet"))[0]
    state = torch.load(shipped, map_location="cpu", weights_only=True)
    state["extra"] = argparse.Namespace(note="an arbitrary Python object")
    odd = tmp_path / "chgnet_0.3.0_odd.pth.tar"
    torch.save(state, odd)
    with pytest.raises(ModelNotAvailableError, match=r"chgnet_0.3.0_odd.pth.tar holds Python objects.*trust=True"):
        load_model(str(odd), device="cpu")
    trusted = load_model(str(odd), device="cpu", trust=True)
    np.testing.assert_allclose(trusted.predict(frames[:1], progress=False).energy, prediction.energy[:1],
                               rtol=0, atol=TOL_E)
    text = tmp_path / "chgnet_notes.pth.tar"
    text.write_text("not a checkpoint")
    with pytest.raises(ModelNotAvailableError, match="chgnet_notes.pth.tar is not a CHGNet weights file"):
        load_model(str(text), device="cpu")
    plain = tmp_path / "chgnet_plain.pth.tar"
    torch.save({"weights": torch.zeros(3)}, plain)
    with pytest.raises(ModelNotAvailableError, match="chgnet_plain.pth.tar is not a CHGNet checkpoint"):
        load_model(str(plain), device="cpu")
    with pytest.raises(ModelNotAvailableError, match="is a folder"):
        load_model(str(tmp_path), device="cpu", backend="chgnet")
