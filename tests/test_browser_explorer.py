"""The Explorer as a user meets it, in a real browser (JupyterLab 4, Notebook 7 and Voila, Debian Chromium
driven by Playwright), through the app's own controls only: upload, open by path, tick models,
choose the reference, run, every result tab and its action, slider, metric, arrows, parity clicks;
views in hidden containers and after a resize; a 1,000-atom structure's coloured atoms;
``mlipviz explore FILE``. Screenshots go to ``$MLIPVIZ_SCREENSHOTS`` (default: the test's folder).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_browser import (
    CHROMIUM,
    METRIC,
    _drawn_fraction,
    _open,
    _pixels,
    _require,
    _wait_for,
    baseline_errors,
    browser_page,
    serve_jupyter,
    wait_for_server,
)

__all__ = ["browser_page"]  # the fixture, shared with test_browser
pytestmark = pytest.mark.slow

TABS = ("summary", "error map", "PES scan", "latent space", "attributions")


def _needs_browser():
    _require(Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    for module in ("playwright", "jupyterlab", "voila"):
        try:
            __import__(module)
        except ImportError:
            _require(False, f"Python package {module} is missing")


def _write_cu(path: Path, n: int, seed: int):
    """``n`` rattled 32-atom Cu cells labelled by EMT, as a user's extxyz file."""
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.io import write

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
        atoms.positions += rng.normal(0, 0.1, atoms.positions.shape)
        atoms.calc = EMT()
        atoms.get_forces()
        images.append(atoms)
    write(path, images)


def _open_explorer(page, url: str, token: str, front_end: str):
    """Open the user folder's explorer notebook in ``front_end`` and wait for the app; returns it."""
    _open(page, url, token, front_end, "explorer")
    app = page.locator(".widget-vbox", has_text="mlipviz Explorer").first
    app.wait_for(timeout=120_000)
    return app


def _notebook(path: Path, cells: list[str]):
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def _visible_canvas(page, within=None, timeout: float = 120):
    """The visible 3D canvas (in ``within``) once it has a size and shows atoms; and its pixels."""
    scope = within if within is not None else page
    canvas = scope.locator("canvas:visible").first
    canvas.wait_for(timeout=timeout * 1000)

    def drawn():
        box = canvas.bounding_box()
        if not box or box["width"] < 100 or box["height"] < 100:
            return None
        image = _pixels(canvas.screenshot())
        return image if _drawn_fraction(image) > 0.01 else None
    return canvas, _wait_for(drawn, timeout, "a sized 3D canvas with atoms drawn", page)


def _changed(canvas, before, page, what: str, timeout: float = 60):
    def differs():
        after = _pixels(canvas.screenshot())
        return after if after.shape == before.shape and (np.abs(after - before).max(axis=-1) > 0.1).mean() > 0.002 \
            else None
    return _wait_for(differs, timeout, f"the canvas to change after {what}", page)


def _tab(page, title: str):
    page.locator(".widget-tab .lm-TabBar-tabLabel", has_text=title).first.click()
    page.wait_for_timeout(1000)
    return page.locator(".widget-tab-contents > .lm-Widget:visible").last


def _no_error_box(page):
    boxes = page.locator(".mlipviz-error:visible")
    assert boxes.count() == 0, boxes.first.inner_text()


def _open_on_server(page, app, name: str, loaded: str):
    """Open ``name`` through the app's "file on server" listing and its load button."""
    page.locator(".widget-toggle-button", has_text="file on server").click()
    page.locator(".widget-select select").select_option(label=name)
    app.locator("button.widget-button[title='load']").click()
    page.get_by_text(loaded).wait_for(timeout=60_000)


def _click_parity_point(page, emap, frame: int):
    """Click a parity-plot point of ``frame``; waits for the pick report naming it."""
    parity = emap.locator(".js-plotly-plot", has_text="force components").first
    data = parity.evaluate("gd => gd.data[0].customdata.map(r => [Number(r[0]), Number(r[1])])")
    k = next(i for i, (f, _) in enumerate(data) if f == frame)
    parity.locator(".scatterlayer .trace").first.locator("path.point").nth(k).click(force=True)
    page.get_by_text(f"frame {frame}, atom {data[k][1]} (Cu)").wait_for(timeout=30_000)


