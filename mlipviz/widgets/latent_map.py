"""The latent-space map: each model's atoms on its UMAP/PCA map (WebGL), side by side, linked
to a 3D viewer.

Everything shown comes from a `LatentSpace` (map coordinates, OOD scores, per-atom errors);
this module only arranges and links it.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd
from ase.data import chemical_symbols

from .. import checks
from ..analysis.latent import LatentSpace, analyse
from ..display import register_view
from ..errors import ArgumentTypeError, UnknownNameError
from .colors import element_colors
from .common import render, run_in_background, table_html
from .layout import side_by_side
from .tabs import Run, register_tab
from .viewer import Viewer

#: colour key -> (label, per-atom column or None, colour scale)
COLORS: dict[str, tuple[str, str | None, str | None]] = {
    "element": ("element", None, None),
    "force_error": ("|dF| = |F_pred - F_ref| (eV/Å)", "force_error", "Viridis"),
    "magnitude_error": ("dF = |F_pred| - |F_ref| (eV/Å)", "magnitude_error", "RdBu_r"),
    "angle_error": ("angle error (°)", "angle_error", "Viridis"),
    "ood_score": ("OOD score", "ood_score", "Magma"),
    "frame": ("frame", "frame", "Cividis"),
    "model": ("model", None, None),
}
MODEL_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
PICKED = "#ff00ff"
PANEL = {"height": 420, "margin": {"l": 40, "r": 10, "t": 40, "b": 40}}


class LatentMap(widgets.VBox):
    """One or two models' latent-space maps side by side over the same atoms.

    Points are coloured by ``color_by`` (a key of `COLORS`); hovering shows frame, atom,
    element and errors. A box or lasso selection in either map selects those atoms in both
    maps and marks them in the 3D viewer (which moves to the frame holding most of them);
    picking an atom in 3D marks its point in every map.

    Parameters
    ----------
    space : LatentSpace
        From `mlipviz.latent.analyse`.
    models : list of str, optional
        One or two of the space's models (default: its first two).
    color_by : str
        A key of `COLORS`.

    Raises
    ------
    ArgumentTypeError
        ``space`` is not a `LatentSpace`.
    UnknownNameError
        Models not in the space (or not one or two of them), or an unknown ``color_by``.
    """

    def __init__(self, space: LatentSpace, models: Sequence[str] | None = None,
                 color_by: str = "force_error") -> None:
        if not isinstance(space, LatentSpace):
            raise ArgumentTypeError(f"space must be a LatentSpace (from mlipviz.latent.analyse), got "
                                    f"{type(space).__name__}")
        checks.one_of("color_by", color_by, COLORS)
        self.space = space
        frames = space.comparison.frames
        self._offsets = frames.offsets
        self._frame_of = frames.frame_index
        shown = list(models or space.models[:2])
        unknown = [m for m in shown if m not in space.models]
        if unknown or not 1 <= len(shown) <= 2:
            raise UnknownNameError(f"models: one or two of {space.models}, got {shown}")
        self.color_select = widgets.Dropdown(options=[(label, key) for key, (label, *_) in COLORS.items()],
                                             value=color_by, description="colour by",
                                             layout={"width": "330px"})
        self.model_selects = [widgets.Dropdown(options=space.models, value=m, description=f"map {k + 1}")
                              for k, m in enumerate(shown)]
        self.selected: np.ndarray = np.array([], dtype=np.int64)
        self.viewer = Viewer(frames, height="380px")
        self.summary = widgets.HTML(self._summary_html())
        self.maps: Any = None
        self._draw()
        self.color_select.observe(lambda _: self._recolor(), "value")
        for select in self.model_selects:
            select.observe(lambda _: self._draw(), "value")
        self.viewer.on_pick(self._on_pick)
        self.viewer.observe(lambda _: self._highlight_in_viewer(), "frame")
        super().__init__([widgets.HBox([self.color_select, *self.model_selects]),
                          side_by_side(self.maps, self.viewer), self.summary])

    # -- state ---------------------------------------------------------------------
    @property
    def models(self) -> list[str]:
        """The models on the maps."""
        return [select.value for select in self.model_selects]

    @property
    def color_by(self) -> str:
        """The colour key chosen (a key of `COLORS`)."""
        return self.color_select.value

    def _rows(self, model: str) -> pd.DataFrame:
        table = self.space.table
        return table[table["model"] == model].reset_index(drop=True)

    def point_colors(self, model: str) -> dict[str, Any]:
        """Marker colour spec of one map: per-point colours (categorical) or values with a
        colour scale."""
        label, column, scale = COLORS[self.color_by]
        rows = self._rows(model)
        if self.color_by == "element":
            return {"color": element_colors(self.space.comparison.frames.numbers).hex}
        if self.color_by == "model":
            color = MODEL_COLORS[self.space.models.index(model) % len(MODEL_COLORS)]
            return {"color": color}
        values = rows[column].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
        if self.color_by == "magnitude_error":
            low, high = -max(abs(low), abs(high)), max(abs(low), abs(high))
        return {"color": values, "colorscale": scale, "cmin": low, "cmax": high,
                "colorbar": {"title": {"text": label, "side": "right"}, "thickness": 12}}

    # -- drawing ---------------------------------------------------------------------
    def _traces(self) -> list[Any]:
        import plotly.graph_objects as go

        traces = []
        for k, model in enumerate(self.models):
            rows = self._rows(model)
            axes = {"xaxis": f"x{k + 1 if k else ''}", "yaxis": f"y{k + 1 if k else ''}"}
            marker = self._marker(k, model)
            custom = np.column_stack([rows["frame"], rows["atom"], rows["force_error"],
                                      rows["angle_error"], rows["ood_score"]])
            traces.append(go.Scattergl(
                x=rows["x"], y=rows["y"], mode="markers", marker=marker, name=model, showlegend=False,
                text=rows["element"].astype(str), customdata=custom,
                selectedpoints=self.selected.tolist() if len(self.selected) else None,
                unselected={"marker": {"opacity": 0.15}},
                hovertemplate=("frame %{customdata[0]}, atom %{customdata[1]} (%{text})<br>"
                               "|dF| %{customdata[2]:.3f} eV/Å, angle %{customdata[3]:.1f}°<br>"
                               "OOD score %{customdata[4]:.2f}<extra>" + html.escape(model) + "</extra>"),
                **axes))
        for k in range(len(self.models)):  # the picked atom, one marker per map
            axes = {"xaxis": f"x{k + 1 if k else ''}", "yaxis": f"y{k + 1 if k else ''}"}
            traces.append(go.Scattergl(x=[], y=[], mode="markers", showlegend=False, hoverinfo="skip",
                                       marker={"size": 14, "color": "rgba(0,0,0,0)",
                                               "line": {"color": PICKED, "width": 3}}, **axes))
        traces.extend(self._legend_traces())
        return traces

    def _legend_traces(self) -> list[Any]:
        import plotly.graph_objects as go

        if self.color_by == "element":
            numbers = self.space.comparison.frames.numbers
            colors = element_colors(numbers).hex
            first = {int(z): colors[np.flatnonzero(numbers == z)[0]] for z in np.unique(numbers)}
            return [go.Scattergl(x=[None], y=[None], mode="markers", name=chemical_symbols[z],
                                 marker={"size": 8, "color": c}) for z, c in first.items()]
        if self.color_by == "model":
            return [go.Scattergl(x=[None], y=[None], mode="markers", name=m,
                                 marker={"size": 8, "color": self.point_colors(m)["color"]})
                    for m in self.models]
        return []

    def _layout(self) -> dict[str, Any]:
        n = len(self.models)
        method = self.space.settings["method"].upper()
        layout: dict[str, Any] = {"width": 430 * n + 60, "dragmode": "lasso",
                                  "showlegend": self.color_by in ("element", "model"),
                                  "legend": {"orientation": "h", "y": -0.12}, **PANEL}
        gap = 0.08
        for k in range(n):
            suffix = str(k + 1) if k else ""
            lo, hi = k / n + (gap / 2 if k else 0), (k + 1) / n - (gap / 2 if k < n - 1 else 0)
            layout[f"xaxis{suffix}"] = {"domain": [lo, hi], "title": {"text": f"{method} 1"}, "zeroline": False}
            layout[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", "title": {"text": f"{method} 2"} if not k else {},
                                        "zeroline": False}
        layout["annotations"] = [
            {"text": f"<b>{html.escape(m)}</b>", "xref": "paper", "yref": "paper", "showarrow": False,
             "x": (k + 0.5) / n, "y": 1.07} for k, m in enumerate(self.models)]
        return layout

    def _draw(self) -> None:
        self.maps = render(self.maps, self._traces(), **self._layout())
        for trace in self.maps.data[:len(self.models)]:
            trace.on_selection(self._on_selection)
            trace.on_deselect(lambda *_: self.select([]))
        self._show_in_viewer()

    def _marker(self, k: int, model: str) -> dict[str, Any]:
        """Marker of map ``k``: colours per `point_colors`, one colour bar (the first map's)."""
        marker = {"size": 4, "opacity": 0.8, **self.point_colors(model)}
        if "colorbar" not in marker:
            marker.update(colorscale=None, cmin=None, cmax=None, showscale=False)
        elif k:
            marker["showscale"] = False
        return marker

    def _recolor(self) -> None:
        if self.color_by in ("element", "model") or self.maps.layout.showlegend:
            self._draw()  # the legend entries change too
            return
        with self.maps.batch_update():
            for k, model in enumerate(self.models):
                self.maps.data[k].marker = self._marker(k, model)
        self._show_in_viewer()

    def _show_in_viewer(self) -> None:
        """Colour the 3D atoms as the first map."""
        label, column, scale = COLORS[self.color_by]
        if column is None or column == "frame":
            self.viewer.set_colors(None)
            return
        values = self._rows(self.models[0])[column].to_numpy(dtype=float)
        signed = column == "magnitude_error"
        self.viewer.set_colors(values, cmap="RdBu_r" if signed else {"Magma": "magma"}.get(scale or "", "viridis"),
                               symmetric=signed, label=f"{label} ({self.models[0]})")

    def _summary_html(self) -> str:
        s, c = self.space.settings, self.space.correlation
        rows = [("map", f"{s['method'].upper()}, fitted on {'a reference set' if s['fit_on'] else 'these atoms'}, "
                        f"embeddings standardised: {s['standardize']}")]
        for model, row in c.iterrows():
            layer = self.space.comparison.predictions[model].meta.get("embedding_layer") or "?"
            rows.append((f"{model}", f"Spearman ρ(OOD score, |dF|) = {row['spearman_rho']:.2f} "
                                     f"(p = {row['p_value']:.1g}, {row['atoms']} atoms, k = {row['k']}); "
                                     f"embeddings: {html.escape(layer)}"))
        return table_html(rows)

    # -- linking -------------------------------------------------------------------
    def _on_selection(self, trace: Any, points: Any, selector: Any = None) -> None:
        self.select(points.point_inds)

    def select(self, atoms: Sequence[int] | np.ndarray) -> None:
        """Select atoms by row (frames layout, the same rows in every map): marks them in
        every map and in the viewer, which moves to the frame holding most of them."""
        self.selected = np.unique(np.asarray(atoms, dtype=np.int64))
        with self.maps.batch_update():
            for trace in self.maps.data[:len(self.models)]:
                trace.selectedpoints = self.selected.tolist() if len(self.selected) else None
        if len(self.selected):
            frames = self._frame_of[self.selected]
            if not np.any(frames == self.viewer.frame):
                self.viewer.frame = int(np.bincount(frames).argmax())
        self._highlight_in_viewer()

    def _highlight_in_viewer(self) -> None:
        start = self._offsets[self.viewer.frame]
        here = self.selected[self._frame_of[self.selected] == self.viewer.frame] - start
        self.viewer.highlight(here.tolist())

    def _on_pick(self, picked: dict[str, Any]) -> None:
        row = int(self._offsets[picked["frame"]] + picked["atom"])
        n = len(self.models)
        with self.maps.batch_update():
            for k, model in enumerate(self.models):
                point = self._rows(model).iloc[row]
                marker = self.maps.data[n + k]
                marker.x, marker.y = [point["x"]], [point["y"]]


class LatentTab(widgets.VBox):
    """Explorer tab: map the run's per-atom embeddings (UMAP or PCA, in the background)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.method = widgets.Dropdown(options=[("UMAP (neighbourhoods kept)", "umap"),
                                                ("PCA (linear, fast)", "pca")], description="projection",
                                       layout={"width": "330px"})
        self.k = widgets.BoundedIntText(10, min=1, max=100, description="neighbours for the OOD score",
                                        style={"description_width": "initial"}, layout={"width": "260px"})
        self.button = widgets.Button(description="make map", button_style="primary")
        self.button.on_click(lambda _: self.start())
        self.status = widgets.HTML()
        self.output = widgets.VBox()
        self._thread: threading.Thread | None = None
        super().__init__([widgets.HBox([self.method, self.k, self.button, self.status]), self.output])

    def start(self) -> threading.Thread:
        """Make the map in a background thread (what the button does); it goes to ``output``."""
        self._thread = thread = run_in_background(self.button, self.status, self.output, "projecting...",
                                                  self._make)
        return thread

    def _make(self) -> LatentMap:
        return LatentMap(analyse(self.run.comparison, method=self.method.value, k=self.k.value))


register_view(LatentSpace, LatentMap)
register_tab("latent space", LatentTab, order=40)
