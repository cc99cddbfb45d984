"""Bundled reference datasets with provenance, made by ``scripts/make_examples.py``.

    mlipviz.examples.list()                   # names of the bundled datasets
    mlipviz.examples.describe("diatomics")    # how it was made, and what it is not
    frames = mlipviz.examples.load("high-energy-states")

Every number in these files was computed by the script (fixed seeds); its description,
written by the same script, names code versions, levels of theory, settings and sampling.
"""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import h5py

from ..errors import InputError
from ..frames import Frames

DATA_DIR = Path(__file__).parent / "data"

#: dataset -> one line; the full description is stored in the file itself
DATASETS = {
    "high-energy-states": "1000 K MD snapshots (some strained +-3 %) of six solids, GPAW PBE labels",
    "si-vacancy-migration": "Si vacancy hop in a 63-atom cell: NEB path and 1230 K MD, GPAW PBE labels",
    "diatomics": "H2, N2, O2, Si2 dimer curves, PySCF CCSD(T) and PBE in one basis",
}


def _path(name: str) -> Path:
    if name not in DATASETS:
        raise InputError(f"no bundled dataset '{name}'; choose one of {', '.join(DATASETS)}")
    path = DATA_DIR / f"{name}.h5"
    if not path.exists():
        raise InputError(f"dataset '{name}' has not been generated in this checkout; run "
                         f"python scripts/make_examples.py --only {name}", source=path)
    return path


def list() -> builtins.list[str]:  # noqa: A001 - the public name the docs promise
    """Names of the datasets present in this installation."""
    return [name for name in DATASETS if (DATA_DIR / f"{name}.h5").exists()]


def levels(name: str) -> builtins.list[str]:
    """Levels of theory stored for ``name`` (the first is the default of `load`)."""
    with h5py.File(_path(name), "r") as h5:
        return json.loads(h5.attrs["levels"])


def load(name: str, level: str | None = None, part: str = "frames") -> Frames:
    """The dataset as `Frames` with reference labels and provenance in each frame's info.

    ``level`` picks a level of theory where several are stored (`levels`); ``part``
    picks a stored companion set such as ``"relaxed"`` (the uMLIP-relaxed starting
    structures of high-energy-states and si-vacancy-migration).
    """
    path = _path(name)
    with h5py.File(path, "r") as h5:
        stored = json.loads(h5.attrs["levels"])
        level = level or stored[0]
        if level not in stored:
            raise InputError(f"dataset '{name}' has levels {stored}, not '{level}'", source=path)
        group = f"{part}/{level}" if part == "frames" else part
        if group not in h5:
            raise InputError(f"dataset '{name}' has no part '{part}'", source=path)
        frames = Frames.from_hdf5(h5[group])
    frames.source = str(path)
    return frames


def describe(name: str) -> str:
    """How the dataset was made (codes, versions, settings, sampling) and what it is not."""
    with h5py.File(_path(name), "r") as h5:
        return str(h5.attrs["description"])
