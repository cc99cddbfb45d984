"""A model with the linear softening correction of Deng et al. (2025): forces, stress and energy
differences of another model scaled by c = 1/s, where s is the softening scale measured against a
reference (`mlipviz.Comparison.corrected` fits it and builds one).

The energy is E'(x) = c E(x) + (1 - c) N ε: c times the model's energy, plus a constant per atom
that keeps E' = E at the anchor ε (the model's lowest energy per atom on the frames the correction
was fitted on). The constant does not depend on the positions or the cell, so forces, stress and
energy *differences* are exactly c times the model's, and forces stay -dE'/dx. Site energies
become c e_i + (1 - c) ε and still sum to E'. Embeddings are the model's own. With ``by`` (a key of
the frames' ``info``, e.g. a material id), c and ε are chosen per frame from that key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from .backend import ModelCard
from .base import Model, ModelCalculator

if TYPE_CHECKING:
    import torch
    from ase.calculators.calculator import BaseCalculator

    from ..frames import Frames


class CorrectedModel(Model):
    """``base`` with its forces, stress and energy differences scaled by ``scale`` (c = 1/s).

    Parameters
    ----------
    base
        The model being corrected.
    scale
        c, one number; or, with ``by``, one per value of the frames' ``info[by]``.
    anchor
        ε (eV/atom), the energy per atom that the correction leaves unchanged; one number, or
        one per value of ``info[by]``.
    by
        None (one correction for every frame), or the ``info`` key that picks each frame's.
    name
        The corrected model's name (default: the base's name plus ``-corrected``).
    fitted_on
        What the correction was fitted on, for its card (frames, reference, slope).

    Raises
    ------
    InputError
        A scale that is not positive and finite, or scales and anchors for different keys.
    """

    def __init__(self, base: Model, scale: float | Mapping[Any, float], anchor: float | Mapping[Any, float],
                 by: str | None = None, name: str | None = None, fitted_on: str = "") -> None:
        super().__init__()
        scales = dict(scale) if isinstance(scale, Mapping) else {None: float(scale)}
        anchors = dict(anchor) if isinstance(anchor, Mapping) else {None: float(anchor)}
        if (by is None) != (set(scales) == {None}) or set(scales) != set(anchors):
            raise InputError("CorrectedModel: one scale and one anchor without by=, or one of each per "
                             "value of info[by]")
        bad = {k: v for k, v in scales.items() if not (np.isfinite(v) and v > 0)}
        if bad:
            raise InputError(f"CorrectedModel: the scale c = 1/s must be positive and finite; got {bad} "
                             "(a softening fit with no slope cannot be corrected)")
        self.base, self.by = base, by
        self.scales = {k: float(v) for k, v in scales.items()}
        self.anchors = {k: float(v) for k, v in anchors.items()}
        for attribute in ("device", "dtype", "cutoff", "elements", "embedding_layer", "embedding_width",
                          "embedding_layers", "has_stress", "has_energies", "atoms_per_batch", "cost_per_batch",
                          "bytes_per_unit"):
            setattr(self, attribute, getattr(base, attribute))
        if base.atom_gate is not None:
            self.atom_gate = base.atom_gate + " (the base model's; the correction is linear in each site energy)"
        self.name = name or f"{base.name}-corrected"
        shown = ", ".join(f"{k}: {v:.3f}" for k, v in self.scales.items()) if by else f"{self.scales[None]:.3f}"
        description = (f"{base.name} with the linear softening correction of Deng et al. (2025): forces, "
                       f"stress and energy differences x c = 1/s (c = {shown}{' by ' + by if by else ''})")
        training = base.card.training_data if base.card is not None else base.meta.get("training_data")
        self.card = ModelCard(self.name, str(base.meta.get("backend", "")), str(base.meta.get("version", "")),
                              description, f"{training or 'unknown'}; correction fitted on {fitted_on or 'frames'}",
                              citation="Deng et al., npj Comput. Mater. 11, 9 (2025)")
        self.meta = {**base.meta, "description": description, "training_data": self.card.training_data,
                     "base_model": base.name, "correction": {"scale": {str(k): v for k, v in self.scales.items()},
                                                             "anchor_eV_atom": {str(k): v for k, v in
                                                                                self.anchors.items()},
                                                             "by": by, "fitted_on": fitted_on}}

    def _keys(self, frames: Frames) -> list[Any]:
        """Each frame's key into `scales` (None without ``by``); an InputError naming the first
        frame without one."""
        if self.by is None:
            return [None] * len(frames)
        keys = []
        for i, info in enumerate(frames.info):
            key = info.get(self.by)
            key = tuple(key) if isinstance(key, list) else key
            if key not in self.scales:
                raise InputError(f"model {self.name}: no correction was fitted for {self.by}={key!r} (fitted: "
                                 f"{', '.join(map(repr, self.scales))})",
                                 source=frames.source, frame=i)
            keys.append(key)
        return keys

    def _factors(self, frames: Frames) -> tuple[np.ndarray, np.ndarray]:
        """Per frame: c and ε."""
        keys = self._keys(frames)
        return (np.array([self.scales[k] for k in keys]), np.array([self.anchors[k] for k in keys]))

    def check_elements(self, frames: Frames) -> None:
        """The base model's check."""
        self.base.check_elements(frames)

    def _evaluate(self, frames: Frames, return_embeddings: bool) -> dict[str, np.ndarray | None]:
        """The base model's pass, scaled: E' = c E + (1 - c) N ε, F' = c F, σ' = c σ,
        e_i' = c e_i + (1 - c) ε."""
        c, eps = self._factors(frames)
        out = dict(self.base._evaluate(frames, return_embeddings))
        n = frames.n_atoms
        c_atom, eps_atom = np.repeat(c, n), np.repeat(eps, n)
        out["energy"] = c * np.asarray(out["energy"]) + (1 - c) * n * eps
        out["forces"] = c_atom[:, None] * np.asarray(out["forces"])
        if out.get("stress") is not None:
            out["stress"] = c[:, None, None] * np.asarray(out["stress"])
        if out.get("energies") is not None:
            out["energies"] = c_atom * np.asarray(out["energies"]) + (1 - c_atom) * eps_atom
        return out

    def _edge_gated_site_energies(self, frame: Frames, positions: torch.Tensor,
                                  gate: torch.Tensor | None) -> torch.Tensor:
        """The base model's site energies (for attributions), corrected."""
        c, eps = self._factors(frame)
        site = self.base._edge_gated_site_energies(frame, positions, gate)
        return float(c[0]) * site + (1 - float(c[0])) * float(eps[0])

    def _choose_embedding_layer(self, layer: int | None) -> None:
        self.base._choose_embedding_layer(layer)
        self.embedding_layer, self.embedding_width = self.base.embedding_layer, self.base.embedding_width

    def calculator(self) -> BaseCalculator:
        """The ASE calculator of this model (mlipviz's `ModelCalculator`): the base model's own
        calculator knows nothing of the correction."""
        return ModelCalculator(self)
