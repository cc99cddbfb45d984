"""The error map in a real browser: JupyterLab on localhost, Debian Chromium driven by Playwright.

Asserts that the nglview canvas draws atoms and changes colour with the metric, that the
plotly parity plot renders, that clicking a parity point moves the viewer, and that the
browser console stays free of errors. Screenshots go to ``$MLIPVIZ_SCREENSHOTS`` (default:
the test's temporary folder). Skipped where Chromium or Playwright is missing, except in CI
(``CI=true``, which CI sets when it runs the README's test command) or with
``MLIPVIZ_REQUIRE_BROWSER=1``, where that is a failure.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--enable-unsafe-swiftshader",
                  "--use-angle=swiftshader"]
METRIC = "dF = |F_pred| - |F_ref| (eV/Å)"

NOTEBOOK_CELLS = [
    """import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
import mlipviz

images = []
rng = np.random.default_rng(7)
for _ in range(4):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    atoms.positions += rng.normal(0, 0.1, atoms.positions.shape)
    atoms.calc = EMT()
    atoms.get_forces()
    images.append(atoms)
cmp = mlipviz.compare("chgnet", mlipviz.read(images), device="cpu", progress=False)""",
    "emap = cmp.show()\nemap",
    # ragged frames: the viewer swaps whole structures (here after it is displayed)
    """mixed = mlipviz.view([bulk("NaCl", "rocksalt", a=5.64), bulk("Si", "diamond", a=5.43) * (2, 1, 1)])
mixed""",
    "mixed.frame = 1",
]

pytestmark = pytest.mark.slow


def _require(condition: bool, why: str):
    if not condition:
        if os.environ.get("MLIPVIZ_REQUIRE_BROWSER") == "1" or os.environ.get("CI") == "true":
            pytest.fail(f"browser test required but {why}")
        pytest.skip(why)


@pytest.fixture
def lab(tmp_path_factory):
    """A fresh Jupyter server (JupyterLab, Notebook 7, Voila) on localhost with the test
    notebooks, one per test (a front-end opened earlier leaves sessions and workspace state);
    yields (url, token, folder)."""
    _require(Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    for module in ("playwright", "jupyterlab"):
        try:
            __import__(module)
        except ImportError:
            _require(False, f"Python package {module} is missing")
    import nbformat

    folder = tmp_path_factory.mktemp("lab")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for name in ("error_map", "error_map_notebook7", "error_map_voila"):  # one kernel each
        nbformat.write(notebook, folder / f"{name}.ipynb")
    empty = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    empty.metadata["kernelspec"] = notebook.metadata["kernelspec"]
    nbformat.write(empty, folder / "empty.ipynb")
    with serve_jupyter(folder) as (url, token):
        yield url, token, folder


@contextlib.contextmanager
def serve_jupyter(folder: Path, env: dict | None = None):
    """A Jupyter server (JupyterLab, Notebook 7 and Voila) on a free localhost port with
    ``folder`` as its root; yields (url, token) and stops it afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         "--allow-root", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         # a workspace of its own: JupyterLab reopens the last server's notebooks otherwise (404s)
         f"--LabApp.workspaces_dir={folder / '.workspaces'}"],
        stdout=open(folder / "server.log", "w"),  # noqa: SIM115 - the server writes to it for its whole life
        stderr=subprocess.STDOUT, start_new_session=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(f"{url}/api/status?token={token}", server, folder / "server.log")
        yield url, token
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def wait_for_server(url: str, server: subprocess.Popen, log: Path, timeout: float = 90):
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError as exc:
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError(f"the server at {url} did not start:\n" + log.read_text()[-3000:]) from exc
            time.sleep(0.5)


def _pixels(png: bytes) -> np.ndarray:
    from matplotlib.image import imread

    return imread(io.BytesIO(png), format="png")[..., :3]


def _drawn_fraction(image: np.ndarray) -> float:
    """Share of pixels that are not the (white) background."""
    return float((np.abs(image - 1.0).max(axis=-1) > 0.05).mean())


