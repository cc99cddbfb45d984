"""Generate mlipviz's bundled reference datasets (deterministic: fixed seeds).

    python scripts/make_examples.py [--only NAME ...] [--jobs N] [--out DIR]

Writes ``mlipviz/examples/data/<name>.h5``: labelled frames (one group per level of theory),
companion sets (uMLIP-relaxed starting structures) and a description generated from the
settings actually used. Reference results are cached on disk (``$MLIPVIZ_CACHE``), so an
interrupted run resumes without recomputing finished frames.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.build import bulk
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.optimize import FIRE

import mlipviz
from mlipviz.examples import DATA_DIR, DATASETS
from mlipviz.settings import shown

SEED = 20251121
UMLIP = "chgnet"  # the uMLIP that drives MD, relaxations and NEB (as in Deng et al. 2025)

MATERIALS = {  # name -> conventional cell, 8 atoms each
    "Si (diamond)": lambda: bulk("Si", "diamond", a=5.43, cubic=True),
    "C (diamond)": lambda: bulk("C", "diamond", a=3.57, cubic=True),
    "MgO (rocksalt)": lambda: bulk("MgO", "rocksalt", a=4.21, cubic=True),
    "NaCl (rocksalt)": lambda: bulk("NaCl", "rocksalt", a=5.64, cubic=True),
    "SiC (zincblende)": lambda: bulk("SiC", "zincblende", a=4.36, cubic=True),
    "Cu (fcc)": lambda: bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 1, 1),
}
HIGH_ENERGY = {"temperature_K": 1000, "timestep_fs": 1.0, "friction_per_fs": 0.01,
               "equilibration_steps": 200, "sample_every": 50, "snapshots": 10,
               "strains": [0.97, 1.03, 0.97, 1.03]}  # linear lattice strain of the last 4
GPAW_SOLIDS = {"ecut": 400.0, "kpoint_density": 1.2, "smearing": 0.05}

VACANCY = {"temperature_K": 1230, "timestep_fs": 1.0, "friction_per_fs": 0.01,
           "equilibration_steps": 200, "sample_every": 50, "snapshots": 10, "neb_images": 7}
GPAW_VACANCY = {"ecut": 300.0, "kpts": (1, 1, 1), "smearing": 0.05}

GPAW_ENERGY_ZERO = ("GPAW total energies are relative to GPAW's isolated spherical reference atoms, "
                    "not to VASP's zero (which MPtrj-trained models learned): compare energy "
                    "differences, forces and stresses, not absolute energies.")

DIATOMICS = {"H2": ("H", 0), "N2": ("N", 0), "O2": ("O", 2), "Si2": ("Si", 2)}  # spin = 2S
ATOM_SPIN = {"H": 1, "N": 3, "O": 2, "Si": 2}  # ground-state atoms (Hund's rule), the dissociation limits
DISTANCES = np.round(np.linspace(0.5, 5.0, 25), 4)
BASIS = "cc-pVTZ"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def umlip_calculator():
    """The uMLIP through mlipviz's adapter (same numbers as its own calculator, faster)."""
    from mlipviz.models.base import ModelCalculator

    return ModelCalculator(mlipviz.load_model(UMLIP, device="cpu"))


def relax(atoms, calc, cell: bool, fmax: float = 0.02):
    from ase.filters import FrechetCellFilter

    atoms = atoms.copy()
    atoms.calc = calc
    FIRE(FrechetCellFilter(atoms) if cell else atoms, logfile=None).run(fmax=fmax, steps=500)
    return atoms.copy()  # without the calculator: a shared one holds the last structure's results


def md_snapshots(atoms, calc, settings, seed):
    """Langevin NVT snapshots after equilibration (velocities and friction from ``seed``)."""
    rng = np.random.default_rng(seed)
    atoms = atoms.copy()
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=settings["temperature_K"], rng=rng)
    dyn = Langevin(atoms, settings["timestep_fs"] * units.fs, temperature_K=settings["temperature_K"],
                   friction=settings["friction_per_fs"] / units.fs, rng=rng, logfile=None)
    dyn.run(settings["equilibration_steps"])
    snapshots = []
    for _ in range(settings["snapshots"]):
        dyn.run(settings["sample_every"])
        snap = atoms.copy()
        snap.calc = None
        snapshots.append(snap)
    return snapshots


