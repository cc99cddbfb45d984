"""PySCF reference for molecules and clusters: HF, any DFT functional, MP2, CCSD, CCSD(T)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms

from .. import checks
from ..errors import ArgumentTypeError, InputError, UnknownNameError
from ..extras import needs
from ..frames import Frames
from ..io import read
from ..units import BOHR, HARTREE
from .base import ReferenceCalculator, _compute_in_worker

if TYPE_CHECKING:
    from .._types import StructuresLike

WAVEFUNCTION_METHODS = ("HF", "MP2", "CCSD", "CCSD(T)")
#: methods with analytic nuclear gradients through ``nuc_grad_method()`` in PySCF. PySCF
#: also has (U)CCSD(T) gradients (``pyscf.grad.uccsd_t``), but on stretched N2 (cc-pVTZ,
#: broken-symmetry UHF, frozen core, 1.8125 Å) PySCF 2.14's gave 4.44 eV/Å where central
#: differences and the slope of independent energies both give 5.95 eV/Å, and cost more:
#: CCSD(T) forces are finite differences.
ANALYTIC = ("HF", "MP2", "CCSD", "DFT")


BROKEN_SYMMETRY = ("lowest UHF from guess=mix (closed shells), the default guess (open shells) and, for "
                   "two atoms, atom-localised spins; each followed down its internal instabilities")


class PySCF(ReferenceCalculator):
    """A live PySCF calculation on a finite (non-periodic) structure.

    Restricted for closed shells (``spin`` = 2S = 0), unrestricted otherwise. Forces are
    analytic for HF, DFT, MP2 and CCSD, and central finite differences of the energy (step
    ``fd_step`` Å) for CCSD(T), each displaced calculation continued from the central one
    (SCF density and CCSD amplitudes) so that it stays on the same solution; each frame's
    info says which (``reference_forces``). For two-atom structures the finite difference
    is taken along the bond only (two energies; the force is along the bond by symmetry).

    Parameters
    ----------
    method : str
        "HF", "MP2", "CCSD", "CCSD(T)", or a DFT functional PySCF knows ("PBE", "B3LYP", ...).
    basis : str or dict
        A basis-set name PySCF knows, or a basis per element.
    charge : int
        The total charge.
    spin : int, optional
        2S; defaults to ``atoms.info["spin"]``, else 0 or 1 from the electron count.
    frozen_core : bool
        Freezes core orbitals in correlated methods (standard with valence basis sets such
        as cc-pVTZ).
    broken_symmetry : bool
        ``broken_symmetry=True`` searches for the lowest SCF solution where the simple one
        is unstable, as at stretched bonds: closed shells may fall to an unrestricted
        (spin-symmetry-broken) solution, open shells to one with spins localised on the
        atoms. Candidates: the mixed HOMO/LUMO guess (closed shells), the default guess
        (open shells) and, for two atoms, atoms with their ground-state spins (the second
        atom's spin set so the total is ``spin``, flipped if needed), each followed down its
        internal instabilities; each frame's info says which reference was used
        (``reference_scf``).
    fd_step : float
        The finite-difference step (Å, at most 0.1) of CCSD(T) forces.
    conv_tol : float
        SCF (and CCSD energy) convergence (Hartree).
    max_memory_mb : int
        PySCF's memory limit (MB).
    **kwargs
        ``cache_dir`` and ``n_jobs`` (see `ReferenceCalculator`), and ASE ``Calculator`` arguments.

    Raises
    ------
    UnknownNameError
        A method that is neither a wave-function method nor a functional libxc knows, or a
        basis set PySCF does not know.
    ArgumentTypeError, InputError
        A setting of the wrong type or out of its range.
    ModuleNotFoundError
        PySCF is not installed (``pip install 'mlipviz[dft]'``).
    """

    code: str = "PySCF"

    def __init__(self, method: str = "CCSD(T)", basis: str | dict[str, Any] = "cc-pVTZ", charge: int = 0,
                 spin: int | None = None, frozen_core: bool = True, broken_symmetry: bool = False,
                 fd_step: float = 1e-3, conv_tol: float = 1e-10, max_memory_mb: int = 4000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # every setting checked here, not when the first SCF starts (minutes later, in a worker)
        self.broken_symmetry = checks.flag("broken_symmetry", broken_symmetry)
        self.method = _method(method)
        self.basis = _basis(basis)
        self.charge = checks.whole_number("charge", charge)
        self.spin = checks.whole_number("spin", spin, minimum=0, none=True)
        self.frozen_core = checks.flag("frozen_core", frozen_core)
        self.fd_step = checks.number("fd_step", fd_step, minimum=0, above=True, maximum=0.1)
        self.conv_tol = checks.number("conv_tol", conv_tol, minimum=0, above=True)
        self.max_memory_mb = checks.whole_number("max_memory_mb", max_memory_mb, minimum=1)

    @property
    def is_dft(self) -> bool:
        """Whether the method is a DFT functional (not HF, MP2, CCSD or CCSD(T))."""
        return self.method not in WAVEFUNCTION_METHODS

    @property
    def forces_method(self) -> str:
        """How forces are computed, in words: analytic or central finite differences."""
        kind = "DFT" if self.is_dft else self.method
        return "analytic" if kind in ANALYTIC else (f"central finite differences (h = {self.fd_step} Å, "
                                                     "displaced SCF and CCSD continued from the central one)")

    def settings(self) -> dict[str, Any]:
        """Every setting that changes the numbers, PySCF's version included."""
        with needs("dft", "the PySCF reference"):
            import pyscf

        return {"code": "PySCF", "version": pyscf.__version__, "method": self.method,
                "basis": self.basis, "charge": self.charge, "spin": self.spin,
                "frozen_core": self.frozen_core and not self.is_dft and self.method != "HF",
                "conv_tol": self.conv_tol, "forces": self.forces_method,
                **({"broken_symmetry": BROKEN_SYMMETRY} if self.broken_symmetry else {})}

    def level_of_theory(self) -> str:
        """PySCF's version, method/basis, frozen core and how forces are computed, in one line."""
        s = self.settings()
        fc = ", frozen core" if s["frozen_core"] else ""
        return f"PySCF {s['version']} {self.method}/{self.basis}{fc}; forces {s['forces']}"

    # -- computation ------------------------------------------------------------------
    def _spin(self, atoms: Atoms) -> int:
        if self.spin is not None:
            return int(self.spin)
        if "spin" in atoms.info:
            return int(atoms.info["spin"])
        return int((atoms.numbers.sum() - self.charge) % 2)

    def _molecule(self, atoms: Atoms, positions: np.ndarray | None = None) -> Any:
        from pyscf import gto

        if atoms.pbc.any():
            raise InputError("PySCF reference is for molecules and clusters; this structure is "
                             "periodic (use mlipviz.reference.GPAW)")
        positions = atoms.positions if positions is None else positions
        return gto.M(atom=[(int(z), tuple(p)) for z, p in zip(atoms.numbers, positions)],
                     basis=self.basis, charge=self.charge, spin=self._spin(atoms), unit="Angstrom",
                     verbose=0, max_memory=self.max_memory_mb)

    def _solve(self, mol: Any, start: tuple[Any, Any] | None = None,
               neighbour_density: np.ndarray | None = None) -> tuple[Any, Any, float, dict[str, Any]]:
        """Converged method object and energy (Hartree) for ``mol``; also spin contamination.

        ``start``: the converged (SCF, CCSD) of a nearby geometry to continue from (same
        kind; its density and amplitudes as the guesses), so that finite differences stay on
        one solution branch. ``neighbour_density``: the SCF density of the previous frame
        of a scan, continued by `_continued_scf`.
        """
        from pyscf import mp

        _patch_numpy_for_pyscf()
        if start is not None:
            dm = start[0].make_rdm1()
            mf = self._scf(mol, restricted=dm.ndim == 2, dm0=dm)
            _align_orbitals(mf, start[0])
        elif neighbour_density is not None:
            mf = self._continued_scf(mol, neighbour_density)
        else:
            mf = self._lowest_scf(mol)
        diagnostics: dict[str, Any] = {"scf": type(mf).__name__}
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

    def _lowest_scf(self, mol: Any) -> Any:
        """The simple SCF (restricted for closed shells), or with ``broken_symmetry`` the
        lowest of it and the unrestricted candidates."""
        mf = self._scf(mol, restricted=mol.spin == 0)
        if not self.broken_symmetry:
            return mf
        candidates = [mf, self._scf(mol, restricted=False, guess=mf, follow=True) if mol.spin == 0
                      else self._scf(mol, restricted=False, dm0=mf.make_rdm1(), follow=True)]
        candidates += self._atoms_candidate(mol, follow=True)
        return _lowest(candidates, mf)

    def _continued_scf(self, mol: Any, density: np.ndarray) -> Any:
        """The SCF continued from a scan neighbour's ``density`` (restricted if it is).

        With ``broken_symmetry``, the lowest of it and: from a restricted neighbour, the
        unrestricted solution from the mixed guess; for DFT (whose stability analysis costs
        minutes in large basis sets, so it is not followed), the atom-localised spins of a
        dimer, until the scan has reached them. An unrestricted Hartree-Fock continuation
        is followed down its instabilities but offered no other unrestricted candidate, so
        the reference of a correlated method stays on one state along the scan (unless its
        SCF only converges with the second-order solver, which may land elsewhere: watch
        ``reference_scf``, ⟨S²⟩ and T1 along the curve); a DFT energy is itself the lowest
        solution's, so its curve stays continuous.
        """
        restricted = density.ndim == 2
        follow = self.broken_symmetry and not restricted and not self.is_dft
        mf = self._scf(mol, restricted=restricted, dm0=density, follow=follow)
        if not restricted and mol.spin == 0 and _spin_density(mf) < 1e-5:  # symmetry restored
            restricted, mf = True, self._scf(mol, restricted=True, dm0=mf.make_rdm1().sum(axis=0))
        if not self.broken_symmetry:
            return mf
        candidates = [mf]
        if restricted:
            candidates.append(self._scf(mol, restricted=False, guess=mf, follow=not self.is_dft))
        if self.is_dft and not (mol.natm == 2 and _spins_localised(candidates[-1])):
            candidates += self._atoms_candidate(mol, follow=False)
        return _lowest(candidates, mf)

    def _atoms_candidate(self, mol: Any, follow: bool) -> list[Any]:
        """The unrestricted SCF from atom-localised spins, for two atoms (else nothing)."""
        guess = _atoms_guess(mol) if mol.natm == 2 else None
        if guess is None:
            return []
        try:
            return [self._scf(mol, restricted=False, dm0=guess, follow=follow)]
        except RuntimeError:
            return []

    def _scf(self, mol: Any, restricted: bool, guess: Any = None, dm0: np.ndarray | None = None,
             follow: bool = False) -> Any:
        """A converged SCF. An unrestricted one started from a restricted ``guess`` begins
        from its HOMO and LUMO mixed in the alpha spin channel only (Gaussian's guess=mix);
        with ``follow`` an unrestricted one then follows internal instabilities downhill:
        how spin symmetry breaks at stretched bonds."""
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
        if not restricted and follow:
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
    def _frozen(mol: Any) -> int:
        from pyscf.data import elements

        return int(elements.chemcore(mol))

    def _energy(self, atoms: Atoms, positions: np.ndarray, start: tuple[Any, Any] | None = None) -> float:
        return self._solve(self._molecule(atoms, positions), start)[2]

    def _compute(self, atoms: Atoms, neighbour_density: np.ndarray | None = None,
                 keep_density: bool = False) -> dict[str, Any]:
        mol = self._molecule(atoms)
        mf, solved, energy_ha, diagnostics = self._solve(mol, neighbour_density=neighbour_density)
        meta = {"forces": self.forces_method, "spin": mol.spin, **diagnostics}
        if hasattr(mf, "spin_square") and mol.spin:
            meta["s2"] = float(mf.spin_square()[0])
        if self.forces_method == "analytic":
            gradient = solved.nuc_grad_method().kernel()  # Hartree/Bohr
            forces = -np.asarray(gradient) * HARTREE / BOHR
        else:
            forces = self._finite_difference_forces(atoms, (mf, solved))
        out = {"energy": energy_ha * HARTREE, "forces": forces, "meta": meta}
        if keep_density:
            out["scf_density"] = np.asarray(mf.make_rdm1())
        return out

    # -- scans --------------------------------------------------------------------------
    def scan(self, frames: StructuresLike, start: int | Callable[[Frames], int] | None = None,
             group: str | None = None, n_jobs: int | None = None, progress: bool = True,
             on_error: str = "raise") -> Frames:
        """Label a scan (frames in order along a path, e.g. a bond-length curve) so that
        the curve follows one electronic state instead of jumping between SCF solutions.

        The ``start`` frame (index within the scan, a function of the scan's `Frames`
        returning one, or None: the middle frame) gets the usual SCF; the scan then runs
        outward from it in both directions, each frame's SCF continued from its
        neighbour's converged density (see `_continued_scf` for what ``broken_symmetry``
        adds; for DFT it also runs back inward from wherever the energy drops by more than
        the forces explain, keeping each frame's lower energy). ``group``: an info key; the
        frames sharing a value form one scan each, in their order, run in parallel in
        ``n_jobs`` worker processes (one thread each).
        Each frame is cached at once, keyed also by the path from the start; its info
        records ``reference_scan_start`` and ``reference_continued_from`` (indices into
        ``frames``). ``on_error`` as in `evaluate`; a failed frame is skipped and the scan
        continues from the last converged one.
        """
        frames = frames if isinstance(frames, Frames) else read(frames)
        scans = _scan_groups(frames, group)
        jobs = [(_scan_in_worker, (self, frames, indices, _scan_start(frames[indices], start, indices)))
                for indices in scans]
        results = self._run_jobs(frames, jobs, n_jobs, progress, on_error, f"{self.code} scan")
        return self._labelled(frames, [results[i] for i in range(len(frames))])

    def _finite_difference_forces(self, atoms: Atoms, start: tuple[Any, Any]) -> np.ndarray:
        """Central differences, each displaced calculation continued from ``start`` (the SCF
        and CCSD at ``atoms``)."""
        h, pos = self.fd_step, atoms.positions
        if len(atoms) == 2:
            bond = pos[1] - pos[0]
            unit = bond / np.linalg.norm(bond)
            shift = np.array([-unit, unit]) * h / 2  # bond length +- h
            dE_dr = (self._energy(atoms, pos + shift, start) - self._energy(atoms, pos - shift, start)) \
                / (2 * h) * HARTREE
            return np.array([dE_dr * unit, -dE_dr * unit])
        forces = np.zeros_like(pos)
        for a in range(len(atoms)):
            for k in range(3):
                step = np.zeros_like(pos)
                step[a, k] = h
                forces[a, k] = -(self._energy(atoms, pos + step, start)
                                 - self._energy(atoms, pos - step, start)) / (2 * h)
        return forces * HARTREE


def _patch_numpy_for_pyscf() -> None:
    """Give numpy back the module path that PySCF's DIIS names; called right before PySCF runs
    (an SCF or CCSD), so that importing mlipviz patches nothing."""
    # pyscf's DIIS (lib/diis.py) catches numpy.linalg.linalg.LinAlgError, a path numpy 2 removed;
    # without it a singular DIIS step raises AttributeError instead of being handled.
    if not hasattr(np.linalg, "linalg"):
        np.linalg.linalg = np.linalg  # type: ignore[attr-defined, unused-ignore]


def _lowest(candidates: list[Any], default: Any) -> Any:
    """The lowest-energy SCF of ``candidates``, ``default`` unless another is clearly lower."""
    lowest = min(candidates, key=lambda c: c.e_tot)
    return lowest if lowest.e_tot < default.e_tot - 1e-8 else default


def _spins_localised(mf: Any, threshold: float = 0.1) -> bool:
    """Whether an unrestricted SCF of two atoms has different Mulliken spins on them (its
    spins localised, as in the atoms guess) rather than the symmetric sharing."""
    if np.asarray(mf.mo_coeff).ndim != 3:
        return False
    spins = mf.mulliken_spin_pop(verbose=0)[1]
    return abs(spins[0] - spins[1]) > threshold


def _spin_density(mf: Any) -> float:
    """Largest element of an unrestricted SCF's alpha minus beta density."""
    alpha, beta = mf.make_rdm1()
    return float(np.abs(alpha - beta).max())


def _scan_groups(frames: Frames, group: str | None) -> list[list[int]]:
    """Frame indices of each scan: all frames, or those sharing ``info[group]``."""
    if group is None:
        return [list(range(len(frames)))]
    scans: dict[Any, list[int]] = {}
    for i, info in enumerate(frames.info):
        if group not in info:
            raise InputError(f"frame {i}{' of ' + str(frames.source) if frames.source else ''} has "
                             f"no info {group!r} to group the scans by")
        scans.setdefault(info[group], []).append(i)
    return list(scans.values())


def _scan_start(scan: Frames, start: int | Callable[[Frames], int] | None, indices: list[int]) -> int:
    position = len(scan) // 2 if start is None else start(scan) if callable(start) else start
    if not 0 <= int(position) < len(scan):
        raise InputError(f"scan start {position} is outside the scan of {len(scan)} frames "
                         f"(frames {indices[0]}..{indices[-1]})")
    return int(position)


def _scan_in_worker(calc: PySCF, frames: Frames, indices: list[int], start: int) -> dict[int, Any]:
    """Run one scan outward from ``indices[start]``: a results dict (or the exception) per
    frame index, each frame cached at once. For DFT with ``broken_symmetry``, where the
    energy drops by more than the forces account for (the SCF found a lower solution), the
    scan also runs back inward from there and keeps each frame's lower energy (`_sweep_back`)."""
    out: dict[int, Any] = {}
    for branch in (indices[start:], indices[start::-1]):
        density: np.ndarray | None = None
        path: list[int] = []
        done: list[int] = []
        for i in branch:
            if i in out:  # the start frame, shared by both branches
                if not isinstance(out[i], Exception):
                    density, path, done = out[i]["scf_density"], [i], [i]
                continue
            path.append(i)
            result = _scan_frame(calc, frames, i, path, indices[start], density)
            out[i] = result
            if isinstance(result, Exception):
                path.pop()
                continue
            if calc.is_dft and calc.broken_symmetry and done and _dropped(frames, out, done[-1], i):
                _sweep_back(calc, frames, out, done, path, indices[start])
            done.append(i)
            density = result["scf_density"]
    return out


def _scan_frame(calc: PySCF, frames: Frames, i: int, path: list[int], start: int,
                density: np.ndarray | None) -> dict[str, Any] | Exception:
    """Frame ``i`` at the end of ``path``, continued from ``density``: cached result, a new
    one (cached at once), or the exception it raised."""
    atoms, context = frames.to_atoms(i), _path_digest(frames, path)
    cached = calc._load(atoms, context)
    if cached is not None:
        return cached
    try:
        return _compute_in_worker(calc, atoms, context, neighbour_density=density, keep_density=True,
                                  meta={"scan_start": start, "continued_from": path[-2] if len(path) > 1 else None})
    except Exception as exc:  # noqa: BLE001 - reported per frame by `_run_jobs`
        return exc


def _dropped(frames: Frames, out: dict[int, Any], a: int, b: int, slack_ev: float = 0.02) -> bool:
    """Whether the energy from frame ``a`` to ``b`` falls by more than the work of their
    mean forces along the step explains (trapezoid rule, allowed ``slack_ev`` plus the
    force change times the displacement): ``b`` is on a lower SCF solution."""
    step = frames.positions[frames.atoms_of(b)] - frames.positions[frames.atoms_of(a)]
    fa, fb = out[a]["forces"], out[b]["forces"]
    from_forces = -float(np.sum((fa + fb) / 2 * step))
    allowed = slack_ev + float(np.sum(np.linalg.norm(fb - fa, axis=1) * np.linalg.norm(step, axis=1)))
    return out[b]["energy"] - out[a]["energy"] < from_forces - allowed


def _sweep_back(calc: PySCF, frames: Frames, out: dict[int, Any], done: list[int], path: list[int],
                start: int) -> None:
    """Continue the solution of ``path[-1]`` back over the frames ``done`` (nearest first),
    replacing each result while the continued energy is lower; the start frame is kept."""
    back, density = list(path), out[path[-1]]["scf_density"]
    for i in reversed(done):
        if i == start:
            return
        back.append(i)
        result = _scan_frame(calc, frames, i, back, start, density)
        if isinstance(result, Exception) or result["energy"] >= out[i]["energy"] - 1e-6:
            return
        out[i], density = result, result["scf_density"]


def _path_digest(frames: Frames, path: list[int]) -> str:
    """What a scan frame's result depends on: the positions along the path from the start."""
    digest = hashlib.sha1()
    for i in path:
        digest.update(frames.positions[frames.atoms_of(i)].tobytes())
    return "scan:" + digest.hexdigest()


def _atoms_guess(mol: Any) -> np.ndarray | None:
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


def _atom_density(mol: Any, symbol: str, spin: int, moved: int) -> np.ndarray:
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


def _align_orbitals(mf: Any, reference: Any, degenerate: float = 1e-5) -> None:
    """Give ``mf``'s orbitals the signs, and within (near-)degenerate sets the rotation,
    that best match ``reference``'s (the SCF at a slightly displaced geometry), so that the
    reference's CCSD amplitudes are a good start (otherwise arbitrary signs and rotations
    of degenerate pi orbitals make them no better than MP2's). Energies, densities and the
    canonical form are unchanged."""
    overlap = mf.get_ovlp()
    unrestricted = np.asarray(mf.mo_coeff).ndim == 3
    channels = zip(mf.mo_coeff, reference.mo_coeff, mf.mo_energy) if unrestricted \
        else [(mf.mo_coeff, reference.mo_coeff, mf.mo_energy)]
    aligned = []
    for coeff, target, energies in channels:
        coeff = np.array(coeff)
        edges = np.flatnonzero(np.diff(energies) > degenerate) + 1
        for block in np.split(np.arange(len(energies)), edges):
            u, _, vt = np.linalg.svd(target[:, block].T @ overlap @ coeff[:, block])
            coeff[:, block] = coeff[:, block] @ (u @ vt).T
        aligned.append(coeff)
    mf.mo_coeff = np.array(aligned) if unrestricted else aligned[0]


def _converged_ccsd(mf: Any, frozen: int | None, conv_tol: float,
                    amplitudes: tuple[Any, Any] | None = None) -> Any:
    """CCSD amplitudes converged from ``amplitudes`` (else MP2), retrying from scratch with a
    larger DIIS space and level shift, then without DIIS, when they do not converge."""
    from pyscf import cc

    post = cc.CCSD(mf, frozen=frozen)
    # energy to conv_tol; amplitude residual to 1e-5 (PySCF's 1e-6 default can stall at
    # ~1.6e-6 with the energy converged to 1e-11 Ha, as for Si2 at 3.875 Å)
    post.conv_tol, post.conv_tol_normt, post.max_cycle = conv_tol, 1e-5, 200
    attempts: tuple[dict[str, Any], ...] = ({}, {"diis_space": 12, "level_shift": 0.2},
                                            {"diis": False, "level_shift": 0.3})
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


def _mixed_guess(restricted: Any) -> np.ndarray:
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


def _t1_diagnostic(ccsd: Any) -> float:
    """T1 diagnostic (Lee & Taylor 1989); > 0.02 flags multireference character."""
    t1 = ccsd.t1
    if isinstance(t1, tuple):  # unrestricted: alpha and beta amplitudes
        n_corr = sum(t.shape[0] for t in t1)
        return float(np.sqrt(sum((t ** 2).sum() for t in t1) / n_corr))
    return float(np.sqrt((t1 ** 2).sum() / (2 * t1.shape[0])))


def _method(method: Any) -> str:
    """``method`` as PySCF runs it: a wave-function method (any case) or a functional libxc knows."""
    if not isinstance(method, str):
        raise ArgumentTypeError(f"method must be a name such as 'CCSD(T)' or 'PBE0', got {checks.short(method)}")
    if method.upper() in WAVEFUNCTION_METHODS:
        return method.upper()
    with needs("dft", "the PySCF reference"):
        from pyscf.dft import libxc

    try:
        libxc.parse_xc(method)
    except Exception as exc:  # libxc raises KeyError or ValueError
        raise UnknownNameError(f"method={method!r} is neither a wave-function method "
                               f"({', '.join(WAVEFUNCTION_METHODS)}) nor a functional libxc knows: {exc}") from exc
    return method


def _basis(basis: Any) -> str | dict[str, Any]:
    """``basis`` if PySCF has it for at least one element (a name), or as given (a dict per element)."""
    if isinstance(basis, dict):
        return basis
    if not isinstance(basis, str):
        raise ArgumentTypeError(f"basis must be a basis-set name such as 'cc-pVTZ', got {checks.short(basis)}")
    with needs("dft", "the PySCF reference"):
        from pyscf import gto

    for element in ("H", "C", "O", "Si", "Cu"):  # a name PySCF lacks fails for all of them
        try:
            gto.basis.load(basis, element)
            return basis
        except Exception:  # noqa: BLE001 - BasisNotFoundError, or the element is not in that basis
            continue
    raise UnknownNameError(f"basis={basis!r} is not a basis set PySCF knows (e.g. 'sto-3g', 'def2-svp', 'cc-pVTZ')")
