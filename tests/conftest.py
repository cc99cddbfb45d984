"""Shared fixtures. Real models only: weights from $MLIPVIZ_MODELS (default ../shared/models)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mlipviz.settings import resolve_folder_settings

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
# the default is absolute; a relative setting given to pytest is made absolute before any test
# starts a kernel or a worker in another folder
os.environ.setdefault("MLIPVIZ_MODELS", str(SHARED_MODELS))
resolve_folder_settings()


def rattled(atoms, n: int, stdev: float = 0.05, seed: int = 0):
    """``n`` copies of ``atoms`` with Gaussian-rattled positions and a slightly strained cell."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        copy = atoms.copy()
        copy.positions += rng.normal(0.0, stdev, copy.positions.shape)
        if copy.pbc.all():
            copy.set_cell(copy.cell.array @ (np.eye(3) + rng.normal(0, 0.01, (3, 3))), scale_atoms=True)
        out.append(copy)
    return out


@pytest.fixture(scope="session")
def mixed_structures():
    """A few small periodic structures of different sizes and elements (ragged batch)."""
    from ase.build import bulk

    structures = [bulk("Si", "diamond", a=5.43), bulk("NaCl", "rocksalt", a=5.64) * (1, 1, 2),
                  bulk("Cu", "fcc", a=3.61, cubic=True), bulk("MgO", "rocksalt", a=4.21)]
    return [a for s, seed in zip(structures, range(4)) for a in rattled(s, 2, 0.08, seed)]


@pytest.fixture(scope="session")
def frames(mixed_structures):
    """`mixed_structures` as one `Frames` (8 frames, ragged)."""
    import mlipviz

    return mlipviz.Frames.from_atoms(mixed_structures)
