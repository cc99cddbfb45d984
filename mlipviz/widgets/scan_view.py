"""PES scan curves linked to the 3D viewer, and the Explorer's scan tab."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import ipywidgets as widgets
import numpy as np
import pandas as pd

from ..analysis import scan as scans
from ..analysis.scan import REFERENCE, Scan, barriers, birch_murnaghan
from ..display import register_view
from ..errors import ArgumentTypeError
from .common import run_in_background
from .figure import Figure
from .layout import side_by_side
from .tabs import Run, register_tab
from .viewer import Viewer

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]


#: the scans' coordinates in words and units
AXIS_TITLES = {"volume_per_atom": "volume per atom (Å³)", "distance": "distance (Å)", "amplitude": "amplitude (Å)",
               "path_length": "path length (Å)"}

class ScanView(widgets.VBox):
    """Energy (and force along the scan) of every method; the slider or a click on a point
    shows that geometry in the viewer. The reference, when the scan has one, is the thick
    black curve; a scan of models only draws the models' curves alone.

    Parameters
    ----------
    scan : Scan
        From `mlipviz.scan` (``diatomic``, ``strain``, ``eos``, ``displacement``, ``path``, or a
        phonon mode's).

    Raises
    ------
    ArgumentTypeError
        ``scan`` is not a `Scan`.
    """

    def __init__(self, scan: Scan) -> None:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        if not isinstance(scan, Scan):
            raise ArgumentTypeError(f"scan must be a Scan (from mlipviz.scan), got {type(scan).__name__}")
        self.scan = scan
        self.viewer = Viewer(scan.frames)
        table = scan.table
        has_force = table["force_along"].notna().any()
        figure = make_subplots(rows=2 if has_force else 1, cols=1, shared_xaxes=True, vertical_spacing=0.08)
        for k, method in enumerate(scan.methods):
            rows = table[table["method"] == method]
            style = {"color": "black", "width": 2.5} if method == REFERENCE else {"color": COLORS[k % len(COLORS)]}
            figure.add_trace(go.Scatter(x=rows[scan.coordinate_label], y=rows["energy_aligned"], name=method,
                                        mode="lines+markers", line=style, legendgroup=method), row=1, col=1)
            if has_force:
                figure.add_trace(go.Scatter(x=rows[scan.coordinate_label], y=rows["force_along"], name=method,
                                            mode="lines+markers", line=style, legendgroup=method,
                                            showlegend=False), row=2, col=1)
        title = f"{scan.kind} scan" + ("" if scan.has_reference else " (models only, no reference)")
        figure.update_layout(width=520, height=520 if has_force else 360, title=title,
                             margin={"l": 60, "r": 10, "t": 40, "b": 45}, shapes=[self._marker(0)])
        figure.update_yaxes(title_text=f"energy (eV, aligned: {scan.alignment})", row=1, col=1)
        if has_force:
            figure.update_yaxes(title_text="force along scan (-dE/dq)", row=2, col=1)
        figure.update_xaxes(title_text=AXIS_TITLES.get(scan.coordinate_label, scan.coordinate_label),
                            row=2 if has_force else 1, col=1)
        self.figure = Figure(figure)
        for trace in self.figure.data:
            trace.on_click(self._on_click)
        self.summary = widgets.HTML(_summary_html(scan), layout={"margin": "0 0 0 10px"})
        self.viewer.observe(lambda change: self._mark(change["new"]), "frame")
        super().__init__([side_by_side(self.viewer, self.figure), self.summary])

    def _on_click(self, trace: Any, points: Any, state: Any = None) -> None:
        if points.point_inds:
            self.viewer.frame = int(points.point_inds[0])

    def _marker(self, point: int) -> dict[str, Any]:
        x = float(self.scan.coordinate[point])
        return {"type": "line", "x0": x, "x1": x, "xref": "x", "yref": "paper", "y0": 0, "y1": 1,
                "line": {"color": "#ff00ff", "width": 1.5, "dash": "dot"}}

    def _mark(self, point: int) -> None:
        self.figure.layout.shapes = [self._marker(point)]


def _summary_html(scan: Scan) -> str:
    parts = [f"<b>alignment</b>: {scan.alignment}"]
    if not scan.has_reference:
        parts.append("<b>no reference</b>: the models' curves only")
    curvature = ("curvature at the reference minimum" if scan.has_reference
                 else "curvature at each model's minimum")
    tables: dict[str, Callable[[], pd.DataFrame]] = {curvature: scan.curvature}
    if scan.kind == "eos":
        tables["Birch-Murnaghan fit (per atom)"] = lambda: birch_murnaghan(scan)
    if scan.kind == "path":
        tables["barriers (eV)"] = lambda: barriers(scan)
    for title, make in tables.items():
        try:
            parts.append(f"<b>{title}</b>" + make().to_html(float_format="%.4g"))
        except Exception as exc:  # noqa: BLE001 - e.g. no interior minimum: say why, keep the rest
            parts.append(f"<b>{title}</b>: {html.escape(str(exc))}")
    return "<div style='font-size:12px'>" + "<br>".join(parts) + "</div>"


class ScanTab(widgets.VBox):
    """Explorer tab: scan the first structure with the run's models against its reference
    (a live one or a model); with the file's labels as reference, which hold no scan
    points, the models alone."""

    KINDS: ClassVar[dict[str, str]] = {"strain (equation of state)": "eos", "displacement of one atom": "displacement"}

    def __init__(self, run: Run) -> None:
        self.run = run
        atoms = run.comparison.frames.to_atoms(0)
        self.kind = widgets.Dropdown(options=list(self.KINDS), description="scan", layout={"width": "330px"})
        self.range = widgets.FloatRangeSlider(value=(-0.04, 0.04), min=-0.2, max=0.2, step=0.01,
                                              description="strain ε", readout=False,
                                              style={"description_width": "initial"})
        # the slider's own readout is too narrow for a range ("-0.04 – 0.0" was all it showed)
        self.range_readout = widgets.HTML()
        self.range.observe(lambda _: self._show_range(), "value")
        self._show_range()
        self.points = widgets.IntSlider(9, 5, 25, description="points")
        self.atom = widgets.BoundedIntText(0, min=0, max=len(atoms) - 1, description="atom",
                                           layout={"width": "160px"})
        self.direction = widgets.Dropdown(options=["x", "y", "z"], description="direction",
                                          layout={"width": "160px"})
        self.button = widgets.Button(description="scan", button_style="primary")
        self.button.on_click(lambda _: self.start())
        self.status = widgets.HTML()
        self.output = widgets.VBox()
        self._thread: threading.Thread | None = None
        self._where = widgets.HBox([self.atom, self.direction])
        self.kind.observe(lambda _: self._show_kind(), "value")
        self._show_kind()
        super().__init__([widgets.HBox([self.kind, self.range, self.range_readout, self.points]),
                          widgets.HBox([self._where, self.button, self.status]), self.output])

    def _show_range(self) -> None:
        lo, hi = self.range.value
        self.range_readout.value = f"<span style='white-space: nowrap'>{lo:.2f} to {hi:.2f}</span>"

    def _show_kind(self) -> None:
        """Label the range in the kind's own unit; atom and direction only for displacements."""
        eos = self.KINDS[self.kind.value] == "eos"
        self.range.description = "strain ε (linear)" if eos else "displacement (Å)"
        self._where.layout.display = "none" if eos else None

    def start(self) -> threading.Thread:
        """Run the scan in a background thread (what the button does); its view goes to ``output``."""
        busy = "scanning..." if self.run.reference is not None else (
            "scanning the models only (the file's labels hold no scan points; choose a live reference or "
            "a model as reference to scan it too)...")
        self._thread = thread = run_in_background(self.button, self.status, self.output, busy, self._scan)
        return thread

    def _scan(self) -> ScanView:
        atoms = self.run.comparison.frames.to_atoms(0)
        atoms.calc = None
        lo, hi = self.range.value
        grid = np.linspace(lo, hi, self.points.value)
        common = {"models": self.run.models, "reference": self.run.reference, "device": self.run.device}
        if self.KINDS[self.kind.value] == "eos":
            return ScanView(scans.strain(atoms, grid, **common))
        direction = np.eye(3)["xyz".index(self.direction.value)]
        return ScanView(scans.displacement(atoms, self.atom.value, direction, grid, **common))


register_view(Scan, ScanView)
register_tab("PES scan", ScanTab, order=30)
