"""The named models that run through their package's own ASE calculator (ORB, PET-MAD, MatterSim,
fairchem's UMA and eSEN): every card's clear, fast error where it cannot load here (the package
is not installed, or its weights are not on this machine and cannot be downloaded), the same
reason in ``available_models()``, and the extras in pyproject.toml (a package that cannot be
installed next to the others stays out of ``mlipviz[all]``). ORB's loading code itself is tested
on a checkpoint the tests build (tests/test_orb_adapter.py); the others' checkpoints cannot be
had here.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import mlipviz
from mlipviz.errors import ModelNotAvailableError
from mlipviz.models import registry

ROOT = Path(__file__).resolve().parents[1]
CALCULATOR_CARDS = [card for found in registry.backends().values() if found.calculator_only for card in found.cards]


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No weights anywhere (empty $MLIPVIZ_MODELS and package caches) and no connection."""
    def refuse(*args, **kwargs):
        raise OSError("network is unreachable (simulated by the test)")

    monkeypatch.setenv("MLIPVIZ_MODELS", str(tmp_path / "models"))
    for variable in ("CACHED_PATH_CACHE_ROOT", "HF_HOME", "HF_HUB_CACHE", "FAIRCHEM_CACHE_DIR", "HOME"):
        monkeypatch.setenv(variable, str(tmp_path / variable.lower()))
    monkeypatch.setattr(registry.socket, "create_connection", refuse)
    monkeypatch.setattr(registry, "_ONLINE", {})
    return tmp_path


def test_there_are_calculator_backends_for_the_current_leaders():
    names = {card.backend for card in CALCULATOR_CARDS}
    assert {"orb", "upet", "mattersim", "fairchem"} <= names
    for card in CALCULATOR_CARDS:  # what a user needs to cite and judge a model
        assert card.citation and card.training_data and card.description and card.url


@pytest.mark.parametrize("card", CALCULATOR_CARDS, ids=lambda card: card.name)
def test_a_model_that_cannot_load_here_says_why_fast(card, offline):
    found = registry.backend(card.backend)
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError) as err:
        mlipviz.load_model(card.name, device="cpu")
    assert time.perf_counter() - start < 5
    message = str(err.value)
    table = mlipviz.available_models()
    assert not table.loc[card.name, "available"] and table.loc[card.name, "runs"] == "calculator"
    reason = table.loc[card.name, "reason"]
    if found.installed:  # the weights: every place looked, and where they download from
        assert card.name in message and card.url in message
        assert str(offline / "models" / card.filenames[0]) in message
        assert reason.startswith("offline and no local weights") and card.filenames[0] in reason
    else:  # the package: its extra, and why it needs an environment of its own
        assert f"mlipviz[{found.extra}]" in message and found.pip in message
        assert f"mlipviz[{found.extra}]" in reason
        if found.coexist:
            assert found.coexist in message and found.coexist in reason
            assert "own environment" in table.loc[card.name, "short_reason"]


def test_extras_and_what_all_installs():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    everything = extras["all"][0].split("[")[1].rstrip("]").split(",")
    for found in registry.backends().values():
        assert found.extra in extras, found.name
        assert any(req.startswith(found.pip) for req in extras[found.extra]), found.name
        # a package that cannot be installed next to the others is not in `all`; every other is
        assert (found.extra in everything) == (not found.coexist), found.name


def test_coexisting_backends_are_installed_by_the_readme():
    # the README's set-up installs mlipviz[all]: every backend in it can be imported here
    for found in registry.backends().values():
        if not found.coexist:
            assert found.installed, f"{found.pip} is in mlipviz[all] but not installed"
