"""PES scans: energy (and the force along the scan) of several models and a reference.

Every scan builds its geometries, evaluates them with `mlipviz.compare` (so models run
batched and live references run cached and in parallel) and returns a `Scan`. The
reference is a live calculator or model, or `Frames` that already carry labels for the
same geometries (matched by geometry). ``align`` shifts each curve: ``"none"``,
``"minimum"`` (each curve's own minimum), ``"last"`` (its last point, e.g. the
dissociation limit) or ``"atoms"`` (the sum of that method's isolated-atom energies).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import InputError
from ..frames import Frames
from .compare import Comparison, compare

ALIGNMENTS = ("none", "minimum", "last", "atoms")
REFERENCE = "reference"


@dataclass
class Scan:
    """Energies along one scan coordinate for every model and the reference.

    ``coordinate`` (one value per point, ``coordinate_label`` says what it is);
    ``tangents`` (per point, dR/dq flattened, or None): the force along the scan is
    F·dR/dq = -dE/dq; ``offsets``: what ``align`` subtracted from each curve (eV).
    """

    kind: str
    comparison: Comparison
    coordinate: np.ndarray
    coordinate_label: str
    alignment: str
    offsets: dict[str, float]
    tangents: list[np.ndarray] | None = None
    details: dict = field(default_factory=dict)

    @property
    def frames(self) -> Frames:
        return self.comparison.frames

    @property
    def methods(self) -> list[str]:
        return self.comparison.models + [REFERENCE]

    def _prediction(self, method: str):
        return self.comparison.reference if method == REFERENCE else self.comparison.predictions[method]

    def energy(self, method: str, aligned: bool = True) -> np.ndarray:
        raw = np.asarray(self._prediction(method).energy, dtype=np.float64)
        return raw - self.offsets[method] if aligned else raw

    def force_along(self, method: str) -> np.ndarray | None:
        """-dE/dq at each point from the forces, or for EOS scans from the stress (N times
        the pressure, as q is the volume per atom); None where neither applies."""
        if self.kind == "eos":
            stress = self._prediction(method).stress
            if stress is None:
                return None
            return -self.frames.n_atoms * np.trace(stress, axis1=1, axis2=2) / 3
        if self.tangents is None:
            return None
        forces = self._prediction(method).forces
        f = self.frames
        return np.array([float(np.dot(forces[f.atoms_of(i)].ravel(), t)) for i, t in enumerate(self.tangents)])

    @property
    def table(self) -> pd.DataFrame:
        """Tidy: one row per method and point (coordinate, energy, aligned energy, force along)."""
        rows = []
        for method in self.methods:
            along = self.force_along(method)
            rows.append(pd.DataFrame({
                "scan": self.kind, "method": method, "point": np.arange(len(self.coordinate)),
                self.coordinate_label: self.coordinate, "energy": self.energy(method, aligned=False),
                "energy_aligned": self.energy(method), "force_along": np.nan if along is None else along,
            }))
        table = pd.concat(rows, ignore_index=True)
        table["method"] = pd.Categorical(table["method"], categories=self.methods)
        return table

    def curvature(self, points: int = 5) -> pd.DataFrame:
        """Second derivative of each curve at the reference minimum, and its ratio to the reference.

        A quadratic is fitted to the ``points`` scan points nearest the reference's lowest
        point (which must be interior); ratio < 1 means a softer PES than the reference.
        """
        q = self.coordinate
        k = int(np.nanargmin(self.energy(REFERENCE)))
        if k in (0, len(q) - 1):
            raise InputError(f"the reference minimum of this {self.kind} scan is at its end point "
                             f"({self.coordinate_label} = {q[k]:g}); extend the scan to bracket it")
        near = np.argsort(np.abs(q - q[k]))[:max(3, points)]
        rows = {}
        for method in self.methods:
            c2, c1, c0 = np.polyfit(q[near] - q[k], self.energy(method)[near], 2)
            rows[method] = {"curvature": 2 * c2, "at": q[k]}
        table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("method")
        table["ratio_to_reference"] = table["curvature"] / table.loc[REFERENCE, "curvature"]
        return table

    def show(self, **kwargs):
        """Interactive curves linked to the 3D viewer (`mlipviz.widgets.ScanView`)."""
        from ..widgets.scan_view import ScanView

        return ScanView(self, **kwargs)


# -- evaluation ----------------------------------------------------------------------

def _evaluate(kind: str, geometries: list, coordinate, label: str, models, reference, align: str,
              tangents=None, device: str = "auto", progress: bool = False, details=None) -> Scan:
    from ..io import read

    if align not in ALIGNMENTS:
        raise ValueError(f"align must be one of {ALIGNMENTS}, got {align!r}")
    frames = read(geometries, min_distance=0.1)
    if isinstance(reference, Frames):
        frames = _labels_from(reference, frames)
        reference = None
    comparison = compare(models, frames, reference=reference, device=device, progress=progress)
    scan = Scan(kind, comparison, np.asarray(coordinate, dtype=np.float64), label, align, {},
                tangents, dict(details or {}))
    scan.offsets = _offsets(scan, models, reference, device)
    return scan


def _labels_from(labelled: Frames, frames: Frames, tol: float = 1e-4) -> Frames:
    """``frames`` with the labels of the frames in ``labelled`` that have the same geometry."""
    if not labelled.has_labels["forces"]:
        raise InputError("reference frames carry no forces", source=labelled.source)
    picked = []
    for i in range(len(frames)):
        rows = frames.atoms_of(i)
        match = None
        for j in range(len(labelled)):
            other = labelled.atoms_of(j)
            if (labelled.n_atoms[j] == frames.n_atoms[i]
                    and np.array_equal(labelled.numbers[other], frames.numbers[rows])
                    and np.allclose(labelled.positions[other], frames.positions[rows], atol=tol)
                    and np.allclose(labelled.cells[j], frames.cells[i], atol=tol)):
                match = j
                break
        if match is None:
            raise InputError("no reference frame has this scan point's geometry (same elements, "
                             f"positions within {tol} Å)", source=labelled.source, frame=i)
        picked.append(match)
    ref = labelled[picked]
    return frames.with_labels(energy=ref.energy, forces=ref.forces, stress=ref.stress, energies=None)


def _offsets(scan: Scan, models, reference, device: str) -> dict[str, float]:
    if scan.alignment == "none":
        return {m: 0.0 for m in scan.methods}
    if scan.alignment in ("minimum", "last"):
        pick = np.nanmin if scan.alignment == "minimum" else (lambda e: e[-1])
        return {m: float(pick(scan.energy(m, aligned=False))) for m in scan.methods}
    return _isolated_atom_offsets(scan, models, reference, device)


def _isolated_atom_offsets(scan: Scan, models, reference, device: str) -> dict[str, float]:
    """Sum of isolated-atom energies per method; atoms in their ground spin state (Hund's rule)."""
    from ase import Atoms
    from ase.data import ground_state_magnetic_moments

    if reference is None:
        raise InputError("align='atoms' needs a live reference to compute isolated atoms with")
    f = scan.frames
    elements = sorted(set(f.numbers.tolist()))
    atoms = []
    for z in elements:
        atom = Atoms(numbers=[z], positions=[[0.0, 0.0, 0.0]])
        atom.info["spin"] = int(round(ground_state_magnetic_moments[z]))
        atoms.append(atom)
    isolated = compare(models, atoms, reference=reference, device=device, progress=False)
    counts = np.bincount(f.numbers[f.atoms_of(0)], minlength=max(elements) + 1)
    per_method = {m: isolated.predictions[m].energy for m in isolated.models}
    per_method[REFERENCE] = isolated.reference.energy
    names = dict(zip(isolated.models, scan.comparison.models))
    return {names.get(m, m): float(np.dot(counts[elements], e)) for m, e in per_method.items()}


# -- scans -----------------------------------------------------------------------------

def diatomic(element_a: str, element_b: str, distances, models, reference=None, align: str = "last",
             spin: int | None = None, **kwargs) -> Scan:
    """Dimer curve A-B over ``distances`` (Å), bond along z; ``spin`` (2S) goes to each frame's
    info for references that read it. Force along = -dE/dr."""
    from ase import Atoms

    distances = np.asarray(distances, dtype=np.float64)
    geometries, tangents = [], []
    for r in distances:
        dimer = Atoms(f"{element_a}{element_b}", positions=[[0, 0, 0], [0, 0, float(r)]])
        dimer.info["distance"] = float(r)
        if spin is not None:
            dimer.info["spin"] = int(spin)
        geometries.append(dimer)
        tangents.append(np.array([0, 0, -0.5, 0, 0, 0.5]))
    return _evaluate("diatomic", geometries, distances, "distance", models, reference, align, tangents,
                     **kwargs)


def strain(atoms, strains=None, models=None, reference=None, align: str = "minimum", *, scale=None,
           **kwargs) -> Scan:
    """Isotropic scans of the cell, positions scaled with it; energy against volume per atom.
    Force along = -dE/dv from the stress.

    ``strains``: linear strains ε, as in ASE, pymatgen and matcalc (-0.02 is 2 % compression:
    every cell vector times 1 + ε). ``scale``: the factors 1 + ε themselves, instead of
    ``strains``. |ε| must stay below 0.5 (a scale factor such as 0.98 passed as a strain
    would stretch the cell to 1.98 times its size).
    """
    if models is None:
        raise InputError("models: give the models to scan (names, Model objects or ASE calculators)")
    if (strains is None) == (scale is None):
        raise InputError("give strains= (linear strains, e.g. np.linspace(-0.04, 0.04, 9)) or scale= "
                         "(factors 1 + strain), not " + ("both" if scale is not None else "neither"))
    name = "strains" if scale is None else "scale"
    values = _finite_vector(strains if scale is None else scale, name)
    eps = values if scale is None else values - 1.0
    bad = np.flatnonzero(np.abs(eps) >= 0.5)
    if bad.size:
        hint = (" (scale factors? pass them as scale=)" if scale is None and np.all((values > 0.5) & (values < 1.5))
                else "")
        raise InputError(f"{name}[{bad[0]}] = {values[bad[0]]:g} is a linear strain of {eps[bad[0]]:+.0%}; "
                         f"mlipviz scans |strain| < 50 %{hint}")
    geometries = []
    for e in eps:
        strained = atoms.copy()
        strained.calc = None
        strained.set_cell(atoms.cell.array * (1.0 + e), scale_atoms=True)
        strained.info["linear_strain"] = float(e)
        geometries.append(strained)
    volumes = np.array([a.get_volume() / len(a) for a in geometries])
    return _evaluate("eos", geometries, volumes, "volume_per_atom", models, reference, align, **kwargs)


def _mode_indices(modes, count: int) -> list[int]:
    """``modes`` as integer indices in [0, count), or an InputError naming the bad one."""
    values = np.atleast_1d(np.asarray(modes))
    if values.dtype.kind not in "iu":
        raise InputError(f"modes must be integer mode indices (0 to {count - 1}), got {modes!r}")
    bad = [int(m) for m in values if not 0 <= m < count]
    if bad:
        raise InputError(f"modes: mode {bad[0]} does not exist; this structure has {count} modes (0 to {count - 1})")
    return [int(m) for m in values]


def _finite_vector(values, name: str) -> np.ndarray:
    """``values`` as a 1-D float array of finite numbers, or an InputError naming ``name``."""
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be numbers, got {values!r}") from exc
    if out.ndim != 1 or out.size == 0:
        raise InputError(f"{name} must be a non-empty list of numbers, got shape {out.shape}")
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise InputError(f"{name}[{bad[0]}] is {out[bad[0]]}, not a finite number")
    return out


def eos(atoms, volumes, models, reference=None, align: str = "minimum", **kwargs) -> Scan:
    """Energy against volume per atom (Å³/atom) at the given volumes (isotropic scaling)."""
    volumes = np.asarray(volumes, dtype=np.float64)
    per_atom = atoms.get_volume() / len(atoms)
    return strain(atoms, models=models, reference=reference, align=align, scale=np.cbrt(volumes / per_atom),
                  **kwargs)


def birch_murnaghan(scan: Scan) -> pd.DataFrame:
    """Third-order Birch-Murnaghan fit per method: V0 (Å³/atom), E0 (eV/atom), B0 (GPa), B0'."""
    from scipy.optimize import curve_fit

    from .compare import EV_A3_TO_GPA

    if scan.kind != "eos":
        raise InputError(f"a Birch-Murnaghan fit needs an eos/strain scan, not '{scan.kind}'")
    v = scan.coordinate
    n = scan.frames.n_atoms[0]
    rows = {}
    for method in scan.methods:
        e = scan.energy(method, aligned=False) / n
        guess = _parabola_guess(v, e)
        params, _ = curve_fit(birch_murnaghan_energy, v, e, p0=guess, maxfev=20000)
        e0, b0, bp, v0 = params
        rows[method] = {"V0": v0, "E0": e0, "B0_GPa": b0 * EV_A3_TO_GPA, "B0_prime": bp}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("method")


def birch_murnaghan_energy(v, e0, b0, bp, v0):
    """E(V) of the third-order Birch-Murnaghan equation of state (B0 in eV/Å³)."""
    eta = (v0 / v) ** (2.0 / 3.0)
    return e0 + 9.0 * v0 * b0 / 16.0 * ((eta - 1) ** 3 * bp + (eta - 1) ** 2 * (6 - 4 * eta))


def _parabola_guess(v, e):
    c2, c1, c0 = np.polyfit(v, e, 2)
    v0 = -c1 / (2 * c2) if c2 > 0 else v[np.argmin(e)]
    return [float(np.polyval([c2, c1, c0], v0)), float(2 * c2 * v0), 4.0, float(v0)]


def displacement(atoms, atom_index: int, direction, amplitudes, models, reference=None,
                 align: str = "minimum", **kwargs) -> Scan:
    """Move one atom along ``direction`` (normalised) by ``amplitudes`` (Å)."""
    n = len(atoms)
    if not 0 <= atom_index < n:
        raise InputError(f"atom index {atom_index} out of range for {n} atoms")
    u = np.asarray(direction, dtype=np.float64)
    if u.shape != (3,) or not np.linalg.norm(u) > 0:
        raise ValueError(f"direction must be a non-zero 3-vector, got {direction!r}")
    u = u / np.linalg.norm(u)
    amplitudes = np.asarray(amplitudes, dtype=np.float64)
    tangent = np.zeros((n, 3))
    tangent[atom_index] = u
    geometries = []
    for a in amplitudes:
        moved = atoms.copy()
        moved.calc = None
        moved.positions[atom_index] += a * u
        moved.info["amplitude"] = float(a)
        geometries.append(moved)
    return _evaluate("displacement", geometries, amplitudes, "amplitude", models, reference, align,
                     [tangent.ravel()] * len(amplitudes), details={"atom": atom_index, "direction": u},
                     **kwargs)


def path(images, models, reference=None, align: str = "none", **kwargs) -> Scan:
    """Energy along a path of images (e.g. NEB), against the cumulative distance (Å).

    ``reference=None`` takes the images' own labels. `barriers` gives the barrier (highest
    point minus the first) per method and its error against the reference.
    """
    from ..io import read

    frames = read(images, min_distance=0.1)
    if len(frames) < 2:
        raise InputError(f"images: a path needs at least two images, got {len(frames)}", source=frames.source)
    if len(set(frames.n_atoms.tolist())) != 1:
        raise InputError("path images must all have the same atoms", source=frames.source)
    n = int(frames.n_atoms[0])
    pos = frames.positions.reshape(len(frames), n, 3)
    from .metrics import minimum_image_displacement

    steps = [minimum_image_displacement(pos[i], pos[i - 1], frames.cells[i], frames.pbc[i]) for i in
             range(1, len(frames))]
    s = np.concatenate([[0.0], np.cumsum([np.linalg.norm(d) for d in steps])])
    tangents = []
    for i in range(len(frames)):
        d = steps[min(i, len(steps) - 1)] + (steps[i - 1] if 0 < i < len(steps) else 0)
        tangents.append((d / np.linalg.norm(d)).ravel())
    return _evaluate("path", frames, s, "path_length", models, reference, align, tangents, **kwargs)


def barriers(scan: Scan) -> pd.DataFrame:
    """Barrier (highest point minus the first, eV) per method and its error vs the reference."""
    rows = {m: {"barrier": float(np.nanmax(e) - e[0]), "highest_point": int(np.nanargmax(e))}
            for m in scan.methods for e in [scan.energy(m, aligned=False)]}
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("method")
    table["barrier_error"] = table["barrier"] - table.loc[REFERENCE, "barrier"]
    return table


# -- phonon modes at Gamma ---------------------------------------------------------------

@dataclass
class PhononModes:
    """Gamma-point modes from finite-difference Hessians of every method.

    ``table``: per reference mode, the reference frequency and, per method, the curvature
    along that mode (eᵀDe, eV/Å²/amu), its ratio to the reference's (the PES-curvature
    softening of Deng et al. 2025) and the frequency ratio (its square root).
    ``hessians``: method -> (3N, 3N) eV/Å²; ``modes``: reference eigenvectors (columns,
    mass-weighted); ``scans``: mode index -> `Scan` along that mode (Cartesian amplitude, Å;
    empty when the reference is labelled frames, which hold no points along the modes).
    """

    table: pd.DataFrame
    hessians: dict[str, np.ndarray]
    frequencies: dict[str, np.ndarray]
    modes: np.ndarray
    masses: np.ndarray
    scans: dict[int, Scan]


def hessian_from_forces(forces_plus: np.ndarray, forces_minus: np.ndarray, delta: float) -> np.ndarray:
    """Symmetrised Hessian (3N, 3N) from forces at +-``delta`` displacements of each coordinate.

    ``forces_plus[k]`` are the (N, 3) forces when coordinate k (atom k // 3, axis k % 3)
    moves by +delta: H[k, :] = -(F⁺ - F⁻) / (2 delta).
    """
    h = -(forces_plus.reshape(len(forces_plus), -1) - forces_minus.reshape(len(forces_minus), -1)) / (2 * delta)
    return 0.5 * (h + h.T)


def frequencies_thz(eigenvalues: np.ndarray) -> np.ndarray:
    """Frequencies (THz) from eigenvalues of the mass-weighted Hessian (eV/Å²/amu); negative = imaginary."""
    from ase import units

    omega = np.sqrt(np.abs(eigenvalues) * units._e / (1e-20 * units._amu))  # rad/s
    return np.sign(eigenvalues) * omega / (2 * np.pi) / 1e12


def phonon_mode(atoms, models, reference=None, modes=None, amplitudes=None, delta: float = 0.01,
                device: str = "auto", progress: bool = False) -> PhononModes:
    """Finite-difference Gamma-point Hessian of every method, and scans along chosen modes.

    ``modes``: indices of reference modes (sorted by frequency) to scan; default: every
    mode but the rigid translations (3 for periodic cells) or translations and rotations
    (5 or 6 for molecules). ``amplitudes``: Cartesian displacement (Å) along each mode,
    default -0.1..0.1 in 9 steps. Costs 6N evaluations per method plus the scans.
    """
    from ..io import read

    n = len(atoms)
    if modes is not None:  # checked before the Hessian's 6n evaluations
        modes = _mode_indices(modes, 3 * n)
    displaced = []
    for k in range(3 * n):
        for sign in (1, -1):
            moved = atoms.copy()
            moved.calc = None
            moved.positions[k // 3, k % 3] += sign * delta
            displaced.append(moved)
    frames = read(displaced, min_distance=0.1)
    labelled_reference = isinstance(reference, Frames)
    if labelled_reference:  # labels for the displaced cells; the mode scans need a live reference
        frames = _labels_from(reference, frames)
        reference = None
    cmp = compare(models, frames, reference=reference, device=device, progress=progress)
    masses = atoms.get_masses()
    inv_sqrt_m = np.repeat(1 / np.sqrt(masses), 3)
    hessians, dynamical = {}, {}
    for method in cmp.models + [REFERENCE]:
        forces = (cmp.reference if method == REFERENCE else cmp.predictions[method]).forces.reshape(3 * n, 2, n, 3)
        hessians[method] = hessian_from_forces(forces[:, 0], forces[:, 1], delta)
        dynamical[method] = hessians[method] * np.outer(inv_sqrt_m, inv_sqrt_m)
    eigenvalues, vectors = np.linalg.eigh(dynamical[REFERENCE])
    frequencies = {m: frequencies_thz(np.linalg.eigvalsh(d)) for m, d in dynamical.items()}
    ref_freq = frequencies_thz(eigenvalues)
    if modes is None:
        rigid = 3 if atoms.pbc.all() else (5 if _is_linear(atoms) else 6)
        modes = sorted(np.argsort(np.abs(ref_freq))[rigid:].tolist())
    rows = []
    for mode in modes:
        e = vectors[:, mode]
        ref_curv = float(e @ dynamical[REFERENCE] @ e)
        row = {"mode": mode, "frequency_reference_THz": ref_freq[mode], "curvature_reference": ref_curv}
        for method in cmp.models:
            curv = float(e @ dynamical[method] @ e)
            ratio = curv / ref_curv
            row[f"curvature_ratio[{method}]"] = ratio
            row[f"frequency_ratio[{method}]"] = np.sign(ratio) * np.sqrt(abs(ratio))
        rows.append(row)
    table = pd.DataFrame(rows).set_index("mode")
    amplitudes = np.linspace(-0.1, 0.1, 9) if amplitudes is None else np.asarray(amplitudes, dtype=np.float64)
    scans = {}
    for mode in ([] if labelled_reference else modes):
        u = (vectors[:, mode] * inv_sqrt_m).reshape(n, 3)
        u /= np.linalg.norm(u)
        geometries = []
        for a in amplitudes:
            moved = atoms.copy()
            moved.calc = None
            moved.positions += a * u
            moved.info.update(mode=int(mode), amplitude=float(a))
            geometries.append(moved)
        scans[mode] = _evaluate("phonon_mode", geometries, amplitudes, "amplitude", models, reference,
                                "minimum", [u.ravel()] * len(amplitudes), device=device,
                                details={"mode": int(mode), "frequency_reference_THz": float(ref_freq[mode])})
    return PhononModes(table, hessians, frequencies, vectors, masses, scans)


def _is_linear(atoms) -> bool:
    if len(atoms) < 3:
        return True
    centred = atoms.positions - atoms.positions.mean(axis=0)
    return np.linalg.svd(centred, compute_uv=False)[1] < 1e-3