def _wait_for(predicate, timeout: float, what: str, page=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value is not None and value is not False:
            return value
        (page.wait_for_timeout(500) if page else time.sleep(0.5))
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def browser_page(tmp_path):
    """A Chromium page that records console errors; yields (page, errors, screenshot folder)."""
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("MLIPVIZ_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=False, args=CHROMIUM_FLAGS)
        page = browser.new_context(viewport={"width": 1400, "height": 2000}).new_page()
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        try:
            yield page, errors, shots
        finally:
            browser.close()


def _run_all_cells(page):
    accept = page.locator(".jp-Dialog .jp-mod-accept")  # kernel choice on first open
    if accept.count():
        accept.first.click()
    news = page.locator(".jp-toast-button", has_text="No")  # "notified about Jupyter news?"
    if news.count():
        news.first.click()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def _drawn_canvas(page, timeout: float = 240):
    """The nglview canvas once it shows atoms, and its pixels."""
    canvas = page.locator("canvas").first
    canvas.wait_for(timeout=timeout * 1000)
    _wait_for(lambda: _drawn_fraction(_pixels(canvas.screenshot())) > 0.01 or None, 120,
              "atoms drawn in the nglview canvas", page)
    page.wait_for_timeout(3000)  # let the first colour scheme settle
    return canvas, _pixels(canvas.screenshot())


def _parity(page):
    parity = page.locator(".js-plotly-plot", has_text="force components").first
    parity.wait_for(timeout=60_000)
    return parity, parity.locator(".scatterlayer .trace").first.locator("path.point")


def test_error_map_in_jupyterlab(lab, browser_page):
    url, token, _folder = lab
    page, console_errors, shots = browser_page
    try:
        page.goto(f"{url}/lab/tree/error_map.ipynb?token={token}")
        page.wait_for_selector(".jp-Notebook", timeout=90_000)
        page.wait_for_timeout(2000)
        _run_all_cells(page)

        # (a) the nglview canvas draws atoms ...
        canvas, before = _drawn_canvas(page)
        page.screenshot(path=str(shots / "error_map_jupyterlab.png"), full_page=True)

        # ... and changes colour when the metric changes
        page.locator(".widget-dropdown", has_text="colour by").locator("select").select_option(label=METRIC)

        def recoloured():
            after = _pixels(canvas.screenshot())
            return after if (np.abs(after - before).max(axis=-1) > 0.1).mean() > 0.005 else None
        after = _wait_for(recoloured, 60, "the canvas to change colour", page)
        assert _drawn_fraction(after) > 0.01

        # (b) the parity plot renders with its points
        parity, points = _parity(page)
        assert points.count() == 4 * 32 * 3

        # (c) clicking a point of frame 3 moves the viewer to frame 3: take its most
        # isolated point, so that no other point lies on top of it
        data = parity.evaluate("gd => ({x: Array.from(gd.data[0].x), y: Array.from(gd.data[0].y), "
                               "c: gd.data[0].customdata.map(row => [Number(row[0]), Number(row[1])])})")
        xy = np.column_stack([data["x"], data["y"]])
        frames, atoms = np.array(data["c"]).T
        gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(xy)) * 1e9
        k = int(np.argmax(np.where(frames == 3, gaps.min(axis=1), -1)))
        points.nth(k).click(force=True)
        page.get_by_text(f"frame 3, atom {atoms[k]} (Cu)").wait_for(timeout=30_000)
        readout = page.locator(".widget-slider", has_text="frame").locator(".widget-readout").first
        _wait_for(lambda: readout.inner_text().strip() == "3" or None, 30, "the frame slider to read 3", page)
        page.screenshot(path=str(shots / "error_map_clicked.png"), full_page=True)
        page.locator(".jp-OutputArea-output", has=parity).first.screenshot(path=str(shots / "error_map_output.png"))

        # (e) a viewer of frames with different atoms draws the swapped-in structure
        swapped = page.locator("canvas").nth(1)
        swapped.scroll_into_view_if_needed()
        _wait_for(lambda: _drawn_fraction(_pixels(swapped.screenshot())) > 0.01 or None, 60,
                  "the swapped structure to be drawn", page)
        page.get_by_text("Si", exact=True).first.wait_for(timeout=30_000)  # element legend of frame 1
    except Exception:
        page.screenshot(path=str(shots / "failure_jupyterlab.png"), full_page=True)
        print("browser console errors:", console_errors)
        raise
    # (d) a clean console
    assert console_errors == [], console_errors


def _open(page, url: str, token: str, front_end: str, name: str):
    """Open notebook ``name`` (no suffix) in ``front_end`` ("jupyterlab", "notebook7" or
    "voila") and run it."""
    if front_end in ("jupyterlab", "notebook7"):
        path = "lab/tree" if front_end == "jupyterlab" else "notebooks"
        page.goto(f"{url}/{path}/{name}.ipynb?token={token}")
        page.wait_for_selector(".jp-Notebook", timeout=90_000)
        page.wait_for_timeout(2000)
        _run_all_cells(page)
    else:  # Voila runs the notebook on the server and shows only the outputs
        page.goto(f"{url}/voila/render/{name}.ipynb?token={token}", timeout=240_000)


def baseline_errors(page, url: str, token: str, front_end: str, name: str = "empty") -> set[str]:
    """What ``front_end`` logs to the console for the notebook ``name`` (one without widgets),
    opened in a page of its own: the errors that are the front-end's, not ours."""
    baseline = set()
    empty_page = page.context.new_page()
    empty_page.on("console", lambda msg: baseline.add(msg.text) if msg.type == "error" else None)
    empty_page.on("pageerror", lambda exc: baseline.add(f"page error: {exc}"))
    _open(empty_page, url, token, front_end, name)
    empty_page.wait_for_timeout(5000)
    empty_page.close()
    return baseline


@pytest.mark.parametrize("front_end", ["notebook7", "voila"])
def test_error_map_in_notebook7_and_voila(lab, browser_page, front_end):
    """Draws and plots there too, adding no console errors to those the front-end logs for a
    notebook without widgets (Notebook 7.6 and Voila 0.5 log some of their own)."""
    url, token, _folder = lab
    page, console_errors, shots = browser_page
    try:
        baseline = baseline_errors(page, url, token, front_end)
        _open(page, url, token, front_end, f"error_map_{front_end}")
        _drawn_canvas(page)
        _, points = _parity(page)
        assert points.count() == 4 * 32 * 3
        page.screenshot(path=str(shots / f"error_map_{front_end}.png"), full_page=True)
    except Exception:
        page.screenshot(path=str(shots / f"failure_{front_end}.png"), full_page=True)
        print("browser console errors:", console_errors)
        raise
    assert set(console_errors) <= baseline, set(console_errors) - baseline