def _make_pca_map(page):
    """Open the latent tab, make a PCA map with its button, wait for the plot and the 3D view."""
    latent = _tab(page, "latent space")
    latent.locator(".widget-dropdown", has_text="projection").locator("select").select_option(
        label="PCA (linear, fast)")
    latent.get_by_role("button", name="make map").click()
    latent.locator(".js-plotly-plot").first.wait_for(timeout=300_000)
    _visible_canvas(page, latent)
    return latent


@pytest.fixture
def user_folder(tmp_path_factory):
    """A working folder as a user has it: two structure files and a notebook with the Explorer."""
    _needs_browser()
    folder = tmp_path_factory.mktemp("work")
    _write_cu(folder / "uploaded.extxyz", 4, seed=7)
    _write_cu(folder / "on_server.extxyz", 3, seed=8)
    _notebook(folder / "explorer.ipynb", ["import mlipviz\napp = mlipviz.Explorer()\napp"])
    return folder


def test_explorer_as_a_user_in_jupyterlab(user_folder, browser_page):
    page, console_errors, shots = browser_page
    with serve_jupyter(user_folder) as (url, token):
        try:
            app = _open_explorer(page, url, token, "jupyterlab")

            # upload through the app's upload control; a file too large is refused with a pointer
            page.locator(".widget-toggle-button", has_text="upload").click()
            page.locator(".mlipviz-upload-input").set_input_files(
                files=[{"name": "huge.extxyz", "mimeType": "text/plain", "buffer": b"0" * (9 * 2**20)}])
            page.get_by_text("open it by its path on the server").wait_for(timeout=30_000)
            page.locator(".mlipviz-upload-input").set_input_files(str(user_folder / "uploaded.extxyz"))
            page.get_by_text("128 in all, 32 per frame").wait_for(timeout=60_000)

            # open a file that is already on the server: pick it in the listing, press load
            _open_on_server(page, app, "on_server.extxyz", "96 in all, 32 per frame")
            assert "energy, forces" in app.inner_text()

            # the models that cannot load here wait in a closed note; opened, it shows them greyed
            # out with their reasons
            note = page.locator(".lm-AccordionPanel-title, .p-Accordion-title, .jupyter-widget-Collapse-header",
                                has_text="cannot load here").first
            assert not page.get_by_role("checkbox", name="mattersim-v1-1m", exact=True).is_visible()
            note.click()
            greyed = page.get_by_role("checkbox", name="mattersim-v1-1m", exact=True)
            greyed.wait_for(timeout=30_000)
            assert greyed.is_disabled() and app.get_by_text("needs its own environment").first.is_visible()
            app.screenshot(path=str(shots / "explorer_models.png"))
            note.click()

            # tick two models, choose another model as the reference, run
            page.get_by_role("checkbox", name="chgnet", exact=True).check()
            page.get_by_role("checkbox", name="m3gnet", exact=True).check()
            page.locator(".widget-dropdown", has_text="reference").locator("select").select_option(
                label="model: sevennet-0")
            page.locator("button.widget-button[title='run']").click()
            page.locator(".widget-tab .lm-TabBar-tabLabel", has_text="attributions").wait_for(timeout=300_000)
            page.get_by_text("3/3 frames").first.wait_for(timeout=30_000)  # per-model progress
            _no_error_box(page)

            # every tab: its canvas draws, its plots render, its action works
            summary = _tab(page, "summary")
            assert "force_mae_eV_A" in summary.inner_text()
            # the model choice: both models in its table and as points of its plot, device named
            choice = summary.locator(".mlipviz-model-choice")
            assert "chgnet" in choice.inner_text() and "m3gnet" in choice.inner_text()
            plot = summary.locator(".js-plotly-plot").first
            plot.wait_for(timeout=60_000)
            _wait_for(lambda: plot.locator(".scatterlayer .point").count() == 2 or None, 60,
                      "the model choice plot to draw both models", page)
            assert "cpu" in plot.locator(".gtitle").text_content()
            summary.screenshot(path=str(shots / "explorer_summary.png"))

            emap = _tab(page, "error map")
            canvas, before = _visible_canvas(page, emap)
            assert emap.locator(".js-plotly-plot").count() >= 3
            emap.screenshot(path=str(shots / "explorer_error_map.png"))
            # frame slider (keyboard on its handle, as a user steps frames)
            emap.locator(".widget-slider", has_text="frame").locator(".noUi-handle").first.press("ArrowRight")
            before = _changed(canvas, before, page, "stepping the frame slider")
            readout = emap.locator(".widget-slider", has_text="frame").locator(".widget-readout").first
            assert readout.inner_text().strip() == "1"
            # metric
            emap.locator(".widget-dropdown", has_text="colour by").locator("select").select_option(label=METRIC)
            before = _changed(canvas, before, page, "changing the metric")
            # force arrows
            emap.get_by_role("checkbox", name="predicted forces").check()
            before = _changed(canvas, before, page, "showing the predicted forces")
            # a parity point of frame 2 moves the viewer there
            _click_parity_point(page, emap, frame=2)
            _wait_for(lambda: readout.inner_text().strip() == "2" or None, 30, "the slider to follow", page)
            _changed(canvas, before, page, "clicking a parity point")
            emap.screenshot(path=str(shots / "explorer_error_map_clicked.png"))

            scan = _tab(page, "PES scan")
            scan.get_by_role("button", name="scan", exact=True).click()
            scan.locator(".js-plotly-plot").first.wait_for(timeout=300_000)
            _visible_canvas(page, scan)
            scan.screenshot(path=str(shots / "explorer_scan.png"))

            latent = _make_pca_map(page)
            latent.screenshot(path=str(shots / "explorer_latent.png"))

            attributions = _tab(page, "attributions")
            assert attributions.get_by_role("button").count() == 1  # one set of controls
            attributions.get_by_role("button", name="attribute force error").click()
            attributions.locator(".js-plotly-plot").first.wait_for(timeout=300_000)
            _visible_canvas(page, attributions)
            attributions.screenshot(path=str(shots / "explorer_attributions.png"))
            _no_error_box(page)

            # back to the error map after the window shrinks: still sized and drawn
            page.set_viewport_size({"width": 1000, "height": 1600})
            emap = _tab(page, "error map")
            _visible_canvas(page, emap)
        except Exception:
            page.screenshot(path=str(shots / "failure_explorer.png"), full_page=True)
            print("browser console errors:", console_errors)
            raise
    assert console_errors == [], console_errors


