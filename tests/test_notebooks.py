"""Every tutorial notebook executes top to bottom, offline, producing its figures and widgets.

With ``MLIPVIZ_TEST_BINDER=1`` they also run as Binder runs them: in a fresh virtual environment
built from binder/ alone (requirements.txt, then postBuild), with a fresh home folder and no
mlipviz setting, the M3GNet weights where postBuild's download puts them (matgl's cache in the
home folder; copied there from the shared folder, since the hub cannot be reached), whose widgets'
JupyterLab extensions are checked first. That build
resolves and installs every package afresh (tens of minutes here), so it is not part of the
default run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"
EXTENSIONS = ("@jupyter-widgets/jupyterlab-manager", "nglview-js-widgets", "anywidget")


#: a stand-in Hugging Face revision for the seeded matgl cache (the hub cannot be reached here)
HUB_REVISION = "0" * 40


def _binder_home(root: Path) -> Path:
    """A fresh home folder as Binder's image has it after postBuild's ``mlipviz fetch m3gnet``:
    the M3GNet weights in matgl's Hugging Face cache (``~/.cache/matgl/models--materialyze--
    <name>/snapshots/<revision>/``), copied there from the shared folder because the hub cannot
    be reached; no mlipviz setting at all."""
    import shutil

    from mlipviz.models.registry import get_card, models_dir

    card = get_card("m3gnet")
    repo = root / ".cache" / "matgl" / f"models--materialyze--{card.version}"
    shutil.copytree(models_dir() / card.filenames[0], repo / "snapshots" / HUB_REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(HUB_REVISION)
    return root


@pytest.fixture(scope="module")
def binder(tmp_path_factory):
    if os.environ.get("MLIPVIZ_TEST_BINDER") != "1":
        pytest.skip("set MLIPVIZ_TEST_BINDER=1 to build the Binder environment (tens of minutes)")
    """(environment variables, postBuild's output) of a venv built as repo2docker builds Binder's
    image: ``pip install -r binder/requirements.txt`` from the repository root, then
    ``binder/postBuild``, which runs, as do the notebooks afterwards, with a fresh home folder and
    none of mlipviz's settings (Binder has no ``MLIPVIZ_MODELS``; the weights come from the
    packages and matgl's cache in the home folder, see `_binder_home`). PyTorch's CPU index is
    unreachable here (pip is told not to retry it); ``torch==2.13.0`` then comes from the
    machine's local CPU wheel."""
    venv = tmp_path_factory.mktemp("binder") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(venv), PIP_RETRIES="0",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", "binder/requirements.txt"],
                             cwd=ROOT, env=env, capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-4000:]
    for name in ("MLIPVIZ_MODELS", "MLIPVIZ_CACHE", "MATGL_CACHE", "XDG_CACHE_HOME"):
        env.pop(name, None)
    env["HOME"] = str(_binder_home(tmp_path_factory.mktemp("home")))
    post = subprocess.run(["bash", "binder/postBuild"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert post.returncode == 0, post.stdout + post.stderr
    return env, post.stdout + post.stderr


@pytest.mark.slow
def test_binder_build(binder):
    env, post_build = binder
    # postBuild's fetch found the weights where matgl's download puts them in the home folder
    assert f"m3gnet: ready ({env['HOME']}/.cache/matgl/models--materialyze--" in post_build, post_build
    torch = subprocess.run(["python", "-c", "import torch, mlipviz; print(torch.__version__, mlipviz.__file__)"],
                           env=env, capture_output=True, text=True, check=True).stdout
    assert "+cpu" in torch and str(ROOT / "mlipviz") in torch
    listing = subprocess.run(["jupyter", "labextension", "list"], env=env, capture_output=True, text=True)
    lines = (listing.stdout + listing.stderr).splitlines()
    for extension in EXTENSIONS:
        assert any(extension in line and "enabled" in line and "OK" in line for line in lines), \
            f"{extension} is not an enabled JupyterLab extension:\n" + "\n".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    execute_and_check(path, tmp_path, dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}"
                                            f"{os.environ['PATH']}"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_the_binder_environment(binder, path, tmp_path):
    execute_and_check(path, tmp_path, binder[0])


def execute_and_check(path: Path, folder: Path, env: dict) -> None:
    """Execute a copy of the notebook in ``folder`` with ``jupyter execute`` from ``env``; no
    cell may fail, cells that plot must produce a figure and cells ending in a widget a view."""
    copy = folder / path.name
    copy.write_text(path.read_text())
    run = subprocess.run(["jupyter", "execute", "--inplace", "--timeout=600", copy.name], cwd=folder, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-4000:]
    cells = [c for c in json.loads(copy.read_text())["cells"] if c["cell_type"] == "code"]
    for cell in cells:
        source = "".join(cell["source"])
        kinds = {kind for out in cell["outputs"] for kind in out.get("data", {})}
        assert not [o for o in cell["outputs"] if o["output_type"] == "error"], source
        if "plt." in source:
            assert "image/png" in kinds, f"no figure from:\n{source}"
        last = source.strip().splitlines()[-1]
        if ".show(" in last or last == "explorer":
            assert WIDGET in kinds, f"no widget from:\n{source}"
