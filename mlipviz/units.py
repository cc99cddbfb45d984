"""mlipviz's units, in one place: eV, Å, eV/Å, eV/Å³ (ASE's stress sign), fs, as ASE uses them.

Conversions are ASE's (`ase.units`, CODATA 2014) except `EV_A3_IN_GPA`, which is the literal
that CHGNet and pymatgen multiply by (equal to ``1 / ase.units.GPa`` to 9 significant digits),
kept so that mlipviz's CHGNet stresses equal CHGNet's own bit for bit.
"""

from __future__ import annotations

from ase import units as _ase

#: 1 GPa in eV/Å³ (stress in GPa times this is eV/Å³)
GPA: float = _ase.GPa
#: 1 eV/Å³ in GPa, as CHGNet and pymatgen write it
EV_A3_IN_GPA: float = 160.21766208
#: 1 fs in ASE's time unit
FS: float = _ase.fs
#: 1 Hartree and 1 Bohr in eV and Å
HARTREE: float = _ase.Hartree
BOHR: float = _ase.Bohr
#: the elementary charge (C) and the atomic mass unit (kg): SI values for frequencies
ELEMENTARY_CHARGE: float = _ase._e
AMU: float = _ase._amu

__all__ = ["AMU", "BOHR", "ELEMENTARY_CHARGE", "EV_A3_IN_GPA", "FS", "GPA", "HARTREE"]
