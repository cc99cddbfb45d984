"""Analysis on plain arrays and DataFrames: errors, softening, rare events. No Jupyter needed."""

from .compare import Comparison, RareEvents, compare, load_comparison
from .metrics import force_errors, softening_fit

__all__ = ["Comparison", "RareEvents", "compare", "force_errors", "load_comparison", "softening_fit"]
