"""Generated bad-input suite: every public entry point, file format and widget, fed values
that cannot work. Each case must raise an `mlipviz.errors` type (never a bare exception from
ASE, h5py, torch or traitlets, never silent acceptance) whose message names the problem: the
argument, or the file. A per-case time limit turns a hang into a failure.

Cases come from tables: per entry point the arguments and the *kind* of each (a positive whole
number, a non-negative number, a choice, a path, ...), per kind the values that must be refused.
Real models only: ASE's EMT (instant, for arguments checked before any evaluation) and CHGNet
(for attributions and embeddings, which need a torch model).
"""

from __future__ import annotations

import functools
import html
import re
import shutil
import signal
import tempfile
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

import mlipviz
from mlipviz import examples, latent, scan
from mlipviz.errors import MlipvizError

#: seconds a case may take before it counts as a hang (generous: CHGNet loads in the first)
LIMIT_S = 60
NAN, INF = float("nan"), float("inf")


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[], object]
    #: regular expression the message must match (the argument's or the file's name)
    names: str
    error: type = MlipvizError


CASES: list[Case] = []


def case(id: str, call, names: str, error: type = MlipvizError) -> None:
    CASES.append(Case(id, call, names, error))


# -- real inputs the cases spoil ------------------------------------------------------
@functools.cache
def workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="mlipviz-bad-input-"))
    import atexit

    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def labelled(atoms: Atoms, seed: int = 0) -> Atoms:
    """``atoms`` rattled, with EMT labels as its reference."""
    out = atoms.copy()
    out.positions += np.random.default_rng(seed).normal(0, 0.03, out.positions.shape)
    calc = EMT()
    out.calc = calc
    results = {"energy": out.get_potential_energy(), "forces": out.get_forces()}
    if out.pbc.all():
        results["stress"] = out.get_stress()
    out.calc = SinglePointCalculator(out, **results)
    return out


@functools.cache
def cu() -> Atoms:
    return labelled(bulk("Cu", "fcc", a=3.61, cubic=True))


@functools.cache
def frames() -> mlipviz.Frames:
    return mlipviz.Frames.from_atoms([labelled(bulk("Cu", "fcc", a=3.61, cubic=True), s) for s in range(3)])


@functools.cache
def unlabelled() -> mlipviz.Frames:
    return mlipviz.Frames.from_atoms([bulk("Cu", "fcc", a=3.61, cubic=True)])


@functools.cache
def emt() -> mlipviz.Model:
    return mlipviz.load_model(EMT())


@functools.cache
def chgnet() -> mlipviz.Model:
    return mlipviz.load_model("chgnet", device="cpu")


@functools.cache
def comparison() -> mlipviz.Comparison:
    return mlipviz.compare([emt()], frames(), progress=False)


@functools.cache
def embedded() -> mlipviz.Comparison:
    si = [labelled(bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 1, 1), s) for s in range(4)]
    return mlipviz.compare([chgnet()], mlipviz.Frames.from_atoms(si), progress=False, embeddings=True)


@functools.cache
def space():
    return latent.analyse(embedded(), method="pca", k=3)


@functools.cache
def a_scan():
    return scan.strain(cu(), [-0.01, 0.0, 0.01], models=[emt()], reference=EMT())


def folder() -> Path:
    path = workdir() / "a-folder"
    path.mkdir(exist_ok=True)
    return path


def missing_parent(name: str = "out.h5") -> Path:
    return workdir() / "no-such-folder" / name


# -- values that must be refused, by kind ------------------------------------------------
BAD = {
    "positive_int": [0, -1, 2.5, "4", True, NAN],
    "non_negative_int": [-1, 2.5, "4", True],
    "positive": [0.0, -1.0, NAN, INF, "x"],
    "non_negative": [-1.0, NAN, INF, "x"],
    "optional_number": [NAN, INF, "x"],
    "choice": ["nope", 42],
    "flag": ["yes", None],
    "file": [lambda: folder(), lambda: missing_parent()],
    "folder": [lambda: good_file("xyz")],
    "callable": [3, "print"],
    "device": ["gpu", "cuda:x", 3],
}


