"""GPAW reference for periodic systems: PAW plane waves, defaults close to Materials Project practice."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import Any, cast

import numpy as np
from ase import Atoms
from ase.calculators.calculator import kptdensity2monkhorstpack

from .. import checks
from ..errors import ArgumentTypeError, InputError, ModelNotAvailableError, UnknownNameError
from .base import ReferenceCalculator

INSTALL_HINT = (
    "GPAW is not installed. It builds from source and needs system libraries first, e.g. on "
    "Debian/Ubuntu: apt-get install libxc-dev libblas-dev liblapack-dev libopenmpi-dev "
    "libscalapack-openmpi-dev; then: pip install 'mlipviz[dft]' (gpaw and gpaw-data, the PAW setups)")


class GPAW(ReferenceCalculator):
    """A live GPAW (PAW, plane waves) calculation.

    Defaults follow Materials Project practice where GPAW allows: PBE, 520 eV cutoff, a
    Γ-centred k-point grid of ``kpoint_density`` points per Å⁻¹ of reciprocal length
    (4.0 ≈ MP's reciprocal density of 64 per Å⁻³), Fermi-Dirac smearing of 0.05 eV
    (MP's SIGMA; MP relaxations use the tetrahedron method), no Hubbard U, spin-polarised
    only when asked. Energies are the force-consistent (free) energies, the ones whose
    derivatives the forces are.

    Parameters
    ----------
    xc : str
        A functional GPAW knows (its own names or libxc ones, e.g. ``"GGA_X_PBE+GGA_C_PBE"``).
    ecut : float
        The plane-wave cutoff (eV).
    kpoint_density : float
        Points per Å⁻¹ of reciprocal length of the Γ-centred grid.
    kpts : tuple of three int, optional
        A grid; overrides the density.
    smearing : float
        Fermi-Dirac width (eV).
    spin_polarized : bool
        Spin-polarised calculations.
    energy_convergence : float
        SCF convergence (eV per electron).
    gpaw_kwargs : dict, optional
        Every further GPAW keyword passes through ``gpaw_kwargs``.
    **kwargs
        ``cache_dir`` and ``n_jobs`` (see `ReferenceCalculator`), and ASE ``Calculator`` arguments.

    Raises
    ------
    ModelNotAvailableError
        GPAW is not installed (the message says how to install it).
    UnknownNameError
        A functional GPAW does not know.
    ArgumentTypeError, InputError
        A setting of the wrong type or out of its range.
    """

    code: str = "GPAW"
    implemented_properties: list[str] = ["energy", "forces", "stress"]  # noqa: RUF012 - ASE's attribute, a list

    def __init__(self, xc: str = "PBE", ecut: float = 520.0, kpoint_density: float = 4.0,
                 kpts: tuple[int, int, int] | None = None, smearing: float = 0.05,
                 spin_polarized: bool = False, energy_convergence: float = 1e-6,
                 gpaw_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if importlib.util.find_spec("gpaw") is None:
            raise ModelNotAvailableError(INSTALL_HINT)
        super().__init__(**kwargs)
        # every setting checked here, not when the first SCF starts (minutes later, in a worker)
        self.xc = _functional(xc)
        self.ecut = checks.number("ecut", ecut, minimum=0, above=True)
        self.kpoint_density = checks.number("kpoint_density", kpoint_density, minimum=0, above=True)
        self.kpts = _kpoint_grid(kpts)
        self.smearing = checks.number("smearing", smearing, minimum=0)
        self.spin_polarized = checks.flag("spin_polarized", spin_polarized)
        self.energy_convergence = checks.number("energy_convergence", energy_convergence, minimum=0, above=True)
        if gpaw_kwargs is not None and not isinstance(gpaw_kwargs, dict):
            raise ArgumentTypeError("gpaw_kwargs must be a dict of further GPAW settings, got "
                                    f"{checks.short(gpaw_kwargs)}")
        self.gpaw_kwargs = dict(gpaw_kwargs or {})

    def settings(self) -> dict[str, Any]:
        """Every setting that changes the numbers, GPAW's and its setups' versions included."""
        import gpaw

        try:
            setups = importlib.metadata.version("gpaw-data")
        except importlib.metadata.PackageNotFoundError:
            setups = "unknown"
        return {"code": "GPAW", "version": gpaw.__version__, "setups": f"gpaw-data {setups}",
                "xc": self.xc, "mode": "PW", "ecut_eV": self.ecut,
                "kpts": list(self.kpts) if self.kpts else f"{self.kpoint_density} per 1/Å, Γ-centred",
                "occupations": f"Fermi-Dirac {self.smearing} eV", "spin_polarized": self.spin_polarized,
                "energy_convergence_eV_per_electron": self.energy_convergence,
                "energy": "free (force-consistent)", **self.gpaw_kwargs}

    def level_of_theory(self) -> str:
        """GPAW's version, functional, setups, cutoff, k-points and smearing, in one line."""
        s = self.settings()
        kpts = "x".join(map(str, self.kpts)) if self.kpts else f"{self.kpoint_density}/Å⁻¹ Γ-centred"
        spin = ", spin-polarised" if self.spin_polarized else ""
        return (f"GPAW {s['version']} {self.xc}, PAW ({s['setups']}) plane waves {self.ecut:g} eV, "
                f"k-points {kpts}, Fermi-Dirac {self.smearing:g} eV{spin}; free energy")

    def kpoint_grid(self, atoms: Atoms) -> list[int]:
        """The Monkhorst-Pack sizes used for ``atoms`` (1 along non-periodic directions)."""
        if self.kpts:
            return list(self.kpts)
        return [int(k) for k in kptdensity2monkhorstpack(atoms, self.kpoint_density, even=False)]

    def _compute(self, atoms: Atoms) -> dict[str, Any]:
        from gpaw import GPAW as GPAWCalculator
        from gpaw import PW

        if not atoms.pbc.any():
            raise InputError("GPAW reference here is for periodic structures (use PySCF for molecules)")
        grid = self.kpoint_grid(atoms)
        calc = GPAWCalculator(
            mode=PW(self.ecut), xc=self.xc, kpts={"size": grid, "gamma": True},
            occupations={"name": "fermi-dirac", "width": self.smearing},
            spinpol=self.spin_polarized, convergence={"energy": self.energy_convergence},
            txt=None, **self.gpaw_kwargs)
        atoms.calc = calc
        out: dict[str, Any] = {"energy": float(atoms.get_potential_energy(force_consistent=True)),
               "forces": np.array(atoms.get_forces())}
        if atoms.pbc.all():
            out["stress"] = np.array(atoms.get_stress(voigt=False))
        out["meta"] = {"kpts": grid, "n_electrons": float(calc.get_number_of_electrons())}
        return out


def _functional(xc: Any) -> str:
    """``xc`` if GPAW knows it (its own names or libxc ones, e.g. ``"GGA_X_PBE+GGA_C_PBE"``)."""
    from gpaw.xc import XC

    if not isinstance(xc, str):
        raise ArgumentTypeError(f"xc must be a functional name such as 'PBE', got {checks.short(xc)}")
    try:
        XC(xc)
    except Exception as exc:  # GPAW raises NameError, KeyError or libxc's errors
        raise UnknownNameError(f"xc={xc!r} is not a functional GPAW knows (e.g. 'LDA', 'PBE', 'PBEsol', "
                               f"'RPBE', 'SCAN', or libxc names joined with '+'): {exc}") from exc
    return xc


def _kpoint_grid(kpts: Any) -> tuple[int, int, int] | None:
    if kpts is None:
        return None
    if isinstance(kpts, (str, bytes)) or not hasattr(kpts, "__len__") or len(kpts) != 3:
        raise InputError(f"kpts must be three positive whole numbers (a Monkhorst-Pack grid) or None, "
                         f"got {checks.short(kpts)}")
    grid = tuple(checks.whole_number(f"kpts[{i}]", k, minimum=1) for i, k in enumerate(kpts))
    return cast("tuple[int, int, int]", grid)
