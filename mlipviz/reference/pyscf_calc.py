"""PySCF reference for molecules and clusters: HF, any DFT functional, MP2, CCSD, CCSD(T)."""

from __future__ import annotations

import numpy as np
from ase.units import Bohr, Hartree

from .base import ReferenceCalculator

# pyscf's DIIS (lib/diis.py) catches numpy.linalg.linalg.LinAlgError, a path numpy 2 removed;
# without it a singular DIIS step raises AttributeError instead of being handled.
if not hasattr(np.linalg, "linalg"):
    np.linalg.linalg = np.linalg

WAVEFUNCTION_METHODS = ("HF", "MP2", "CCSD", "CCSD(T)")
#: methods with analytic nuclear gradients through ``nuc_grad_method()`` in PySCF
ANALYTIC = ("HF", "MP2", "CCSD", "DFT")


BROKEN_SYMMETRY = ("lowest UHF from guess=mix (closed shells), the default guess (open shells) and, for "
                   "two atoms, atom-localised spins; each followed down its internal instabilities")


class PySCF(ReferenceCalculator):
    """A live PySCF calculation on a finite (non-periodic) structure.

    ``method``: "HF", "MP2", "CCSD", "CCSD(T)", or a DFT functional PySCF knows
    ("PBE", "B3LYP", ...). Restricted for closed shells (``spin`` = 2S = 0), unrestricted
    otherwise; ``spin`` defaults to ``atoms.info["spin"]``, else 0 or 1 from the electron
    count. ``broken_symmetry=True`` searches for the lowest SCF solution where the simple one
    is unstable, as at stretched bonds: closed shells may fall to an unrestricted
    (spin-symmetry-broken) solution, open shells to one with spins localised on the atoms.
    Candidates: the mixed HOMO/LUMO guess (closed shells), the default guess (open shells)
    and, for two atoms, atoms with their ground-state spins (the second atom's spin set so
    the total is ``spin``, flipped if needed), each followed down its internal instabilities;
    each frame's info says which reference was used (``reference_scf``). ``frozen_core``
    freezes core orbitals in correlated methods (standard with valence basis sets such as
    cc-pVTZ). Forces are analytic for HF, DFT, MP2 and CCSD, and central finite differences
    of the energy (step ``fd_step`` Å) for CCSD(T), each displaced calculation continued
    from the central one (SCF density and CCSD amplitudes) so that it stays on the same
    solution; each frame's info says which (``reference_forces``). For two-atom structures
    the finite difference is taken along the bond only (two energies; the force is along
    the bond by symmetry).
    """

    code = "PySCF"

    def __init__(self, method: str = "CCSD(T)", basis: str = "cc-pVTZ", charge: int = 0,
                 spin: int | None = None, frozen_core: bool = True, broken_symmetry: bool = False,
                 fd_step: float = 1e-3, conv_tol: float = 1e-10, max_memory_mb: int = 4000, **kwargs):
        super().__init__(**kwargs)
        self.broken_symmetry = broken_symmetry
        self.method = method.upper() if method.upper() in WAVEFUNCTION_METHODS else method
        self.basis = basis
        self.charge = charge
        self.spin = spin
        self.frozen_core = frozen_core
        self.fd_step = fd_step
        self.conv_tol = conv_tol
        self.max_memory_mb = max_memory_mb

    @property
    def is_dft(self) -> bool:
        return self.method not in WAVEFUNCTION_METHODS

    @property
    def forces_method(self) -> str:
        kind = "DFT" if self.is_dft else self.method
        return "analytic" if kind in ANALYTIC else (f"central finite differences (h = {self.fd_step} Å, "
                                                     "displaced SCF and CCSD continued from the central one)")

    def settings(self) -> dict:
        import pyscf

        return {"code": "PySCF", "version": pyscf.__version__, "method": self.method,
                "basis": self.basis, "charge": self.charge, "spin": self.spin,
                "frozen_core": self.frozen_core and not self.is_dft and self.method != "HF",
                "conv_tol": self.conv_tol, "forces": self.forces_method,
                **({"broken_symmetry": BROKEN_SYMMETRY} if self.broken_symmetry else {})}

    def level_of_theory(self) -> str:
        s = self.settings()
        fc = ", frozen core" if s["frozen_core"] else ""
        return f"PySCF {s['version']} {self.method}/{self.basis}{fc}; forces {s['forces']}"

    # -- computation ------------------------------------------------------------------
    def _spin(self, atoms) -> int:
        if self.spin is not None:
            return int(self.spin)
        if "spin" in atoms.info:
            return int(atoms.info["spin"])
        return int((atoms.numbers.sum() - self.charge) % 2)

    def _molecule(self, atoms, positions=None):
        from pyscf import gto

        if atoms.pbc.any():
            raise ValueError("PySCF reference is for molecules and clusters; this structure is "
                             "periodic (use mlipviz.reference.GPAW)")
        positions = atoms.positions if positions is None else positions
        return gto.M(atom=[(int(z), tuple(p)) for z, p in zip(atoms.numbers, positions)],
                     basis=self.basis, charge=self.charge, spin=self._spin(atoms), unit="Angstrom",
                     verbose=0, max_memory=self.max_memory_mb)

    def _solve(self, mol, start=None):
        """Converged method object and energy (Hartree) for ``mol``; also spin contamination.

        ``start``: the converged (SCF, CCSD) of a nearby geometry to continue from (same
        kind; its density and amplitudes as the guesses), so that finite differences stay on
        one solution branch.
        """
        from pyscf import mp

        if start is not None:
            dm = start[0].make_rdm1()
            mf = self._scf(mol, restricted=dm.ndim == 2, dm0=dm)
        else:
            mf = self._lowest_scf(mol)
        diagnostics = {"scf": type(mf).__name__}
        if self.is_dft or self.method == "HF":
            return mf, mf, float(mf.e_tot), diagnostics
        frozen = self._frozen(mol) if self.frozen_core else None
        if self.method == "MP2":
            post = mp.MP2(mf, frozen=frozen).run()
            return mf, post, float(post.e_tot), diagnostics
        post = _converged_ccsd(mf, frozen, self.conv_tol * 10,
                               None if start is None else (start[1].t1, start[1].t2))
        energy = float(post.e_tot)
        diagnostics["t1_diagnostic"] = float(_t1_diagnostic(post))
        if self.method == "CCSD(T)":
            energy += float(post.ccsd_t())
        return mf, post, energy, diagnostics

    def _lowest_scf(self, mol):
        """The simple SCF (restricted for closed shells), or with ``broken_symmetry`` the
        lowest of it and the unrestricted candidates."""
        mf = self._scf(mol, restricted=mol.spin == 0)
        if not self.broken_symmetry:
            return mf
        candidates = [mf, self._scf(mol, restricted=False, guess=mf) if mol.spin == 0
                      else self._scf(mol, restricted=False, dm0=mf.make_rdm1(), follow=True)]
        if mol.natm == 2:
            guess = _atoms_guess(mol)
            if guess is not None:
                try:
                    candidates.append(self._scf(mol, restricted=False, dm0=guess, follow=True))
                except RuntimeError:
                    pass
        lowest = min(candidates, key=lambda c: c.e_tot)
        return lowest if lowest.e_tot < mf.e_tot - 1e-8 else mf

    def _scf(self, mol, restricted: bool, guess=None, dm0=None, follow: bool = False):
        """A converged SCF. An unrestricted one started from a restricted ``guess`` begins
        from its HOMO and LUMO mixed in the alpha spin channel only (Gaussian's guess=mix),
        then follows internal instabilities downhill: how spin symmetry breaks at
        stretched bonds."""
        from pyscf import dft, scf

        if self.is_dft:
            mf = (dft.RKS if restricted else dft.UKS)(mol)
            mf.xc = self.method
        else:
            mf = (scf.RHF if restricted else scf.UHF)(mol)
        mf.conv_tol = self.conv_tol
        mf.max_cycle = 300
        mf.kernel(dm0=dm0 if dm0 is not None else None if guess is None else _mixed_guess(guess))
        if not mf.converged:  # level shift and damping, from where it got to
            mf.level_shift, mf.damp = 0.5, 0.5
            mf.kernel(dm0=mf.make_rdm1())
            mf.level_shift, mf.damp = 0, 0
            mf.kernel(dm0=mf.make_rdm1())
        if not restricted and (guess is not None or follow):
            for _ in range(5):
                mo, _, stable, _ = mf.stability(return_status=True)
                if stable:
                    break
                mf.kernel(dm0=mf.make_rdm1(mo, mf.mo_occ))
        if not mf.converged:  # second-order (Newton) SCF from where it got to
            mf = mf.newton()
            mf.kernel(dm0=mf.make_rdm1())
        if not mf.converged:
            raise RuntimeError(f"SCF did not converge ({type(mf).__name__})")
        return mf

    @staticmethod
    def _frozen(mol) -> int:
        from pyscf.data import elements

        return int(elements.chemcore(mol))

    def _energy(self, atoms, positions, start=None) -> float:
        return self._solve(self._molecule(atoms, positions), start)[2]

    def _compute(self, atoms) -> dict:
        mol = self._molecule(atoms)
        mf, solved, energy_ha, diagnostics = self._solve(mol)
        meta = {"forces": self.forces_method, "spin": mol.spin, **diagnostics}
        if hasattr(mf, "spin_square") and mol.spin:
            meta["s2"] = float(mf.spin_square()[0])
        if self.forces_method == "analytic":
            gradient = solved.nuc_grad_method().kernel()  # Hartree/Bohr
            forces = -np.asarray(gradient) * Hartree / Bohr
        else:
            forces = self._finite_difference_forces(atoms, (mf, solved))
        return {"energy": energy_ha * Hartree, "forces": forces, "meta": meta}

    def _finite_difference_forces(self, atoms, start) -> np.ndarray:
        """Central differences, each displaced calculation continued from ``start`` (the SCF
        and CCSD at ``atoms``)."""
        h, pos = self.fd_step, atoms.positions
        if len(atoms) == 2:
            bond = pos[1] - pos[0]
            unit = bond / np.linalg.norm(bond)
            shift = np.array([-unit, unit]) * h / 2  # bond length +- h
            dE_dr = (self._energy(atoms, pos + shift, start) - self._energy(atoms, pos - shift, start)) \
                / (2 * h) * Hartree
            return np.array([dE_dr * unit, -dE_dr * unit])
        forces = np.zeros_like(pos)
        for a in range(len(atoms)):
            for k in range(3):
                step = np.zeros_like(pos)
                step[a, k] = h
                forces[a, k] = -(self._energy(atoms, pos + step, start)
                                 - self._energy(atoms, pos - step, start)) / (2 * h)
        return forces * Hartree


