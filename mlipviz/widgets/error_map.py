"""The error map: a `Viewer` coloured by a per-atom error, linked to plotly panels.

Everything shown comes from a `Comparison` (per-atom table, per-frame table, softening
fit, rare-event summary); this module only arranges and links it.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from ..analysis.compare import Comparison
from ..display import register_view
from ..errors import ArgumentTypeError, InputError, MissingLabelsError, UnknownNameError
from .common import PLOT, render, table_html
from .layout import side_by_side
from .tabs import Run, register_tab
from .viewer import Viewer

#: label -> (per-atom column, signed?)
METRICS = {
    "|dF| = |F_pred - F_ref| (eV/Å)": ("force_error", False),
    "dF = |F_pred| - |F_ref| (eV/Å)": ("magnitude_error", True),
    "angle error (°)": ("angle_error", False),
    "per-atom energy error (eV)": ("site_energy_error", True),
}
#: parity points drawn as SVG up to this many (each clickable), WebGL above.
SVG_POINTS = 3_000
#: above this many force components the parity plot is a density map plus the worst points.
MAX_POINTS = 20_000
WORST_POINTS = 2_000
DENSITY_BINS = 90
DENSITY_BLOCK = 1 << 22
#: bins of the per-atom error histogram (counted here: only the counts travel)
HISTOGRAM_BINS = 60


class ErrorMap(widgets.VBox):
    """Per-atom errors in 3D with parity plot, error histogram and per-frame error curve.

    Clicking a point in the parity plot or the per-frame curve moves the viewer to that
    frame (and highlights the atom); picking an atom in 3D marks its force components in
    the parity plot and its error in the histogram.

    Parameters
    ----------
    comparison : Comparison
        A comparison against a reference.
    model : str, optional
        The model shown first (default: the first).
    metric : str
        The per-atom error that colours the atoms at first: a label of `METRICS`.
    rare_events : np.ndarray, list of int or str, optional
        Selects the rare-event atoms as in `Comparison.rare_events` (default: the frames'
        ``migrating`` array if present, else atoms displaced more than 1 Å).

    Raises
    ------
    ArgumentTypeError
        ``comparison`` is not a `Comparison`.
    MissingLabelsError
        A models-only comparison.
    UnknownNameError
        A ``model`` or ``metric`` not available here.
    """

    def __init__(self, comparison: Comparison, model: str | None = None,
                 metric: str = "|dF| = |F_pred - F_ref| (eV/Å)", rare_events: Any = None) -> None:
        if not isinstance(comparison, Comparison):
            raise ArgumentTypeError(f"comparison must be a Comparison (from mlipviz.compare), got "
                                    f"{type(comparison).__name__}")
        if not comparison.has_reference:
            raise MissingLabelsError("the error map needs a reference: this comparison holds models only "
                                     "(compare(..., reference=False)); compare against labels or a reference model")
        self.comparison = comparison
        self._rare_spec = rare_events
        present = {column for name in comparison.models for column in comparison.atom_errors(name)}
        metrics = [label for label, (column, _) in METRICS.items() if column in present]
        if metric not in metrics:
            raise UnknownNameError(f"metric '{metric}' not available here; choose from {metrics}")
        if model is not None and model not in comparison.models:
            raise UnknownNameError(f"model {model!r} is not in this comparison; choose from {comparison.models}")
        self.model_select = widgets.Dropdown(options=comparison.models, value=model or comparison.models[0],
                                             description="model")
        self.metric_select = widgets.Dropdown(options=metrics, value=metric, description="colour by",
                                              layout={"width": "330px"})
        self.arrow_select = {name: widgets.Checkbox(False, description=f"{name} forces", indent=False,
                                                    layout={"width": "150px"})
                             for name in ("predicted", "reference", "difference")}
        self.arrow_scale = widgets.FloatLogSlider(1.0, base=10, min=-2, max=1, step=0.1,
                                                  description="arrow Å per eV/Å", continuous_update=False,
                                                  style={"description_width": "initial"})
        self.viewer = Viewer(comparison.frames)
        # made with their data by _show_model
        self.parity: Any = None
        self.histogram: Any = None
        self.curve: Any = None
        self.summary = widgets.HTML(layout={"width": "360px", "margin": "30px 0 0 10px"})
        self._selection_callbacks: list[Any] = []

        self._show_model()
        self.model_select.observe(lambda _: self._show_model(), "value")
        self.metric_select.observe(lambda _: self._show_metric(), "value")
        for box in self.arrow_select.values():
            box.observe(lambda _: self._show_arrows(), "value")
        self.arrow_scale.observe(lambda _: self._show_arrows(), "value")
        self.viewer.observe(lambda change: self._mark_frame(change["new"]), "frame")
        self.viewer.on_pick(self._on_pick)

        controls = widgets.HBox([self.model_select, self.metric_select])
        arrows = widgets.HBox([*self.arrow_select.values(), self.arrow_scale])
        from .finetune_panel import FineTunePanel

        #: select frames, fine-tune the shown model on them, see the result here (`FineTunePanel`)
        self.finetune = FineTunePanel(self)
        super().__init__([
            controls, arrows,
            side_by_side(self.viewer, widgets.VBox([self.curve, self.histogram],
                                                   layout={"width": f"{PLOT['width']}px"})),
            side_by_side(self.parity, self.summary),
            self.finetune,
        ])

    # -- state ---------------------------------------------------------------------
    def set_comparison(self, comparison: Comparison, model: str | None = None) -> None:
        """Show ``comparison`` (the same frames, e.g. with one more model) and ``model`` in it."""
        if not np.array_equal(comparison.frames.n_atoms, self.comparison.frames.n_atoms):
            raise InputError("set_comparison: the new comparison must hold the same frames")
        self.comparison = comparison
        shown = model or self.model
        shown = shown if shown in comparison.models else comparison.models[0]
        self.model_select.options = comparison.models
        if self.model_select.value != shown:
            self.model_select.value = shown  # its observer redraws
        else:
            self._show_model()

    def on_frames_selected(self, callback: Any) -> None:
        """Call ``callback(frames)`` (a sorted list of frame indices) when the user selects points
        (box or lasso) in the per-frame curve or the parity plot."""
        self._selection_callbacks.append(callback)

    def _selected(self, frames: list[int]) -> None:
        for callback in self._selection_callbacks:
            callback(sorted(set(frames)))

    def _on_curve_selection(self, trace: Any, points: Any, selector: Any = None) -> None:
        self._selected([int(trace.x[k]) for k in points.point_inds])

    def _on_parity_selection(self, trace: Any, points: Any, selector: Any = None) -> None:
        self._selected([int(self._points["frame"][k]) for k in points.point_inds])

    @property
    def model(self) -> str:
        """The model shown."""
        return self.model_select.value

    @property
    def metric_column(self) -> str:
        """The per-atom column of the metric shown."""
        return METRICS[self.metric_select.value][0]

    def _errors(self, column: str) -> np.ndarray:
        """Per-atom values of ``column`` for the shown model (NaN where it has none)."""
        errors = self.comparison.atom_errors(self.model)
        return errors[column] if column in errors else np.full(self.comparison.frames.total_atoms, np.nan)

    # -- drawing ---------------------------------------------------------------------
    def _show_model(self) -> None:
        reference = self.comparison.reference
        assert reference is not None  # checked in __init__
        self._forces: dict[str, Any] = {"predicted": self.comparison.predictions[self.model].forces,
                                        "reference": reference.forces}
        self._softening = self.comparison.softening().loc[self.model]
        self._draw_parity()
        self._draw_curve()
        self._draw_summary()
        self._show_metric()
        self._show_arrows()

    def _show_metric(self) -> None:
        column, signed = METRICS[self.metric_select.value]
        values = self._errors(column)
        self.viewer.set_colors(values, cmap="RdBu_r" if signed else "viridis", symmetric=signed,
                               label=self.metric_select.value)
        self._draw_histogram(values)

    def _show_arrows(self) -> None:
        names = [name for name, box in self.arrow_select.items() if box.value]
        vectors = self.comparison.force_vectors(self.model) if names else {}
        self.viewer.set_arrows({name: vectors[name] for name in names} or None, scale=self.arrow_scale.value)

    def _draw_parity(self) -> None:
        import plotly.graph_objects as go

        ref = np.ravel(self._forces["reference"])
        pred = np.ravel(self._forces["predicted"])
        error = np.abs(pred - ref)  # NaN or inf where a component is missing
        shown = np.isfinite(error)
        lo = min(float(v.min(where=shown, initial=np.inf)) for v in (ref, pred)) if shown.any() else -1.0
        hi = max(float(v.max(where=shown, initial=-np.inf)) for v in (ref, pred)) if shown.any() else 1.0
        traces = []
        if np.count_nonzero(shown) > MAX_POINTS:
            counts, centres = _density(ref, pred, shown, lo, hi, DENSITY_BINS)
            traces.append(go.Heatmap(z=np.log10(counts.T + 1), x=centres, y=centres, colorscale="Blues",
                                     colorbar={"title": "log10 n", "len": 0.6}, name="density",
                                     hoverinfo="skip"))
            error[~shown] = -np.inf
            worst = np.argpartition(error, -WORST_POINTS)[-WORST_POINTS:]
            order = worst[np.argsort(error[worst])[::-1]]
            label = f"{len(order)} largest errors"
        else:
            order = np.flatnonzero(shown)
            label = "components"
        offsets = self.comparison.frames.offsets
        rows = order // 3
        frame = np.searchsorted(offsets, rows, side="right") - 1
        self._points = {"frame": frame, "atom": rows - offsets[frame]}
        component = np.array(list("xyz"))[order % 3]
        slope = self._softening["slope"]
        scatter = go.Scatter if len(order) <= SVG_POINTS else go.Scattergl
        traces += [
            scatter(x=ref[order], y=pred[order], mode="markers", name=label,
                         marker={"size": 4, "color": "#1f77b4", "opacity": 0.6},
                         customdata=np.stack([self._points["frame"], self._points["atom"], component], axis=1),
                         hovertemplate="frame %{customdata[0]}, atom %{customdata[1]} (%{customdata[2]})"
                                       "<br>ref %{x:.3f}, pred %{y:.3f}<extra></extra>"),
            go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x",
                       line={"color": "black", "dash": "dash", "width": 1}, hoverinfo="skip"),
            go.Scatter(x=[lo, hi], y=[slope * lo, slope * hi], mode="lines", name=f"slope {slope:.3f}",
                       line={"color": "#d62728", "width": 1.5}, hoverinfo="skip"),
            go.Scatter(x=[], y=[], mode="markers", name="picked atom",
                       marker={"size": 12, "color": "rgba(0,0,0,0)", "line": {"color": "#ff00ff", "width": 3}}),
        ]
        self.parity = render(self.parity, traces, title="force components", xaxis_title="reference (eV/Å)",
                              yaxis_title="predicted (eV/Å)",
                              legend={"x": 0.02, "y": 0.98, "bgcolor": "rgba(255,255,255,0.6)"})
        self._points_trace = self.parity.data[-4]
        self._points_trace.on_click(self._on_parity_click)
        self._points_trace.on_selection(self._on_parity_selection)

    def _draw_histogram(self, values: np.ndarray) -> None:
        import plotly.graph_objects as go

        finite = values[np.isfinite(values)]
        counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS) if len(finite) else (np.zeros(0), np.zeros(1))
        trace = go.Bar(x=0.5 * (edges[1:] + edges[:-1]), y=counts, width=np.diff(edges), name=self.metric_select.value,
                       marker={"color": "#1f77b4", "line": {"width": 0}},
                       hovertemplate="%{x:.3g}: %{y} atoms<extra></extra>")
        self.histogram = render(self.histogram, [trace], title="per-atom error", yaxis_title="atoms",
                                 xaxis_title=self.metric_select.value, shapes=[], height=270, bargap=0,
                                 yaxis_type="log" if len(finite) > 1000 else "linear")

    def _draw_curve(self) -> None:
        import plotly.graph_objects as go

        table = self.comparison.per_frame
        table = table[table["model"] == self.model]
        many = len(table) > SVG_POINTS  # WebGL lines, no markers, for long trajectories
        scatter = go.Scattergl if many else go.Scatter
        traces = [scatter(x=table["frame"].to_numpy(), y=table[column].to_numpy(),
                          mode="lines" if many else "lines+markers", name=name, marker={"size": 5})
                  for column, name in (("force_error_max", "max |dF|"), ("force_mae", "force MAE"))]
        # dragging selects frames (to fine-tune on); the tool bar still zooms
        self.curve = render(self.curve, traces, title="per-frame force error", xaxis_title="frame",
                             yaxis_title="eV/Å", legend={"x": 0.02, "y": 0.98}, height=270,
                             shapes=[_frame_line(self.viewer.frame)], dragmode="select")
        for trace in self.curve.data:
            trace.on_click(self._on_curve_click)
            trace.on_selection(self._on_curve_selection)

    def _draw_summary(self) -> None:
        soft = self._softening
        rows = [("softening scale s (fit through 0)", f"{soft['slope']:.3f}"),
                ("R²", f"{soft['r2']:.3f}"), ("force MAE (eV/Å)", f"{soft['mae']:.3f}"),
                ("cMAE after 1/s (eV/Å)", f"{soft['cmae']:.3f}"),
                ("components", f"{int(soft['n_components'])}")]
        parts = ["<b>Softening</b> (Deng et al. 2025)", table_html(rows)]
        try:
            rare = self.comparison.rare_events(atoms=self._rare_atoms()).summary.loc[self.model]
        except Exception as exc:  # noqa: BLE001 - the default selection does not apply here: say why, and what does
            parts.append(self._rare_fallback_html(exc))
        else:
            columns = [("n_atoms", "atoms", "{:.0f}"), ("force_error_mean", "mean |dF|", "{:.3f}"),
                       ("force_error_max", "max |dF|", "{:.3f}"), ("angle_error_mean", "mean angle (°)", "{:.1f}"),
                       ("frac_force_error_gt_0.5", "|dF| > 0.5", "{:.1%}")]
            parts.append("<b>Rare events</b> (Liu, He & Mo 2023)" + _frame_table(rare, columns, "group"))
        self.summary.value = "<div style='font-size:12px'>" + "<br>".join(parts) + "</div>"

    def _rare_fallback_html(self, exc: Exception) -> str:
        """Where the default rare-event selection (atoms displaced > 1 Å along a trajectory) does
        not apply, e.g. frames with different atoms: why, the option that makes it apply, and the
        errors by element instead."""
        if self._rare_spec is None and not self.comparison.frames.same_atoms:
            why = ("these frames hold different structures, so no atom can be followed from frame to "
                   "frame to find the ones that migrate. Mark them with a per-atom array "
                   "<code>migrating</code> in the file, or pass <code>rare_events=</code> (a mask, "
                   "atom indices or an info key) to <code>cmp.show()</code>.")
        else:
            why = html.escape(str(exc))
        columns = [("n_atoms", "atoms", "{:.0f}"), ("force_error_mean", "mean |dF|", "{:.3f}"),
                   ("force_error_max", "max |dF|", "{:.3f}"), ("magnitude_error_mean", "mean dF", "{:+.3f}"),
                   ("angle_error_mean", "mean angle (°)", "{:.1f}")]
        by_element = self.comparison.errors_by_element().loc[self.model]
        return (f"<b>Rare events</b> (Liu, He & Mo 2023): {why}<br><b>Errors by element</b> (eV/Å)"
                + _frame_table(by_element, columns, "element"))

    def _rare_atoms(self) -> Any:
        if self._rare_spec is not None:
            return self._rare_spec
        return "migrating" if "migrating" in self.comparison.frames.arrays else None

    # -- linking -------------------------------------------------------------------
    def _on_parity_click(self, trace: Any, points: Any, state: Any = None) -> None:
        if not points.point_inds:
            return
        k = points.point_inds[0]
        self.viewer.frame = int(self._points["frame"][k])
        self.viewer.pick(int(self._points["atom"][k]))

    def _on_curve_click(self, trace: Any, points: Any, state: Any = None) -> None:
        if points.point_inds:
            self.viewer.frame = int(trace.x[points.point_inds[0]])

    def _on_pick(self, picked: dict[str, Any]) -> None:
        row = int(self.comparison.frames.offsets[picked["frame"]] + picked["atom"])
        with self.parity.batch_update():
            marker = self.parity.data[-1]
            marker.x = np.asarray(self._forces["reference"][row]).tolist()
            marker.y = np.asarray(self._forces["predicted"][row]).tolist()
        value = self._errors(self.metric_column)[row]
        self.histogram.layout.shapes = [] if not np.isfinite(value) else [
            {"type": "line", "x0": value, "x1": value, "yref": "paper", "y0": 0, "y1": 1,
             "line": {"color": "#ff00ff", "width": 2}}]

    def _mark_frame(self, frame: int) -> None:
        self.curve.layout.shapes = [_frame_line(frame)]


def _density(x: np.ndarray, y: np.ndarray, shown: np.ndarray, lo: float, hi: float,
             bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of the points (x, y) where ``shown`` on a bins x bins grid over [lo, hi]²
    (as ``np.histogram2d``), in blocks; and the bin centres."""
    width = (hi - lo) / bins or 1.0
    counts = np.zeros(bins * bins, dtype=np.int64)
    for start in range(0, len(x), DENSITY_BLOCK):
        keep = shown[start:start + DENSITY_BLOCK]
        cells = [np.minimum(((v[start:start + DENSITY_BLOCK][keep] - lo) / width).astype(np.int64), bins - 1)
                 for v in (x, y)]
        counts += np.bincount(cells[0] * bins + cells[1], minlength=bins * bins)
    return counts.reshape(bins, bins), lo + width * (np.arange(bins) + 0.5)


