"""Live reference calculators (real ASE calculators): PySCF for molecules, GPAW for solids.

Both record their level of theory in each frame's info, cache results on disk keyed by
structure and settings, and label many frames in parallel with a progress bar::

    ref = mlipviz.reference.GPAW(ecut=400, kpoint_density=3.0)
    labelled = ref.evaluate(frames)
    cmp = mlipviz.compare("chgnet", frames, reference=ref)
"""

from .base import ReferenceCalculator, ReferenceModel, default_cache_dir
from .gpaw_calc import GPAW
from .pyscf_calc import PySCF

__all__ = ["GPAW", "PySCF", "ReferenceCalculator", "ReferenceModel", "default_cache_dir"]