def _atoms_guess(mol) -> np.ndarray | None:
    """Alpha and beta densities of a two-atom molecule from each atom's high-spin UHF, the
    second atom with as many alpha electrons moved to beta (same orbitals) as make up
    ``mol.spin``, its spins flipped when its share is negative: the start for a dissociating
    bond (N2 singlet: two antiparallel quartets; O2 triplet: an Ms = 1 and an Ms = 0 atom).
    None when no such split exists."""
    from pyscf import gto

    symbols = [mol.atom_symbol(a) for a in range(2)]
    high = [_HIGH_SPIN.get(x, gto.charge(x) % 2) for x in symbols]
    second = mol.spin - high[0]
    if abs(second) > high[1] or (high[1] - abs(second)) % 2:
        return None
    blocks = [_atom_density(mol, symbols[0], high[0], 0),
              _atom_density(mol, symbols[1], high[1], (high[1] - abs(second)) // 2)]
    n = mol.nao_nr()
    slices = [mol.aoslice_by_atom()[a][2:4] for a in range(2)]
    dm = np.zeros((2, n, n))
    for (a0, a1), block, flip in zip(slices, blocks, (False, second < 0)):
        dm[0, a0:a1, a0:a1] = block[1] if flip else block[0]
        dm[1, a0:a1, a0:a1] = block[0] if flip else block[1]
    return dm


def _atom_density(mol, symbol: str, spin: int, moved: int) -> np.ndarray:
    """Alpha and beta densities of one atom (``mol``'s basis) from its UHF at 2S = ``spin``,
    with the ``moved`` highest alpha electrons put into the beta orbitals most like theirs."""
    from pyscf import gto, scf

    atom = gto.M(atom=[[symbol, (0.0, 0.0, 0.0)]], basis={symbol: mol._basis[symbol]}, spin=spin, verbose=0)
    mf = scf.UHF(atom).run(conv_tol=1e-8, max_cycle=200)
    occ = [o.copy() for o in mf.mo_occ]
    overlap = atom.intor("int1e_ovlp")
    for _ in range(moved):
        top = int(np.flatnonzero(occ[0])[-1])
        likeness = np.abs(mf.mo_coeff[1].T @ overlap @ mf.mo_coeff[0][:, top])
        likeness[occ[1] > 0] = -1
        occ[0][top], occ[1][int(likeness.argmax())] = 0, 1
    return mf.make_rdm1(mf.mo_coeff, np.array(occ))


def _converged_ccsd(mf, frozen, conv_tol: float, amplitudes=None):
    """CCSD amplitudes converged from ``amplitudes`` (else MP2), retrying from scratch with a
    larger DIIS space and level shift, then without DIIS, when they do not converge."""
    from pyscf import cc

    post = cc.CCSD(mf, frozen=frozen)
    post.conv_tol, post.max_cycle = conv_tol, 200
    attempts = ({}, {"diis_space": 12, "level_shift": 0.2}, {"diis": False, "level_shift": 0.3})
    for i, settings in enumerate(attempts):
        for key, value in settings.items():
            setattr(post, key, value)
        try:
            if i == 0 and amplitudes is not None:
                post.kernel(t1=amplitudes[0], t2=amplitudes[1])
            else:
                post.kernel()
        except np.linalg.LinAlgError:  # DIIS extrapolation singular (e.g. two electrons: exact at once)
            post.converged = False
        if post.converged:
            return post
    raise RuntimeError("CCSD amplitudes did not converge")


#: 2S of the atoms' ground states (Hund's rule), for the atoms guess
_HIGH_SPIN = {"H": 1, "Li": 1, "B": 1, "C": 2, "N": 3, "O": 2, "F": 1, "Na": 1, "Al": 1, "Si": 2, "P": 3,
              "S": 2, "Cl": 1}


def _mixed_guess(restricted) -> np.ndarray:
    """Alpha and beta densities from restricted orbitals with HOMO and LUMO rotated by 45
    degrees in the alpha channel and by -45 degrees in the beta channel."""
    mo, occ = restricted.mo_coeff, restricted.mo_occ
    homo, lumo = int(np.flatnonzero(occ > 0)[-1]), int(np.flatnonzero(occ == 0)[0])
    densities = []
    for sign in (1, -1):
        c = mo.copy()
        c[:, homo] = (mo[:, homo] + sign * mo[:, lumo]) / np.sqrt(2)
        c[:, lumo] = (mo[:, lumo] - sign * mo[:, homo]) / np.sqrt(2)
        occupied = c[:, : homo + 1]
        densities.append(occupied @ occupied.T)
    return np.array(densities)


def _t1_diagnostic(ccsd) -> float:
    """T1 diagnostic (Lee & Taylor 1989); > 0.02 flags multireference character."""
    t1 = ccsd.t1
    if isinstance(t1, tuple):  # unrestricted: alpha and beta amplitudes
        n_corr = sum(t.shape[0] for t in t1)
        return float(np.sqrt(sum((t ** 2).sum() for t in t1) / n_corr))
    return float(np.sqrt((t1 ** 2).sum() / (2 * t1.shape[0])))
