"""The Explorer app: load structures, pick models and a reference, run, explore the results.

Result tabs plug in through `mlipviz.widgets.tabs.register_tab(title, build)`: ``build(run)``
gets a `Run` (the comparison and the loaded models, reference and device that made it) and
returns a widget. The app itself computes nothing: it calls `mlipviz.read`, `mlipviz.compare` and
the tabs' builders.
"""

from __future__ import annotations

import html
import itertools
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import ipywidgets as widgets
import torch
from ase import Atoms
from ase.calculators.calculator import BaseCalculator

from ..analysis.compare import Comparison
from ..errors import ArgumentTypeError, InputError, MlipvizError
from ..frames import Frames
from ..models.base import Model
from .common import error_html
from .tabs import Run, result_tabs
from .upload import MAX_UPLOAD_BYTES, UploadButton

if TYPE_CHECKING:
    from .._types import StructuresLike


@dataclass(eq=False)
class _Job:
    """One press of run: its number, its own cancel switch, and the frames it works on (taken
    when it starts, so that loading other structures meanwhile cannot change them)."""

    number: int
    frames: Frames
    cancel: threading.Event = field(default_factory=threading.Event)


FILE_LABELS = "labels in the structures"
PYSCF = "PySCF (molecules)"
GPAW = "GPAW (periodic, PAW plane waves)"
MODEL_PREFIX = "model: "


class Cancelled(MlipvizError):
    """The user pressed cancel."""


