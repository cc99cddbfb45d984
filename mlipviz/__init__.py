"""mlipviz: find out where and why universal machine-learning interatomic potentials fail.

Layers, one way: ``frames``/``io`` (structures) -> ``models`` (uMLIPs) -> ``analysis``
(errors, softening, rare events, scans, latent space, attributions) -> widgets.
"""

from . import attribution, errors, latent, reference
from .analysis import scan
from .analysis.attribution import attribute, site_energies
from .analysis.compare import Comparison, RareEvents, compare, load_comparison
from .analysis.evaluate import evaluate
from .analysis.stability import md_stability
from .display import show
from .frames import Frames
from .io import read
from .models import available_models, load_model
from .models.base import Model, Prediction
from .settings import resolve_folder_settings

# relative folder settings ($MLIPVIZ_MODELS, ...) become absolute in os.environ, so that the
# processes started from here (kernels, Dask workers, reference workers) find the same folders
resolve_folder_settings()

from .version import __version__

__all__ = [
    "Comparison", "Explorer", "Frames", "Model", "Prediction", "RareEvents", "attribute", "attribution",
    "available_models", "compare", "errors", "evaluate", "examples", "latent", "load_comparison", "load_model",
    "md_stability", "read", "reference", "scan", "show", "site_energies", "view",
]


def __getattr__(name):
    """Load on first use: the widgets (``view``, ``Explorer``; they need Jupyter packages) and
    the bundled ``examples``."""
    from importlib import import_module

    if name in ("view", "Explorer"):
        return getattr(import_module(f"{__name__}.widgets"), name)
    if name == "examples":
        return import_module(f"{__name__}.examples")
    raise AttributeError(f"module 'mlipviz' has no attribute '{name}'")
