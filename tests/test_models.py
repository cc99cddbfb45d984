"""Model registry, load_model dispatch, device choice, and availability reporting."""

from __future__ import annotations

import socket
import time

import pytest
import torch
from ase.calculators.emt import EMT

import mlipviz
from mlipviz.errors import ModelNotAvailableError
from mlipviz.models import CARDS, registry, resolve_device
from mlipviz.models.ase_adapter import CalculatorModel

NAMES = ["chgnet", "chgnet-0.2.0", "chgnet-r2scan", "mace-mp-0", "mace-mp-0-small", "mace-mpa-0", "mace-omat-0",
         "mace-matpes-pbe-0", "mace-matpes-r2scan-0", "mace-mh-1", "m3gnet", "m3gnet-matpes-pbe",
         "tensornet-matpes-pbe", "sevennet-0", "sevennet-l3i5", "orb-v3-conservative-inf-omat",
         "orb-v3-conservative-inf-mpa", "orb-v3-direct-20-omat", "pet-mad-s", "mattersim-v1-1m", "mattersim-v1-5m",
         "uma-s-1p1", "uma-m-1p1", "esen-sm-conserving-omol"]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network, no $MLIPVIZ_MODELS weights, empty model caches."""
    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(registry, "_ONLINE", {})
    monkeypatch.setenv("MLIPVIZ_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("MATGL_CACHE", str(tmp_path / "matgl"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_registry_has_every_name():
    assert [c.name for c in CARDS] == NAMES
    table = mlipviz.available_models()
    assert list(table.index) == NAMES
    assert table["reason"].str.len().gt(0).all()
    # weights that ship inside their packages, and M3GNet from $MLIPVIZ_MODELS (conftest)
    assert table.loc[["chgnet", "chgnet-0.2.0", "chgnet-r2scan", "sevennet-0", "sevennet-l3i5", "m3gnet",
                      "tensornet-matpes-pbe"], "available"].all()


def test_unavailable_models_say_why(offline):
    table = mlipviz.available_models()
    assert not table.loc["mace-mp-0", "available"]
    assert "offline" in table.loc["mace-mp-0", "reason"]
    assert not table.loc["m3gnet", "available"]
    # where it looked, written relative to the setting (the table is shown and recorded)
    assert "$MLIPVIZ_MODELS/M3GNet-MP-2021.2.8-PES" in table.loc["m3gnet", "reason"]
    assert str(offline) not in table.loc["m3gnet", "reason"]
    assert table.loc["chgnet", "available"]


@pytest.mark.parametrize("name", ["mace-mp-0", "m3gnet"])
def test_offline_load_fails_fast_and_clearly(offline, name):
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError) as err:
        mlipviz.load_model(name)
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert name in message and "Looked in" in message and "MLIPVIZ_MODELS" in message


def test_fetch_names_the_weights_or_fails_fast(offline, capsys):
    """`python -m mlipviz fetch` (Binder's build step): each model loaded once, where its weights
    are said; offline without weights it stops within seconds with the loader's message."""
    from pathlib import Path

    from mlipviz.cli import main

    assert main(["fetch", "chgnet"]) == 0
    weights = capsys.readouterr().out.strip().removeprefix("chgnet: ready (").removesuffix(")")
    assert Path(weights).is_file()
    start = time.perf_counter()
    assert main(["fetch", "mace-mp-0"]) == 2
    assert time.perf_counter() - start < 5
    assert "mace-mp-0" in capsys.readouterr().err


def test_dispatch():
    emt = mlipviz.load_model(EMT())
    assert isinstance(emt, CalculatorModel) and emt.name == "emt"
    assert mlipviz.load_model(emt) is emt
    with pytest.raises(ModelNotAvailableError, match="neither a known model name"):
        mlipviz.load_model("no-such-model")
    with pytest.raises(ValueError, match="dtype"):
        mlipviz.load_model("chgnet", dtype="float16")
    with pytest.raises(TypeError):
        mlipviz.load_model(42)


def test_device_choice():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert mlipviz.load_model("chgnet").device == resolve_device("auto")
    if not torch.cuda.is_available():
        with pytest.raises(ModelNotAvailableError, match="CUDA"):
            resolve_device("cuda")


def test_model_calculator_equals_the_models_own(mixed_structures):
    from mlipviz.models.base import ModelCalculator

    model = mlipviz.load_model("chgnet")
    atoms, twin = mixed_structures[0].copy(), mixed_structures[0].copy()
    atoms.calc, twin.calc = ModelCalculator(model), model.calculator()
    assert atoms.get_potential_energy() == pytest.approx(twin.get_potential_energy(), abs=1e-4)
    assert abs(atoms.get_forces() - twin.get_forces()).max() < 1e-4
    assert abs(atoms.get_stress() - twin.get_stress()).max() < 1e-5


@pytest.mark.parametrize("device", ["gpu", "cuda:x", 3.5, "CPU0"])
def test_a_device_torch_does_not_know_is_named(device):
    from mlipviz.errors import InputError
    from mlipviz.models import resolve_device

    with pytest.raises(InputError, match=f"device must be .*got {device!r}"):
        resolve_device(device)
