"""The Explorer app: load structures, pick models and a reference, run, explore the results.

Result tabs plug in through `register_tab(title, build)`: ``build(run)`` gets a `Run`
(the comparison and the loaded models, reference and device that made it) and returns a
widget. The app itself computes nothing: it calls `mlipviz.read`, `mlipviz.compare` and
the tabs' builders.
"""

from __future__ import annotations

import html
import tempfile
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import ipywidgets as widgets

from ..analysis.compare import Comparison
from ..errors import MlipvizError
from ..frames import Frames
from ..models.base import Model


@dataclass
class Run:
    """What a result tab gets: the comparison and what produced it (to run more with)."""

    comparison: Comparison
    models: list[Model]
    reference: Any  # None (the structures' labels), a reference calculator, or a model
    device: str


_TABS: dict[str, Callable[[Run], widgets.Widget]] = {}

FILE_LABELS = "labels in the structures"
PYSCF = "PySCF (molecules)"
GPAW = "GPAW (periodic, PAW plane waves)"
MODEL_PREFIX = "model: "


def register_tab(title: str, build: Callable[[Run], widgets.Widget]) -> None:
    """Add a result tab to every Explorer: ``build(run)`` returns its widget."""
    _TABS[title] = build


def result_tabs() -> dict[str, Callable[[Run], widgets.Widget]]:
    """The registered result tabs, in order."""
    return dict(_TABS)


class Cancelled(MlipvizError):
    """The user pressed cancel."""


