"""Helpers every view shares: the red error box, the background runner of the result tabs,
plotly figures changed in place, small HTML tables."""

from __future__ import annotations

import html
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as widgets

from ..errors import MlipvizError

#: the default size and margins of a plot in a view
PLOT = {"width": 440, "height": 360, "margin": {"l": 55, "r": 15, "t": 35, "b": 45}}


def error_html(exc: BaseException, names: dict[str, str] | None = None) -> str:
    """``exc`` as the app's red box: mlipviz's own message, or for an unexpected exception its
    type and the last frames of the traceback; each key of ``names`` in the text (a server path
    the user never chose, such as an upload's copy) is shown as its value."""
    if isinstance(exc, MlipvizError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_tb(exc.__traceback__, limit=-3))
    for key, shown in (names or {}).items():
        text = text.replace(key, shown)
    return ("<div class='mlipviz-error' style='color:#a00;background:#fee;border:1px solid #d99;padding:6px;"
            f"white-space:pre-wrap;font-family:monospace;font-size:12px'>{html.escape(text)}</div>")


def run_in_background(button: widgets.Button, status: widgets.HTML, output: widgets.Box, busy: str,
                      make: Callable[[], widgets.Widget]) -> threading.Thread:
    """Run ``make()`` in a thread for a result tab: ``button`` disabled and ``status`` saying
    ``busy`` meanwhile, then its widget in ``output`` ("done"), or the error there ("failed")."""
    def work() -> None:
        try:
            output.children = [make()]
            status.value = "done"
        except Exception as exc:  # noqa: BLE001 - any failure is shown in the tab, the app lives on
            status.value = "failed"
            output.children = [widgets.HTML(error_html(exc))]
        finally:
            button.disabled = False

    button.disabled = True
    status.value = busy
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def render(figure: Any, traces: list[Any], **layout: Any) -> Any:
    """A `Figure` made with its data (so front-ends that render later, like Voila, get it in the
    widget state; `PLOT` unless ``layout`` says otherwise), or ``figure`` with its data and
    layout replaced."""
    import plotly.graph_objects as go

    from .figure import Figure

    if figure is None:
        return Figure(data=traces, layout=go.Layout(**{**PLOT, **layout}))
    with figure.batch_update():
        if [trace.type for trace in figure.data] == [trace.type for trace in traces]:
            # the same kinds of traces: changed in place, one message and one redraw in the
            # browser (replacing them costs a redraw each for removing, adding and the layout)
            for old, new in zip(figure.data, traces):
                old.update({key: value for key, value in new.to_plotly_json().items() if key != "type"},
                           overwrite=True)
        else:
            figure.data = []
            figure.add_traces(traces)
        figure.update_layout(**layout)
        figure.tidy()
    return figure


def table_html(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column HTML table: name, then the value in bold (values are HTML)."""
    return "<table style='font-size:12px'>" + "".join(
        f"<tr><td>{html.escape(k)}</td><td><b>{v}</b></td></tr>" for k, v in rows) + "</table>"
