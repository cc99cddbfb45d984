"""Jupyter widgets: thin views over `Frames` and analysis results (nglview, plotly, ipywidgets).

``view`` (3D viewer), ``ErrorMap`` (what ``Comparison.show()`` returns), ``ScanView`` (what
``Scan.show()`` returns), ``LatentMap`` (what ``mlipviz.latent.show()`` returns),
``AttributionView`` (what ``mlipviz.attribution.show()`` returns), ``Explorer``
(the app) and ``register_tab`` (plug a result tab into the Explorer).
"""

import warnings

with warnings.catch_warnings():  # nglview 3.1.4 imports the deprecated pkg_resources
    warnings.simplefilter("ignore", UserWarning)
    import nglview  # noqa: F401

from .attribution_view import AttributionView
from .error_map import ErrorMap
from .explorer import Explorer, register_tab, result_tabs
from .latent_map import LatentMap
from .scan_view import ScanView
from .viewer import Viewer, view

__all__ = ["AttributionView", "ErrorMap", "Explorer", "LatentMap", "ScanView", "Viewer", "register_tab", "result_tabs", "view"]
