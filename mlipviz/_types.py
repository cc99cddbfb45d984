"""Type aliases of mlipviz's signatures: what its entry points take as structures (for readers
and type checkers; nothing here runs). The models' aliases are in `mlipviz.analysis._types`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

from ase import Atoms
from pymatgen.core import Molecule, Structure

from .frames import Frames

#: one structure: ASE ``Atoms``, a pymatgen ``Structure`` or ``Molecule``, a one-frame `Frames` or a file
StructureLike: TypeAlias = Atoms | Structure | Molecule | Frames | str | Path
#: structures as `mlipviz.read` takes them: a file, `Frames`, one structure or a list of them
StructuresLike: TypeAlias = str | Path | Frames | Atoms | Structure | Molecule | Sequence[Atoms | Structure | Molecule]
