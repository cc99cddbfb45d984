"""Relative folder settings work from any working folder and in the processes started from it.

A newcomer types ``MLIPVIZ_MODELS=../shared/models ...`` in the checkout; the notebook kernels,
Dask workers and reference workers then run in other folders. Real M3GNet weights from the shared
folder; the setting is given relative, as a shell gives it (``PWD`` is the folder it was typed in).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlipviz.models.registry import get_card, models_dir
from mlipviz.settings import folder_setting, shown

ROOT = Path(__file__).resolve().parents[1]


def _shell_env(**settings) -> dict:
    """The environment a shell in the checkout gives a command it starts with ``settings``."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLIPVIZ_MODELS", "MLIPVIZ_CACHE", "MATGL_CACHE")}
    env.update(PWD=str(ROOT), **settings)
    return env


@pytest.fixture(scope="module")
def relative_models():
    shared = models_dir()
    card = get_card("m3gnet")
    if shared is None or not (shared / card.filenames[0]).exists():
        pytest.skip("the shared M3GNet weights are needed")
    return os.path.relpath(shared, ROOT), shared


CHILD = """
import json, os, subprocess, sys
import mlipviz
from mlipviz.models import matgl_adapter
from mlipviz.models.registry import find_local_weights, get_card
weights, _ = find_local_weights(get_card("m3gnet"), matgl_adapter.package_weights(get_card("m3gnet")))
grandchild = subprocess.run([sys.executable, "-c", "import os; print(os.environ['MLIPVIZ_MODELS'])"],
                            cwd="/", capture_output=True, text=True, check=True).stdout.strip()
print(json.dumps({"weights": str(weights), "cwd": os.getcwd(), "passed_on": grandchild,
                  "cache": str(mlipviz.reference.default_cache_dir())}))
"""


def test_inherited_relative_setting_from_another_folder(tmp_path, relative_models):
    relative, shared = relative_models
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run([sys.executable, "-c", CHILD], cwd=elsewhere, capture_output=True, text=True,
                         env=_shell_env(MLIPVIZ_MODELS=relative, MLIPVIZ_CACHE="cache-here"))
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.splitlines()[-1])
    assert out["cwd"] == str(elsewhere)
    assert out["weights"] == str(shared / get_card("m3gnet").filenames[0])
    assert out["passed_on"] == str(shared)  # a process started by it gets the absolute path
    assert out["cache"] == str(ROOT / "cache-here" / "reference")


def test_notebook_kernel_in_another_folder_finds_relative_weights(tmp_path, relative_models):
    """The notebook-execution path of tests/test_notebooks.py: ``jupyter execute`` in a temporary
    folder, here with the setting relative as the README's commands give it."""
    from test_notebooks import execute_and_check

    relative, shared = relative_models
    cells = ["import mlipviz\nfrom ase.build import bulk\n"
             "model = mlipviz.load_model('m3gnet', device='cpu')\n"
             "frames = mlipviz.read([bulk('Si', 'diamond', a=5.43)])\n"
             "energy = model.predict(frames, progress=False).energy[0]\n"
             "print(model.meta['weights'], energy)"]
    notebook = {"cells": [{"cell_type": "code", "execution_count": None, "id": "c0", "metadata": {},
                           "outputs": [], "source": cell} for cell in cells],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    source = tmp_path / "weights.ipynb"
    source.write_text(json.dumps(notebook))
    folder = tmp_path / "run"
    folder.mkdir()
    env = _shell_env(MLIPVIZ_MODELS=relative)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    execute_and_check(source, folder, env)
    output = json.loads((folder / source.name).read_text())["cells"][0]["outputs"]
    text = "".join("".join(o.get("text", "")) for o in output)
    assert str(shared / get_card("m3gnet").filenames[0]) in text, text


def test_value_set_inside_python_is_relative_to_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLIPVIZ_MODELS", "weights-set-in-python")
    assert folder_setting("MLIPVIZ_MODELS") == tmp_path / "weights-set-in-python"
    assert os.environ["MLIPVIZ_MODELS"] == str(tmp_path / "weights-set-in-python")  # passed on
    monkeypatch.delenv("MLIPVIZ_MODELS")
    assert folder_setting("MLIPVIZ_MODELS") is None


def test_places_are_shown_relative_to_their_setting(tmp_path, monkeypatch):
    import mlipviz

    monkeypatch.setenv("MLIPVIZ_MODELS", str(tmp_path / "models"))
    assert shown(tmp_path / "models" / "a.model") == "$MLIPVIZ_MODELS/a.model"
    assert shown(Path.home() / ".cache" / "mace" / "x") == "~/.cache/mace/x"
    assert shown("/elsewhere/x") == "/elsewhere/x"
    reasons = " ".join(mlipviz.available_models()["reason"])
    assert str(tmp_path) not in reasons and str(Path.home()) not in reasons
