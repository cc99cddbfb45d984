"""Front-end latency in a real browser (JupyterLab, Debian Chromium, Playwright), in one run.

1. From the input event to the changed 3D canvas, for error maps of 100, 1,000 and 10,000 atoms
   (6 frames of rattled fcc Cu; EMT as the model against scaled, noisy EMT labels, so that only
   the front end is measured): frame step (arrow key on the frame slider), recolour (another
   metric), parity click (a point of another frame). A script in the page compares a 64 x 64
   copy of the canvas with its state before the event at every animation frame; the time runs
   from the input event as the page receives it (key down, pointer down, the select's change).
   The same clock on a change made in the page alone (the camera turned by script, no kernel):
   the floor of this browser's drawing, with which the three compare.
2. From pressing the Explorer's run button to its drawn error map (the tab opened as soon as it
   appears, atoms drawn on its canvas) for the bundled ``high-energy-states`` with CHGNet
   against the file's DFT labels: cold (the first run of a fresh kernel, pressed as soon as the
   app is shown) and warm (a second Explorer in the same kernel, nothing reused but the
   imports and the loaded model).

Writes ``benchmarks/results/browser_cpu.json``. Usage: ``python benchmarks/bench_browser.py
[--repeats 15] [--sizes 100,1000,10000]``. Needs what the browser tests need (``chromium``, ``playwright``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_browser import CHROMIUM, CHROMIUM_FLAGS, METRIC, _run_all_cells, serve_jupyter  # noqa: E402

SIZES = {100: (5, 5, 1), 1000: (5, 5, 10), 10000: (10, 10, 25)}
OTHER_METRIC = "|dF| = |F_pred - F_ref| (eV/Å)"

ERROR_MAP = """import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
import mlipviz

rng = np.random.default_rng(0)
base = bulk("Cu", "fcc", a=3.61, cubic=True) * {repeat}
images = []
for _ in range(6):
    atoms = base.copy()
    atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
    atoms.calc = EMT()
    forces, energy = atoms.get_forces(), atoms.get_potential_energy()
    atoms.calc = SinglePointCalculator(atoms, energy=1.02 * energy,
                                       forces=1.15 * forces + rng.normal(0, 0.02, forces.shape))
    images.append(atoms)
cmp = mlipviz.compare(EMT(), mlipviz.read(images), device="cpu", progress=False)
emap = cmp.show()
emap.viewer.ngl._js("window.__mlipvizView = this")  # for the floor: the camera turned in the page
emap"""

WATCH = """canvas => {
  const small = document.createElement("canvas");
  small.width = 64; small.height = 64;
  const ctx = small.getContext("2d", {willReadFrequently: true});
  const grab = () => { ctx.clearRect(0, 0, 64, 64); ctx.drawImage(canvas, 0, 0, 64, 64);
                       return ctx.getImageData(0, 0, 64, 64).data; };
  const before = grab().slice();
  const armed = performance.now();
  // the clock starts at the input event itself (key, pointer or the select's change) as the
  // page receives it, not when Playwright starts dispatching it
  let t0 = null;
  const start = () => { if (t0 === null) t0 = performance.now(); };
  const kinds = ["keydown", "pointerdown", "mousedown", "input", "change"];
  kinds.forEach(kind => document.addEventListener(kind, start, {capture: true, once: true}));
  window.__changed = new Promise(resolve => {
    const tick = () => {
      const now = grab();
      let changed = 0;
      for (let i = 0; i < now.length; i += 4)
        if (Math.abs(now[i] - before[i]) + Math.abs(now[i + 1] - before[i + 1])
            + Math.abs(now[i + 2] - before[i + 2]) > 24) changed++;
      const done = changed > 8 ? performance.now() - (t0 === null ? armed : t0)
                 : performance.now() - armed > 20000 ? -1 : null;
      if (done === null) { requestAnimationFrame(tick); return; }
      kinds.forEach(kind => document.removeEventListener(kind, start, {capture: true}));
      resolve(done);
    };
    requestAnimationFrame(tick);
  });
}"""


SPIN = "() => window.__mlipvizView.stage.viewerControls.spin([0, 1, 0], 0.3)"


def _timed(page, canvas, act) -> float:
    """ms from just before ``act()`` to the canvas change (-1: no change within 20 s)."""
    canvas.evaluate(WATCH)
    act()
    return float(page.evaluate("window.__changed"))


def _click_point(page, parity, index: int):
    """Click point ``index`` of the parity plot's scatter trace where it is drawn (SVG or WebGL)."""
    x, y = parity.evaluate("""(gd, k) => { const t = gd.data.findIndex(d => d.customdata);
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
        return [box.left + xa._offset + xa.l2p(gd.data[t].x[k]), box.top + ya._offset + ya.l2p(gd.data[t].y[k])]; }""",
                           index)
    page.mouse.click(x, y)


