"""The attribution view: per-atom attributions on the 3D structure and as a ranked bar chart,
linked, with pickers that recompute with another target, method or input.

Everything shown comes from an `Attribution` (`mlipviz.attribute`); this module only arranges
and links it.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

import ipywidgets as widgets
import numpy as np

from .. import checks
from ..analysis.attribution import INPUTS, METHODS, TARGETS, Attribution, attribute
from ..display import register_view
from ..errors import ArgumentTypeError, InputError, MissingLabelsError
from ..models.base import Prediction
from .common import error_html, render, run_in_background, table_html
from .layout import side_by_side
from .tabs import Run, register_tab
from .viewer import Viewer

if TYPE_CHECKING:
    from .._types import StructuresLike
    from ..analysis._types import ModelSpec

PLOT = {"width": 460, "height": 380, "margin": {"l": 60, "r": 15, "t": 35, "b": 45}}
POSITIVE, NEGATIVE, SELECTED = "#b2182b", "#2166ac", "#ff00ff"
UNITS = {"energy": "eV", "site_energy": "eV"}
#: the pickers' words for the settings of `mlipviz.attribute`
TARGET_LABELS = {"energy": "total energy", "site_energy": "energy of one atom", "force": "force component",
                 "force_magnitude": "force magnitude", "force_error": "force error (vs reference)"}
METHOD_LABELS = {"integrated_gradients": "integrated gradients", "saliency": "saliency (gradient)",
                 "input_x_gradient": "input × gradient", "feature_ablation": "remove each atom (ablation)"}
INPUT_LABELS = {"positions": "atom positions", "atom_mask": "atom presence"}


def _options(labels: dict[str, str], keys: Iterable[str]) -> list[tuple[str, str]]:
    return [(labels.get(key, key), key) for key in keys]


class AttributionView(widgets.VBox):
    """An `Attribution` on the structure (diverging colours centred on zero, the target atom
    halo-marked) and its top atoms as bars; clicking a bar or an atom selects that atom in
    both. With a model and atoms, the pickers recompute (in the background).

    Parameters
    ----------
    model : Model, str, Path or ASE calculator, optional
        The model to attribute with (see `mlipviz.attribute`); needed to recompute.
    atoms : anything `mlipviz.read` takes, optional
        The structure; needed to recompute.
    result : Attribution, optional
        An attribution to show; computed from ``model``, ``atoms`` and ``settings`` if not given.
    top : int
        Atoms in the bar chart.
    pickers : bool
        Show the pickers (False: another set of controls, such as the Explorer's tab, drives the view).
    **settings
        `mlipviz.attribute`'s settings.

    Raises
    ------
    InputError
        Neither ``result`` nor both ``model`` and ``atoms``.
    ArgumentTypeError
        ``result`` is no `Attribution`, or ``top`` not a whole number.
    """

    def __init__(self, model: ModelSpec | None = None, atoms: StructuresLike | None = None,
                 result: Attribution | None = None, top: int = 15, pickers: bool = True, **settings: Any) -> None:
        if result is None and (model is None or atoms is None):
            raise InputError("give result= (an Attribution), or model and atoms to compute one")
        if result is not None and not isinstance(result, Attribution):
            raise ArgumentTypeError(f"result must be an Attribution (from mlipviz.attribute), got "
                                    f"{type(result).__name__}")
        top = checks.whole_number("top", top, minimum=1)
        self.model, self.atoms, self.settings, self.top_k = model, atoms, dict(settings), top
        if result is None:
            result = attribute(cast("ModelSpec", model), cast("StructuresLike", atoms), **settings)
        self.result = result
        self.selected: int | None = None
        n = result.frame.total_atoms
        self.target = widgets.Dropdown(options=_options(TARGET_LABELS, TARGETS), value=result.target,
                                       description="explain")
        self.atom = widgets.BoundedIntText(result.atom or 0, min=0, max=n - 1, description="atom",
                                           layout={"width": "160px"})
        self.component = widgets.Dropdown(options=["x", "y", "z"], description="component",
                                          value="xyz"[result.component or 0], layout={"width": "180px"})
        self.method = widgets.Dropdown(options=_options(METHOD_LABELS, METHODS), value=result.method,
                                       description="method")
        self.inputs = widgets.Dropdown(options=_options(INPUT_LABELS, INPUTS), value=result.inputs,
                                       description="varying")
        self.steps = widgets.BoundedIntText(result.n_steps or 32, min=2, max=1024, description="IG steps",
                                            layout={"width": "170px"})
        self.button = widgets.Button(description="attribute", button_style="primary",
                                     disabled=model is None)
        self.button.on_click(lambda _: self.recompute())
        self.status = widgets.HTML()
        self.viewer = Viewer(result.frame, height="380px")
        self.viewer.on_pick(lambda picked: self.select(picked["atom"]))
        self.bars: Any = None
        self.summary = widgets.HTML()
        self._thread: threading.Thread | None = None
        rows = [widgets.HBox([self.target, self.atom, self.component]),
                widgets.HBox([self.method, self.inputs, self.steps, self.button, self.status])]
        self._show()
        # pickers=False: another set of controls (the Explorer's tab) drives this view
        super().__init__([*(rows if pickers else []), side_by_side(self.viewer, self.bars), self.summary])

    # -- drawing ---------------------------------------------------------------------
    def _show(self) -> None:
        r = self.result
        unit = UNITS.get(r.target, "eV/Å")
        self.viewer.set_colors(r.values, cmap="RdBu_r", symmetric=True,
                               label=f"attribution to {r.label}")  # the label ends in its unit
        ranked = r.top(self.top_k).iloc[::-1]  # largest at the top of a horizontal bar chart
        import plotly.graph_objects as go

        names = [f"{el} {i}" + (" (target)" if i == r.atom else "") for i, el in zip(ranked.index, ranked.element)]
        trace = go.Bar(x=ranked.attribution, y=names, orientation="h",
                       marker={"color": [POSITIVE if v > 0 else NEGATIVE for v in ranked.attribution],
                               "line": {"color": ["black" if i == r.atom else "rgba(0,0,0,0)"
                                                  for i in ranked.index], "width": 2}},
                       customdata=np.asarray(ranked.index), selected={"marker": {"color": SELECTED}},
                       hovertemplate="atom %{customdata}: %{x:.4g}<extra></extra>")
        self._ranked = np.asarray(ranked.index)
        self.bars = render(self.bars, [trace], **PLOT, title=f"top {len(ranked)} atoms by |attribution|",
                            xaxis_title=f"attribution ({unit})", showlegend=False)
        self.bars.data[0].on_click(self._on_bar_click)
        self.summary.value = self._summary_html()
        self.select(self.selected)

    def _summary_html(self) -> str:
        r = self.result
        rows = [("model", html.escape(r.model)), ("target", html.escape(r.label)),
                ("method", f"{r.method} on {r.inputs}" + (f", {r.n_steps} steps" if r.n_steps else "")),
                ("baseline", html.escape(r.meta.get("baseline", ""))),
                ("f(structure), f(baseline)", f"{r.value:.6g}, {r.baseline_value:.6g}"),
                ("sum of attributions", f"{r.values.sum():.6g}")]
        if r.completeness_error is not None:
            rows.append(("Captum convergence delta, completeness error",
                         f"{r.convergence_delta:.3g}, {r.completeness_error:.2%}"))
        if r.inputs == "atom_mask":
            rows.append(("where the gate acts", html.escape(r.meta.get("atom_gate") or "")))
        return table_html(rows)

    # -- linking ---------------------------------------------------------------------
    def select(self, atom: int | None) -> None:
        """Select an atom (or None): halo in 3D next to the target atom, bar highlighted."""
        self.selected = None if atom is None else int(atom)
        marked = sorted({a for a in (self.result.atom, self.selected) if a is not None})
        self.viewer.highlight(marked)
        where = np.flatnonzero(self._ranked == self.selected) if self.selected is not None else np.zeros(0, int)
        self.bars.data[0].selectedpoints = [int(where[0])] if len(where) else None

    def _on_bar_click(self, trace: Any, points: Any, selector: Any = None) -> None:
        if points.point_inds:
            self.select(int(self._ranked[points.point_inds[0]]))

    # -- recomputing -----------------------------------------------------------------
    def choice(self) -> dict[str, Any]:
        """`attribute` settings from the pickers."""
        target = self.target.value
        out = {**self.settings, "target": target, "method": self.method.value,
               "inputs": self.inputs.value, "n_steps": int(self.steps.value)}
        out["atom"] = None if target == "energy" else int(self.atom.value)
        out["component"] = self.component.value if target == "force" else None
        if out["inputs"] != self.result.inputs:
            out.pop("baseline", None)  # a positions baseline is no gate baseline, and back
        return out

    def recompute(self) -> threading.Thread | None:
        """Attribute again with the pickers' settings, in the background."""
        if self.model is None:
            return None

        def work() -> None:
            try:
                self.result = attribute(cast("ModelSpec", self.model), cast("StructuresLike", self.atoms),
                                        **self.choice())
                self._show()
                self.status.value = "done"
            except Exception as exc:  # noqa: BLE001 - shown in the status, the view lives on
                self.status.value = error_html(exc)
            finally:
                self.button.disabled = False

        self.button.disabled = True
        self.status.value = "attributing..."
        self._thread = thread = threading.Thread(target=work, daemon=True)
        thread.start()
        return thread


class AttributionTab(widgets.VBox):
    """Explorer tab: why does a model get a force wrong? Attributes the force error of the
    worst atom (or any atom) of a frame against the run's reference forces."""

    def __init__(self, run: Run) -> None:
        self.run = run
        frames = run.comparison.frames
        names = [m.name for m in run.models]
        self.model = widgets.Dropdown(options=names, description="model")
        self.frame = widgets.BoundedIntText(0, min=0, max=len(frames) - 1, description="frame",
                                            layout={"width": "160px"})
        self.atom = widgets.BoundedIntText(0, min=0, max=int(frames.n_atoms.max()) - 1, description="atom",
                                           layout={"width": "160px"})
        self.method = widgets.Dropdown(options=_options(METHOD_LABELS, METHODS), description="method")
        self.inputs = widgets.Dropdown(options=_options(INPUT_LABELS, INPUTS), value="atom_mask",
                                       description="varying")
        self.button = widgets.Button(description="attribute force error", button_style="primary",
                                     layout={"width": "200px"})
        self.button.on_click(lambda _: self.start())
        self.status = widgets.HTML()
        self.output = widgets.VBox()
        self._thread: threading.Thread | None = None
        self.model.observe(lambda _: self._worst_atom(), "value")
        self.frame.observe(lambda _: self._worst_atom(), "value")
        self._worst_atom()
        super().__init__([widgets.HBox([self.model, self.frame, self.atom]),
                          widgets.HBox([self.method, self.inputs, self.button, self.status]), self.output])

    def _worst_atom(self) -> None:
        """Point the atom picker at the frame's largest force error for the chosen model."""
        table = self.run.comparison.per_atom
        rows = table[(table.model == self.model.value) & (table.frame == self.frame.value)]
        if len(rows):
            self.atom.value = int(rows.loc[rows.force_error.idxmax(), "atom"])

    def start(self) -> threading.Thread:
        """Attribute in a background thread (what the button does); the view goes to ``output``."""
        self._thread = thread = run_in_background(self.button, self.status, self.output, "attributing...",
                                                  self._make)
        return thread

    def _make(self) -> AttributionView:
        cmp = self.run.comparison
        if not cmp.has_reference:
            raise MissingLabelsError("attributing the force error needs reference forces; this run holds "
                                     "models only")
        frames = cmp.frames[[self.frame.value]]
        rows = cmp.frames.atoms_of(self.frame.value)
        model = next(m for m in self.run.models if m.name == self.model.value)
        reference_forces = cast(np.ndarray, cast(Prediction, cmp.reference).forces)  # has_reference: it has them
        return AttributionView(model, frames, target="force_error", atom=self.atom.value, pickers=False,
                               method=self.method.value, inputs=self.inputs.value,
                               reference_forces=reference_forces[rows])


def show_attribution(result: Attribution, **kwargs: Any) -> AttributionView:
    """`mlipviz.show` of an `Attribution` (``model=`` and ``atoms=`` make its pickers recompute)."""
    return AttributionView(result=result, **kwargs)


register_view(Attribution, show_attribution)
register_tab("attributions", AttributionTab, order=50)
