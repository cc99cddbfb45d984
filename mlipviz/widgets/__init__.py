"""Jupyter widgets: thin views over `Frames` and analysis results (nglview, plotly, ipywidgets).

``view`` (3D viewer), the result views that `mlipviz.show` picks by result type (``ErrorMap``
for a `Comparison`, ``ScanView`` for a `Scan`, ``LatentMap`` for a `LatentSpace`,
``AttributionView`` for an `Attribution`, ``StabilityView`` for a `Stability`), ``Explorer``
(the app) and ``register_tab`` (plug a result tab into the Explorer). Each view module
registers its view (`mlipviz.display.register_view`) and its Explorer tab
(`mlipviz.widgets.tabs.register_tab`) when imported here.
"""

import warnings

from ..display import show
from ..extras import needs

# the widget stack (ipywidgets, nglview, plotly, anywidget): a missing package says to install the extra
with needs("widgets", "mlipviz.widgets"):
    with warnings.catch_warnings():  # nglview 3.1.4 imports the deprecated pkg_resources
        warnings.simplefilter("ignore", UserWarning)
        import nglview  # noqa: F401

    from . import summary  # noqa: F401  (registers the summary tab)
    from .attribution_view import AttributionView
    from .error_map import ErrorMap
    from .explorer import Explorer
    from .latent_map import LatentMap
    from .scan_view import ScanView
    from .stability_view import StabilityView
    from .tabs import Run, register_tab, result_tabs
    from .viewer import Viewer, view

__all__ = ["AttributionView", "ErrorMap", "Explorer", "LatentMap", "Run", "ScanView", "StabilityView", "Viewer",
           "register_tab", "result_tabs", "show", "view"]