class Explorer(widgets.VBox):
    """Load a structure, choose models and a reference, run, and explore the result tabs.

    ``structures``: an optional Python object for the "object" source (anything
    `mlipviz.read` accepts). ``models``: extra models (`Model` objects or ASE
    calculators) offered next to the registry. Finished model batches are checkpointed in
    a temporary folder (one per structure set), so a cancelled run resumes where it stopped.
    """

    def __init__(self, structures=None, models=None):
        from .. import examples
        from ..models import available_models

        self.frames: Frames | None = None
        self.result: Run | None = None
        self._object = structures
        self._extra_models = {getattr(m, "name", type(m).__name__): m for m in (models or [])}
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._workdir = tempfile.TemporaryDirectory(prefix="mlipviz-explorer-")

        # source
        sources = ["upload", "example"] + (["object"] if structures is not None else [])
        self.source = widgets.ToggleButtons(options=sources, value="object" if structures is not None else "upload",
                                            description="structures")
        self.upload = widgets.FileUpload(multiple=False, description="file")
        self.example = widgets.Dropdown(options=examples.list(), description="example")
        self.load_button = widgets.Button(description="load", icon="folder-open")
        self.load_button.on_click(lambda _: self.load())
        self.structure_info = widgets.HTML()

        # models: every registry entry, disabled with the reason where it cannot load here
        table = available_models()
        self.model_boxes: dict[str, widgets.Checkbox] = {}
        rows = []
        for name, row in table.iterrows():
            box = widgets.Checkbox(False, description=name, disabled=not row["available"], indent=False,
                                   layout={"width": "170px"})
            self.model_boxes[name] = box
            reason = "" if row["available"] else row["reason"]
            rows.append(widgets.HBox([box, widgets.HTML(f"<span style='color:#888;font-size:11px'>"
                                                        f"{html.escape(reason)}</span>")]))
        for name in self._extra_models:
            self.model_boxes[name] = widgets.Checkbox(True, description=name, indent=False)
            rows.append(self.model_boxes[name])
        self.unavailable = {name: row["reason"] for name, row in table.iterrows() if not row["available"]}

        # reference
        loadable = [n for n, b in self.model_boxes.items() if not b.disabled]
        self.reference = widgets.Dropdown(
            options=[FILE_LABELS, PYSCF, GPAW] + [MODEL_PREFIX + n for n in loadable], description="reference")
        self.pyscf_method = widgets.Text("PBE", description="method")
        self.pyscf_basis = widgets.Text("def2-SVP", description="basis")
        self.gpaw_ecut = widgets.FloatText(520.0, description="cutoff (eV)")
        self.gpaw_kdens = widgets.FloatText(4.0, description="k-density (1/Å⁻¹)",
                                            style={"description_width": "initial"})
        self.reference_settings = widgets.HBox()
        self.reference.observe(lambda _: self._show_reference_settings(), "value")
        self._show_reference_settings()

        self.device = widgets.Dropdown(options=self._devices(), description="device")
        self.run_button = widgets.Button(description="run", button_style="primary", icon="play")
        self.cancel_button = widgets.Button(description="cancel", icon="stop", disabled=True)
        self.run_button.on_click(lambda _: self.run())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.progress = widgets.IntProgress(0, 0, 1, description="", layout={"width": "300px"})
        self.status = widgets.HTML()
        self.message = widgets.HTML()
        self.tabs = widgets.Tab()
        self.source.observe(lambda _: self._show_source(), "value")
        self.source_box = widgets.HBox()
        self._show_source()

        super().__init__([
            widgets.HTML("<h3 style='margin:4px 0'>mlipviz Explorer</h3>"),
            self.source, widgets.HBox([self.source_box, self.load_button]), self.structure_info,
            widgets.HTML("<b>models</b>"), widgets.VBox(rows),
            widgets.HBox([self.reference, self.reference_settings]),
            widgets.HBox([self.device, self.run_button, self.cancel_button, self.progress, self.status]),
            self.message, self.tabs,
        ])

    # -- inputs ------------------------------------------------------------------
    def _show_source(self):
        self.source_box.children = {"upload": [self.upload], "example": [self.example],
                                    "object": [widgets.HTML(f"<i>{html.escape(_describe(self._object))}</i>")]
                                    }[self.source.value]

    def _show_reference_settings(self):
        choice = self.reference.value
        self.reference_settings.children = (
            [self.pyscf_method, self.pyscf_basis] if choice == PYSCF else
            [self.gpaw_ecut, self.gpaw_kdens] if choice == GPAW else [])

    @staticmethod
    def _devices() -> list[str]:
        import torch

        return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    def load(self) -> Frames | None:
        """Read the chosen source into `frames`; errors show in the app."""
        from .. import examples
        from ..io import read

        try:
            if self.source.value == "upload":
                if not self.upload.value:
                    raise MlipvizError("choose a file to upload first")
                item = self.upload.value[0]
                path = Path(self._workdir.name) / Path(item["name"]).name
                path.write_bytes(bytes(item["content"]))
                self.frames = read(path)
            elif self.source.value == "example":
                if not self.example.value:
                    raise MlipvizError("no bundled examples in this installation")
                self.frames = examples.load(self.example.value)
            else:
                self.frames = read(self._object)
        except Exception as exc:
            self._error(exc)
            return None
        f = self.frames
        labels = [k for k, present in f.has_labels.items() if present]
        self.structure_info.value = (f"{len(f)} frame(s), {f.total_atoms} atoms; reference labels: "
                                     f"{', '.join(labels) or 'none'}")
        self.message.value = ""
        return f

    def selected_models(self) -> list:
        return [self._extra_models.get(name, name) for name, box in self.model_boxes.items()
                if box.value and not box.disabled]

    def _reference(self):
        from ..reference import GPAW as GPAWCalc
        from ..reference import PySCF as PySCFCalc

        choice = self.reference.value
        if choice == FILE_LABELS:
            return None
        if choice == PYSCF:
            return PySCFCalc(method=self.pyscf_method.value, basis=self.pyscf_basis.value)
        if choice == GPAW:
            return GPAWCalc(ecut=self.gpaw_ecut.value, kpoint_density=self.gpaw_kdens.value)
        name = choice[len(MODEL_PREFIX):]
        return self._extra_models.get(name, name)

    # -- running -----------------------------------------------------------------
    def run(self) -> threading.Thread | None:
        """Start the comparison in a background thread (the cancel button stays live)."""
        if self._thread is not None and self._thread.is_alive():
            return self._thread
        if self.load() is None:
            return None
        models = self.selected_models()
        if not models:
            self._error(MlipvizError("choose at least one model"))
            return None
        self._cancel.clear()
        self.message.value = ""
        self.run_button.disabled, self.cancel_button.disabled = True, False
        self._thread = threading.Thread(target=self._run, args=(models, self._reference()), daemon=True)
        self._thread.start()
        return self._thread

    def cancel(self):
        """Stop after the current batch; finished batches stay checkpointed."""
        self._cancel.set()
        self.status.value = "cancelling after the current batch..."

    def _progress(self, name: str, done: int, total: int):
        self.progress.max, self.progress.value = total, done
        self.status.value = f"{html.escape(name)}: {done}/{total} frames"
        if self._cancel.is_set():
            raise Cancelled(f"cancelled during {name} after {done} of {total} frames; "
                            "run again to resume from the finished batches")

    @property
    def comparison(self) -> Comparison | None:
        return None if self.result is None else self.result.comparison

    def _run(self, specs, reference):
        from ..analysis.compare import compare
        from ..models import load_model

        try:
            self.status.value = "loading models..."
            models = [load_model(spec, device=self.device.value) for spec in specs]
            comparison = compare(models, self.frames, reference=reference, device=self.device.value,
                                 progress=False, callback=self._progress, embeddings=True,
                                 checkpoint_dir=Path(self._workdir.name) / self.frames.fingerprint()[:16])
            self.result = Run(comparison, models, reference, self.device.value)
            self.status.value = "done"
            self.show_results()
        except Exception as exc:
            self._error(exc)
        finally:
            self.run_button.disabled, self.cancel_button.disabled = False, True

    def show_results(self):
        """Build one tab per registered result tab; a failing tab shows its error."""
        children, titles = [], []
        for title, build in _TABS.items():
            try:
                children.append(build(self.result))
            except Exception as exc:
                children.append(widgets.HTML(_error_html(exc)))
            titles.append(title)
        self.tabs.children = children
        self.tabs.titles = tuple(titles)

    def _error(self, exc: Exception):
        self.status.value = "stopped" if isinstance(exc, Cancelled) else "failed"
        self.message.value = _error_html(exc)