def _stats(values):
    ok = np.array([v for v in values if v >= 0])
    return {"median_ms": round(float(np.median(ok)), 1) if len(ok) else None,
            "p95_ms": round(float(np.percentile(ok, 95)), 1) if len(ok) else None,
            "n": len(values), "no_change": int(sum(v < 0 for v in values))}


def _panel(page):
    """The notebook shown (JupyterLab also restores the notebooks opened before, hidden)."""
    return page.locator(".jp-NotebookPanel:visible")


def _open(page, url, token, name):
    # ?reset: a fresh workspace, without the notebooks an earlier measurement left open
    page.goto(f"{url}/lab/tree/{name}?reset&token={token}")
    page.wait_for_selector(".jp-NotebookPanel:visible .jp-Notebook", timeout=90_000)
    page.wait_for_timeout(2000)
    _run_all_cells(page)


def error_map_latencies(page, url, token, folder: Path, n_atoms: int, repeats: int) -> dict:
    import nbformat

    name = f"error_map_{n_atoms}.ipynb"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(ERROR_MAP.format(repeat=SIZES[n_atoms]))])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, folder / name)
    _open(page, url, token, name)
    panel = _panel(page)
    canvas = panel.locator("canvas").first
    canvas.wait_for(timeout=300_000)
    page.wait_for_timeout(8000)  # first drawing and colours settle
    handle = panel.locator(".widget-slider", has_text="frame").locator(".noUi-handle").first
    metric = panel.locator(".widget-dropdown", has_text="colour by").locator("select")
    parity = panel.locator(".js-plotly-plot", has_text="force components").first
    frames = [int(r[0]) for r in parity.evaluate("gd => gd.data.find(t => t.customdata).customdata")]
    readout = panel.locator(".widget-slider", has_text="frame").locator(".widget-readout").first
    out = {"frame_step": [], "recolour": [], "parity_click": [], "floor_camera_turn": []}
    rng = np.random.default_rng(0)
    for k in range(repeats):
        key = "ArrowRight" if (k // 4) % 2 == 0 else "ArrowLeft"
        out["frame_step"].append(_timed(page, canvas, lambda key=key: handle.press(key)))
        page.wait_for_timeout(300)
        label = METRIC if k % 2 == 0 else OTHER_METRIC
        out["recolour"].append(_timed(page, canvas, lambda label=label: metric.select_option(label=label)))
        page.wait_for_timeout(300)
        current = int(readout.inner_text().strip())
        choices = [i for i, f in enumerate(frames) if f != current]
        target = int(rng.choice(choices))
        out["parity_click"].append(_timed(page, canvas, lambda target=target: _click_point(page, parity, target)))
        page.wait_for_timeout(300)
        out["floor_camera_turn"].append(_timed(page, canvas, lambda: page.evaluate(SPIN)))
        page.wait_for_timeout(300)
    return {action: _stats(values) for action, values in out.items()} | {"raw_ms": out}


EXPLORER = "import mlipviz\napp = mlipviz.Explorer()\napp"


def _drawn_in(canvas) -> bool:
    from test_browser import _drawn_fraction, _pixels

    box = canvas.bounding_box()
    return bool(box and box["width"] > 0 and _drawn_fraction(_pixels(canvas.screenshot())) > 0.01)


def run_to_error_map(page, cell) -> float:
    """Seconds from pressing run in the Explorer of notebook ``cell`` to its drawn error map."""
    cell.get_by_role("checkbox", name="chgnet", exact=True).check()
    cell.locator(".widget-toggle-button", has_text="bundled example").click()
    cell.locator(".widget-dropdown", has_text="example").locator("select").select_option(label="high-energy-states")
    t0 = time.perf_counter()
    cell.locator("button.widget-button[title='run']").click()
    tab = cell.locator(".widget-tab .lm-TabBar-tabLabel", has_text="error map")
    tab.wait_for(timeout=600_000)
    tab.click()
    canvas = cell.locator(".widget-tab-contents > .lm-Widget:visible canvas").first
    while not _drawn_in(canvas):
        if time.perf_counter() - t0 > 600:
            raise TimeoutError("the error map was not drawn within 600 s")
        page.wait_for_timeout(50)
    return round(time.perf_counter() - t0, 2)


def explorer_run_times(page, url, token, folder: Path) -> dict:
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(EXPLORER)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, folder / "explorer.ipynb")
    _open(page, url, token, "explorer.ipynb")
    first = _panel(page).locator(".jp-CodeCell").nth(0)
    first.locator("button.widget-button[title='run']").wait_for(timeout=300_000)
    cold = run_to_error_map(page, first)
    # a second Explorer in the same kernel: a new cell below, run from the keyboard
    first.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    second = _panel(page).locator(".jp-CodeCell").nth(1)
    second.locator(".jp-InputArea-editor").click()
    page.keyboard.type("app2 = mlipviz.Explorer()\napp2")
    page.keyboard.press("Shift+Enter")
    second.locator("button.widget-button[title='run']").wait_for(timeout=120_000)
    warm = run_to_error_map(page, second)
    return {"example": "high-energy-states", "model": "chgnet", "reference": "file labels",
            "cold_s": cold, "warm_s": warm}