def _frame_line(frame: int) -> dict[str, Any]:
    return {"type": "line", "x0": frame, "x1": frame, "yref": "paper", "y0": 0, "y1": 1,
            "line": {"color": "#ff00ff", "width": 1.5, "dash": "dot"}}


def _frame_table(table: pd.DataFrame, columns: list[tuple[str, str, str]], index_label: str) -> str:
    """An HTML table of ``table``'s rows (index first) in ``columns`` (column, header, format)."""
    header = f"<th>{html.escape(index_label)}</th>" + "".join(f"<th>{label}</th>" for _, label, _ in columns)
    body = "".join(
        f"<tr><td>{html.escape(str(key))}</td>" + "".join(f"<td>{fmt.format(table.loc[key, col])}</td>"
                                                          for col, _, fmt in columns) + "</tr>"
        for key in table.index)
    return f"<table style='font-size:11px'><tr>{header}</tr>{body}</table>"


def show_comparison(comparison: Comparison, **kwargs: Any) -> ErrorMap:
    """`mlipviz.show` of a `Comparison`: its error map (it needs a reference)."""
    comparison._require_reference("the error map (show)")
    return ErrorMap(comparison, **kwargs)


def error_map_tab(run: Run) -> ErrorMap:
    """The Explorer's error-map tab."""
    return show_comparison(run.comparison)


register_view(Comparison, show_comparison)
register_tab("error map", error_map_tab, order=20)