def run_in_background(button, status, output, busy: str, make: Callable[[], widgets.Widget]) -> threading.Thread:
    """Run ``make()`` in a thread for a result tab: ``button`` disabled and ``status`` saying
    ``busy`` meanwhile, then its widget in ``output`` ("done"), or the error there ("failed")."""
    def work():
        try:
            output.children = [make()]
            status.value = "done"
        except Exception as exc:
            status.value = "failed"
            output.children = [widgets.HTML(_error_html(exc))]
        finally:
            button.disabled = False

    button.disabled = True
    status.value = busy
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def _error_html(exc: Exception) -> str:
    if isinstance(exc, MlipvizError):
        text = str(exc)
    else:  # unexpected: show the type and the last frames of the traceback
        text = f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_tb(exc.__traceback__, limit=-3))
    return ("<div style='color:#a00;background:#fee;border:1px solid #d99;padding:6px;white-space:pre-wrap;"
            f"font-family:monospace;font-size:12px'>{html.escape(text)}</div>")


def _describe(obj) -> str:
    if obj is None:
        return "no object given"
    if isinstance(obj, (list, tuple)):
        return f"{len(obj)} object(s) of type {type(obj[0]).__name__ if obj else '?'}"
    return f"a {type(obj).__name__}"


def _summary_tab(run: Run) -> widgets.Widget:
    cmp = run.comparison
    return widgets.HTML("<b>Errors</b>" + cmp.summary().to_html(float_format="%.4f")
                        + "<b>Softening scale</b> (Deng et al. 2025)" + cmp.softening().to_html(float_format="%.4f"))


def _error_map_tab(run: Run) -> widgets.Widget:
    return run.comparison.show()


register_tab("summary", _summary_tab)
register_tab("error map", _error_map_tab)


def _scan_tab(run: Run) -> widgets.Widget:
    from .scan_view import ScanTab

    return ScanTab(run)


register_tab("PES scan", _scan_tab)


def _latent_tab(run: Run) -> widgets.Widget:
    from .latent_map import LatentTab

    return LatentTab(run)


register_tab("latent space", _latent_tab)


def _attribution_tab(run: Run) -> widgets.Widget:
    from .attribution_view import AttributionTab

    return AttributionTab(run)


register_tab("attributions", _attribution_tab)
