"""The MACE adapter against mace's own ASE calculator.

MACE-MP-0 weights cannot be downloaded here, so the tests build a small MACE model
(`ScaleShiftMACE`, random weights from a fixed seed), save it with ``torch.save`` the way
mace's training does, and load it through ``mlipviz.load_model(path)``: the same code path
real MACE-MP-0 weights take. No numbers are hard-coded; everything is compared with
``MACECalculator`` reading the same file.
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

pytest.importorskip("mace")

import model_tests as common
import torch
from physics import assert_matches_calculator

import mlipviz
from mlipviz.errors import ModelNotAvailableError
from mlipviz.models import registry

#: H O Na Mg Si Cl Cu: the elements of `mixed_structures` and of H2O
ELEMENTS = [1, 8, 11, 12, 14, 17, 29]


def build_small_mace(path):
    """A 2-layer MACE (8x0e+8x1o, max_L=1, r_max 4.5 Å) with random weights, saved to ``path``."""
    import mace  # noqa: F401  (before e3nn)
    from e3nn import o3
    from mace import modules

    torch.manual_seed(0)
    net = modules.ScaleShiftMACE(
        r_max=4.5, num_bessel=6, num_polynomial_cutoff=5, max_ell=2,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
        num_interactions=2, num_elements=len(ELEMENTS), hidden_irreps=o3.Irreps("8x0e+8x1o"),
        MLP_irreps=o3.Irreps("8x0e"), gate=torch.nn.functional.silu,
        atomic_energies=np.linspace(-3.0, -1.0, len(ELEMENTS)), avg_num_neighbors=4.0,
        atomic_numbers=ELEMENTS, correlation=2,
        # a large interaction scale so that random weights give forces of order 1 eV/Å
        atomic_inter_scale=20.0, atomic_inter_shift=0.0)
    torch.save(net, path)
    return path


@pytest.fixture(scope="module")
def small_model_path(tmp_path_factory):
    return build_small_mace(tmp_path_factory.mktemp("mace") / "small.model")


@pytest.fixture(scope="module")
def model64(small_model_path):
    return mlipviz.load_model(small_model_path, device="cpu", dtype="float64")


@pytest.fixture(scope="module")
def calc64(model64):
    return model64.calculator()


@pytest.fixture(scope="module")
def pred64(model64, frames):
    return model64.predict(frames, batch_size=3, return_embeddings=True, progress=False)


# the tests every adapter gets (tests/model_tests.py)
test_backend = common.make_backend_test("model64", "mace")
# stress NaN for the molecule
test_isolated_molecule = common.make_calculator_consistency_test("model64", None, 1e-5, 1e-5, 1e-5, molecule=True)
test_site_energies_sum_to_energy = common.make_site_energy_sum_test("pred64", 1e-10)
test_forces_are_minus_energy_gradient = common.make_force_gradient_test("model64", 1e-4, 1e-6, min_force=0.05)
test_embeddings_same_pass_and_deterministic = common.make_embedding_test("model64", "pred64", 16)
# Fe: not covered by the test model
test_unsupported_element_names_frame_and_atom = common.make_unsupported_element_test("model64", 26, 1, 2, "Fe")
test_molecule_without_cell_matches_big_periodic_box = common.make_free_molecule_test("model64", 20.0, 1e-8, 1e-8)


def test_model_attributes(model64, small_model_path):
    assert model64.name == "small"
    assert (model64.device, model64.dtype) == ("cpu", "float64")
    assert model64.cutoff == pytest.approx(4.5)
    assert model64.elements == frozenset(ELEMENTS)
    assert model64.has_stress and model64.has_energies
    assert "16" in model64.embedding_layer  # 2 layers x 8 scalar channels
    assert model64.meta["weights"] == str(small_model_path)
    assert model64.meta["package_version"]
    assert next(model64.net.parameters()).dtype == torch.float64


def test_batch_equals_mace_atomic_data_batch(model64, frames):
    """The input mlipviz builds is what mace's AtomicData + Batch give, entry for entry."""
    from ase.build import molecule
    from mace import data as mace_data
    from mace.tools import torch_geometric, torch_tools

    water = mlipviz.read(molecule("H2O"))  # non-periodic: get_neighborhood extends its cell
    mixed = mlipviz.Frames.concatenate([frames, water])
    ours = model64._batch(mixed)
    with torch_tools.default_dtype("float64"):
        graphs = [mace_data.AtomicData.from_config(mace_data.config_from_atoms(mixed.to_atoms(i)),
                                                   z_table=model64._z_table, cutoff=model64.cutoff)
                  for i in range(len(mixed))]
    theirs = torch_geometric.Batch.from_data_list(graphs)
    for key, value in ours.items():
        expected = theirs[key]
        assert value.shape == expected.shape, key
        assert value.dtype == (torch.float64 if expected.is_floating_point() else torch.long), key
        torch.testing.assert_close(value, expected.to(value.dtype), rtol=0, atol=1e-12, msg=key)


