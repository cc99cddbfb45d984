"""The view of an MD stability test (`mlipviz.md_stability`): its table and each model's sampled
trajectory in 3D, up to the step where it failed."""

from __future__ import annotations

import html
from collections.abc import Sequence

import ipywidgets as widgets
import numpy as np
import pandas as pd

from .. import checks
from ..analysis.stability import Stability
from ..display import register_view
from .viewer import Viewer


class StabilityView(widgets.VBox):
    """The stability table and a `Viewer` of one model's trajectory (chosen in ``model``).

    Parameters
    ----------
    result : Stability
        What `mlipviz.md_stability` returned.
    model : str, optional
        The model shown first (default: the first that failed, else the first).

    Raises
    ------
    UnknownNameError
        ``model`` is not one of the result's models.
    """

    children: Sequence[widgets.Widget]  # ipywidgets' trait, declared for type checkers

    def __init__(self, result: Stability, model: str | None = None) -> None:
        self.result = result
        names = list(result.trajectories)
        if model is not None:
            checks.one_of("model", model, names)
        failed = [name for name in names if not bool(result.table.loc[name, "stable"])]
        self.model = widgets.Dropdown(options=names, value=model if model is not None else (failed or names)[0],
                                      description="model")
        self.table = widgets.HTML(_table_html(result.table.drop(columns=["failure_time_ps"], errors="ignore")))
        self.note = widgets.HTML()
        self.viewer = Viewer(result.trajectories[self.model.value])
        self.model.observe(lambda _: self._show(), "value")
        self._show_note()
        super().__init__([self.table, widgets.HBox([self.model, self.note]), self.viewer])

    def _show(self) -> None:
        frames = self.result.trajectories[self.model.value]
        self.viewer = Viewer(frames)
        self.children = [*self.children[:-1], self.viewer]
        self._show_note()

    def _show_note(self) -> None:
        row = self.result.table.loc[self.model.value]
        text = ("stable for all steps" if bool(row["stable"]) else
                f"failed at step {int(row['failure_step'])}: {row['failure']} (the last frame)")
        self.note.value = f"<span style='font-size:12px'>{html.escape(text)}</span>"




def _cell(value: object) -> str:
    """A table cell: floats to 3 decimals, a missing value (no failure) as "-"."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{value:.3f}" if isinstance(value, (float, np.floating)) else str(value)


def _table_html(table: pd.DataFrame) -> str:
    return table.apply(lambda column: column.map(_cell)).to_html()


register_view(Stability, StabilityView)
