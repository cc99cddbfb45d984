"""The ORB backend against orb-models' own loading code and ``ORBCalculator``.

ORB's released checkpoints cannot be downloaded here, so the tests build the orb-v3 conservative
architecture with orb-models' own builder (random weights from a fixed seed), save its state
dictionary under the released file name, and load it through ``mlipviz.load_model`` by name from
``$MLIPVIZ_MODELS``, from cached_path's cache, and by path: the code path the real checkpoint
takes. Nothing is hard-coded: every number is compared with orb-models' own calculator on the
same file, or with finite differences of the model's own energy.
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

pytest.importorskip("orb_models")

import model_tests as common
import torch
from physics import assert_matches_calculator

import mlipviz
from mlipviz.errors import ModelNotAvailableError
from mlipviz.models import registry

NAME = "orb-v3-conservative-inf-omat"


def orbs_own(path):
    """orb-models' own model and calculator for the checkpoint at ``path`` (float32, CPU),
    torch's process settings put back as mlipviz does."""
    from orb_models.forcefield import pretrained
    from orb_models.forcefield.calculator import ORBCalculator

    default = torch.get_default_dtype()
    try:
        net = pretrained.orb_v3_conservative_inf_omat(weights_path=str(path), device="cpu",
                                                      precision="float32-highest", compile=False)
    finally:
        torch.set_default_dtype(default)
    return ORBCalculator(net, device="cpu")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The orb-v3 conservative architecture with random weights, under its released file name."""
    from orb_models.forcefield import pretrained
    from orb_models.forcefield.atomic_system import SystemConfig

    card = registry.get_card(NAME)
    torch.manual_seed(0)
    net = pretrained.orb_v3_conservative_architecture(system_config=SystemConfig(radius=6.0, max_num_neighbors=120))
    path = tmp_path_factory.mktemp("orb") / card.filenames[0]
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def orb_model(checkpoint):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLIPVIZ_MODELS", str(checkpoint.parent))
        return mlipviz.load_model(NAME, device="cpu")


def test_loads_by_name_and_equals_orbs_own_calculator(orb_model, checkpoint, frames):
    assert orb_model.name == NAME and orb_model.meta["weights"] == str(checkpoint)
    assert orb_model.meta["architecture"] == NAME and orb_model.meta["conservative"] is True
    assert orb_model.cutoff == 6.0 and orb_model.has_stress
    pred = orb_model.predict(frames, progress=False)
    assert np.abs(pred.forces).max() > 0.01  # random weights, but not a zero model
    # orb-models' own calculator, built by orb-models from the same file
    assert_matches_calculator(pred, frames, orbs_own(checkpoint), 1e-5, 1e-5, 1e-6, energies=False)


test_forces_are_minus_energy_gradient = common.make_force_gradient_test("orb_model", h=1e-2, atol=2e-3,
                                                                        min_force=0.01)
test_backend_metadata = common.make_backend_test("orb_model", "orb")


def test_loading_keeps_torch_process_settings(checkpoint):
    # orb-models sets the default dtype and the float32 matmul precision for the whole process
    before = torch.get_default_dtype(), torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        mlipviz.load_model(checkpoint, device="cpu")
        assert torch.get_float32_matmul_precision() == "medium"
        assert torch.get_default_dtype() == before[0]
    finally:
        torch.set_float32_matmul_precision(before[1])


def test_float64_is_refused_with_the_reason(checkpoint):
    with pytest.raises(mlipviz.errors.InputError, match="dtype='float64'.*process-wide default dtype"):
        mlipviz.load_model(checkpoint, dtype="float64", device="cpu")


def test_a_bare_path_is_matched_to_its_architecture_by_name(checkpoint, tmp_path):
    assert mlipviz.load_model(checkpoint, device="cpu").meta["architecture"] == NAME
    renamed = tmp_path / "my-orb.ckpt"
    shutil.copy(checkpoint, renamed)
    with pytest.raises(ModelNotAvailableError, match=r"my-orb\.ckpt.*ORBCalculator\(model\)"):
        mlipviz.load_model(renamed, device="cpu")


def test_package_weights_is_where_cached_path_keeps_the_download(checkpoint, tmp_path, monkeypatch):
    from cached_path import get_cache_dir
    from cached_path.util import resource_to_filename

    from mlipviz.models import orb_adapter

    monkeypatch.setenv("CACHED_PATH_CACHE_ROOT", str(tmp_path / "cache"))
    monkeypatch.setenv("MLIPVIZ_MODELS", str(tmp_path / "empty"))
    monkeypatch.setattr("cached_path.common.CACHE_DIRECTORY", tmp_path / "cache")
    card = registry.get_card(NAME)
    # where cached_path itself puts the download of the card's URL (with some ETag)
    cached = get_cache_dir() / resource_to_filename(card.url, etag='"abc"')
    cached.parent.mkdir(parents=True)
    shutil.copy(checkpoint, cached)
    assert orb_adapter.package_weights(card) == [cached]
    assert mlipviz.load_model(NAME, device="cpu").meta["weights"] == str(cached)


def test_offline_without_weights_fails_fast(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable (simulated by the test)")

    monkeypatch.setenv("MLIPVIZ_MODELS", str(tmp_path))
    monkeypatch.setenv("CACHED_PATH_CACHE_ROOT", str(tmp_path / "cache"))
    monkeypatch.setattr(registry.socket, "create_connection", offline)
    monkeypatch.setattr(registry, "_ONLINE", {})
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError) as err:
        mlipviz.load_model(NAME, device="cpu")
    assert time.perf_counter() - start < 5
    card = registry.get_card(NAME)
    assert NAME in str(err.value) and card.url in str(err.value)
    assert str(tmp_path / card.filenames[0]) in str(err.value)
