"""Type aliases of the analysis layer's signatures: what its entry points take as a model and
as structures (for readers and type checkers; nothing here runs)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

from ase.calculators.calculator import BaseCalculator

from .._types import StructureLike, StructuresLike
from ..models.base import Model

#: one model as the entry points take it: a `Model`, a registry name, a weights path or an ASE calculator
ModelSpec: TypeAlias = Model | str | Path | BaseCalculator
#: one model or several
ModelsSpec: TypeAlias = ModelSpec | Sequence[ModelSpec]

__all__ = ["ModelSpec", "ModelsSpec", "StructureLike", "StructuresLike"]
