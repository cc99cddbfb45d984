"""PES scans: energy (and the force along the scan) of several models and a reference.

Every scan builds its geometries, evaluates them with `mlipviz.compare` (so models run
batched and live references run cached and in parallel) and returns a `Scan`. The
reference is a live calculator or model, `Frames` that already carry labels for the
same geometries (matched by geometry), or None (or False) for the models alone: their
curves side by side, and whatever compares against a reference (curvature ratios,
barrier errors, phonon-mode ratios) is left out or raises `MissingLabelsError`.
``align`` shifts each curve: ``"none"``, ``"minimum"`` (each curve's own minimum),
``"last"`` (its last point, e.g. the dissociation limit) or ``"atoms"`` (the sum of that
method's isolated-atom energies).
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols, ground_state_magnetic_moments
from ase.eos import EquationOfState, birchmurnaghan
from pymatgen.core import Molecule, Structure

from ..checks import finite_array, indices, number, one_of, whole_number
from ..display import Showable
from ..errors import (
    ArgumentTypeError,
    EmptyInputError,
    InputError,
    MissingLabelsError,
    OutOfRangeError,
    UnknownNameError,
)
from ..frames import Frames
from ..io import _to_atoms, read
from ..models import resolve_models, resolve_reference
from ..models.base import Prediction
from ..units import AMU, ELEMENTARY_CHARGE, GPA
from .compare import Comparison, compare
from .metrics import minimum_image_displacement

if TYPE_CHECKING:
    from ._types import ModelSpec, ModelsSpec, StructuresLike

    #: what the scans take as their reference: a model or calculator, labelled frames, or None/False
    ReferenceSpec = ModelSpec | Frames | bool | None

ALIGNMENTS = ("none", "minimum", "last", "atoms")
REFERENCE = "reference"


@dataclass
class Scan(Showable):
    """Energies along one scan coordinate for every model and the reference.

    A scan without a reference (``has_reference`` False) holds the models' curves only:
    ``methods`` lists the models, and asking for the ``"reference"`` curve raises
    `MissingLabelsError`.

    Attributes
    ----------
    kind : str
        ``"diatomic"``, ``"eos"``, ``"displacement"``, ``"path"`` or ``"phonon_mode"``.
    comparison : Comparison
        The evaluation of the scan's geometries.
    coordinate : np.ndarray
        One value per point, ``coordinate_label`` says what it is.
    coordinate_label : str
    alignment : str
        The ``align`` of the scan.
    offsets : dict of str to float
        What ``align`` subtracted from each curve (eV).
    tangents : list of np.ndarray or None
        Per point, dR/dq flattened, or None: the force along the scan is F·dR/dq = -dE/dq.
    details : dict
        What else the scan records (e.g. the displaced atom, the mode).
    """

    kind: str
    comparison: Comparison
    coordinate: np.ndarray
    coordinate_label: str
    alignment: str
    offsets: dict[str, float]
    tangents: list[np.ndarray] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def frames(self) -> Frames:
        """The scan's geometries (those of `comparison`)."""
        return self.comparison.frames

    @property
    def has_reference(self) -> bool:
        """False for a scan of models only."""
        return self.comparison.reference is not None

    @property
    def methods(self) -> list[str]:
        """The models, then ``"reference"`` when the scan has one."""
        return self.comparison.models + ([REFERENCE] if self.has_reference else [])

    def _prediction(self, method: str) -> Prediction:
        if method == REFERENCE and not self.has_reference:
            raise MissingLabelsError(f"method: this {self.kind} scan has no reference curve (models only: "
                                     f"{', '.join(self.comparison.models)}); scan with reference= a "
                                     "calculator, a model or labelled frames")
        if not isinstance(method, str) or method not in self.methods:
            raise UnknownNameError(f"method: no method {method!r} in this scan (methods: {', '.join(self.methods)})")
        return (cast(Prediction, self.comparison.reference) if method == REFERENCE
                else self.comparison.predictions[method])

    def energy(self, method: str, aligned: bool = True) -> np.ndarray:
        """The energies (eV) of one method along the scan.

        Parameters
        ----------
        method : str
            A model's name or ``"reference"`` (see `methods`).
        aligned : bool
            Minus the offset ``align`` chose for this method (`offsets`).

        Returns
        -------
        np.ndarray
            One energy per point.

        Raises
        ------
        UnknownNameError
            No such method.
        MissingLabelsError
            ``"reference"`` in a scan without one.
        """
        raw = np.asarray(self._prediction(method).energy, dtype=np.float64)
        return raw - self.offsets[method] if aligned else raw

    def force_along(self, method: str) -> np.ndarray | None:
        """-dE/dq at each point from the forces, or for EOS scans from the stress (N times
        the pressure, as q is the volume per atom); None where neither applies.

        Parameters
        ----------
        method : str
            A model's name or ``"reference"`` (see `methods`).

        Returns
        -------
        np.ndarray or None
            One value per point (eV per unit of the coordinate).

        Raises
        ------
        UnknownNameError
            No such method.
        MissingLabelsError
            ``"reference"`` in a scan without one.
        """
        if self.kind == "eos":
            stress = self._prediction(method).stress
            if stress is None:
                return None
            return -self.frames.n_atoms * np.trace(stress, axis1=1, axis2=2) / 3
        if self.tangents is None:
            return None
        forces = cast(np.ndarray, self._prediction(method).forces)
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

        A quadratic is fitted to the ``points`` (>= 3) scan points nearest the reference's
        lowest point (which must be interior); ratio < 1 means a softer PES than the
        reference. Without a reference, each model's curvature at its own lowest point
        (``at``), and no ratio.

        Parameters
        ----------
        points : int
            Scan points (>= 3) the quadratic is fitted to.

        Returns
        -------
        pd.DataFrame
            Per method: ``curvature`` (eV per unit of the coordinate squared), ``at`` and,
            with a reference, ``ratio_to_reference``.

        Raises
        ------
        InputError
            The (reference's) lowest point is an end point of the scan, or ``points`` < 3.
        """
        points = whole_number("points", points, minimum=3)
        q = self.coordinate
        rows = {}
        for method in self.methods:
            if self.has_reference:
                k = self._interior_minimum(REFERENCE)
            else:
                k = self._interior_minimum(method)
            near = np.argsort(np.abs(q - q[k]))[:points]
            c2, _c1, _c0 = np.polyfit(q[near] - q[k], self.energy(method)[near], 2)
            rows[method] = {"curvature": 2 * c2, "at": q[k]}
        table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("method")
        if self.has_reference:
            table["ratio_to_reference"] = table["curvature"] / table.loc[REFERENCE, "curvature"]
        return table

    def _interior_minimum(self, method: str) -> int:
        """Index of the lowest point of ``method``'s curve; an InputError if it is an end point."""
        q = self.coordinate
        k = int(np.nanargmin(self.energy(method)))
        if k in (0, len(q) - 1):
            whose = "the reference" if method == REFERENCE else f"the {method} curve's"
            raise InputError(f"{whose} minimum of this {self.kind} scan is at its end point "
                             f"({self.coordinate_label} = {q[k]:g}); extend the scan to bracket it")
        return k


# -- evaluation ----------------------------------------------------------------------

def _evaluate(kind: str, geometries: list[Atoms] | Frames, coordinate: Any, label: str, models: Any,
              reference: Any, align: str, tangents: list[np.ndarray] | None = None, device: str = "auto",
              progress: bool = False, details: dict[str, Any] | None = None, own_labels: bool = False) -> Scan:
    """Evaluate the scan's geometries. ``reference``: live (calculator/model), labelled
    `Frames`, or None/False for models only; ``own_labels``: None takes the geometries'
    own labels where they carry forces (a path of labelled images)."""
    align = _alignment(align)
    _check_models(models)
    frames = read(geometries, min_distance=0.1)
    # loaded once here: the comparison and the isolated atoms below use the same objects
    models, reference = resolve_models(models, device), resolve_reference(reference, device)
    if isinstance(reference, Frames):
        frames = _labels_from(reference, frames)
        reference = None  # compare() takes the labels just attached
    elif reference is None and not (own_labels and frames.has_labels["forces"]):
        reference = False  # built geometries carry no labels: the models alone
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


def _offsets(scan: Scan, models: Any, reference: Any, device: str) -> dict[str, float]:
    if scan.alignment == "none":
        return {m: 0.0 for m in scan.methods}
    if scan.alignment in ("minimum", "last"):
        pick = np.nanmin if scan.alignment == "minimum" else (lambda e: e[-1])
        return {m: float(pick(scan.energy(m, aligned=False))) for m in scan.methods}
    return _isolated_atom_offsets(scan, models, reference, device)


def _isolated_atom_offsets(scan: Scan, models: Any, reference: Any, device: str) -> dict[str, float]:
    """Sum of isolated-atom energies per method; atoms in their ground spin state (Hund's rule).
    ``reference`` False: the models only; None (labels in frames): no isolated atoms to label."""
    if reference is None:
        raise InputError("align='atoms' needs a live reference (a calculator or model) to compute isolated "
                         "atoms with; labelled reference frames hold none (use align='last' or 'minimum')")
    f = scan.frames
    elements = sorted(set(f.numbers.tolist()))
    atoms = []
    for z in elements:
        atom = Atoms(numbers=[z], positions=[[0.0, 0.0, 0.0]])
        atom.info["spin"] = int(round(ground_state_magnetic_moments[z]))
        atoms.append(atom)
    isolated = compare(models, atoms, reference=reference, device=device, progress=False)
    counts = np.bincount(f.numbers[f.atoms_of(0)], minlength=max(elements) + 1)
    per_method: dict[str, Any] = {m: isolated.predictions[m].energy for m in isolated.models}
    if isolated.reference is not None:
        per_method[REFERENCE] = isolated.reference.energy
    names = dict(zip(isolated.models, scan.comparison.models))
    return {names.get(m, m): float(np.dot(counts[elements], e)) for m, e in per_method.items()}


# -- scans -----------------------------------------------------------------------------

def diatomic(element_a: str, element_b: str, distances: Sequence[float] | np.ndarray, models: ModelsSpec,
             reference: ReferenceSpec = None, align: str = "last", spin: int | None = None, **kwargs: Any) -> Scan:
    """Dimer curve A-B over ``distances`` (Å, > 0), bond along z. Force along = -dE/dr.

    Parameters
    ----------
    element_a, element_b : str
        Chemical symbols.
    distances : sequence of float
        Bond lengths (Å, > 0).
    models : Model, str, Path, ASE calculator, or a list of those
        The models to scan.
    reference : a model or calculator, labelled Frames, None or False
        A live reference, `Frames` labelled at the same geometries, or ``reference=None``:
        the models only.
    align : str
        ``"none"``, ``"minimum"``, ``"last"`` (the dissociation limit) or ``"atoms"``.
    spin : int, optional
        2S; goes to each frame's info for references that read it.
    **kwargs
        ``device`` and ``progress``, for the evaluation (`mlipviz.compare`).

    Returns
    -------
    Scan

    Raises
    ------
    UnknownNameError
        A symbol that is not an element, or an unknown ``align``.
    ArgumentTypeError
        An element that is not a symbol, or ``spin`` not a whole number.
    InputError
        Distances that are not finite and positive, no models, ``spin`` < 0, or reference
        frames without this scan's geometries.
    ModelNotAvailableError
        A model that cannot be loaded here.
    """
    numbers_ab = [_element("element_a", element_a), _element("element_b", element_b)]
    distances = _positive_vector(distances, "distances", "Å")
    spin = whole_number("spin", spin, minimum=0, none=True)
    align = _alignment(align)
    _check_models(models)
    geometries, tangents = [], []
    for r in distances:
        dimer = Atoms(numbers=numbers_ab, positions=[[0, 0, 0], [0, 0, float(r)]])
        dimer.info["distance"] = float(r)
        if spin is not None:
            dimer.info["spin"] = int(spin)
        geometries.append(dimer)
        tangents.append(np.array([0, 0, -0.5, 0, 0, 0.5]))
    return _evaluate("diatomic", geometries, distances, "distance", models, reference, align, tangents,
                     **kwargs)


def strain(atoms: Atoms | Structure | Molecule, strains: Sequence[float] | np.ndarray | None = None,
           models: ModelsSpec | None = None, reference: ReferenceSpec = None, align: str = "minimum", *,
           scale: Sequence[float] | np.ndarray | None = None, **kwargs: Any) -> Scan:
    """Isotropic scans of the cell, positions scaled with it; energy against volume per atom.
    Force along = -dE/dv from the stress.

    Parameters
    ----------
    atoms : ase.Atoms, pymatgen Structure or Molecule
        The structure to strain.
    strains : sequence of float, optional
        Linear strains ε, as in ASE, pymatgen and matcalc (-0.02 is 2 % compression: every
        cell vector times 1 + ε). |ε| must stay below 0.5 (a scale factor such as 0.98
        passed as a strain would stretch the cell to 1.98 times its size).
    models : Model, str, Path, ASE calculator, or a list of those
        The models to scan (required).
    reference : a model or calculator, labelled Frames, None or False
        A live reference, `Frames` labelled at the same geometries, or ``reference=None``:
        the models only.
    align : str
        ``"none"``, ``"minimum"``, ``"last"`` or ``"atoms"``.
    scale : sequence of float, optional
        The factors 1 + ε themselves, instead of ``strains``.
    **kwargs
        ``device`` and ``progress``, for the evaluation (`mlipviz.compare`).

    Returns
    -------
    Scan
        Of kind ``"eos"``, against ``volume_per_atom``.

    Raises
    ------
    InputError
        Both or neither of ``strains`` and ``scale``, |ε| >= 0.5, values that are not finite
        numbers, no models, or reference frames without this scan's geometries.
    ArgumentTypeError
        ``atoms`` that is not one structure.
    EmptyInputError
        ``atoms`` without atoms.
    ModelNotAvailableError
        A model that cannot be loaded here.
    """
    atoms = _structure(atoms)
    _check_models(models)
    align = _alignment(align)
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


def _mode_indices(modes: Any, count: int) -> list[int]:
    """``modes`` as integer indices in [0, count), or an InputError naming the bad one."""
    values = np.atleast_1d(np.asarray(modes))
    if values.dtype.kind not in "iu":
        raise ArgumentTypeError(f"modes must be integer mode indices (0 to {count - 1}), got {modes!r}")
    bad = [int(m) for m in values if not 0 <= m < count]
    if bad:
        raise OutOfRangeError(f"modes: mode {bad[0]} does not exist; this structure has {count} modes "
                              f"(0 to {count - 1})")
    return [int(m) for m in values]


def _check_scan(scan: Any) -> None:
    if not isinstance(scan, Scan):
        raise ArgumentTypeError(f"scan must be a Scan (from mlipviz.scan.strain, path, ...), "
                                f"got {type(scan).__name__}")


def _alignment(align: Any) -> str:
    return one_of("align", align, ALIGNMENTS)


def _check_models(models: Any) -> None:
    if models is None:
        raise InputError("models: give the models to scan (names, Model objects or ASE calculators)")


def _structure(atoms: Any, name: str = "atoms") -> Atoms:
    """``atoms`` as ASE ``Atoms`` (pymatgen ``Structure``/``Molecule`` converted), or an error naming it."""
    if not isinstance(atoms, Atoms):
        if not isinstance(atoms, (Structure, Molecule)):
            raise ArgumentTypeError(f"{name} must be an ASE Atoms or a pymatgen Structure/Molecule, "
                                    f"got {type(atoms).__name__}")
        atoms = _to_atoms(atoms, 0)
    if len(atoms) == 0:
        raise EmptyInputError(f"{name} holds no atoms")
    return atoms


def _element(name: str, value: Any) -> int:
    """Atomic number of a chemical symbol, or an error naming ``name``."""
    if not isinstance(value, str):  # symbols only, as in ASE's formulas: 42 is more likely a slip
        raise ArgumentTypeError(f"{name} must be a chemical symbol such as 'Cu', got {value!r}")
    if value in atomic_numbers and atomic_numbers[value] > 0:
        return atomic_numbers[value]
    hint = f" (did you mean {value.capitalize()!r}?)" if value.capitalize() in chemical_symbols[1:] else ""
    raise UnknownNameError(f"{name}: {value!r} is not a chemical element symbol{hint}")


def _positive_vector(values: Any, name: str, unit: str) -> np.ndarray:
    """``values`` as a non-empty 1-D array of finite numbers > 0, or an InputError naming the bad one."""
    out = _finite_vector(values, name)
    bad = np.flatnonzero(out <= 0)
    if bad.size:
        raise InputError(f"{name}[{bad[0]}] = {out[bad[0]]:g} {unit} is not positive")
    return out


def _atom_index(value: Any, n: int) -> int:
    """One atom index (Python or numpy integer; negative counts from the end, as in ASE)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        # 2.0 or an array of floats is most likely a position or an amplitude given in its place
        raise ArgumentTypeError(f"atom_index must be a whole-number atom index, got {value!r}")
    return int(indices("atom_index", value, n)[0])


def _direction(direction: Any) -> np.ndarray:
    """``direction`` as a unit 3-vector, or an InputError naming it."""
    u = finite_array("direction", direction, shape=(3,))
    norm = float(np.linalg.norm(u))
    if not norm > 0:
        raise InputError(f"direction must be a non-zero 3-vector, got {direction!r}")
    return u / norm


def _finite_vector(values: Any, name: str) -> np.ndarray:
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


def eos(atoms: Atoms | Structure | Molecule, volumes: Sequence[float] | np.ndarray, models: ModelsSpec,
        reference: ReferenceSpec = None, align: str = "minimum", **kwargs: Any) -> Scan:
    """Energy against volume per atom (Å³/atom, > 0) at the given volumes (isotropic scaling).

    Parameters
    ----------
    atoms : ase.Atoms, pymatgen Structure or Molecule
        The structure to scale.
    volumes : sequence of float
        Volumes per atom (Å³/atom, > 0), within a linear strain of 50 % of the structure's.
    models : Model, str, Path, ASE calculator, or a list of those
        The models to scan.
    reference : a model or calculator, labelled Frames, None or False
        A live reference, `Frames` labelled at the same geometries, or ``reference=None``:
        the models only.
    align : str
        ``"none"``, ``"minimum"``, ``"last"`` or ``"atoms"``.
    **kwargs
        ``device`` and ``progress``, for the evaluation (`mlipviz.compare`).

    Returns
    -------
    Scan
        Of kind ``"eos"`` (see `strain`).

    Raises
    ------
    InputError
        Volumes that are not finite and positive or too far from the structure's, no models,
        or reference frames without this scan's geometries.
    ArgumentTypeError
        ``atoms`` that is not one structure.
    ModelNotAvailableError
        A model that cannot be loaded here.
    """
    atoms = _structure(atoms)
    volumes = _positive_vector(volumes, "volumes", "Å³/atom")
    per_atom = atoms.get_volume() / len(atoms)
    scale = np.cbrt(volumes / per_atom)
    bad = np.flatnonzero(np.abs(scale - 1.0) >= 0.5)
    if bad.size:  # named here: strain() would blame a scale= the caller never gave
        k = bad[0]
        raise InputError(f"volumes[{k}] = {volumes[k]:g} Å³/atom is {volumes[k] / per_atom:.3g} times this "
                         f"structure's {per_atom:.4g} Å³/atom, a linear strain of {scale[k] - 1:+.0%}; mlipviz "
                         "scans |strain| < 50 % (volumes are per atom)")
    return strain(atoms, models=models, reference=reference, align=align, scale=scale, **kwargs)


def birch_murnaghan(scan: Scan) -> pd.DataFrame:
    """Third-order Birch-Murnaghan fit per method (each model, and the reference if the scan has
    one): V0 (Å³/atom), E0 (eV/atom), B0 (GPa), B0'.

    The fit is ASE's: ``ase.eos.EquationOfState(volumes, energies, eos="birchmurnaghan")``
    on the energies per atom. A fit that does not converge gives NaN for that method, and a
    V0 outside the scanned volumes a warning (the minimum is not bracketed), each naming the
    method.

    Parameters
    ----------
    scan : Scan
        An eos/strain scan of at least 4 volumes.

    Returns
    -------
    pd.DataFrame
        Per method: ``V0``, ``E0``, ``B0_GPa``, ``B0_prime``.

    Raises
    ------
    ArgumentTypeError
        ``scan`` is not a `Scan`.
    InputError
        Not an eos/strain scan, or fewer than 4 volumes.
    """
    _check_scan(scan)
    if scan.kind != "eos":
        raise InputError(f"a Birch-Murnaghan fit needs an eos/strain scan, not '{scan.kind}'")
    v = scan.coordinate
    if len(v) < 4:
        raise InputError(f"a Birch-Murnaghan fit has 4 parameters: it needs at least 4 volumes, this scan has "
                         f"{len(v)}")
    n = scan.frames.n_atoms[0]
    rows = {}
    for method in scan.methods:
        e = scan.energy(method, aligned=False) / n
        fit = EquationOfState(v, e, eos="birchmurnaghan")
        try:
            v0, e0, b0 = fit.fit(warn=False)  # bracketing is checked below, naming the method
        except (RuntimeError, ValueError) as exc:  # curve_fit: no optimum, or NaN energies
            warnings.warn(f"Birch-Murnaghan fit of {method} failed: {exc}", RuntimeWarning, stacklevel=2)
            rows[method] = {"V0": np.nan, "E0": np.nan, "B0_GPa": np.nan, "B0_prime": np.nan}
            continue
        if not v.min() < v0 < v.max():
            warnings.warn(f"Birch-Murnaghan fit of {method}: V0 = {v0:.4g} Å³/atom lies outside the scanned "
                          f"volumes ({v.min():.4g} to {v.max():.4g}); extend the scan to bracket the minimum",
                          RuntimeWarning, stacklevel=2)
        # ase's parameters: E0, B0 (eV/Å³), B0', V0
        rows[method] = {"V0": v0, "E0": e0, "B0_GPa": b0 / GPA, "B0_prime": float(fit.eos_parameters[2])}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("method")


def birch_murnaghan_energy(v: Any, e0: float, b0: float, bp: float, v0: float) -> np.ndarray:
    """E(V) of the third-order Birch-Murnaghan equation of state (B0 in eV/Å³): ASE's
    ``ase.eos.birchmurnaghan``, in this module's argument order (the same as ASE's)."""
    return birchmurnaghan(np.asarray(v, dtype=np.float64), e0, b0, bp, v0)


def displacement(atoms: Atoms | Structure | Molecule, atom_index: int, direction: Sequence[float] | np.ndarray,
                 amplitudes: Sequence[float] | np.ndarray, models: ModelsSpec, reference: ReferenceSpec = None,
                 align: str = "minimum", **kwargs: Any) -> Scan:
    """Move one atom along a direction.

    Parameters
    ----------
    atoms : ase.Atoms, pymatgen Structure or Molecule
        The structure.
    atom_index : int
        The atom: an integer, negative from the end as in ASE.
    direction : sequence of float
        A non-zero 3-vector, normalised.
    amplitudes : sequence of float
        Displacements along ``direction`` (Å).
    models : Model, str, Path, ASE calculator, or a list of those
        The models to scan.
    reference : a model or calculator, labelled Frames, None or False
        A live reference, `Frames` labelled at the same geometries, or ``reference=None``:
        the models only.
    align : str
        ``"none"``, ``"minimum"``, ``"last"`` or ``"atoms"``.
    **kwargs
        ``device`` and ``progress``, for the evaluation (`mlipviz.compare`).

    Returns
    -------
    Scan
        Of kind ``"displacement"``, against ``amplitude``.

    Raises
    ------
    ArgumentTypeError
        ``atom_index`` not a whole number, or ``atoms`` not one structure.
    OutOfRangeError
        No atom ``atom_index``.
    InputError
        A zero or non-finite direction, amplitudes that are not finite numbers, no models, or
        reference frames without this scan's geometries.
    ModelNotAvailableError
        A model that cannot be loaded here.
    """
    atoms = _structure(atoms)
    n = len(atoms)
    atom_index = _atom_index(atom_index, n)
    u = _direction(direction)
    amplitudes = _finite_vector(amplitudes, "amplitudes")
    align = _alignment(align)
    _check_models(models)
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


def path(images: StructuresLike, models: ModelsSpec, reference: ReferenceSpec = None, align: str = "none",
         **kwargs: Any) -> Scan:
    """Energy along a path of images (e.g. NEB), against the cumulative distance (Å).

    `barriers` gives the barrier (highest point minus the first) per method and its error
    against the reference.

    Parameters
    ----------
    images : anything `mlipviz.read` accepts
        At least two images with the same atoms.
    models : Model, str, Path, ASE calculator, or a list of those
        The models to scan.
    reference : a model or calculator, labelled Frames, None or False
        ``reference=None`` takes the images' own labels where they carry forces, and scans
        the models only where they carry none; ``reference=False``: the models only,
        whatever the images carry; or a live reference, or labelled `Frames`.
    align : str
        ``"none"``, ``"minimum"``, ``"last"`` or ``"atoms"``.
    **kwargs
        ``device`` and ``progress``, for the evaluation (`mlipviz.compare`).

    Returns
    -------
    Scan
        Of kind ``"path"``, against ``path_length``.

    Raises
    ------
    InputError
        Fewer than two images, images with different atoms, images `mlipviz.read` refuses
        (its errors, naming ``images``), or no models.
    ModelNotAvailableError
        A model that cannot be loaded here.
    """
    align = _alignment(align)
    _check_models(models)
    try:
        frames = read(images, min_distance=0.1)
    except InputError as exc:  # say which argument held it
        raise type(exc)(f"images: {exc.problem}", exc.source, exc.frame, exc.atom) from exc
    if len(frames) < 2:
        raise InputError(f"images: a path needs at least two images, got {len(frames)}", source=frames.source)
    if len(set(frames.n_atoms.tolist())) != 1:
        raise InputError("path images must all have the same atoms", source=frames.source)
    n = int(frames.n_atoms[0])
    pos = frames.positions.reshape(len(frames), n, 3)
    steps = [minimum_image_displacement(pos[i], pos[i - 1], frames.cells[i], frames.pbc[i]) for i in
             range(1, len(frames))]
    s = np.concatenate([[0.0], np.cumsum([np.linalg.norm(d) for d in steps])])
    tangents = []
    for i in range(len(frames)):
        d = steps[min(i, len(steps) - 1)] + (steps[i - 1] if 0 < i < len(steps) else 0)
        tangents.append((d / np.linalg.norm(d)).ravel())
    return _evaluate("path", frames, s, "path_length", models, reference, align, tangents, own_labels=True,
                     **kwargs)


def barriers(scan: Scan) -> pd.DataFrame:
    """Barrier (highest point minus the first, eV) per method and, when the scan has a
    reference, its error against the reference's (``barrier_error``).

    Parameters
    ----------
    scan : Scan
        Any scan (typically a `path`).

    Returns
    -------
    pd.DataFrame
        Per method: ``barrier``, ``highest_point`` (the point's index) and, with a reference,
        ``barrier_error``.

    Raises
    ------
    ArgumentTypeError
        ``scan`` is not a `Scan`.
    """
    _check_scan(scan)
    rows = {m: {"barrier": float(np.nanmax(e) - e[0]), "highest_point": int(np.nanargmax(e))}
            for m in scan.methods for e in [scan.energy(m, aligned=False)]}
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("method")
    if scan.has_reference:
        table["barrier_error"] = table["barrier"] - table.loc[REFERENCE, "barrier"]
    return table


# -- phonon modes at Gamma ---------------------------------------------------------------

@dataclass
class PhononModes:
    """Gamma-point modes from finite-difference Hessians of every method.

    Attributes
    ----------
    table : pd.DataFrame
        Per reference mode, the reference frequency and, per method, the curvature along
        that mode (eᵀDe, eV/Å²/amu), its ratio to the reference's (the PES-curvature
        softening of Deng et al. 2025) and the frequency ratio (its square root); without a
        reference, per mode number (each model's own modes, sorted) each model's frequency
        ``frequency_THz[model]``.
    hessians : dict of str to np.ndarray
        Method -> (3N, 3N) eV/Å².
    frequencies : dict of str to np.ndarray
        Method -> sorted frequencies (THz).
    modes : np.ndarray or None
        Reference eigenvectors (columns, mass-weighted; None without a reference).
    masses : np.ndarray
        The atoms' masses (amu).
    scans : dict of int to Scan
        Mode index -> `Scan` along that mode (Cartesian amplitude, Å; empty when the
        reference is labelled frames, which hold no points along the modes, or when there
        is no reference).
    """

    table: pd.DataFrame
    hessians: dict[str, np.ndarray]
    frequencies: dict[str, np.ndarray]
    modes: np.ndarray | None
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
    omega = np.sqrt(np.abs(eigenvalues) * ELEMENTARY_CHARGE / (1e-20 * AMU))  # rad/s
    return np.sign(eigenvalues) * omega / (2 * np.pi) / 1e12


def phonon_mode(atoms: Atoms | Structure | Molecule, models: ModelsSpec, reference: ReferenceSpec = None,
                modes: Sequence[int] | np.ndarray | None = None,
                amplitudes: Sequence[float] | np.ndarray | None = None, delta: float = 0.01,
                device: str = "auto", progress: bool = False) -> PhononModes:
    """Finite-difference Gamma-point Hessian of every method, and scans along chosen modes.

    Costs 6N evaluations per method plus the scans.

    Parameters
    ----------
    atoms : ase.Atoms, pymatgen Structure or Molecule
        The structure (at its minimum, for meaningful frequencies).
    models : Model, str, Path, ASE calculator, or a list of those
        The models.
    reference : a model or calculator, labelled Frames, None or False
        ``reference=None`` (or False): the models' Hessians and frequencies only (ratios
        and mode scans follow a reference's modes). Labelled `Frames` give the Hessian but
        no mode scans.
    modes : sequence of int, optional
        Indices of reference modes (sorted by frequency) to scan; default: every mode but
        the rigid translations (3 for periodic cells) or translations and rotations (5 or 6
        for molecules).
    amplitudes : sequence of float, optional
        Cartesian displacement (Å) along each mode, default -0.1..0.1 in 9 steps.
    delta : float
        (Å, > 0): the finite-difference step.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"`` for models loaded by name or path.
    progress : bool
        Show progress bars.

    Returns
    -------
    PhononModes

    Raises
    ------
    MissingLabelsError
        ``modes`` given without a reference.
    ArgumentTypeError
        ``modes`` that are not whole numbers, or ``atoms`` not one structure.
    OutOfRangeError
        A mode that does not exist (3N modes).
    InputError
        A ``delta`` that is not positive, amplitudes that are not finite numbers, no models,
        or reference frames without the displaced geometries.
    ModelNotAvailableError
        A model that cannot be loaded here.
    """
    atoms = _structure(atoms)
    _check_models(models)
    n = len(atoms)
    delta = number("delta", delta, minimum=0, above=True)
    models_only = reference is None or reference is False
    # all checked before the Hessian's 6n evaluations
    if modes is not None:
        if models_only:
            raise MissingLabelsError("modes: the modes to scan are the reference's normal modes, and this "
                                     "phonon_mode call has no reference; pass reference= a calculator, a model "
                                     "or labelled frames, or leave modes=None")
        modes = _mode_indices(modes, 3 * n)
    amplitudes = (np.linspace(-0.1, 0.1, 9) if amplitudes is None
                  else _finite_vector(amplitudes, "amplitudes"))
    displaced = []
    for k in range(3 * n):
        for sign in (1, -1):
            moved = atoms.copy()
            moved.calc = None
            moved.positions[k // 3, k % 3] += sign * delta
            displaced.append(moved)
    frames = read(displaced, min_distance=0.1)
    # loaded once for the Hessian and every mode's scan
    models, reference = resolve_models(models, device), resolve_reference(reference, device)
    labelled_reference = isinstance(reference, Frames)
    if isinstance(reference, Frames):  # labels for the displaced cells; the mode scans need a live reference
        frames = _labels_from(reference, frames)
        reference = None
    cmp = compare(models, frames, reference=False if models_only else reference, device=device,
                  progress=progress)
    masses = atoms.get_masses()
    inv_sqrt_m = np.repeat(1 / np.sqrt(masses), 3)
    hessians, dynamical = {}, {}
    for method in cmp.models + ([REFERENCE] if cmp.has_reference else []):
        side = cast(Prediction, cmp.reference) if method == REFERENCE else cmp.predictions[method]
        forces = cast(np.ndarray, side.forces).reshape(3 * n, 2, n, 3)
        hessians[method] = hessian_from_forces(forces[:, 0], forces[:, 1], delta)
        dynamical[method] = hessians[method] * np.outer(inv_sqrt_m, inv_sqrt_m)
    frequencies = {m: frequencies_thz(np.linalg.eigvalsh(d)) for m, d in dynamical.items()}
    if not cmp.has_reference:
        table = pd.DataFrame({f"frequency_THz[{m}]": frequencies[m] for m in cmp.models}).rename_axis("mode")
        return PhononModes(table, hessians, frequencies, None, masses, {})
    eigenvalues, vectors = np.linalg.eigh(dynamical[REFERENCE])
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


def _is_linear(atoms: Atoms) -> bool:
    if len(atoms) < 3:
        return True
    centred = atoms.positions - atoms.positions.mean(axis=0)
    return np.linalg.svd(centred, compute_uv=False)[1] < 1e-3