def test_batched_predict_equals_calculator_float64(pred64, frames, calc64):
    assert len(set(frames.n_atoms.tolist())) > 1  # a ragged batch
    assert np.abs(pred64.forces).max() > 0.05  # the test model is not trivially flat
    assert_matches_calculator(pred64, frames, calc64, 1e-5, 1e-5, 1e-5)


def test_batched_predict_equals_calculator_float32(small_model_path, frames):
    model = mlipviz.load_model(small_model_path, device="cpu", dtype="float32")
    assert next(model.net.parameters()).dtype == torch.float32
    pred = model.predict(frames, batch_size=3, progress=False)
    assert_matches_calculator(pred, frames, model.calculator(), 1e-4, 1e-4, 1e-4)


def test_batch_size_does_not_change_results(model64, frames, pred64):
    one = model64.predict(frames, batch_size=1, progress=False)
    default = model64.predict(frames, progress=False)  # passes sized by cost_per_batch
    assert one.meta["passes"] == len(frames) and 1 <= default.meta["passes"] < len(frames)
    for other in (one, default):
        np.testing.assert_allclose(other.energy, pred64.energy, rtol=0, atol=1e-10)
        np.testing.assert_allclose(other.forces, pred64.forces, rtol=0, atol=1e-10)


def test_embeddings_equal_mace_descriptors(model64, calc64, frames, pred64):
    emb = pred64.embeddings
    assert emb.shape == (frames.total_atoms, 16)
    assert np.isfinite(emb).all() and np.abs(emb).max() > 0
    for i in range(len(frames)):
        ref = calc64.get_descriptors(frames.to_atoms(i), invariants_only=True)
        np.testing.assert_allclose(emb[frames.atoms_of(i)], ref, rtol=0, atol=1e-10)
    again = model64.predict(frames, batch_size=3, return_embeddings=True, progress=False)
    np.testing.assert_array_equal(again.embeddings, emb)  # deterministic
    plain = model64.predict(frames, batch_size=3, progress=False)
    assert plain.embeddings is None
    np.testing.assert_allclose(plain.energy, pred64.energy, rtol=0, atol=1e-12)
    np.testing.assert_allclose(plain.forces, pred64.forces, rtol=0, atol=1e-12)


def test_float64_and_float32_agree(model64, small_model_path, frames, pred64):
    model32 = mlipviz.load_model(small_model_path, device="cpu", dtype="float32")
    pred32 = model32.predict(frames, batch_size=3, progress=False)
    np.testing.assert_allclose(pred32.forces, pred64.forces, rtol=0, atol=1e-4)


# -- weights lookup -------------------------------------------------------------

@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """No $MLIPVIZ_MODELS weights and an empty mace cache."""
    models, cache = tmp_path / "models", tmp_path / "cache"
    models.mkdir()
    cache.mkdir()
    monkeypatch.setenv("MLIPVIZ_MODELS", str(models))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return models, cache


def test_package_weights_is_where_mace_caches(no_weights, small_model_path):
    from mace.calculators.foundations_models import download_mace_mp_checkpoint
    from mace.tools.utils import get_cache_dir

    from mlipviz.models import mace_adapter

    card = registry.get_card("mace-mp-0")
    candidates = mace_adapter.package_weights(card)
    assert candidates[0].parent == get_cache_dir()
    # mace's own download function finds a file at our first candidate and does not download
    candidates[0].parent.mkdir(parents=True)
    shutil.copy(small_model_path, candidates[0])
    assert download_mace_mp_checkpoint(card.url) == str(candidates[0])
    assert mace_adapter.download_source(card) == card.url
    # and load_model finds it there (the test-built stand-in file, not the real MACE-MP-0)
    model = mlipviz.load_model("mace-mp-0", device="cpu")
    assert model.meta["weights"] == str(candidates[0])


def test_offline_without_weights_fails_fast(no_weights, monkeypatch):
    models, cache = no_weights

    def offline(*args, **kwargs):
        raise OSError("network is unreachable (simulated by the test)")

    # offline whatever the machine: no connection succeeds, and no cached answer
    monkeypatch.setattr(registry.socket, "create_connection", offline)
    monkeypatch.setattr(registry, "_ONLINE", {})
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError) as err:
        mlipviz.load_model("mace-mp-0", device="cpu")
    assert time.perf_counter() - start < 5
    message = str(err.value)
    card = registry.get_card("mace-mp-0")
    assert "mace-mp-0" in message and card.url in message
    assert str(models / card.filenames[0]) in message  # looked in $MLIPVIZ_MODELS
    assert str(cache / "mace") in message  # and in mace's cache


def test_models_dir_lookup(no_weights, small_model_path):
    models, _ = no_weights
    # the test-built stand-in file under one of the card's names, NOT the real MACE-MP-0 weights
    shutil.copy(small_model_path, models / "mace-mp-0-medium.model")
    model = mlipviz.load_model("mace-mp-0", device="cpu", dtype="float64")
    assert model.name == "mace-mp-0"
    assert model.meta["weights"] == str(models / "mace-mp-0-medium.model")
    assert model.meta["training_data"] == registry.get_card("mace-mp-0").training_data
    assert model.elements == frozenset(ELEMENTS)


