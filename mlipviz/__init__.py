"""mlipviz: find out where and why universal machine-learning interatomic potentials fail.

Layers, one way: ``frames``/``io`` (structures) -> ``models`` (uMLIPs) -> ``analysis``
(errors, softening, rare events, scans, latent space, attributions) -> widgets.

``import mlipviz`` is quick and imports neither torch nor the model packages: each name below is
imported from its module when it is first used (PEP 562), so ``mlipviz.read`` costs ASE and
numpy, ``mlipviz.compare`` torch as well, ``mlipviz.Explorer`` the Jupyter stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .settings import resolve_folder_settings
from .version import __version__

# relative folder settings ($MLIPVIZ_MODELS, ...) become absolute in os.environ, so that the
# processes started from here (kernels, Dask workers, reference workers) find the same folders
resolve_folder_settings()

#: public name -> the module that defines it (the attribute of the same name there)
_LAZY = {
    "Comparison": ".analysis.compare", "RareEvents": ".analysis.compare", "compare": ".analysis.compare",
    "load_comparison": ".analysis.compare", "evaluate": ".analysis.evaluate", "md_stability": ".analysis.stability",
    "attribute": ".analysis.attribution", "site_energies": ".analysis.attribution", "show": ".display",
    "Frames": ".frames", "read": ".io", "available_models": ".models", "load_model": ".models",
    "finetune": ".models.finetune", "frames_to_label": ".analysis.selection",
    "Model": ".models.base", "Prediction": ".models.base", "view": ".widgets", "Explorer": ".widgets",
}
#: public submodules, imported on first use
_SUBMODULES = {"attribution": ".attribution", "errors": ".errors", "examples": ".examples", "latent": ".latent",
               "reference": ".reference", "scan": ".analysis.scan"}

__all__ = [
    "Comparison",
    "Explorer",
    "Frames",
    "Model",
    "Prediction",
    "RareEvents",
    "__version__",
    "attribute",
    "attribution",
    "available_models",
    "compare",
    "errors",
    "evaluate",
    "examples",
    "finetune",
    "frames_to_label",
    "latent",
    "load_comparison",
    "load_model",
    "md_stability",
    "read",
    "reference",
    "scan",
    "show",
    "site_energies",
    "view",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time `__getattr__` imports these
    from . import attribution, errors, examples, latent, reference
    from .analysis import scan
    from .analysis.attribution import attribute, site_energies
    from .analysis.compare import Comparison, RareEvents, compare, load_comparison
    from .analysis.evaluate import evaluate
    from .analysis.selection import frames_to_label
    from .analysis.stability import md_stability
    from .display import show
    from .frames import Frames
    from .io import read
    from .models import available_models, load_model
    from .models.base import Model, Prediction
    from .models.finetune import finetune
    from .widgets import Explorer, view


def __getattr__(name: str) -> Any:
    """Import a public name on first use (then it is a plain attribute of the package)."""
    if name in _SUBMODULES:
        value = import_module(_SUBMODULES[name], __name__)
    elif name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
    else:
        raise AttributeError(f"module 'mlipviz' has no attribute '{name}'")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
