"""Any ASE calculator as a `Model`: one structure at a time, no batching; and the named models
that mlipviz runs through their package's own calculator (`PackageCalculatorModel`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ase.calculators.calculator import BaseCalculator

from ..frames import Frames
from .backend import Backend, ModelCard
from .base import Model


class CalculatorModel(Model):
    """Wraps an ASE ``Calculator``; stress only for fully periodic frames the calculator supports."""

    atoms_per_batch = 1

    def __init__(self, calc: BaseCalculator, name: str | None = None) -> None:
        super().__init__()
        self.calc = calc
        self.name = name or getattr(calc, "name", None) or type(calc).__name__
        props = set(getattr(calc, "implemented_properties", ()))
        self.has_stress = "stress" in props
        self.has_energies = "energies" in props
        self.meta = {"calculator": type(calc).__name__, **dict(getattr(calc, "parameters", {}) or {})}

    def calculator(self) -> BaseCalculator:
        """The wrapped calculator itself."""
        return self.calc

    def _evaluate(self, frames: Frames, return_embeddings: bool) -> dict[str, np.ndarray | None]:
        out: dict[str, list[float | np.ndarray]] = {"energy": [], "forces": [], "stress": [], "energies": []}
        for i in range(len(frames)):
            atoms = frames.to_atoms(i)
            atoms.calc = self.calc
            out["energy"].append(atoms.get_potential_energy())
            out["forces"].append(atoms.get_forces())
            out["stress"].append(atoms.get_stress(voigt=False) if self.has_stress and atoms.pbc.all()
                                 else np.full((3, 3), np.nan))
            if self.has_energies:
                out["energies"].append(atoms.get_potential_energies())
        return {"energy": np.array(out["energy"]), "forces": np.concatenate(out["forces"]),
                "stress": np.array(out["stress"]) if self.has_stress else None,
                "energies": np.concatenate(out["energies"]) if self.has_energies else None}


class PackageCalculatorModel(CalculatorModel):
    """A named pretrained model run through its package's own ASE calculator (a `Backend` with
    ``calculator_only``): `predict` evaluates one structure at a time; no embeddings, no
    attributions, since the package does not hand its network to mlipviz.

    Parameters
    ----------
    calc
        The package's calculator, already built on ``device`` in ``dtype``.
    backend, card, weights
        What it is (`Model._describe` records them in ``meta``; the card names it).
    device, dtype
        Where and in what precision the calculator runs.
    **meta
        The backend's own entries of ``meta`` (a UMA task, an ORB precision ...).
    """

    def __init__(self, calc: BaseCalculator, backend: Backend[Model], card: ModelCard | None,
                 weights: str | Path | None, device: str, dtype: str, **meta: Any) -> None:
        super().__init__(calc)
        self.device, self.dtype = device, dtype
        name = Path(weights).stem if weights is not None else self.name
        self._describe(backend, card, weights, name, calculator=type(calc).__name__, **meta)
