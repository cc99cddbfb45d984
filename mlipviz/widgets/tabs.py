"""The Explorer's result tabs: what a tab gets (`Run`) and where tabs register (`register_tab`).

Each tab registers itself from its own module (``error_map``, ``scan_view``, ``latent_map``,
``attribution_view``, ``summary``); `mlipviz.widgets` imports them, and every Explorer shows the
registered tabs in their ``order``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets

from ..analysis.compare import Comparison
from ..models.base import Model


@dataclass
class Run:
    """What a result tab gets: the comparison and what produced it (to run more with)."""

    comparison: Comparison
    models: list[Model]
    reference: Any  # None (the structures' labels), a reference calculator, or a model
    device: str


TabBuilder = Callable[[Run], widgets.Widget]

#: title -> (order, builder)
_TABS: dict[str, tuple[float, TabBuilder]] = {}


def register_tab(title: str, build: TabBuilder, order: float | None = None) -> None:
    """Add a result tab to every Explorer: ``build(run)`` returns its widget.

    Parameters
    ----------
    title
        The tab's title; registering a title again replaces that tab.
    build
        Called with the finished `Run` when the results are shown; an exception it raises is
        shown in the tab as the app's error box.
    order
        Where the tab stands (the built-in tabs use 10 to 50); default: after every tab
        registered so far.
    """
    if order is None:
        order = max((o for o, _ in _TABS.values()), default=0.0) + 10
    _TABS[title] = (float(order), build)


def result_tabs() -> dict[str, TabBuilder]:
    """The registered result tabs, title -> builder, in order."""
    return {title: build for title, (_, build) in sorted(_TABS.items(), key=lambda item: item[1][0])}
