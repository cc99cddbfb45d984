"""MD stability: does a short NVT run with a model stay physical, and when does it fail?"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from ase import Atoms
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.neighborlist import neighbor_list

from .. import checks
from ..display import Showable
from ..frames import Frames
from ..units import FS

if TYPE_CHECKING:
    from ..models.base import Model
    from ._types import ModelsSpec, StructureLike


@dataclass
class Stability(Showable):
    """What `md_stability` found; ``show()``: both in a `mlipviz.widgets.StabilityView`.

    Attributes
    ----------
    table : pd.DataFrame
        One row per model (steps done, failed?, why, when, extremes seen, drift).
    trajectories : dict of str to Frames
        Model -> the sampled `Frames` (for the viewer), up to the failure.
    """

    table: pd.DataFrame
    trajectories: dict[str, Frames]


def md_stability(models: ModelsSpec, atoms: StructureLike, temperature: float = 1000.0, steps: int = 1000,
                 timestep: float = 1.0, friction: float = 0.01, seed: int = 0, sample_every: int = 10,
                 min_distance: float = 0.6, max_force: float = 50.0, max_energy_change: float = 1.0,
                 device: str = "auto") -> Stability:
    """Run Langevin NVT (ASE) with each model from the same start and velocities.

    A run fails at the first step where two atoms come closer than ``min_distance`` Å,
    a force exceeds ``max_force`` eV/Å, or the potential energy per atom moves more than
    ``max_energy_change`` eV from its start.
    The energy drift is the slope of a linear fit of the total energy per atom (eV/atom/ps).

    Parameters
    ----------
    models : Model, str, Path, ASE calculator, or a list of those
        The models, each loaded once before any dynamics.
    atoms : ase.Atoms, pymatgen Structure or Molecule, one-frame Frames, or a file
        The start structure.
    temperature : float
        Temperature of the initial velocities and the thermostat (K).
    steps : int
        MD steps per model.
    timestep : float
        In fs.
    friction : float
        Langevin friction, per fs.
    seed : int
        Seed of the initial velocities (and, plus one, of the thermostat's noise).
    sample_every : int
        Steps between the frames kept for the viewer (the failing step is kept too).
    min_distance : float
        Fail when two atoms come closer than this (Å).
    max_force : float
        Fail when a force exceeds this (eV/Å).
    max_energy_change : float
        Fail when the potential energy per atom moves more than this (eV) from its start.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"`` for models loaded by name or path.

    Returns
    -------
    Stability

    Raises
    ------
    InputError
        An empty list of models, a number out of its range, or ``atoms`` that is not one valid structure.
    ArgumentTypeError
        An argument of the wrong type.
    ModelNotAvailableError
        A model that cannot be loaded here.
    """
    from ..io import frames_from_atoms, one_structure
    from ..models import model_specs, resolve_device, resolve_models

    specs = model_specs(models)
    atoms = one_structure(atoms, "atoms")
    temperature = checks.number("temperature", temperature, minimum=0)
    steps = checks.whole_number("steps", steps, minimum=1)
    timestep = checks.number("timestep", timestep, minimum=0, above=True)
    friction = checks.number("friction", friction, minimum=0)
    seed = checks.whole_number("seed", seed, minimum=0)
    sample_every = checks.whole_number("sample_every", sample_every, minimum=1)
    min_distance = checks.number("min_distance", min_distance, minimum=0)
    max_force = checks.number("max_force", max_force, minimum=0, above=True)
    max_energy_change = checks.number("max_energy_change", max_energy_change, minimum=0, above=True)
    resolve_device(device)
    rows, trajectories = [], {}
    for model in resolve_models(specs, device):  # each loaded once, before any dynamics
        row, samples = _run(model, atoms, temperature, steps, timestep, friction, seed, sample_every,
                            min_distance, max_force, max_energy_change)
        rows.append(row)
        trajectories[model.name] = frames_from_atoms(samples)
    return Stability(pd.DataFrame(rows).set_index("model"), trajectories)


def _run(model: Model, atoms: Atoms, temperature: float, steps: int, timestep: float, friction: float, seed: int,
         sample_every: int, min_distance: float, max_force: float,
         max_energy_change: float) -> tuple[dict[str, Any], list[Atoms]]:
    """One model's run of `md_stability`: its table row and the sampled structures."""
    from ..models.base import ModelCalculator

    system = atoms.copy()
    system.calc = ModelCalculator(model)
    MaxwellBoltzmannDistribution(system, temperature_K=temperature, rng=np.random.default_rng(seed))
    with warnings.catch_warnings():
        # ASE >= 3.28 warns that its default fixcm=True will go; kept, so that runs stay comparable
        warnings.filterwarnings("ignore", message=".*fixcm", category=FutureWarning)
        dyn = Langevin(system, timestep * FS, temperature_K=temperature, friction=friction / FS,
                       rng=np.random.default_rng(seed + 1), logfile=None)
    n = len(system)
    e_start = system.get_potential_energy() / n
    samples: list[Atoms] = []
    times: list[float] = []
    totals: list[float] = []
    failure: dict[str, Any] = {"reason": None, "step": None}
    seen = {"min_distance": np.inf, "max_force": 0.0}

    def check() -> None:
        step = dyn.nsteps
        distances = neighbor_list("d", system, min_distance + 2.0)
        closest = float(distances.min()) if len(distances) else np.inf
        force = float(np.linalg.norm(system.get_forces(), axis=1).max())
        e_pot = system.get_potential_energy() / n
        seen["min_distance"] = min(seen["min_distance"], closest)
        seen["max_force"] = max(seen["max_force"], force)
        times.append(step * timestep / 1000)
        totals.append(e_pot + system.get_kinetic_energy() / n)
        reason = (f"atoms {closest:.2f} Å apart" if closest < min_distance else
                  f"force {force:.1f} eV/Å" if force > max_force else
                  f"potential energy moved {e_pot - e_start:+.2f} eV/atom"
                  if abs(e_pot - e_start) > max_energy_change else None)
        if step % sample_every == 0 or reason:
            snap = system.copy()
            snap.info.update(step=step, time_ps=step * timestep / 1000)
            samples.append(snap)
        if reason and failure["reason"] is None:
            failure.update(reason=reason, step=step)
            raise _Stop

    try:
        check()
        for _ in range(steps):
            dyn.run(1)
            check()
    except _Stop:
        pass
    slope = np.polyfit(times, totals, 1)[0] if len(times) > 2 else np.nan
    row = {"model": model.name, "steps_done": dyn.nsteps, "stable": failure["reason"] is None,
           "failure": failure["reason"], "failure_step": failure["step"],
           "failure_time_ps": None if failure["step"] is None else failure["step"] * timestep / 1000,
           "min_distance_seen": seen["min_distance"], "max_force_seen": seen["max_force"],
           "energy_drift_eV_atom_ps": slope}
    return row, samples


class _Stop(Exception):
    pass