def generate(entry: str, call: Callable[..., object], arguments: dict[str, str]) -> None:
    """One case per (argument, bad value of its kind): ``call(**{argument: value})``."""
    for argument, kind in arguments.items():
        for k, value in enumerate(BAD[kind]):
            def run(argument=argument, value=value):
                return call(**{argument: value() if callable(value) else value})
            label = kind if callable(value) else repr(value)
            case(f"{entry}-{argument}={label}-{k}", run, re.escape(argument))


# -- read: every file format, spoiled in every way -------------------------------------
FORMATS = ["extxyz", "xyz", "traj", "cif", "vasp", "json", "pdb", "h5"]


@functools.cache
def good_file(fmt: str) -> Path:
    path = workdir() / "good" / f"cu.{fmt}"
    path.parent.mkdir(exist_ok=True)
    if fmt == "h5":
        frames().write(path)
    elif fmt == "vasp":
        from ase.io import write

        write(path, cu(), format="vasp")
    else:
        from ase.io import write

        write(path, [labelled(bulk("Cu", "fcc", a=3.61, cubic=True), s) for s in range(2)]
              if fmt not in ("cif",) else cu())
    return path


def spoiled(fmt: str, how: str) -> Path:
    path = workdir() / how / f"cu-{how}.{fmt}"
    path.parent.mkdir(exist_ok=True)
    if how == "folder":
        path.mkdir(exist_ok=True)
    elif how == "missing":
        pass
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "junk":
        path.write_bytes(np.random.default_rng(1).bytes(3000))
    elif how == "text":
        path.write_text("this is not a structure file\n" * 3)
    elif how == "truncated":
        data = good_file(fmt).read_bytes()
        path.write_bytes(data[: len(data) // 3])
    return path


SPOILS = ["folder", "missing", "empty", "junk", "text", "truncated"]
for _fmt in FORMATS:
    for _how in SPOILS:
        case(f"read-{_fmt}-{_how}", lambda f=_fmt, h=_how: mlipviz.read(spoiled(f, h)),
             re.escape(f"cu-{_how}.{_fmt}"))


def extxyz_with(edit: Callable[[list[str]], list[str]], name: str) -> Path:
    lines = good_file("extxyz").read_text().splitlines()
    path = workdir() / f"{name}.extxyz"
    path.write_text("\n".join(edit(list(lines))) + "\n")
    return path


def _atom_line(lines, frame_line: int, change: Callable[[list[str]], list[str]]) -> list[str]:
    fields = lines[frame_line].split()
    lines[frame_line] = " ".join(change(fields))
    return lines


EXTXYZ_SPOILS = {
    "nan-position": lambda ls: _atom_line(ls, 3, lambda f: [f[0], "nan", *f[2:]]),
    "huge-position": lambda ls: _atom_line(ls, 3, lambda f: [f[0], "1e308", *f[2:]]),
    "inf-position": lambda ls: _atom_line(ls, 2, lambda f: [f[0], f[1], "inf", *f[3:]]),
    "unknown-element": lambda ls: _atom_line(ls, 2, lambda f: ["Xx", *f[1:]]),
    "overlap": lambda ls: _atom_line(ls, 3, lambda f: [f[0], *ls[2].split()[1:4], *f[4:]]),
    "short-row": lambda ls: _atom_line(ls, 3, lambda f: f[:3]),
    "wrong-count": lambda ls: ["7", *ls[1:]],
    "nan-force": lambda ls: _atom_line(ls, 2, lambda f: [*f[:-1], "nan"]),
    "nan-lattice": lambda ls: [ls[0], re.sub(r'Lattice="[^ ]+', 'Lattice="nan', ls[1]), *ls[2:]],
}
for _name, _edit in EXTXYZ_SPOILS.items():
    if _name == "nan-force":  # legal: a missing label (test_nan_labels_mean_missing_not_bad_input)
        continue
    case(f"read-extxyz-{_name}", lambda e=_edit, n=_name: mlipviz.read(extxyz_with(e, f"cu-{n}")),
         re.escape(f"cu-{_name}.extxyz"))

generate("read", lambda **kw: mlipviz.read(good_file("extxyz"), **kw),
         {"min_distance": "non_negative", "format": "choice"})
for _index in [99, "abc", 2.5, "5:9", [0.5]]:
    case(f"read-index={_index!r}", lambda i=_index: mlipviz.read(good_file("extxyz"), index=i), "index")
for _k, _obj in enumerate([None, 42, [], [cu(), 42], {"a": 1}, np.zeros((2, 3))]):
    case(f"read-object-{_k}-{type(_obj).__name__}", lambda o=_obj: mlipviz.read(o), r"structure|object|no structures")


def disordered():
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice.cubic(3.6), [{"Cu": 0.5, "Au": 0.5}], [[0, 0, 0]])


case("read-disordered-structure", lambda: mlipviz.read(disordered()), r"disordered|partial occupanc")
case("read-nan-atoms", lambda: mlipviz.read(Atoms("Cu2", positions=[[0, 0, 0], [NAN, 0, 0]])), r"non-finite")
case("read-empty-atoms", lambda: mlipviz.read(Atoms()), r"no atoms")
case("read-zero-cell-periodic", lambda: mlipviz.read(Atoms("Cu", cell=np.zeros((3, 3)), pbc=True)), r"cell")
case("read-bad-label-shape", lambda: mlipviz.read(
    _with_forces(np.zeros((3, 3)))), r"forces")


def _with_forces(forces) -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.calc = SinglePointCalculator(atoms, energy=0.0)
    atoms.calc.results["forces"] = forces
    return atoms


# -- Frames --------------------------------------------------------------------------------
for _i in [3, -4, 2.5, "0", [0, 7]]:
    case(f"frames-index={_i!r}", lambda i=_i: frames()[i], r"frame|index")
case("frames-with-labels-shape", lambda: frames().with_labels(energy=np.zeros(5)), r"energy")
case("frames-with-labels-unknown", lambda: frames().with_labels(charges=np.zeros(3)), r"charges")
case("frames-to-atoms", lambda: frames().to_atoms(9), r"frame")
case("frames-write-folder", lambda: frames().write(folder()), re.escape("a-folder"))
case("frames-write-missing", lambda: frames().write(missing_parent("x.h5")), r"no-such-folder")

# -- load_model ------------------------------------------------------------------------------
for _spec in [None, 42, 3.5, ["chgnet"], "no-such-model", "", b"chgnet"]:
    case(f"load_model-spec={_spec!r}", lambda s=_spec: mlipviz.load_model(s), r"model|spec")
for _name in ["weights.pt", "weights.model", "weights.pth.tar", "weights.json"]:
    def _junk_weights(name=_name):
        path = workdir() / "weights" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(np.random.default_rng(2).bytes(500))
        return mlipviz.load_model(path)
    case(f"load_model-junk-{_name}", _junk_weights, re.escape(_name))
case("load_model-folder", lambda: mlipviz.load_model(folder()), r"a-folder")
generate("load_model", lambda **kw: mlipviz.load_model("chgnet", **kw),
         {"dtype": "choice", "device": "device", "backend": "choice", "trust": "flag"})
generate("load_model-calculator", lambda **kw: mlipviz.load_model(EMT(), **kw),
         {"dtype": "choice", "device": "device", "trust": "flag"})
for _layer in [0, 99, 1.5, "1"]:
    case(f"load_model-embedding_layer={_layer!r}",
         lambda layer=_layer: mlipviz.load_model("chgnet", device="cpu", embedding_layer=layer), "embedding_layer")

# -- Model.predict ---------------------------------------------------------------------------
generate("predict", lambda **kw: emt().predict(frames(), **{"progress": False, **kw}),
         {"batch_size": "positive_int", "memory_budget": "positive", "checkpoint": "file",
          "callback": "callable", "return_embeddings": "flag", "progress": "flag"})
for _f in [None, 42, "no-such-file.xyz", [1, 2]]:
    case(f"predict-frames={_f!r}", lambda f=_f: emt().predict(f, progress=False), r"frames|structure|file|object")
case("predict-unsupported-element", lambda: emt().predict(mlipviz.read(bulk("Si")), progress=False),
     r"Si|element")
case("predict-embeddings-unsupported", lambda: emt().predict(frames(), return_embeddings=True, progress=False),
     r"embedding")

# -- compare -------------------------------------------------------------------------------
generate("compare", lambda **kw: mlipviz.compare(**{"models": [emt()], "frames": frames(), "progress": False, **kw}),
         {"batch_size": "positive_int", "angle_min_force": "non_negative", "checkpoint_dir": "folder",
          "callback": "callable", "embeddings": "flag", "progress": "flag", "device": "device"})
for _m in [[], [42], "no-such-model", [None], 42, ["chgnet", 3.5]]:
    case(f"compare-models={_m!r}", lambda m=_m: mlipviz.compare(m, frames(), progress=False), r"model")
for _r in [42, "no-such-model", [EMT()]]:
    case(f"compare-reference={_r!r}", lambda r=_r: mlipviz.compare([emt()], frames(), reference=r, progress=False),
         r"reference|model")
case("compare-no-labels", lambda: mlipviz.compare([emt()], unlabelled(), reference=None, progress=False)
     .summary(), r"reference|label")
case("compare-frames-object", lambda: mlipviz.compare([emt()], 42, progress=False), r"frames|object|structure")

# -- Comparison methods ------------------------------------------------------------------------
case("comparison-getitem", lambda: comparison()["nope"], r"nope")
case("comparison-atom_errors", lambda: comparison().atom_errors("nope"), r"nope")
case("comparison-force_vectors", lambda: comparison().force_vectors("nope"), r"nope")
case("comparison-softening-by", lambda: comparison().softening(by="nope"), r"by")
generate("rare_events", lambda **kw: comparison().rare_events(**kw),
         {"threshold": "non_negative", "force_threshold": "non_negative"})
for _t in [(30.0, 15.0), (-1.0, 10.0), ("a", "b"), (NAN, 10.0), 15.0]:
    case(f"rare_events-angle_thresholds={_t!r}", lambda t=_t: comparison().rare_events(angle_thresholds=t),
         "angle_thresholds")
for _atoms in [[2.5], [99], "x", np.array([0.0, 1.0])]:
    case(f"rare_events-atoms={_atoms!r}", lambda a=_atoms: comparison().rare_events(atoms=a), "atom")
case("comparison-save-folder", lambda: comparison().save(folder()), r"a-folder")
case("comparison-save-missing", lambda: comparison().save(missing_parent()), r"no-such-folder")
for _how in ["folder", "missing", "empty", "junk", "truncated"]:
    def _load(how=_how):
        path = workdir() / "cmp" / f"cmp-{how}.h5"
        path.parent.mkdir(exist_ok=True)
        if how == "folder":
            path.mkdir(exist_ok=True)
        elif how == "empty":
            path.write_bytes(b"")
        elif how == "junk":
            path.write_bytes(np.random.default_rng(3).bytes(2000))
        elif how == "truncated":
            good = workdir() / "cmp" / "good.h5"
            comparison().save(good)
            path.write_bytes(good.read_bytes()[:1500])
        return mlipviz.load_comparison(path, lazy=False)
    case(f"load_comparison-{_how}", _load, re.escape(f"cmp-{_how}.h5"))
case("load_comparison-structure-file", lambda: mlipviz.load_comparison(good_file("h5")), r"cu\.h5")

# -- evaluate ----------------------------------------------------------------------------------
generate("evaluate", lambda **kw: mlipviz.evaluate(
    **{"sources": [good_file("extxyz")], "models": [emt()], "store": workdir() / "ev.h5", "progress": False, **kw}),
         {"chunk_frames": "positive_int", "batch_size": "positive_int", "memory_budget": "positive",
          "store": "file", "angle_min_force": "non_negative", "embeddings": "flag", "device": "device"})
for _s in [[], [workdir() / "nope.xyz"], 42, [folder()]]:
    case(f"evaluate-sources={_s!r}", lambda s=_s: mlipviz.evaluate(s, [emt()], store=workdir() / "ev2.h5",
                                                                     progress=False), r"source|file|nope|folder")
case("evaluate-models-empty", lambda: mlipviz.evaluate([good_file("extxyz")], [], store=workdir() / "ev3.h5",
                                                        progress=False), "models")
case("evaluate-client", lambda: mlipviz.evaluate([good_file("extxyz")], [emt()], store=workdir() / "ev4.h5",
                                                  client="x", progress=False), "client")

# -- md_stability ------------------------------------------------------------------------------
generate("md_stability", lambda **kw: mlipviz.md_stability([emt()], cu(), **{"steps": 2, **kw}),
         {"temperature": "non_negative", "steps": "positive_int", "timestep": "positive",
          "friction": "non_negative", "seed": "non_negative_int", "sample_every": "positive_int",
          "min_distance": "non_negative", "max_force": "positive", "max_energy_change": "positive",
          "device": "device"})
case("md_stability-models-empty", lambda: mlipviz.md_stability([], cu(), steps=2), "models")
case("md_stability-atoms", lambda: mlipviz.md_stability([emt()], 42, steps=2), r"atoms|structure|object")

# -- attribute / site_energies ----------------------------------------------------------------
generate("attribute", lambda **kw: mlipviz.attribute(chgnet(), cu(), **kw),
         {"target": "choice", "method": "choice", "inputs": "choice", "n_steps": "positive_int",
          "batch_size": "positive_int", "device": "device"})
ATTRIBUTE_TARGET = {"atom": {"target": "force", "component": 0}, "component": {"target": "force", "atom": 0},
                    "reference_forces": {"target": "force_error", "atom": 0}}
for _arg, _values in {"atom": [2.5, 99, -99, "0", np.float64(1.0)], "component": [5, "q", 1.5],
                      "frame": [5, 1.5, -9], "baseline": [np.zeros((2, 3)), np.full((4, 3), NAN), "x"],
                      "reference_forces": [np.zeros((2, 3)), np.full((4, 3), INF)]}.items():
    for _k, _v in enumerate(_values):
        case(f"attribute-{_arg}-{_k}", lambda a=_arg, v=_v: mlipviz.attribute(
            chgnet(), cu(), **{**ATTRIBUTE_TARGET.get(a, {}), a: v}), re.escape(_arg))
case("attribute-force-without-atom", lambda: mlipviz.attribute(chgnet(), cu(), target="force"), "atom")
case("attribute-model-emt", lambda: mlipviz.attribute(emt(), cu()), r"EMT|attribut|torch|differentiable")
case("attribute-model-object", lambda: mlipviz.attribute(42, cu()), "model")
case("attribute-atoms-object", lambda: mlipviz.attribute(chgnet(), 42), r"atoms|structure|object")
case("site_energies-model", lambda: mlipviz.site_energies(42, cu()), "model")
case("site_energies-atoms", lambda: mlipviz.site_energies(chgnet(), None), r"atoms|structure|object")
case("site_energies-device", lambda: mlipviz.site_energies(chgnet(), cu(), device="gpu"), "device")

# -- scans -------------------------------------------------------------------------------------
_ref = dict(reference=EMT())
generate("strain", lambda **kw: scan.strain(cu(), **{"strains": [-0.01, 0.0, 0.01], "models": [emt()], **_ref, **kw}),
         {"align": "choice"})
for _k, _s in enumerate([[], [NAN], ["a"], [0.6], [-0.5], [[0.1, 0.2]]]):
    case(f"strain-strains-{_k}", lambda s=_s: scan.strain(cu(), s, models=[emt()], **_ref), "strain")
case("strain-models-missing", lambda: scan.strain(cu(), [0.0, 0.01]), "models")
case("strain-scale-negative", lambda: scan.strain(cu(), models=[emt()], scale=[-1.0, 1.0], **_ref), "scale")
case("strain-scale-zero", lambda: scan.strain(cu(), models=[emt()], scale=[0.0, 1.0], **_ref), "scale")
for _k, _v in enumerate([[], [-10.0, 11.0], [0.0, 11.0], [NAN], ["x"]]):
    case(f"eos-volumes-{_k}", lambda v=_v: scan.eos(cu(), v, models=[emt()], **_ref), "volume")
for _arg, _values in {"atom_index": [2.5, 99, "0", np.float64(1.0), True],
                      "direction": [[0, 0, 0], [1, 0], [NAN, 0, 1], "x"], "amplitudes": [[], [NAN], "x"]}.items():
    for _k, _v in enumerate(_values):
        kw = {"atom_index": 0, "direction": [1, 0, 0], "amplitudes": [-0.1, 0.0, 0.1], _arg: _v}
        case(f"displacement-{_arg}-{_k}", lambda kw=kw: scan.displacement(cu(), models=[emt()], **_ref, **kw),
             re.escape(_arg))
for _arg, _values in {"element_a": ["Xx", 42, ""], "element_b": ["Qq"],
                      "distances": [[], [-1.0, 2.0], [0.0, 2.0], [NAN]]}.items():
    for _k, _v in enumerate(_values):
        kw = {"element_a": "Cu", "element_b": "Cu", "distances": [2.0, 2.5], _arg: _v}
        case(f"diatomic-{_arg}-{_k}", lambda kw=kw: scan.diatomic(models=[emt()], **_ref, **kw),
             re.escape(_arg.split("_")[0]))
for _k, _imgs in enumerate([[], [cu()], 42, [cu(), molecule("H2O")]]):
    case(f"path-images-{_k}", lambda i=_imgs: scan.path(i, models=[emt()], **_ref), r"image|path")
for _arg, _values in {"modes": [[99], [1.5], "x"], "delta": [0.0, -0.01, NAN], "amplitudes": [[NAN], []]}.items():
    for _k, _v in enumerate(_values):
        case(f"phonon_mode-{_arg}-{_k}", lambda a=_arg, v=_v: scan.phonon_mode(cu(), [emt()], **_ref, **{a: v}),
             re.escape(_arg.rstrip("s")))
case("birch_murnaghan-kind", lambda: scan.birch_murnaghan(scan.displacement(
    cu(), 0, [1, 0, 0], [-0.05, 0.0, 0.05], [emt()], **_ref)), r"eos|strain")
case("barriers-object", lambda: scan.barriers(42), "scan")

# -- latent ------------------------------------------------------------------------------------
generate("project", lambda **kw: latent.project(embedded(), **{"method": "pca", **kw}),
         {"method": "choice", "standardize": "choice", "n_components": "positive_int", "model": "choice"})
generate("project-umap", lambda **kw: latent.project(embedded(), **{"method": "umap", "n_epochs": 5, **kw}),
         {"n_neighbors": "positive_int", "min_dist": "non_negative", "n_epochs": "positive_int"})
generate("ood_score", lambda **kw: latent.ood_score(embedded(), **kw),
         {"k": "positive_int", "standardize": "choice", "model": "choice"})
case("ood_score-k-too-large", lambda: latent.ood_score(embedded(), k=10_000), "k")
generate("analyse", lambda **kw: latent.analyse(embedded(), **{"method": "pca", **kw}),
         {"method": "choice", "k": "positive_int", "standardize": "choice"})
case("analyse-models", lambda: latent.analyse(embedded(), method="pca", models=["nope"]), "nope")
case("analyse-no-embeddings", lambda: latent.analyse(comparison(), method="pca"), "embedding")
case("ood_correlation-error", lambda: latent.ood_correlation(embedded(), error="nope"), "error")
case("embeddings_of-object", lambda: latent.embeddings_of(42), r"embedding|source|object")

# -- reference calculators (settings checked when made, not when the calculation starts) ------
def gpaw(**kw):
    from mlipviz.reference import GPAW

    return GPAW(**kw)


def pyscf(**kw):
    from mlipviz.reference import PySCF

    return PySCF(**kw)


generate("GPAW", gpaw, {"ecut": "positive", "kpoint_density": "positive", "smearing": "non_negative",
                        "energy_convergence": "positive", "xc": "choice", "spin_polarized": "flag",
                        "n_jobs": "positive_int"})
for _k, _kpts in enumerate([(0, 1, 1), (1.5, 1, 1), (1, 1), "x"]):
    case(f"GPAW-kpts-{_k}", lambda k=_kpts: gpaw(kpts=k), "kpts")
case("GPAW-gpaw_kwargs", lambda: gpaw(gpaw_kwargs="x"), "gpaw_kwargs")
case("GPAW-cache_dir-file", lambda: gpaw(cache_dir=good_file("xyz")), "cache_dir")
case("GPAW-molecule", lambda: gpaw().evaluate(mlipviz.read(molecule("H2O")), progress=False), r"periodic")
generate("PySCF", pyscf, {"method": "choice", "fd_step": "positive", "conv_tol": "positive",
                          "max_memory_mb": "positive_int", "frozen_core": "flag", "broken_symmetry": "flag"})
for _k, _v in enumerate([1.5, "0"]):
    case(f"PySCF-charge-{_k}", lambda v=_v: pyscf(charge=v), "charge")
for _k, _v in enumerate([-1, 1.5, "x"]):
    case(f"PySCF-spin-{_k}", lambda v=_v: pyscf(spin=v), "spin")
case("PySCF-basis", lambda: pyscf(basis="no-such-basis"), "basis")
case("PySCF-periodic", lambda: pyscf(method="HF", basis="sto-3g").evaluate(frames(), progress=False),
     r"periodic|molecule")
case("reference-on_error", lambda: pyscf(method="HF", basis="sto-3g").evaluate(
    mlipviz.read(molecule("H2")), on_error="skip", progress=False), "on_error")

# -- examples ----------------------------------------------------------------------------------
for _n in ["nope", 42, None]:
    case(f"examples-load-{_n!r}", lambda n=_n: examples.load(n), r"nope|name|42|None")
    case(f"examples-describe-{_n!r}", lambda n=_n: examples.describe(n), r"nope|name|42|None")
    case(f"examples-levels-{_n!r}", lambda n=_n: examples.levels(n), r"nope|name|42|None")
case("examples-level", lambda: examples.load("diatomics", level="nope"), "level")
case("examples-part", lambda: examples.load("diatomics", part="nope"), "part")


# -- widgets -----------------------------------------------------------------------------------
def viewer(**kw):
    return mlipviz.view(frames(), **kw)


generate("view", viewer, {"cmap": "choice", "camera": "choice", "representation": "choice",
                          "arrow_scale": "positive", "vmin": "optional_number", "vmax": "optional_number",
                          "symmetric": "flag"})
for _k, _v in enumerate([(0, 1, 1), (1.5, 1, 1), (2, 2), "x"]):
    case(f"view-images-{_k}", lambda v=_v: viewer(images=v), "images")
for _k, _v in enumerate(["nope", np.zeros(5), 42]):
    case(f"view-color_by-{_k}", lambda v=_v: viewer(color_by=v), "color_by")
case("view-arrows", lambda: viewer(arrows={"f": np.zeros((2, 3))}), "arrows")
case("view-object", lambda: mlipviz.view(42), r"structure|object|frames")
for _k, _v in enumerate([[2.5], [99], "x", np.array([1.0])]):
    case(f"viewer-highlight-{_k}", lambda v=_v: viewer().highlight(v), "atom")
case("viewer-pick", lambda: viewer().pick(99), "atom")
case("viewer-frame", lambda: viewer().highlight([0], frame=9), "frame")


def error_map(**kw):
    from mlipviz.widgets.error_map import ErrorMap

    return ErrorMap(comparison(), **kw)


generate("ErrorMap", error_map, {"model": "choice", "metric": "choice"})
case("ErrorMap-comparison", lambda: __import__("mlipviz.widgets.error_map", fromlist=["x"]).ErrorMap(42), "comparison")
case("show-model", lambda: comparison().show(model="nope"), "model")


def latent_map(**kw):
    from mlipviz.widgets.latent_map import LatentMap

    return LatentMap(space(), **kw)


generate("LatentMap", latent_map, {"color_by": "choice"})
case("LatentMap-models", lambda: latent_map(models=["nope"]), "models")
case("ScanView-object", lambda: __import__("mlipviz.widgets.scan_view", fromlist=["x"]).ScanView(42), "scan")
case("AttributionView-nothing", lambda: __import__("mlipviz.widgets.attribution_view", fromlist=["x"])
     .AttributionView(), r"result|model")
case("AttributionView-top", lambda: __import__("mlipviz.widgets.attribution_view", fromlist=["x"])
     .AttributionView(chgnet(), cu(), top=0), "top")


def explorer(**kw):
    return mlipviz.Explorer(**kw)


for _k, _m in enumerate([[42], [None], 42]):
    case(f"Explorer-models-{_k}", lambda m=_m: explorer(models=m), "models")
case("Explorer-structures", lambda: explorer(structures=42), "structures")


def explorer_message(**kw):
    """The Explorer shows a file it cannot read in its message box (the app stays usable); raise
    what it shows, so the case checks the same type and wording."""
    app = explorer(**kw)
    if app.status.value == "not loaded":
        text = html.unescape(re.sub("<[^>]+>", "", app.message.value))
        # the app shows a foreign exception as its type, message and traceback lines
        assert not re.match(r"[A-Za-z]+(Error|Exception): ", text) and ', line ' not in text, text
        raise AppMessage(text)
    return app


class AppMessage(MlipvizError):
    pass


case("Explorer-files-missing", lambda: explorer_message(files=[workdir() / "nope.xyz"]), "nope.xyz")
case("Explorer-files-junk", lambda: explorer_message(files=[spoiled("extxyz", "junk")]), "cu-junk")
case("Explorer-files-folder", lambda: explorer_message(files=[folder()]), "a-folder")
case("Explorer-files-nan", lambda: explorer_message(files=[extxyz_with(EXTXYZ_SPOILS["nan-position"], "cu-nan-app")]),
     r"cu-nan-app.*frame 0, atom 1")
case("Explorer-folder-missing", lambda: explorer(folder=workdir() / "no-such-folder"), "folder")
case("Explorer-folder-file", lambda: explorer(folder=good_file("xyz")), "folder")


# -- the test ------------------------------------------------------------------------------
class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    def alarm(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_there_are_enough_cases():
    assert len(CASES) >= 300, len(CASES)
    assert len({c.id for c in CASES}) == len(CASES), "case ids repeat"


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_a_clear_mlipviz_error(bad: Case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with time_limit(LIMIT_S):
            try:
                result = bad.call()
            except Hang:
                raise
            except Exception as exc:  # noqa: BLE001 - the type is what the test checks
                error = exc
            else:
                pytest.fail(f"accepted without a word; returned {type(result).__name__}")
    assert isinstance(error, bad.error), f"{type(error).__module__}.{type(error).__name__}: {error}"
    assert re.search(bad.names, str(error), flags=re.IGNORECASE), f"message does not name {bad.names!r}: {error}"


# -- what is accepted on purpose -------------------------------------------------------------
def test_nan_labels_mean_missing_not_bad_input():
    """A NaN in a label is a missing label (a file may lack forces for some frames): reading
    keeps it; comparing against labels refuses the unlabelled frame by name rather than making up
    its errors, and the labelled frames compare."""
    frames = mlipviz.read(extxyz_with(EXTXYZ_SPOILS["nan-force"], "cu-nan-force-legal"))
    first = frames.atoms_of(0)
    assert np.isnan(frames.forces[first]).any() and np.isfinite(frames.forces[first.stop:]).all()
    with pytest.raises(mlipviz.errors.MissingLabelsError, match=r"cu-nan-force-legal.extxyz, frame 0"):
        mlipviz.compare([emt()], frames, progress=False)
    assert np.isfinite(mlipviz.compare([emt()], frames[1:], progress=False).per_atom.force_error).all()


@pytest.mark.parametrize("call", [
    lambda: frames()[np.int64(-1)],                             # numpy integers and negative indices, as numpy
    lambda: frames()[np.array([True, False, True])],            # boolean masks
    lambda: mlipviz.read(good_file("extxyz"), index=-1),        # ASE's index forms
    lambda: mlipviz.read(good_file("extxyz"), min_distance=0),  # 0 skips the overlap check
    lambda: scan.displacement(cu(), -1, [1, 0, 0], [0.0, 0.05], [emt()], reference=EMT()),  # last atom
    lambda: scan.strain(cu(), [0.0, 0.01], models=[emt()]),    # models only, no reference
    lambda: mlipviz.compare([emt()], unlabelled(), reference=False, progress=False),  # models side by side
    lambda: mlipviz.view(frames(), vmin=-1, vmax=1, cmap="RdBu_r"),
], ids=["numpy-negative-index", "mask", "read-index-1", "min-distance-0", "negative-atom-index",
        "scan-models-only", "compare-models-only", "view-range"])
def test_legal_edge_cases_are_accepted(call):
    assert call() is not None