def _stop_kernels(url: str, token: str) -> None:
    import urllib.request

    headers = {"Authorization": f"token {token}"}
    with urllib.request.urlopen(urllib.request.Request(f"{url}/api/kernels", headers=headers)) as reply:
        kernels = json.load(reply)
    for kernel in kernels:
        urllib.request.urlopen(urllib.request.Request(f"{url}/api/kernels/{kernel['id']}", headers=headers,
                                                      method="DELETE"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--sizes", default="100,1000,10000", help="atoms per error map, comma-separated")
    parser.add_argument("--no-explorer", action="store_true", help="skip run-to-error-map timing")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "browser_cpu.json")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    result = {"machine": f"{platform.processor() or platform.machine()}, headless Chromium with SwiftShader "
                         "(software WebGL)",
              "date": time.strftime("%Y-%m-%d"), "repeats": args.repeats, "error_map": {}}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        folder = Path(tmp)
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=False, args=CHROMIUM_FLAGS)
        with serve_jupyter(folder) as (url, token):
            for n_atoms in (int(n) for n in args.sizes.split(",") if n):
                page = browser.new_context(viewport={"width": 1400, "height": 2000}).new_page()
                try:
                    result["error_map"][str(n_atoms)] = error_map_latencies(page, url, token, folder, n_atoms,
                                                                            args.repeats)
                except Exception:
                    page.screenshot(path=str(args.out.with_suffix(f".failure_{n_atoms}.png")), full_page=True)
                    raise
                print(n_atoms, {k: v for k, v in result["error_map"][str(n_atoms)].items() if k != "raw_ms"},
                      flush=True)
                page.context.close()
                _stop_kernels(url, token)  # an idle kernel and its page would load the next size
            if not args.no_explorer:
                page = browser.new_context(viewport={"width": 1400, "height": 2400}).new_page()
                try:
                    result["run_to_error_map"] = explorer_run_times(page, url, token, folder)
                except Exception:
                    page.screenshot(path=str(args.out.with_suffix(".failure.png")), full_page=True)
                    raise
                print(result["run_to_error_map"], flush=True)
                page.context.close()
        browser.close()
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