def _md_ps(settings) -> float:
    steps = settings["equilibration_steps"] + settings["sample_every"] * settings["snapshots"]
    return steps * settings["timestep_fs"] / 1000


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for package in ("mlipviz", "ase", "numpy", "torch", "chgnet", "gpaw", "gpaw-data", "pyscf"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[package] = md.version(package)
    return out


def write(name: str, out_dir: Path, levels: dict, description: str, parts: dict | None = None) -> Path:
    import h5py

    path = out_dir / f"{name}.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["levels"] = json.dumps(list(levels))
        h5.attrs["description"] = description
        for level, frames in levels.items():
            frames.to_hdf5(h5.create_group(f"frames/{level}"))
        for part, frames in (parts or {}).items():
            frames.to_hdf5(h5.create_group(part))
    log(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return path


# -- datasets -------------------------------------------------------------------

def high_energy_states(out_dir: Path, jobs: int) -> str:
    calc = umlip_calculator()
    relaxed, snapshots = [], []
    for k, (material, build) in enumerate(MATERIALS.items()):
        log(f"high-energy-states: {material}: {UMLIP} relaxation and {HIGH_ENERGY['temperature_K']} K MD")
        start = relax(build(), calc, cell=True)
        start.info["material_id"] = material
        relaxed.append(start)
        snaps = md_snapshots(start, calc, HIGH_ENERGY, SEED + k)
        n_strained = len(HIGH_ENERGY["strains"])
        for i, snap in enumerate(snaps):
            strain = HIGH_ENERGY["strains"][i - (len(snaps) - n_strained)] if i >= len(snaps) - n_strained else 1.0
            snap.set_cell(snap.cell.array * strain, scale_atoms=True)
            snap.info.update(material_id=material, snapshot=i, lattice_strain=strain,
                             temperature_K=HIGH_ENERGY["temperature_K"])
        snapshots += snaps
    frames = mlipviz.read(snapshots)
    ref = mlipviz.reference.GPAW(**GPAW_SOLIDS)
    log(f"high-energy-states: {len(frames)} GPAW single points ({ref.level_of_theory()})")
    labelled = ref.evaluate(frames, n_jobs=jobs)
    grids = sorted({(info["material_id"], tuple(info["reference_kpts"])) for info in labelled.info})
    description = (
        "high-energy-states: high-temperature snapshots in the spirit of Deng et al., npj Comput. "
        "Mater. 11, 9 (2025), made by mlipviz's scripts/make_examples.py.\n"
        f"Materials ({len(MATERIALS)}): {', '.join(MATERIALS)}; conventional cells of 8 atoms.\n"
        f"Sampling: each cell relaxed (positions and cell, FIRE, fmax 0.02 eV/Å) with {UMLIP}; "
        f"Langevin NVT MD with {UMLIP} at {HIGH_ENERGY['temperature_K']} K, "
        f"{HIGH_ENERGY['timestep_fs']} fs steps, friction {HIGH_ENERGY['friction_per_fs']}/fs, "
        f"{HIGH_ENERGY['equilibration_steps']} equilibration steps, then one snapshot every "
        f"{HIGH_ENERGY['sample_every']} steps, {HIGH_ENERGY['snapshots']} per material; the last "
        f"{len(HIGH_ENERGY['strains'])} of each scaled by linear lattice strains "
        f"{HIGH_ENERGY['strains']} (info 'lattice_strain'). Random seed {SEED} + material index.\n"
        f"Labels: {ref.level_of_theory()}; settings {json.dumps(ref.settings())}; "
        f"k-point grids per material {grids}. Energies are GPAW free energies, forces in eV/Å, "
        "stress in eV/Å³ (ASE sign).\n"
        f"Part 'relaxed': the {UMLIP}-relaxed starting structures (no DFT labels).\n"
        f"Versions: {json.dumps(versions())}.\n"
        "What it is not: not the paper's VASP/PBE(+U) data on WBM materials, and not converged to "
        "Materials Project settings (a 400 eV cutoff and coarse k-point grids keep the script "
        "within its time budget); the paper's 20 ps trajectories are here "
        f"{_md_ps(HIGH_ENERGY):g} ps per material. {GPAW_ENERGY_ZERO}")
    write("high-energy-states", out_dir, {"pbe": labelled}, description, {"relaxed": mlipviz.read(relaxed)})
    return description


def si_vacancy_migration(out_dir: Path, jobs: int) -> str:
    from ase.mep import NEB

    calc = umlip_calculator()
    log("si-vacancy-migration: relax bulk Si, build the 63-atom vacancy cell")
    bulk_si = relax(bulk("Si", "diamond", a=5.43, cubic=True), calc, cell=True)
    perfect = bulk_si * (2, 2, 2)
    vacancy_site = perfect.positions[0].copy()
    cell = perfect[1:]  # atom 0 removed
    hopper = int(np.argmin(np.linalg.norm(_mic(cell.positions - vacancy_site, cell), axis=1)))
    initial = relax(cell, calc, cell=False)
    final = initial.copy()
    final.positions[hopper] = vacancy_site
    final = relax(final, calc, cell=False)
    images = [initial] + [initial.copy() for _ in range(VACANCY["neb_images"] - 2)] + [final]
    neb = NEB(images, climb=True, allow_shared_calculator=True)
    neb.interpolate(method="idpp", mic=True)
    for image in images:
        image.calc = calc
    log("si-vacancy-migration: climbing-image NEB")
    FIRE(neb, logfile=None).run(fmax=0.05, steps=1000)
    path = []
    for i, image in enumerate(images):
        snap = image.copy()
        snap.calc = None
        snap.info.update(kind="neb", image=i, migrating_atom=hopper)
        path.append(snap)
    log(f"si-vacancy-migration: {VACANCY['temperature_K']} K MD")
    md = md_snapshots(initial, calc, VACANCY, SEED + 100)
    for i, snap in enumerate(md):
        snap.info.update(kind="md", snapshot=i, migrating_atom=hopper, temperature_K=VACANCY["temperature_K"])
    structures = path + md
    for snap in structures:
        snap.new_array("migrating", np.arange(len(snap)) == hopper)
    frames = mlipviz.read(structures)
    ref = mlipviz.reference.GPAW(**GPAW_VACANCY)
    log(f"si-vacancy-migration: {len(frames)} GPAW single points ({ref.level_of_theory()})")
    labelled = ref.evaluate(frames, n_jobs=jobs)
    barrier = labelled.energy[: len(path)].max() - labelled.energy[0]
    description = (
        "si-vacancy-migration: a neutral vacancy in a 63-atom silicon cell (2x2x2 conventional "
        f"cell of {UMLIP}-relaxed diamond Si, one atom removed), in the spirit of Liu, He & Mo, "
        "npj Comput. Mater. 9, 174 (2023); made by mlipviz's scripts/make_examples.py.\n"
        f"Path: the nearest neighbour (atom {hopper}) hops into the vacancy; end points relaxed "
        f"with {UMLIP} at fixed cell, then a climbing-image NEB with {UMLIP}, "
        f"{VACANCY['neb_images']} images (info kind='neb', 'image').\n"
        f"MD: Langevin NVT with {UMLIP} at {VACANCY['temperature_K']} K, {VACANCY['timestep_fs']} fs "
        f"steps, {VACANCY['equilibration_steps']} equilibration steps, {VACANCY['snapshots']} "
        f"snapshots every {VACANCY['sample_every']} steps (info kind='md'); seed {SEED + 100}.\n"
        f"The migrating atom is marked in every frame: info 'migrating_atom' = {hopper} and the "
        "per-atom boolean array 'migrating'.\n"
        f"Labels: {ref.level_of_theory()}; settings {json.dumps(ref.settings())}. GPAW PBE barrier "
        f"along the {UMLIP} NEB path: {barrier:.3f} eV (highest image minus the first).\n"
        "Part 'relaxed': the relaxed initial and final vacancy structures (no DFT labels).\n"
        f"Versions: {json.dumps(versions())}.\n"
        "What it is not: not the paper's AIMD/VASP data; the path is the uMLIP's NEB path "
        "evaluated with DFT, not a DFT-relaxed NEB; Γ-only k-sampling and a 300 eV cutoff keep "
        f"the cost down; the MD snapshots need not contain a hop. {GPAW_ENERGY_ZERO}")
    relaxed = mlipviz.read([initial.copy(), final.copy()])  # copies drop the shared calculator
    write("si-vacancy-migration", out_dir, {"pbe": labelled}, description, {"relaxed": relaxed})
    return description


def _mic(vectors, atoms):
    from ase.geometry import find_mic

    return find_mic(vectors, atoms.cell, atoms.pbc)[0]


def _scan_start(scan) -> int:
    """Where a dimer curve starts: the distance nearest twice the covalent radius."""
    from ase.data import covalent_radii

    bond = 2 * covalent_radii[scan.numbers[0]]
    return int(np.argmin([abs(info["distance"] - bond) for info in scan.info]))


def _mark_energy_steps(labelled) -> list:
    """Find where a curve's energy change between neighbouring distances differs from the
    trapezoid integral of its forces by more than that rule's own error allows (0.02 eV +
    |dF| dr): a change of SCF solution. Marks the farther frame's info
    'reference_energy_step' and returns (molecule, from Å, to Å, dE, dE from forces)."""
    steps = []
    for molecule in DIATOMICS:
        rows = [i for i, d in enumerate(labelled.info) if d["molecule"] == molecule]
        r = np.array([labelled.info[i]["distance"] for i in rows])
        force = labelled.forces.reshape(len(labelled), 2, 3)[rows, 1, 2]
        change, from_forces = np.diff(labelled.energy[rows]), -(force[1:] + force[:-1]) / 2 * np.diff(r)
        for k in np.flatnonzero(np.abs(change - from_forces) > 0.02 + np.abs(np.diff(force)) * np.diff(r)):
            step = {"from_distance": float(r[k]), "energy_change_eV": round(float(change[k]), 4),
                    "from_forces_eV": round(float(from_forces[k]), 4)}
            labelled.info[rows[k + 1]]["reference_energy_step"] = step
            steps.append([molecule, step["from_distance"], float(r[k + 1]), step["energy_change_eV"],
                          step["from_forces_eV"]])
    return steps


def diatomics(out_dir: Path, jobs: int) -> str:
    from ase import Atoms

    structures = []
    for name, (element, spin) in DIATOMICS.items():
        for r in DISTANCES:
            dimer = Atoms(f"{element}2", positions=[[0, 0, 0], [0, 0, float(r)]])
            dimer.info.update(molecule=name, distance=float(r), spin=spin)
            structures.append(dimer)
    frames = mlipviz.read(structures, min_distance=0.4)
    levels, dropped, refs, limits = {}, {}, {}, {}
    for level, method in (("ccsd(t)", "CCSD(T)"), ("pbe", "PBE")):
        ref = refs[level] = mlipviz.reference.PySCF(method=method, basis=BASIS, broken_symmetry=True)
        log(f"diatomics: {len(frames)} points of {', '.join(DIATOMICS)}, {ref.level_of_theory()}")
        labelled = ref.scan(frames, start=_scan_start, group="molecule", n_jobs=jobs, on_error="nan")
        for name, (element, _spin) in DIATOMICS.items():
            atom = mlipviz.read(Atoms(element))
            atom_energy = mlipviz.reference.PySCF(method=method, basis=BASIS, spin=ATOM_SPIN[element]) \
                .evaluate(atom, n_jobs=1, progress=False).energy[0]
            last = [i for i, d in enumerate(labelled.info)
                    if d["molecule"] == name and np.isfinite(labelled.energy[i])][-1]
            limits.setdefault(level, {})[name] = {
                "distance": labelled.info[last]["distance"],
                "minus_two_atoms_eV": round(float(labelled.energy[last] - 2 * atom_energy), 4)}
        levels[level] = labelled
        dropped[level] = [i for i, d in enumerate(labelled.info) if "reference_error" in d]
        for i in dropped[level]:
            log(f"  dropped: {labelled.info[i]['reference_error']}")
    common = sorted(set(range(len(frames))) - set(dropped["ccsd(t)"]) - set(dropped["pbe"]))
    levels = {k: v[common] for k, v in levels.items()}
    counts = {name: sum(1 for i in common if frames.info[i]["molecule"] == name) for name in DIATOMICS}
    failed_points = {lvl: [(frames.info[i]["molecule"], frames.info[i]["distance"]) for i in idx]
                     for lvl, idx in dropped.items()}
    steps = {level: _mark_energy_steps(labelled) for level, labelled in levels.items()}
    high_t1 = sorted({(d["molecule"], d["distance"]) for d in levels["ccsd(t)"].info
                      if d.get("reference_t1_diagnostic", 0) > 0.02 and d["molecule"] != "H2"})
    description = (
        "diatomics: homonuclear dimer curves, made by mlipviz's scripts/make_examples.py.\n"
        f"Molecules and spin states (2S): {json.dumps({k: v[1] for k, v in DIATOMICS.items()})} "
        "(H2 and N2 singlets, O2 and Si2 triplet ground states). Each curve is a scan "
        "(mlipviz.reference.PySCF.scan): it starts at the distance nearest twice the covalent "
        f"radius with the lowest SCF solution found there ({mlipviz.reference.pyscf_calc.BROKEN_SYMMETRY}) "
        "and runs outward in both directions, each point's SCF continued from its neighbour's, "
        "so that a curve follows one electronic state. For CCSD(T) the (U)HF reference is "
        "followed down its internal instabilities (a restricted one gives way to the "
        "spin-symmetry-broken solution where that appears at stretched bonds) but never "
        "offered another unrestricted solution, so the CCSD(T) curve does not jump where two "
        "UHF solutions cross (an SCF that converges only with the second-order solver may still "
        "land on another: see the energy steps below); for PBE the lower of the continued solution "
        "and the one with spins localised on the atoms is kept, and where the energy drops by more "
        "than the forces explain (a lower solution found further out) the scan runs back inward "
        "from there, keeping each point's lower energy (no UKS stability analysis, so a yet lower "
        "UKS solution may exist). "
        "Which SCF each point used is in info 'reference_scf', its spin contamination in "
        "'reference_s2', the point it was continued from in 'reference_continued_from'. H2 at "
        "CCSD(T): with two electrons CCSD is exact (full CI in the basis) from any reference, "
        "and (T) vanishes.\n"
        f"Distances: {len(DISTANCES)} from {DISTANCES[0]} to {DISTANCES[-1]} Å; points per "
        f"molecule kept: {counts}.\n"
        f"Levels (both stored; load(..., level=)): 'ccsd(t)': {refs['ccsd(t)'].level_of_theory()}; "
        f"'pbe': {refs['pbe'].level_of_theory()}. Same basis ({BASIS}) for both, so differences are "
        "method (DFT) errors, not basis-set errors.\n"
        f"Points where a calculation did not converge and were dropped: {json.dumps(failed_points)}.\n"
        f"CCSD(T) points with T1 diagnostic > 0.02 (multireference character, single-reference "
        f"CCSD(T) unreliable; H2 left out: exact whatever its T1): {json.dumps(high_t1)}. "
        "The T1 diagnostic of every point is in info 'reference_t1_diagnostic'.\n"
        "Energy steps the forces do not account for (energy change between neighbouring "
        "distances minus the trapezoid integral of the forces > 0.02 eV + |dF| dr: the SCF "
        "reference changed solution there, e.g. after a second-order SCF; each is marked in the "
        "farther frame's info 'reference_energy_step'; treat the curve around it as "
        f"qualitative), as [molecule, from Å, to Å, dE, dE from forces] in eV: {json.dumps(steps)}.\n"
        "Dissociation limit check: energy at the largest distance computed minus twice the isolated "
        f"ground-state atom's energy at the same level, in eV: {json.dumps(limits)}. Near zero "
        "means the curve reaches the right limit; a positive offset is the error of a single "
        "determinant there (e.g. triplet O2 dissociating into an Ms = 1 and an Ms = 0 atom).\n"
        f"Versions: {json.dumps(versions())}.\n"
        "What it is not: not complete-basis-set limit values, not multireference (MRCI) curves; "
        "stretched-bond points are spin-contaminated single-reference results, and points beyond "
        "the T1 threshold are qualitative only.")
    write("diatomics", out_dir, levels, description)
    return description



BUILDERS = {"high-energy-states": high_energy_states, "si-vacancy-migration": si_vacancy_migration,
            "diatomics": diatomics}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(DATASETS), help="datasets to make (default: all)")
    parser.add_argument("--jobs", type=int, default=None, help="parallel reference calculations")
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    record = args.out / "run_times.json"
    runs = json.loads(record.read_text()) if record.exists() else []
    timings = {}
    cache = mlipviz.reference.base.default_cache_dir()
    entries = sum(1 for _ in cache.rglob("*.npz")) if cache.is_dir() else 0
    runs.append({"seconds": timings, "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                 # where the cache was, relative to its setting (records are read on other machines),
                 # and how much it held already (0: every reference frame was computed in this run)
                 "cache": shown(cache), "cache_entries_at_start": entries})
    for name in args.only or ["diatomics", "high-energy-states", "si-vacancy-migration"]:
        start = time.perf_counter()
        BUILDERS[name](args.out, args.jobs)
        timings[name] = round(time.perf_counter() - start, 1)
        record.write_text(json.dumps(runs, indent=2) + "\n")  # after each dataset: a crash keeps them
        log(f"{name}: {timings[name]} s")
    log(f"total {sum(timings.values()):.0f} s; every run's times in {record} (finished frames come "
        "from the reference cache, so a rerun costs only what changed)")


if __name__ == "__main__":
    main()
