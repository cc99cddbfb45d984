"""Plotly figure widgets that share one copy of plotly's JavaScript per page.

Plotly's ``FigureWidget`` (plotly >= 6, an anywidget) carries its whole front-end bundle,
about 5 MB of JavaScript, in the state of every figure: the error map's three plots sent
15 MB to the browser, which parsed and ran plotly.js three times, before the tab showed
(on a remote server such as Binder, the transfer alone takes seconds). Here the bundle
travels once, in one `PlotlyRuntime` widget per kernel, and each `Figure` is plotly's own
widget with a few lines of front-end code that wait for that copy and hand over to it;
the Python side, its events (``on_click``, ``batch_update``) and the drawn figure are
plotly's.
"""

from __future__ import annotations

from typing import Any

import anywidget
import plotly.graph_objects as go
import traitlets
from plotly.basewidget import BaseFigureWidget

#: the page-wide promise of plotly's front-end module, resolved by the runtime widget
_SHARED = """
function shared() {
  const g = globalThis;
  if (!g.__mlipvizPlotly) {
    let resolve;
    g.__mlipvizPlotly = new Promise((r) => { resolve = r; });
    g.__mlipvizPlotly.resolve = resolve;
  }
  return g.__mlipvizPlotly;
}
"""

RUNTIME_ESM = _SHARED + """
export default {
  async initialize({ model }) {
    const slot = shared();
    if (slot.loading) return;
    slot.loading = true;
    const url = URL.createObjectURL(new Blob([model.get("bundle")], { type: "text/javascript" }));
    try {
      slot.resolve(await import(/* webpackIgnore: true */ url));
    } finally {
      URL.revokeObjectURL(url);
    }
  },
};
"""

FIGURE_ESM = _SHARED + """
export default () => {
  let figure;
  return {
    async initialize(context) {
      const module = await shared();
      figure = module.default();
      return figure.initialize(context);
    },
    render(context) {
      return figure.render(context);
    },
  };
};
"""


class PlotlyRuntime(anywidget.AnyWidget):
    """Carries plotly's widget bundle to the page once; never displayed."""

    _esm = RUNTIME_ESM
    bundle = traitlets.Unicode().tag(sync=True)


_runtime: PlotlyRuntime | None = None


def runtime() -> PlotlyRuntime:
    """The kernel's one `PlotlyRuntime` (made on first use; pages opened later, such as a
    reloaded notebook, get it with the other widget models)."""
    global _runtime
    if _runtime is None or _runtime.comm is None:
        _runtime = PlotlyRuntime(bundle=str(BaseFigureWidget._esm))
    return _runtime


#: plotly's tool-bar buttons that these small linked plots do not need: with all twelve the bar
#: covered the plots' titles; kept: save as PNG, zoom, pan, reset axes
MODEBAR_REMOVE = ("select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d", "sendDataToCloud",
                  "toggleSpikelines", "hoverClosestCartesian", "hoverCompareCartesian")


class Figure(go.FigureWidget):
    """``plotly.graph_objects.FigureWidget`` whose front end is the page's shared plotly.

    Unless the layout says otherwise, the tool bar keeps only the buttons listed above as kept
    and the title stands at the left over the plot, clear of the tool bar at the right."""

    _esm = FIGURE_ESM
    _config: dict[str, Any]  # plotly's, declared for type checkers

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        runtime()
        super().__init__(*args, **kwargs)
        self._config = {"displaylogo": False, **self._config}
        self.tidy()

    def tidy(self) -> None:
        """Apply the defaults above where the layout leaves them open (again after a layout
        update that replaced the title)."""
        if self.layout.modebar.remove is None:
            self.layout.modebar.remove = MODEBAR_REMOVE
        if self.layout.title.text and self.layout.title.x is None:
            self.layout.title.update(x=0, xref="paper", xanchor="left")