class Explorer(widgets.VBox):
    """Load structures, choose models and a reference, run, and explore the result tabs.

    Structures come from a file on the server (a path, or picked in a listing of the working
    folder: in JupyterLab the files usually live there already), an upload from the browser
    (up to `MAX_UPLOAD_BYTES`; larger files are refused in the browser with a pointer to the
    path field), a bundled example, or the Python object ``structures``. The model
    packages are imported in the background as soon as the app opens. Finished model batches
    are checkpointed in a temporary folder (one per structure set), so a cancelled run
    resumes where it stopped. One run at a time per app (pressing run again meanwhile starts
    nothing), on the structures loaded when it started; apps given the same model or
    calculator object take turns with it (`object_lock`), so no run reads another's results.

    Parameters
    ----------
    structures : anything `mlipviz.read` accepts, optional
        A Python object to offer as a structure source.
    models : Model, ASE calculator, or a list of them, optional
        Extra models (`Model` objects or ASE calculators) offered next to the registry.
    files : str, Path or a list of them, optional
        Paths to open at once (as ``mlipviz explore FILE ...`` does).
    folder : str or Path, optional
        Where the listing starts (default: the working folder).

    Attributes
    ----------
    frames : Frames or None
        The structures loaded.
    result : Run or None
        The last finished run (its comparison, models, reference and device).

    Raises
    ------
    ArgumentTypeError
        ``structures`` of a kind `mlipviz.read` does not take, or ``models`` that are neither
        Models nor ASE calculators.
    InputError
        ``folder`` is not an existing folder.
    """

    def __init__(self, structures: StructuresLike | None = None,
                 models: Model | BaseCalculator | list[Model | BaseCalculator] | tuple[Model | BaseCalculator, ...]
                 | None = None,
                 files: str | Path | Sequence[str | Path] | None = None, folder: str | Path | None = None) -> None:
        from .. import examples
        from ..models import available_models

        self.frames: Frames | None = None
        self.result: Run | None = None
        if structures is not None and not _readable(structures):
            raise ArgumentTypeError(f"structures must be anything mlipviz.read accepts (a path, ASE Atoms, a "
                                    f"pymatgen Structure or Molecule, Frames, or a list of them); got "
                                    f"{_describe(structures)}")
        if models is not None and not isinstance(models, (list, tuple)):
            if not (isinstance(models, Model) or _is_calculator(models)):
                raise ArgumentTypeError(f"models must be a list of mlipviz Models or ASE calculators; got "
                                        f"{type(models).__name__}")
            models = [models]
        if folder is not None and not Path(folder).expanduser().is_dir():
            raise InputError(f"folder {folder} is not an existing folder (where the file listing starts)")
        self._object: Any = structures
        self._extra_models: dict[str, Any] = {}
        for m in models or []:
            if not (isinstance(m, Model) or _is_calculator(m)):
                raise ArgumentTypeError(f"models= takes mlipviz Models or ASE calculators; got {type(m).__name__}")
            self._extra_models[getattr(m, "name", type(m).__name__)] = m
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()  # one run at a time, even if run() is called from threads
        self._jobs = itertools.count(1)
        self._job: _Job | None = None
        self._workdir = tempfile.TemporaryDirectory(prefix="mlipviz-explorer-")
        self._hidden: dict[str, str] = {}  # server paths shown to the user as other names

        # structures: where from
        sources = [(SOURCES[k], k) for k in ("path", "upload", "example")]
        if structures is not None:
            sources.append((SOURCES["object"], "object"))
        self.source = widgets.ToggleButtons(options=sources, value="object" if structures is not None else "path",
                                            description="structures", style={"button_width": "150px"})
        #: paths are typed and shown relative to this folder (``folder``, else the working folder)
        self.root = Path(folder).resolve() if folder is not None else Path.cwd().resolve()
        self.folder = self.root
        self.path = widgets.Text(placeholder="path of a structure file on the server (several: comma-separated)",
                                 description="file", layout={"width": "520px"})
        self.listing = widgets.Select(rows=8, layout={"width": "520px"})
        self.listing.observe(self._on_listing, "value")
        self.folder_label = widgets.HTML()
        self._list_folder(self.folder)
        self.upload = UploadButton(description="choose file to upload...")
        self.upload.on_upload(lambda name, content: self.load())
        self.upload_note = widgets.HTML(
            f"<span style='font-size:12px;color:#555'>up to {MAX_UPLOAD_BYTES // 2**20} MB through the "
            "browser; larger files: open them as a file on the server</span>")
        self.example = widgets.Dropdown(options=examples.list(), description="example")
        self.load_button = widgets.Button(description="load", icon="folder-open")
        self.load_button.on_click(lambda _: self.load())
        self.structure_info = widgets.HTML()
        self.source.observe(lambda _: self._show_source(), "value")
        self.source_box = widgets.VBox()
        self._show_source()

        # models: every registry entry that loads here as a checkbox; those that cannot load here
        # (most of a long registry on a given machine) greyed out in the note below, closed, with a
        # short reason each, and the whole one (where it looked) on hover and in the list under them
        table = available_models()
        self.model_boxes: dict[str, widgets.Checkbox] = {}
        rows: list[widgets.Widget] = []
        greyed: list[widgets.Widget] = []
        for name, row in table.iterrows():
            box = widgets.Checkbox(False, description=name, disabled=not row["available"], indent=False,
                                   layout={"width": "250px"}, tooltip=row["reason"])
            self.model_boxes[name] = box
            note = "" if row["available"] else row["short_reason"]
            (rows if row["available"] else greyed).append(widgets.HBox([box, widgets.HTML(
                f"<span title='{html.escape(row['reason'], quote=True)}' style='color:#666;font-size:12px'>"
                f"{html.escape(row['description'])}{' &middot; ' + html.escape(note) if note else ''}</span>")]))
        for name in self._extra_models:
            self.model_boxes[name] = widgets.Checkbox(True, description=name, indent=False)
            rows.append(self.model_boxes[name])
        self.unavailable = {name: row["reason"] for name, row in table.iterrows() if not row["available"]}
        self.model_note = widgets.Accordion([widgets.VBox(greyed + [widgets.HTML(
            "<ul style='font-size:12px'>" + "".join(f"<li><b>{html.escape(n)}</b>: {html.escape(r)}</li>"
                                                     for n, r in self.unavailable.items()) + "</ul>")])])
        self.model_note.set_title(0, f"{len(self.unavailable)} more model(s) cannot load here: which, and why")
        self.model_note.selected_index = None
        loadable = [n for n, b in self.model_boxes.items() if not b.disabled]
        self._preload = threading.Thread(target=_preload, args=(loadable,), daemon=True)
        self._preload.start()

        # reference
        self.reference = widgets.Dropdown(
            options=[FILE_LABELS, PYSCF, GPAW] + [MODEL_PREFIX + n for n in loadable], description="reference",
            layout={"width": "420px"})
        self.pyscf_method = widgets.Text("PBE", description="method")
        self.pyscf_basis = widgets.Text("def2-SVP", description="basis set")
        self.gpaw_ecut = widgets.FloatText(520.0, description="cutoff (eV)")
        self.gpaw_kdens = widgets.FloatText(4.0, description="k-point density (Å)",
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
        self.status = widgets.HTML(layout={"min_width": "max-content"})  # one line, not wrapped
        self.task_progress = widgets.VBox()  # one row per model and for the reference
        self._task_rows: dict[str, tuple[widgets.IntProgress, widgets.HTML]] = {}
        self.message = widgets.HTML()
        self.tabs = widgets.Tab()

        super().__init__([
            widgets.HTML("<h3 style='margin:4px 0'>mlipviz Explorer</h3>"),
            self.source, self.source_box, self.structure_info,
            widgets.HTML("<b>models</b>"), widgets.VBox(rows), self.model_note,
            widgets.HBox([self.reference, self.reference_settings]),
            widgets.HBox([self.device, self.run_button, self.cancel_button, self.progress, self.status]),
            self.task_progress, self.message, self.tabs,
        ])
        if files:
            files = [files] if isinstance(files, (str, Path)) else files
            self.path.value = ", ".join(self._shown(Path(f)) for f in files)
            self.source.value = "path"
            self.load()

    # -- inputs ------------------------------------------------------------------
    def _show_source(self) -> None:
        choice = self.source.value
        self.source_box.children = {
            "path": [widgets.HBox([self.path, self.load_button]), self.folder_label, self.listing],
            "upload": [widgets.HBox([self.upload]), self.upload_note],
            "example": [widgets.HBox([self.example, self.load_button])],
            "object": [widgets.HBox([widgets.HTML(f"<i>{html.escape(_describe(self._object))}</i>"),
                                     self.load_button])],
        }[choice]

    def _list_folder(self, folder: Path) -> None:
        """Fill the listing with ``folder``'s sub-folders and structure files."""
        try:
            entries = sorted(folder.iterdir(), key=lambda p: (not p.is_dir(), p.name.lower()))
        except OSError as exc:
            self.folder_label.value = error_html(MlipvizError(f"cannot list {folder}: {exc.strerror}"))
            return
        self.folder = folder
        options = [("../", folder.parent)] if folder.parent != folder else []
        options += [(p.name + "/", p) for p in entries if p.is_dir() and not p.name.startswith(".")]
        options += [(p.name, p) for p in entries if p.is_file() and _looks_like_structures(p)]
        self.listing.unobserve(self._on_listing, "value")
        self.listing.options = options
        self.listing.value = None
        self.listing.observe(self._on_listing, "value")
        self.folder_label.value = (f"<span style='font-size:12px;color:#555'>in {html.escape(self._shown(folder))}"
                                   " (structure files and folders; click a file to choose it)</span>")

    def _on_listing(self, change: dict[str, Any]) -> None:
        chosen = change["new"]
        if chosen is None:
            return
        if chosen.is_dir():
            self._list_folder(chosen)
        else:
            self.path.value = self._shown(chosen)

    def _show_reference_settings(self) -> None:
        choice = self.reference.value
        self.reference_settings.children = (
            [self.pyscf_method, self.pyscf_basis] if choice == PYSCF else
            [self.gpaw_ecut, self.gpaw_kdens] if choice == GPAW else [])

    @staticmethod
    def _devices() -> list[str]:
        return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    def _paths(self) -> list[Path]:
        names = [p.strip() for p in self.path.value.split(",") if p.strip()]
        if not names:
            raise MlipvizError("choose a file first: type its path on the server or click it in the listing")
        paths = [Path(name).expanduser() for name in names]
        return [p if p.is_absolute() else self.root / p for p in paths]

    def _shown(self, path: Path) -> str:
        """``path`` relative to `root` where it lies inside it (no machine paths in the app's
        main view), else as it is."""
        try:
            return str(Path(path).resolve().relative_to(self.root)) or "."
        except ValueError:
            return str(path)

    def load(self) -> Frames | None:
        """Read the chosen source into `frames`; errors show in the app."""
        from .. import examples
        from ..io import read

        try:
            if self.source.value == "path":
                parts = []
                for path in self._paths():
                    if not path.is_file():
                        raise MlipvizError(f"no file {self._shown(path)}" + (" (it is a folder)" if path.is_dir()
                                                                            else ""))
                    parts.append(read(path))
                self.frames = parts[0] if len(parts) == 1 else Frames.concatenate(parts)
            elif self.source.value == "upload":
                if self.upload.content is None:
                    raise MlipvizError("choose a file to upload first")
                path = Path(self._workdir.name) / Path(self.upload.filename).name
                path.write_bytes(self.upload.content)
                try:
                    self.frames = read(path)
                finally:  # the user knows the file by its name, not the server's copy of it
                    self._hidden = {str(path): path.name}
            elif self.source.value == "example":
                if not self.example.value:
                    raise MlipvizError("no bundled examples in this installation")
                self.frames = examples.load(self.example.value)
            else:
                self.frames = read(self._object)
        except Exception as exc:  # noqa: BLE001 - whatever the source, the app says why and lives on
            self._error(exc, status="not loaded")
            return None
        self.structure_info.value = _structure_html(self.frames.describe())
        self.message.value = ""
        self.status.value = ""
        return self.frames

    def selected_models(self) -> list[Any]:
        """The models ticked: registry names, and the extra `Model` or calculator objects."""
        return [self._extra_models.get(name, name) for name, box in self.model_boxes.items()
                if box.value and not box.disabled]

    def _reference(self) -> Any:
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
        """Start the comparison in a background thread (the cancel button stays live).

        While a run is going, another call (the button pressed twice, or ``run()`` from other
        threads at once) starts nothing and returns the running thread: one run's results at
        a time, never a mix.
        """
        with self._starting:
            if self._thread is not None and self._thread.is_alive():
                return self._thread
            frames = self.load()
            if frames is None:
                return None
            models = self.selected_models()
            if not models:
                self._error(MlipvizError("choose at least one model"))
                return None
            try:
                reference = self._reference()
            except Exception as exc:  # noqa: BLE001 - e.g. PySCF's settings refused: shown in the app
                self._error(exc)
                return None
            job = _Job(next(self._jobs), frames)
            self._job, self._cancel = job, job.cancel
            self.message.value = ""
            self.task_progress.children = []
            self._task_rows = {}
            self.run_button.disabled, self.cancel_button.disabled = True, False
            self._thread = threading.Thread(target=self._run, args=(job, models, reference), daemon=True)
            self._thread.start()
            return self._thread

    def cancel(self) -> None:
        """Stop after the current batch; finished batches stay checkpointed."""
        self._cancel.set()
        self.status.value = "cancelling after the current batch..."

    def _progress(self, job: _Job, name: str, done: int, total: int) -> None:
        if job is not self._job:  # a run that is no longer the app's: it must not touch the views
            raise Cancelled(f"run {job.number} was replaced by run {self._job.number if self._job else '?'}")
        self.progress.max, self.progress.value = total, done
        self.status.value = f"{html.escape(name)}: {done}/{total} frames"
        if name not in self._task_rows:
            bar = widgets.IntProgress(0, 0, max(total, 1), layout={"width": "240px"})
            text = widgets.HTML()
            label = "reference" if name == "reference" else f"model {name}"
            self._task_rows[name] = (bar, text)
            self.task_progress.children = [*self.task_progress.children, widgets.HBox(
                [widgets.HTML(html.escape(label), layout={"width": "200px"}), bar, text])]
        bar, text = self._task_rows[name]
        bar.max, bar.value = max(total, 1), done
        text.value = f"<span style='font-size:12px'>{done}/{total} frames</span>"
        if job.cancel.is_set():
            raise Cancelled(f"cancelled during {name} after {done} of {total} frames; "
                            "run again to resume from the finished batches")

    @property
    def comparison(self) -> Comparison | None:
        """The comparison of the last finished run, or None."""
        return None if self.result is None else self.result.comparison

    def _run(self, job: _Job, specs: list[Any], reference: Any) -> None:
        from ..analysis.compare import compare
        from ..models import resolve_models

        def progress(name: str, done: int, total: int) -> None:
            self._progress(job, name, done, total)

        try:
            with _exclusive([*specs, reference], job.cancel, self.status):
                self.status.value = "loading models..."
                models = resolve_models(specs, self.device.value)
                comparison = compare(models, job.frames, reference=reference, device=self.device.value,
                                     progress=False, callback=progress, embeddings=True,
                                     checkpoint_dir=Path(self._workdir.name) / job.frames.fingerprint()[:16])
            if job is not self._job:
                return  # replaced meanwhile: its results are not shown
            self.result = Run(comparison, models, reference, self.device.value)
            self.status.value = "done"
            self.show_results()
        except Exception as exc:  # noqa: BLE001 - a failed or cancelled run is shown in the app
            if job is self._job:
                self._error(exc)
        finally:
            if job is self._job:
                self.run_button.disabled, self.cancel_button.disabled = False, True

    def show_results(self) -> None:
        """Build one tab per registered result tab; a failing tab shows its error."""
        children: list[widgets.Widget] = []
        titles: list[str] = []
        for title, build in result_tabs().items():
            try:
                children.append(build(cast(Run, self.result)))
            except Exception as exc:  # noqa: BLE001 - a failing tab shows its error, the others stay
                children.append(widgets.HTML(error_html(exc)))
            titles.append(title)
        self.tabs.children = children
        self.tabs.titles = tuple(titles)

    def _error(self, exc: BaseException, status: str = "failed") -> None:
        self.status.value = "stopped" if isinstance(exc, Cancelled) else status
        self.message.value = error_html(exc, self._hidden)


#: a lock per model or calculator object that runs use: an ASE calculator keeps the atoms and
#: results of its last call, so two Explorers (or tabs) given the same object must take turns
#: with it, or one could read the other's forces. Keyed by id, with a weak reference to tell a
#: reused id from the same object.
_OBJECT_LOCKS: dict[int, tuple[Callable[[], Any], threading.RLock]] = {}
_OBJECT_LOCKS_GUARD = threading.Lock()


def object_lock(obj: Any) -> threading.RLock:
    """The lock that every run using ``obj`` (a model or calculator object) holds meanwhile."""
    with _OBJECT_LOCKS_GUARD:
        for key in [k for k, (ref, _) in _OBJECT_LOCKS.items() if ref() is None]:
            del _OBJECT_LOCKS[key]  # objects gone since
        entry = _OBJECT_LOCKS.get(id(obj))
        if entry is None or entry[0]() is not obj:
            ref: Callable[[], Any]
            try:
                ref = weakref.ref(obj)
            except TypeError:  # not weakly referable: keep it (and its lock) alive
                ref = (lambda kept: lambda: kept)(obj)
            entry = _OBJECT_LOCKS[id(obj)] = (ref, threading.RLock())
        return entry[1]


@contextmanager
def _exclusive(objects: Iterable[Any], cancel: threading.Event, status: widgets.HTML) -> Iterator[None]:
    """Hold the `object_lock` of each model/calculator object in ``objects`` (names and paths
    need none: each run loads its own), waiting for other runs that use one; ``cancel``
    stops the wait."""
    shared = {id(o): o for o in objects if o is not None and not isinstance(o, (str, Path))}
    with ExitStack() as stack:
        for key in sorted(shared):  # one order for every run: no two wait on each other
            lock = object_lock(shared[key])
            if not lock.acquire(blocking=False):
                status.value = "waiting for another run that uses the same model object..."
                while not lock.acquire(timeout=0.2):
                    if cancel.is_set():
                        raise Cancelled("cancelled while waiting for another run that uses the same model "
                                        "object")
            stack.callback(lock.release)
        yield


#: the structure sources, as the app names them
SOURCES = {"path": "file on server", "upload": "upload", "example": "bundled example", "object": "Python object"}
#: what the server-file listing shows: files ``ase.io.read`` or mlipviz reads, by suffix or name
STRUCTURE_SUFFIXES = (".xyz", ".extxyz", ".traj", ".h5", ".hdf5", ".cif", ".vasp", ".poscar", ".pdb",
                      ".json", ".db", ".gen", ".xsf", ".cell", ".res", ".lammps", ".data", ".gz", ".bz2")
STRUCTURE_NAMES = ("POSCAR", "CONTCAR", "OUTCAR", "XDATCAR", "vasprun.xml")


def _looks_like_structures(path: Path) -> bool:
    return path.suffix.lower() in STRUCTURE_SUFFIXES or any(path.name.startswith(n) for n in STRUCTURE_NAMES)


def _structure_html(d: dict[str, Any]) -> str:
    lo, hi = d["atoms_per_frame"]
    per = f"{lo}" if lo == hi else f"{lo}-{hi}"
    kind = "the same atoms in every frame" if d["same_atoms"] else "frames with different atoms"
    theory = "; ".join(d["level_of_theory"][:3]) + (" ..." if len(d["level_of_theory"]) > 3 else "")
    rows = [("frames", f"{d['frames']} ({kind})"), ("atoms", f"{d['atoms']:,} in all, {per} per frame"),
            ("elements", ", ".join(d["elements"])),
            ("reference labels", ", ".join(d["labels"]) or "none (choose a live reference or a model)")]
    if theory:
        rows.append(("level of theory", theory))
    return ("<table class='mlipviz-structure-info' style='font-size:12px'>" + "".join(
        f"<tr><td style='padding-right:8px;color:#555'>{k}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
        + "</table>")


def _is_calculator(obj: Any) -> bool:
    return isinstance(obj, BaseCalculator) or callable(getattr(obj, "as_model", None))


def _preload(names: list[str]) -> None:
    from ..models import preload

    preload(names)
    # plotly, which the result views import when they draw (its figure widget pulls in
    # nbformat and jsonschema, a few seconds in a fresh kernel), and the shared plotly front end
    from .figure import runtime

    runtime()


def _readable(obj: Any) -> bool:
    """Whether ``obj`` is of a kind `mlipviz.read` takes (checked by type; read when loaded)."""
    items = obj if isinstance(obj, (list, tuple)) else [obj]
    return bool(items) and all(isinstance(o, (str, Path, Frames, Atoms)) or type(o).__module__.startswith("pymatgen")
                               for o in items)


def _describe(obj: Any) -> str:
    if obj is None:
        return "no object given"
    if isinstance(obj, (list, tuple)):
        return f"{len(obj)} object(s) of type {type(obj[0]).__name__ if obj else '?'}"
    return f"a {type(obj).__name__}"