def _strip_port(text: str) -> str:
    import re

    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1", text)


def _voila_baseline(page, folder: Path) -> set[str]:
    """Console errors of the same Voila serving a notebook without widgets."""
    _notebook(folder / "empty.ipynb", ["1 + 1"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = folder / "voila-empty.log"
    server = subprocess.Popen([sys.executable, "-m", "voila", "empty.ipynb", "--no-browser", f"--port={port}",
                               "--Voila.ip=127.0.0.1", "--theme=light"], cwd=folder,
                              stdout=open(log, "w"),  # noqa: SIM115 - the server writes to it for its whole life
                              stderr=subprocess.STDOUT)
    errors: set[str] = set()
    other = page.context.new_page()
    other.on("console", lambda msg: errors.add(_strip_port(msg.text)) if msg.type == "error" else None)
    try:
        wait_for_server(f"http://127.0.0.1:{port}/", server, log)
        other.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
        other.get_by_text("2").first.wait_for(timeout=120_000)
        other.wait_for_timeout(3000)
    finally:
        other.close()
        server.terminate()
        server.wait(timeout=30)
    return errors


HIDDEN = [
    """import ipywidgets as widgets
import numpy as np
from ase.build import bulk
import mlipviz

cu = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
tab = widgets.Tab([widgets.HTML("first page"), mlipviz.view(cu)], titles=("first", "viewer in tab"))
tab""",
    """accordion = widgets.Accordion([mlipviz.view(cu)], titles=("viewer in accordion",))
accordion""",
    """stack = widgets.Stack([widgets.HTML("first page"), mlipviz.view(cu)], selected_index=0)
pages = widgets.ToggleButtons(options=["first page", "viewer in stack"])
widgets.jslink((pages, "index"), (stack, "selected_index"))
widgets.VBox([pages, stack])""",
    # 1,000 Si atoms coloured by a per-atom value
    """si = bulk("Si", "diamond", a=5.43, cubic=True) * (5, 5, 5)
big = mlipviz.view(si, color_by=si.positions[:, 0], label="x (Å)")
big""",
    # the camera's fit with and without a highlighted atom (NGL grows its box 5 Å around one point)
    """plain, marked = mlipviz.view(cu, height="380px"), mlipviz.view(cu, height="380px")
marked.highlight([3])
plain.layout.width = marked.layout.width = "460px"
widgets.HBox([plain, marked])""",
]


def _settled_extent(canvas, page) -> tuple[float, float] | None:
    """The canvas's drawn extent if it is the same (within 1 %) half a second later, else None."""
    first = _drawn_extent(_pixels(canvas.screenshot()))
    page.wait_for_timeout(500)
    second = _drawn_extent(_pixels(canvas.screenshot()))
    return second if max(abs(a - b) for a, b in zip(first, second)) < 0.01 else None


def _drawn_extent(image: np.ndarray) -> tuple[float, float]:
    """Width and height of the drawn part (not white background, not the resize handle in the
    bottom-right corner) as shares of the canvas."""
    mask = np.abs(image - 1.0).max(axis=-1) > 0.05
    mask[-16:, -16:] = False
    ys, xs = np.nonzero(mask)
    return (xs.max() - xs.min() + 1) / image.shape[1], (ys.max() - ys.min() + 1) / image.shape[0]


@pytest.mark.parametrize("front_end", ["jupyterlab", "voila"])
def test_views_draw_in_hidden_containers_and_large_cells_are_legible(tmp_path_factory, browser_page, front_end):
    """Viewers made inside a hidden Tab page, a closed Accordion and a Stack's other page size
    and draw themselves when shown, in JupyterLab and in Voila (which renders the notebook on the
    server, all outputs at once); a 1,000-atom cell is legible."""
    _needs_browser()
    folder = tmp_path_factory.mktemp("hidden")
    _notebook(folder / "hidden.ipynb", HIDDEN)
    _notebook(folder / "empty.ipynb", ["1 + 1"])
    page, console_errors, shots = browser_page
    with serve_jupyter(folder) as (url, token):
        try:
            baseline = baseline_errors(page, url, token, front_end) if front_end == "voila" else set()
            _open(page, url, token, front_end, "hidden")
            outputs = page.locator(".jp-CodeCell .jp-OutputArea")  # one per cell
            outputs.nth(3).locator("canvas").first.wait_for(timeout=240_000)

            page.locator(".widget-tab .lm-TabBar-tabLabel", has_text="viewer in tab").click()
            shown = [_visible_canvas(page, outputs.nth(0))[0]]
            page.locator(".jupyter-widget-Collapse-header", has_text="viewer in accordion").click()
            shown.append(_visible_canvas(page, outputs.nth(1))[0])
            outputs.nth(2).locator(".widget-toggle-button", has_text="viewer in stack").click()
            shown.append(_visible_canvas(page, outputs.nth(2))[0])
            for where, canvas in zip(("tab", "accordion", "stack"), shown):
                # not shrunk to nothing by its container (a Stack's page once gave it 110 px)
                assert canvas.bounding_box()["width"] >= 350, (where, canvas.bounding_box())

            # 1,000 atoms: spheres large enough that the colours cover much of the canvas
            outputs.nth(3).scroll_into_view_if_needed()
            canvas, image = _visible_canvas(page, outputs.nth(3))
            coloured = _coloured_fraction(image)
            page.screenshot(path=str(shots / f"hidden_containers_and_1000_atoms_{front_end}.png"), full_page=True)
            canvas.screenshot(path=str(shots / f"si_1000_atoms_{front_end}.png"))
            # a cube fitted to a 2.3:1 canvas can cover at most ~45 %; specks cover a few per cent
            assert coloured > 0.15, f"coloured atoms cover only {coloured:.1%} of the canvas"

            # the cell fills its canvas, and a highlighted atom does not shrink the fit
            outputs.nth(4).scroll_into_view_if_needed()
            extents = []
            for k in range(2):
                canvas = outputs.nth(4).locator("canvas").nth(k)
                canvas.wait_for(timeout=120_000)
                _wait_for(lambda canvas=canvas: _drawn_fraction(_pixels(canvas.screenshot())) > 0.01 or None, 120,
                          "the Cu cell drawn", page)
                # the camera is fitted again as the canvas settles (resize, next animation frames; later
                # on a loaded machine): measure once two views half a second apart agree
                extents.append(_wait_for(lambda canvas=canvas: _settled_extent(canvas, page), 60,
                                         "the Cu cell's fit settled", page))
            (w0, h0), (w1, h1) = extents
            assert max(w0, h0) > 0.8, f"the cell fills only {w0:.0%} x {h0:.0%} of its canvas"
            assert abs(w1 - w0) < 0.05 and abs(h1 - h0) < 0.05, f"highlighted: {w1:.0%} x {h1:.0%}, " \
                f"plain: {w0:.0%} x {h0:.0%}"
        except Exception:
            page.screenshot(path=str(shots / f"failure_hidden_{front_end}.png"), full_page=True)
            print("browser console errors:", console_errors)
            raise
    # Voila 0.5 logs some errors of its own for any notebook (offline fonts, an extension)
    assert set(console_errors) <= baseline, set(console_errors) - baseline


def test_explorer_reports_bad_files_in_the_app(user_folder, browser_page):
    """A user uploads a damaged file: the app shows mlipviz's message naming the file, frame and
    atom (no traceback, no server path), stays usable, and the next good file clears it; run with
    no model ticked says so."""
    from ase.io import read, write

    images = read(user_folder / "uploaded.extxyz", ":")
    images[1].positions[5] = [np.nan, 0.0, 0.0]
    write(user_folder / "broken.extxyz", images)
    page, console_errors, shots = browser_page
    with serve_jupyter(user_folder) as (url, token):
        try:
            app = _open_explorer(page, url, token, "jupyterlab")
            page.locator(".widget-toggle-button", has_text="upload").click()
            page.locator(".mlipviz-upload-input").set_input_files(str(user_folder / "broken.extxyz"))
            box = page.locator(".mlipviz-error:visible").first
            box.wait_for(timeout=60_000)
            text = box.inner_text()
            # named as the user knows it, not by the server's copy of the upload
            assert "non-finite coordinates" in text and "(file broken.extxyz, frame 1, atom 5)" in text, text
            assert "Traceback" not in text and "Error:" not in text and "mlipviz-explorer" not in text, text
            assert page.get_by_text("not loaded").is_visible()
            app.screenshot(path=str(shots / "explorer_bad_file.png"))

            page.locator(".mlipviz-upload-input").set_input_files(str(user_folder / "uploaded.extxyz"))
            page.get_by_text("128 in all, 32 per frame").wait_for(timeout=60_000)
            _no_error_box(page)
            page.locator("button.widget-button[title='run']").click()
            page.get_by_text("choose at least one model").wait_for(timeout=30_000)
        except Exception:
            page.screenshot(path=str(shots / "failure_explorer_bad_file.png"), full_page=True)
            print("browser console errors:", console_errors)
            raise
    assert console_errors == [], console_errors


def test_explorer_in_notebook7(user_folder, browser_page):
    """The same app in Notebook 7 (one notebook per browser tab, its own page layout): open a
    file on the server, run CHGNet against the file's labels, the error map draws, its parity
    click moves the viewer, the latent tab makes a map."""
    _notebook(user_folder / "empty.ipynb", ["1 + 1"])
    page, console_errors, shots = browser_page
    with serve_jupyter(user_folder) as (url, token):
        try:
            baseline = baseline_errors(page, url, token, "notebook7")
            app = _open_explorer(page, url, token, "notebook7")
            _open_on_server(page, app, "on_server.extxyz", "96 in all, 32 per frame")
            page.get_by_role("checkbox", name="chgnet", exact=True).check()
            page.locator("button.widget-button[title='run']").click()
            page.locator(".widget-tab .lm-TabBar-tabLabel", has_text="attributions").wait_for(timeout=300_000)
            _no_error_box(page)

            emap = _tab(page, "error map")
            canvas, before = _visible_canvas(page, emap)
            assert emap.locator(".js-plotly-plot").count() >= 3
            _click_parity_point(page, emap, frame=2)
            _changed(canvas, before, page, "clicking a parity point")
            emap.screenshot(path=str(shots / "explorer_error_map_notebook7.png"))

            _make_pca_map(page)
            _no_error_box(page)
        except Exception:
            page.screenshot(path=str(shots / "failure_explorer_notebook7.png"), full_page=True)
            print("browser console errors:", console_errors)
            raise
    # Notebook 7.6 logs some errors of its own for any notebook
    assert set(console_errors) <= baseline, set(console_errors) - baseline


def _coloured_fraction(image: np.ndarray) -> float:
    """Share of pixels in colour (chroma > 0.15): atoms coloured by value, not the white
    background or grey."""
    return float((image.max(axis=-1) - image.min(axis=-1) > 0.15).mean())


def test_mlipviz_explore_serves_the_explorer_on_a_file(tmp_path, browser_page):
    _needs_browser()
    _write_cu(tmp_path / "md.extxyz", 2, seed=3)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "explore.log"
    server = subprocess.Popen([sys.executable, "-m", "mlipviz", "explore", "md.extxyz", "--no-browser",
                               f"--port={port}"], cwd=tmp_path,
                              stdout=open(log, "w"),  # noqa: SIM115 - the server writes to it for its whole life
                              stderr=subprocess.STDOUT)
    page, console_errors, shots = browser_page
    try:
        wait_for_server(f"http://127.0.0.1:{port}/", server, log)
        assert f"http://127.0.0.1:{port}/" in log.read_text()
        page.goto(f"http://127.0.0.1:{port}/", timeout=240_000)
        page.get_by_text("64 in all, 32 per frame").wait_for(timeout=240_000)  # the file is loaded
        page.get_by_role("checkbox", name="chgnet", exact=True).check()
        page.locator("button.widget-button[title='run']").click()
        page.locator(".widget-tab .lm-TabBar-tabLabel", has_text="error map").wait_for(timeout=300_000)
        emap = _tab(page, "error map")
        _visible_canvas(page, emap)
        page.screenshot(path=str(shots / "mlipviz_explore_voila.png"), full_page=True)
    except Exception:
        page.screenshot(path=str(shots / "failure_explore.png"), full_page=True)
        print(log.read_text()[-3000:])
        raise
    finally:
        page.goto("about:blank")  # leave the page first: a page open on a stopped server logs errors
        server.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = server.wait(timeout=60)
        finally:
            if server.poll() is None:
                server.kill()
    assert code == 0, log.read_text()[-3000:]
    assert "stopped" in log.read_text()
    time.sleep(1)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens there any more
    # only errors that Voila logs for a notebook without widgets too (offline CDN fonts, a
    # Notebook 7 extension Voila 0.5 cannot share modules with)
    baseline = _voila_baseline(page, tmp_path)
    assert [e for e in console_errors if _strip_port(e) not in baseline] == [], console_errors


STABILITY = ["""import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
import mlipviz

cu = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
stability = mlipviz.md_stability([EMT(), "chgnet"], cu, temperature=300, steps=20, sample_every=4, device="cpu")
stability.show(model="emt")"""]


def test_stability_view_draws_and_switches_models(tmp_path_factory, browser_page):
    """``md_stability(...).show()`` in JupyterLab: its table, a drawn trajectory with a frame
    slider, and choosing the other model draws that model's trajectory; a clean console."""
    _needs_browser()
    folder = tmp_path_factory.mktemp("stability")
    _notebook(folder / "stability.ipynb", STABILITY)
    page, console_errors, shots = browser_page
    with serve_jupyter(folder) as (url, token):
        try:
            _open(page, url, token, "jupyterlab", "stability")
            output = page.locator(".jp-CodeCell .jp-OutputArea").first
            output.locator("table").first.wait_for(timeout=240_000)
            assert "energy_drift_eV_atom_ps" in output.locator("table").first.inner_text()
            page.get_by_text("stable for all steps").wait_for(timeout=60_000)
            _first, image = _visible_canvas(page, output)
            assert _drawn_fraction(image) > 0.05
            output.locator(".widget-slider:visible").first.wait_for(timeout=30_000)
            assert "Warning" not in output.inner_text()  # no warnings from the dynamics in the output
            output.locator("select").first.select_option("chgnet")
            page.wait_for_timeout(1000)
            _canvas, image = _visible_canvas(page, output)  # a new viewer for CHGNet's trajectory
            assert _drawn_fraction(image) > 0.05
            output.screenshot(path=str(shots / "stability_view.png"))
        except Exception:
            page.screenshot(path=str(shots / "failure_stability.png"), full_page=True)
            print("browser console errors:", console_errors)
            raise
    assert console_errors == [], console_errors


FINETUNE = ["""import mlipviz

states = mlipviz.examples.load("high-energy-states")
si = [i for i, info in enumerate(states.info) if info["material_id"].startswith("Si (")]
view = mlipviz.compare("chgnet", states[si[:6]], progress=False, device="cpu").show()
view.finetune.epochs.value = 3
view"""]


def test_fine_tune_from_the_error_map(tmp_path_factory, browser_page):
    """The error map in JupyterLab: drag over the per-frame curve to select frames, press
    "fine-tune on these", and the fine-tuned model joins the view (its model list, the 3D map,
    the before/after table); a clean console."""
    _needs_browser()
    folder = tmp_path_factory.mktemp("finetune")
    _notebook(folder / "finetune.ipynb", FINETUNE)
    page, console_errors, shots = browser_page
    with serve_jupyter(folder) as (url, token):
        try:
            _open(page, url, token, "jupyterlab", "finetune")
            output = page.locator(".jp-CodeCell .jp-OutputArea").first
            output.get_by_text("no frames selected").wait_for(timeout=240_000)
            _visible_canvas(page, output)
            curve = output.locator(".js-plotly-plot", has_text="per-frame force error").first
            area = curve.locator(".nsewdrag").first.bounding_box()
            # drag a box over the first third of the frames (0 and 1 of 0..5), the whole height
            page.mouse.move(area["x"] + 2, area["y"] + 2)
            page.mouse.down()
            page.mouse.move(area["x"] + area["width"] * 0.3, area["y"] + area["height"] - 2, steps=8)
            page.mouse.up()
            output.get_by_text("selected:").wait_for(timeout=30_000)
            assert "frame(s) (0, 1)" in output.inner_text()
            output.get_by_role("button", name="fine-tune on these").click()
            output.get_by_text("done: chgnet-finetuned").wait_for(timeout=300_000)
            _no_error_box(page)
            options = output.locator(".widget-dropdown", has_text="model").locator("select").first
            assert options.input_value() == "chgnet-finetuned"
            assert "chgnet" in options.inner_text()
            table = output.locator("table.mlipviz-before-after")
            assert "chgnet-finetuned" in table.inner_text() and "never trained on" in output.inner_text()
            _visible_canvas(page, output)  # the 3D map, now of the fine-tuned model
            output.screenshot(path=str(shots / "error_map_finetuned.png"))
        except Exception:
            page.screenshot(path=str(shots / "failure_finetune.png"), full_page=True)
            print("browser console errors:", console_errors)
            raise
    assert console_errors == [], console_errors
