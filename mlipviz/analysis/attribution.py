"""Attributions with Captum: which atoms drive a uMLIP's energy, a force, or a force error.

Every adapter gives `Model.site_energies_torch`: per-atom energies of copies of one
structure, differentiable in the positions and in a per-atom gate (``model.atom_gate``
says where the gate acts). A target (total or site energy, a force component or
magnitude, a force error) is computed from them with autograd, and Captum attributes it:

- ``inputs="positions"``: to each atom's displacement from a baseline geometry. With
  integrated gradients along the straight path (minimum image) from the baseline, atom
  i's attribution is the work ``∫ ∂f/∂x_i · dx_i`` done on the target by moving atom i,
  and the attributions sum to f(x) - f(baseline) (completeness).
- ``inputs="atom_mask"``: to each atom's presence, a gate from 0 (atom absent: every
  interaction through it and its own site energy vanish) to 1 (present). Integrated
  gradients from all gates 0 split f(x) - f(no atoms) over the atoms.

Integrated-gradient steps run as batched forward passes: several copies of the structure
in one graph.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import torch
from ase.optimize import FIRE

from .. import checks
from ..display import Showable
from ..errors import CompletenessWarning, InputError, MissingLabelsError, MlipvizError, OutOfRangeError
from ..frames import Frames
from .metrics import minimum_image_displacement

if TYPE_CHECKING:
    from ..models.base import Model
    from ._types import ModelSpec, StructuresLike

#: target -> what it is (every target but "energy" needs ``atom``; "force" also ``component``)
TARGETS = {
    "energy": "total energy (eV)",
    "site_energy": "site energy of atom {atom} (eV)",
    "force": "force F_{component} on atom {atom} (eV/Å)",
    "force_magnitude": "force magnitude |F| on atom {atom} (eV/Å)",
    "force_error": "force error |F_pred - F_ref| on atom {atom} (eV/Å)",
}
METHODS = ("integrated_gradients", "saliency", "input_x_gradient", "feature_ablation")
INPUTS = ("positions", "atom_mask")
#: completeness errors above this (relative) warn
COMPLETENESS_TOLERANCE = 0.01
COMPONENTS = {"x": 0, "y": 1, "z": 2}
#: atoms per forward pass of integrated-gradient steps (at most the model's atoms_per_batch);
#: on 2 CPU cores larger passes were no faster for CHGNet and M3GNet and slower for SevenNet
#: (32 steps of a 64-atom cell: 11 s in passes of 128 atoms, 21 s of 512, 32 s of 2048)
ATOMS_PER_PASS = 256


@dataclass
class Attribution(Showable):
    """Per-atom attributions of one target of one model on one structure.

    Attributes
    ----------
    values : np.ndarray
        (N,): per atom (positions: summed over x, y, z, except saliency, which is the
        gradient's norm).
    frame : Frames
        The structure (one frame).
    model : str
        The model's name.
    target, atom, component, method, inputs : str, int or None
        What was attributed, and how (see `attribute`).
    baseline : np.ndarray
        The baseline positions (N, 3) or gates (N,).
    value, baseline_value : float
        The target at the structure and at the baseline.
    per_coordinate : np.ndarray or None
        (N, 3) for positions.
    convergence_delta : float or None
        Captum's sum(attributions) - (f(x) - f(baseline)) (integrated gradients only).
    completeness_error : float or None
        Its size relative to |f(x) - f(baseline)|.
    n_steps : int or None
        Integrated-gradient steps.
    meta : dict
        Gate, dtype, device, steps per pass, source, frame and baseline, in words.
    """

    values: np.ndarray
    frame: Frames
    model: str
    target: str
    atom: int | None
    component: int | None
    method: str
    inputs: str
    baseline: np.ndarray
    value: float
    baseline_value: float
    per_coordinate: np.ndarray | None = None
    convergence_delta: float | None = None
    completeness_error: float | None = None
    n_steps: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """What was attributed, in words."""
        axis = None if self.component is None else "xyz"[self.component]
        return TARGETS[self.target].format(atom=self.atom, component=axis)

    def table(self) -> pd.DataFrame:
        """One row per atom: element, attribution, distance to the target atom (minimum
        image; NaN for the total energy), ranked by |attribution|."""
        atoms = self.frame.to_atoms(0)
        n = len(atoms)
        distance = (atoms.get_distances(self.atom, np.arange(n), mic=bool(atoms.pbc.any()))
                    if self.atom is not None else np.full(n, np.nan))
        df = pd.DataFrame({"atom": np.arange(n), "element": atoms.get_chemical_symbols(),
                           "attribution": self.values, "distance": distance})
        df["rank"] = df["attribution"].abs().rank(ascending=False, method="first").astype(int)
        return df.set_index("atom")

    def top(self, k: int = 10) -> pd.DataFrame:
        """The ``k`` atoms with the largest |attribution| (rows of `table`)."""
        return self.table().sort_values("rank").head(k)


def attribute(model: ModelSpec, atoms: StructuresLike, target: str = "energy", method: str = "integrated_gradients",
              inputs: str = "positions", *, atom: int | None = None, component: int | str | None = None,
              reference_forces: np.ndarray | None = None, baseline: Any = None, frame: int = 0, n_steps: int = 32,
              batch_size: int | None = None, device: str = "auto") -> Attribution:
    """Attribute a model's ``target`` on one structure to its atoms with Captum.

    Warns (`CompletenessWarning`) when integrated gradients miss completeness by more than 1 %.

    Parameters
    ----------
    model : Model, str, Path or ASE calculator
        A `Model` or anything `mlipviz.load_model` takes.
    atoms : anything `mlipviz.read` takes
        The structure (``frame`` picks one).
    target : str
        A key of `TARGETS`.
    method : str
        One of `METHODS`.
    inputs : str
        One of `INPUTS`.
    atom : int, optional
        The atom the target is about (every target but ``"energy"``).
    component : int or str, optional
        0/1/2 or "x"/"y"/"z" for ``"force"``.
    reference_forces : np.ndarray, optional
        (N, 3): what ``"force_error"`` compares with, by default the structure's own force labels.
    baseline : structure, np.ndarray or None
        For positions: a structure or (N, 3) array with the same atoms (default: the
        structure relaxed with the model at fixed cell); for atom_mask: (N,) gates
        (default: all 0, no atoms).
    frame : int
        Which frame of ``atoms``.
    n_steps : int
        Integrated-gradient steps (Gauss-Legendre).
    batch_size : int, optional
        Steps per forward pass (default: as many copies as fit in `ATOMS_PER_PASS` atoms).
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"`` for a model loaded by name or path.

    Returns
    -------
    Attribution

    Raises
    ------
    MlipvizError
        Captum is not installed (``pip install 'mlipviz[attribution]'``).
    UnknownNameError
        An unknown ``target``, ``method`` or ``inputs``.
    InputError
        A missing or bad ``atom`` or ``component``, ``reference_forces`` with another target
        or of the wrong shape, a baseline that does not fit the structure, or a bad number.
    OutOfRangeError
        No frame ``frame``.
    MissingLabelsError
        ``"force_error"`` without reference forces.
    ModelNotAvailableError
        A model that cannot be loaded here.
    UnsupportedElementError
        An element the model was not trained on.
    """
    try:
        from captum.attr import FeatureAblation, InputXGradient, IntegratedGradients, Saliency
    except ImportError as exc:
        raise MlipvizError("attributions need Captum: pip install 'mlipviz[attribution]' "
                           "(or pip install captum)") from exc

    from ..io import read
    from ..models import load_model
    from ..models.batching import check_batch_size

    n_steps = checks.whole_number("n_steps", n_steps, minimum=1)
    checks.one_of("method", method, METHODS)
    checks.one_of("inputs", inputs, INPUTS)
    checks.one_of("target", target, TARGETS)
    check_batch_size(batch_size)
    if reference_forces is not None and target != "force_error":
        raise InputError(f"reference_forces is used by target='force_error' only; target is {target!r}")
    model = load_model(model, device=device)  # a Model comes back as it is, the device checked
    frames = atoms if isinstance(atoms, Frames) else read(atoms, min_distance=0)
    frame = checks.whole_number("frame", frame)
    if not 0 <= frame < len(frames):
        raise OutOfRangeError(f"frame {frame} out of range for {len(frames)} frame(s)", source=frames.source)
    one = frames[[frame]]
    model.check_elements(one)
    n = one.total_atoms
    target, atom, component = _check_target(target, atom, component, n, one, frame)
    ref = _reference_forces(target, atom, reference_forces, one, frame) if target == "force_error" else None
    dtype = torch.float64 if model.dtype == "float64" else torch.float32
    dev = torch.device(model.device)
    evaluate = _TargetFunction(model, one, target, atom, component, ref, dtype, dev)
    steps_per_pass = batch_size or max(1, min(model.atoms_per_batch, ATOMS_PER_PASS) // n)

    if inputs == "positions":
        start = _baseline_positions(model, one, baseline, frame)
        shift = minimum_image_displacement(one.positions, start, one.cells[0], one.pbc[0])
        origin = torch.as_tensor(start, dtype=dtype, device=dev)
        x = torch.as_tensor(shift, dtype=dtype, device=dev)[None]

        def forward(batch: torch.Tensor) -> torch.Tensor:  # displacements (S, N, 3)
            return evaluate(origin + batch, None)
    else:
        gates = np.zeros(n) if baseline is None else np.asarray(baseline, dtype=np.float64)
        if gates.shape != (n,):
            raise InputError(f"atom_mask baseline must hold one gate per atom ({n}), got shape "
                             f"{gates.shape}", source=frames.source, frame=frame)
        start = gates
        origin = torch.as_tensor(one.positions, dtype=dtype, device=dev)
        x = torch.ones((1, n), dtype=dtype, device=dev)

        def forward(batch: torch.Tensor) -> torch.Tensor:  # gates (S, N)
            return evaluate(origin.expand(len(batch), n, 3), batch)

    zero = torch.as_tensor(start if inputs == "atom_mask" else np.zeros((n, 3)), dtype=dtype, device=dev)[None]
    with torch.no_grad():
        baseline_value, value = forward(torch.cat([zero, x])).to(torch.float64).tolist()

    delta = completeness = None
    steps = None
    if method == "integrated_gradients":
        attr, delta_t = IntegratedGradients(forward).attribute(
            x, baselines=zero, n_steps=n_steps, method="gausslegendre",
            internal_batch_size=steps_per_pass, return_convergence_delta=True)
        delta, steps = float(delta_t.reshape(-1)[0]), n_steps
        change = value - baseline_value
        completeness = abs(delta) / abs(change) if change != 0 else (0.0 if delta == 0 else float("inf"))
        if completeness > COMPLETENESS_TOLERANCE:
            warnings.warn(f"integrated gradients of {model.name} miss completeness by "
                          f"{completeness:.1%} (sum {float(attr.sum()):.6g} vs f(x) - f(baseline) = "
                          f"{change:.6g}); use more steps than n_steps={n_steps}",
                          CompletenessWarning, stacklevel=2)
    elif method == "saliency":
        attr = Saliency(forward).attribute(x, abs=False)
    elif method == "input_x_gradient":  # (x - baseline) * gradient: first-order work
        attr = InputXGradient(lambda d: forward(d + zero)).attribute(x - zero)
    else:
        mask = (torch.arange(n, device=dev)[:, None].expand(n, 3) if inputs == "positions"
                else torch.arange(n, device=dev))[None]
        attr = FeatureAblation(forward).attribute(x, baselines=zero, feature_mask=mask,
                                                  perturbations_per_eval=steps_per_pass)
    attr = attr.detach().to(torch.float64).cpu().numpy()[0]
    if inputs == "positions":
        per_atom = np.linalg.norm(attr, axis=1) if method == "saliency" else (
            attr[:, 0] if method == "feature_ablation" else attr.sum(axis=1))
    else:
        per_atom = attr
    return Attribution(
        values=per_atom, per_coordinate=attr if inputs == "positions" else None, frame=one,
        model=model.name, target=target, atom=atom, component=component, method=method,
        inputs=inputs, baseline=np.asarray(start), value=value, baseline_value=baseline_value,
        convergence_delta=delta, completeness_error=completeness, n_steps=steps,
        meta={"atom_gate": model.atom_gate, "dtype": model.dtype, "device": model.device,
              "steps_per_pass": steps_per_pass, "source": frames.source, "frame": frame,
              "baseline": _describe_baseline(inputs, baseline)})


def site_energies(model: ModelSpec, atoms: StructuresLike, device: str = "auto") -> np.ndarray:
    """The model's own per-atom energies, which sum to its total energy.

    A fitting construct of the architecture, not an observable: another model, or the same
    one retrained, splits the same energy differently.

    Parameters
    ----------
    model : Model, str, Path or ASE calculator
        A `Model` or anything `mlipviz.load_model` takes.
    atoms : anything `mlipviz.read` takes
        The structures.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"`` for a model loaded by name or path.

    Returns
    -------
    np.ndarray
        eV; all atoms of all frames, concatenated.

    Raises
    ------
    InputError
        The model has no per-atom energy decomposition, or structures `mlipviz.read` refuses.
    ModelNotAvailableError
        A model that cannot be loaded here.
    UnsupportedElementError
        An element the model was not trained on.
    """
    from ..models import load_model

    model = load_model(model, device=device)  # a Model comes back as it is, the device checked
    if not model.has_energies:
        raise InputError(f"model {model.name} has no per-atom energy decomposition")
    return cast(np.ndarray, model.predict(atoms, progress=False).energies)


class _TargetFunction:
    """The target for copies of one structure: positions (S, N, 3), gates (S, N) or None -> (S,)."""

    def __init__(self, model: Model, frame: Frames, target: str, atom: int | None, component: int | None,
                 ref: np.ndarray | None, dtype: torch.dtype, device: torch.device) -> None:
        self.model, self.frame, self.target = model, frame, target
        self.atom, self.component = atom, component
        self.ref = None if ref is None else torch.as_tensor(ref, dtype=dtype, device=device)

    def __call__(self, positions: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
        outer = positions.requires_grad or (gate is not None and gate.requires_grad)
        with torch.enable_grad():
            forces_needed = self.target not in ("energy", "site_energy")
            if forces_needed and not positions.requires_grad:
                positions = positions.detach().requires_grad_(True)
            site = self.model.site_energies_torch(self.frame, positions, gate)
            if self.target == "energy":
                return site.sum(dim=1)
            if self.target == "site_energy":
                return site[:, self.atom]
            grad, = torch.autograd.grad(site.sum(), positions, create_graph=outer)
            force = -grad[:, self.atom]
            if self.target == "force":
                out = force[:, self.component]
            elif self.target == "force_magnitude":
                out = torch.linalg.norm(force, dim=1)
            else:
                out = torch.linalg.norm(force - cast(torch.Tensor, self.ref), dim=1)
            return out if outer else out.detach()


def _check_target(target: str, atom: Any, component: Any, n: int, frame: Frames,
                  index: int) -> tuple[str, int | None, int | None]:
    if target not in TARGETS:
        raise InputError(f"target must be one of {list(TARGETS)}, got {target!r}")
    if target == "energy":
        return target, None, None
    if atom is None or isinstance(atom, bool) or not isinstance(atom, (int, np.integer)) or not 0 <= atom < n:
        raise InputError(f"target {target!r} needs atom= an index from 0 to {n - 1}, got {atom!r}",
                         source=frame.source, frame=index)
    if target != "force":
        return target, int(atom), None
    comp = COMPONENTS.get(component, component) if isinstance(component, str) else component
    if comp not in (0, 1, 2):
        raise InputError(f"target 'force' needs component= 0, 1, 2 or 'x', 'y', 'z', got {component!r}")
    return target, int(atom), int(comp)


def _reference_forces(target: str, atom: Any, reference_forces: Any, frame: Frames, index: int) -> np.ndarray:
    n = frame.total_atoms
    if reference_forces is None:
        if frame.forces is None or not np.isfinite(frame.forces[atom]).all():
            raise MissingLabelsError("target 'force_error' needs reference forces: the structure "
                                     "carries none; pass reference_forces=", source=frame.source,
                                     frame=index, atom=atom)
        return frame.forces[atom]
    ref = np.asarray(reference_forces, dtype=np.float64)
    if ref.shape != (n, 3) or not np.isfinite(ref[atom]).all():
        raise InputError(f"reference_forces must be finite, shape ({n}, 3); got shape {ref.shape}",
                         source=frame.source, frame=index)
    return ref[atom]


def _baseline_positions(model: Model, frame: Frames, baseline: Any, index: int) -> np.ndarray:
    if baseline is None:
        return relaxed_positions(model, frame)
    if isinstance(baseline, (np.ndarray, list, tuple)):
        positions = np.asarray(baseline, dtype=np.float64)
    else:  # a structure: Atoms, Structure, Frames or a file
        from ..io import read

        try:
            other = read(baseline, min_distance=0)
        except InputError as exc:
            raise InputError(f"baseline: {exc}") from exc
        if other.total_atoms != frame.total_atoms or not np.array_equal(other.numbers, frame.numbers):
            raise InputError("the baseline structure must have the same atoms in the same order "
                             f"({frame.total_atoms} atoms)", source=frame.source, frame=index)
        positions = other.positions
    if positions.shape != (frame.total_atoms, 3) or not np.isfinite(positions).all():
        raise InputError(f"baseline positions must be finite, shape ({frame.total_atoms}, 3); got "
                         f"shape {positions.shape}", source=frame.source, frame=index)
    return positions


def relaxed_positions(model: Model, frame: Frames, fmax: float = 0.01, steps: int = 500) -> np.ndarray:
    """Positions of the one-frame ``frame`` relaxed with ``model`` (FIRE, cell fixed).

    Warns (`RuntimeWarning`) when the relaxation stops after ``steps`` steps above ``fmax``;
    the positions are then its last geometry.

    Parameters
    ----------
    model : Model
        A loaded model.
    frame : Frames
        One frame.
    fmax : float
        Convergence: the largest force (eV/Å).
    steps : int
        The most FIRE steps.

    Returns
    -------
    np.ndarray
        (N, 3) positions (Å).
    """
    from ..models.base import ModelCalculator

    atoms = frame.to_atoms(0)
    atoms.calc = ModelCalculator(model)
    opt = FIRE(atoms, logfile=None)
    if not opt.run(fmax=fmax, steps=steps):
        warnings.warn(f"baseline relaxation with {model.name} stopped after {steps} steps above "
                      f"fmax = {fmax} eV/Å; the baseline is its last geometry", RuntimeWarning, stacklevel=3)
    return atoms.positions.copy()


def _describe_baseline(inputs: str, baseline: Any) -> str:
    if inputs == "atom_mask":
        return "all atoms absent (gates 0)" if baseline is None else "gates given"
    return "the structure relaxed with the model (FIRE, fmax 0.01 eV/Å, fixed cell)" \
        if baseline is None else "positions given"