def test_embedding_layer_choice_equals_mace_descriptors(small_model_path, calc64, frames):
    """``embedding_layer=k``: the scalar channels of interaction layer k alone, the last block
    of MACE's own ``get_descriptors(num_layers=k)``; energies and forces unchanged."""
    first = mlipviz.load_model(small_model_path, device="cpu", dtype="float64", embedding_layer=1)
    assert first.embedding_layers == 2 and first.embedding_width == 8 and "layer 1 of 2" in first.embedding_layer
    emb = first.predict(frames, batch_size=3, return_embeddings=True, progress=False).embeddings
    for i in range(len(frames)):
        ref = calc64.get_descriptors(frames.to_atoms(i), invariants_only=True, num_layers=1)
        np.testing.assert_allclose(emb[frames.atoms_of(i)], ref[:, -8:], rtol=0, atol=1e-10)
    second = first.use_embedding_layer(2).predict(frames, batch_size=3, return_embeddings=True, progress=False)
    full = first.use_embedding_layer(None).predict(frames, batch_size=3, return_embeddings=True, progress=False)
    np.testing.assert_array_equal(second.embeddings, full.embeddings[:, 8:])
    np.testing.assert_array_equal(second.forces, full.forces)
    with pytest.raises(mlipviz.errors.InputError, match="embedding_layer=3.*1 to 2"):
        first.use_embedding_layer(3)


def test_a_model_file_from_a_user_path_warns_once_and_trust_silences_it(small_model_path, tmp_path):
    """A .model file is a pickled module (opening it runs code it names): from a path mace did
    not download it warns once, naming the file; trust=True says the user knows its source."""
    import warnings

    from mlipviz.errors import UntrustedFileWarning

    path = tmp_path / "someone_elses.model"
    shutil.copy(small_model_path, path)
    with pytest.warns(UntrustedFileWarning, match="someone_elses.model"):
        mlipviz.load_model(path, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrustedFileWarning)
        mlipviz.load_model(path, device="cpu")  # once per file
        other = tmp_path / "trusted.model"
        shutil.copy(small_model_path, other)
        mlipviz.load_model(other, device="cpu", trust=True)
    with pytest.raises(TypeError, match="trust must be True or False"):
        mlipviz.load_model(path, trust="yes")


def test_mace_cache_is_trusted_and_bad_files_are_named(no_weights, small_model_path, tmp_path):
    import warnings

    from mlipviz.errors import UntrustedFileWarning
    from mlipviz.models import mace_adapter

    cached = mace_adapter.package_weights(registry.get_card("mace-mp-0"))[0]
    cached.parent.mkdir(parents=True)
    shutil.copy(small_model_path, cached)  # where mace's own download puts it
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrustedFileWarning)
        mlipviz.load_model("mace-mp-0", device="cpu")
    text = tmp_path / "notes.model"
    text.write_text("not a model")
    with pytest.raises(ModelNotAvailableError, match="cannot read MACE model file .*notes.model"):
        mlipviz.load_model(text, device="cpu", trust=True)
    with pytest.raises(ModelNotAvailableError, match="is a folder"):
        mlipviz.load_model(tmp_path, device="cpu", backend="mace")


def test_importing_mace_leaves_torch_safe_loading_on():
    """mace sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 when imported; mlipviz restores it, so
    every later torch.load in the process keeps weights_only's default."""
    import subprocess
    import sys

    code = ("import importlib, os, sys\nfrom pathlib import Path\n"
            "from mlipviz.errors import ModelNotAvailableError\nfrom mlipviz.models import mace_adapter\n"
            "try:\n    mace_adapter.load(None, Path('missing.model'), 'cpu', 'float64')\n"
            "except ModelNotAvailableError:\n    pass\n"
            "print('mace' in sys.modules, os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'))\n"
            "import mace\nimportlib.reload(mace)\nprint(os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'))")
    import os

    # this process imported mace at the top of the module (so it has the setting): a clean one
    env = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    imported, kept, unguarded = out.stdout.split()[-3:]
    assert (imported, kept) == ("True", "None")  # imported by load, the setting restored
    assert unguarded == "1"  # what importing mace does without the guard


def test_a_card_names_the_head_of_a_multi_head_model(no_weights, small_model_path):
    models, _ = no_weights
    card = registry.get_card("mace-mh-1")
    assert card.option("head") == "omat_pbe"
    # the test-built single-head stand-in file under MACE-MH-1's name, NOT the real MACE-MH-1:
    # the card's head is looked for, and its absence named with the heads the file has
    shutil.copy(small_model_path, models / card.filenames[0])
    with pytest.raises(ModelNotAvailableError, match=r"has heads \['Default'\], not 'omat_pbe'"):
        mlipviz.load_model("mace-mh-1", device="cpu", dtype="float64")
    # a card without a head option runs the file's only head
    shutil.copy(small_model_path, models / registry.get_card("mace-omat-0").filenames[0])
    assert mlipviz.load_model("mace-omat-0", device="cpu").meta["head"] == "Default"
