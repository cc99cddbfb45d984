"""The Explorer's summary tab: the error and softening tables of the run, and which model to
choose for these structures on this machine (`Comparison.model_choice`)."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from .common import render
from .tabs import Run, register_tab

#: the model choice table's columns as the tab shows them: title, format
CHOICE_COLUMNS = {
    "force_mae_eV_A": ("force MAE (eV/Å)", "{:.4f}"),
    "softening_slope": ("softening slope", "{:.3f}"),
    "rare_event_force_error_eV_A": ("rare-event |ΔF| (eV/Å)", "{:.3f}"),
    "atoms_per_second": ("atoms/s", "{:,.0f}"),
    "peak_memory_MiB": ("peak memory (MiB)", "{:,.0f}"),
}


def model_choice_figure(table: pd.DataFrame, figure: Any = None) -> Any:
    """Force MAE against speed, one point per model (`Comparison.model_choice`): the best
    trade-offs (no model both faster and more accurate) stand out, joined by their front; the
    device and precision are named in the title, the other figures shown on hover.

    Parameters
    ----------
    table
        What `Comparison.model_choice` returns.
    figure
        A figure to draw into (changed in place), or None for a new one.

    Returns
    -------
    mlipviz.widgets.figure.Figure
        A plotly figure widget.
    """
    import plotly.graph_objects as go

    speed = table["atoms_per_second"].to_numpy(dtype=float)
    error = table["force_mae_eV_A"].to_numpy(dtype=float)
    best = table["best_tradeoff"].to_numpy(dtype=bool)
    hover = [
        "<br>".join([f"<b>{html.escape(str(name))}</b>"] + [
            f"{title}: {fmt.format(row[key]) if np.isfinite(row[key]) else 'n/a'}"
            for key, (title, fmt) in CHOICE_COLUMNS.items()])
        for name, row in table.iterrows()]
    names = [str(name) for name in table.index]
    front = np.flatnonzero(best & np.isfinite(speed))
    front = front[np.argsort(speed[front])]
    traces = [
        go.Scatter(x=speed[front], y=error[front], mode="lines", line={"color": "#2a7", "dash": "dot"},
                   name="best trade-offs", hoverinfo="skip"),
        go.Scatter(x=speed[~best], y=error[~best], mode="markers+text", name="others",
                   text=[n for n, b in zip(names, best) if not b], textposition="top center",
                   marker={"size": 11, "color": "#999", "symbol": "circle-open", "line": {"width": 2}},
                   hovertext=[h for h, b in zip(hover, best) if not b], hoverinfo="text"),
        go.Scatter(x=speed[best], y=error[best], mode="markers+text", name="best trade-off",
                   text=[n for n, b in zip(names, best) if b], textposition="top center",
                   marker={"size": 13, "color": "#2a7", "symbol": "star"},
                   hovertext=[h for h, b in zip(hover, best) if b], hoverinfo="text"),
    ]
    device, dtype = table.attrs.get("device", "?"), table.attrs.get("dtype", "?")
    # a short title, left: the plot's tool bar takes the top right
    return render(figure, traces, title={"text": f"accuracy vs speed ({device}, {dtype})", "x": 0.02},
                  xaxis_title=f"atoms per second ({device}, log)", yaxis_title="force MAE (eV/Å)",
                  xaxis_type="log", showlegend=False, width=520)


def model_choice_html(table: pd.DataFrame) -> str:
    """The model choice table as HTML, the best trade-offs in bold."""
    head = "".join(f"<th>{html.escape(title)}</th>" for title, _ in CHOICE_COLUMNS.values())
    rows = []
    for name, row in table.iterrows():
        cells = "".join(f"<td>{fmt.format(row[key]) if np.isfinite(row[key]) else 'n/a'}</td>"
                        for key, (_, fmt) in CHOICE_COLUMNS.items())
        style = " style='font-weight:bold;background:#efe'" if row["best_tradeoff"] else ""
        rows.append(f"<tr{style}><td>{html.escape(str(name))}</td>{cells}</tr>")
    note = (f"<div style='font-size:11px;color:#555'>device: {html.escape(table.attrs.get('device', '?'))}; "
            f"precision: {html.escape(table.attrs.get('dtype', '?'))}; speed: each model's forward passes in "
            f"this run, graph building included; peak memory: its largest pass (on CPU the tensors kept "
            f"for the forces); rare-event atoms: "
            f"{html.escape(table.attrs.get('rare_events', '?'))}</div>")
    return (f"<table class='mlipviz-model-choice' style='font-size:12px'><tr><th>model</th>{head}</tr>"
            + "".join(rows) + "</table>" + note)


def summary_tab(run: Run) -> widgets.Widget:
    """The comparison's error summary, softening scales, and the model choice (table and plot)."""
    cmp = run.comparison
    tables = widgets.HTML("<b>Errors</b>" + cmp.summary().to_html(float_format="%.4f")
                          + "<b>Softening scale</b> (Deng et al. 2025)" + cmp.softening().to_html(float_format="%.4f"))
    choice = cmp.model_choice()
    heading = widgets.HTML("<b>Model choice</b>: accuracy on these frames against speed measured in this run "
                           "(Jacobs et al. 2025)")
    return widgets.VBox([tables, heading, widgets.HTML(model_choice_html(choice)), model_choice_figure(choice)])


register_tab("summary", summary_tab, order=10)
