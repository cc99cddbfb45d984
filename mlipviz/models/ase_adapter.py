"""Any ASE calculator as a `Model`: one structure at a time, no batching."""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import BaseCalculator

from ..frames import Frames
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
