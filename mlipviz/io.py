"""Reading structures from files and Python objects into `Frames`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
from ase import Atoms
from ase.io import read as ase_read
from ase.io.formats import ioformats
from pymatgen.core import Molecule, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from .errors import ArgumentTypeError, EmptyInputError, InputError, ReadError, UnknownNameError
from .frames import DEFAULT_MIN_DISTANCE, Frames, frames_from_atoms

_H5_SUFFIXES = (".h5", ".hdf5")


def read(source: str | Path | Frames | Atoms | Structure | Molecule | Sequence[Any], index: int | str | slice = ":",
         format: str | None = None, min_distance: float = DEFAULT_MIN_DISTANCE) -> Frames:
    """Read structures into `Frames`.

    Reference labels (energy, forces, stress, per-atom energies) come from the file or the
    objects' calculators.

    Parameters
    ----------
    source : str, Path, Frames, ase.Atoms, pymatgen Structure or Molecule, or a list
        A path to anything ``ase.io.read`` reads (extxyz, traj, POSCAR/CONTCAR, CIF,
        vasprun.xml, OUTCAR, ...) or an mlipviz ``.h5`` file; a pymatgen ``Structure`` /
        ``Molecule``; an ASE ``Atoms``; a list of either; or a `Frames`.
    index : int, str or slice
        Selects frames as in ASE (``":"``, ``-1``, ``"2:10:2"``).
    format : str, optional
        An ASE format name; None guesses it from the file name.
    min_distance : float
        The result is validated: non-finite coordinates and atoms closer than
        ``min_distance`` Å raise `mlipviz.errors.InvalidStructureError` naming the frame and
        atom (``min_distance=0`` skips the overlap check).

    Returns
    -------
    Frames
        The selected, validated frames.

    Raises
    ------
    UnknownNameError
        ``format`` is not a format ASE reads.
    ReadError
        No such file, a folder, a file ASE cannot read, a damaged mlipviz ``.h5`` file, an
        object of another type, or a disordered pymatgen structure.
    EmptyInputError
        An empty file or list, a structure without atoms, or an ``index`` that selects nothing.
    InvalidStructureError
        Non-finite or too large coordinates, a degenerate periodic cell, or overlapping atoms.
    LabelShapeError
        A label whose shape does not match its structure.
    OutOfRangeError
        An ``index`` beyond the frames (of a `Frames` or a list of objects).
    """
    if format is not None and not (isinstance(format, str) and format in ioformats):
        raise UnknownNameError(f"format={format!r} is not a format ASE reads (e.g. "
                               f"{', '.join(sorted(ioformats)[:12])}, ...; None guesses it from the file name)")
    if isinstance(source, Frames):
        frames = source[_as_slice(index)]
    elif isinstance(source, (str, Path)):
        frames = _read_file(Path(source), index, format)
    else:
        objects = source if isinstance(source, (list, tuple)) else [source]
        if not objects:
            raise EmptyInputError("no structures given")
        frames = frames_from_atoms([_to_atoms(obj, i) for i, obj in enumerate(objects)])
        frames = frames[_as_slice(index)]
    if len(frames) == 0:
        raise EmptyInputError(f"no frames selected by index {index!r}", source=frames.source)
    return frames.validate(min_distance)


def _as_slice(index: Any) -> Any:
    if isinstance(index, str):
        if index == ":":
            return slice(None)
        parts = [int(p) if p else None for p in index.split(":")]
        return slice(*parts) if len(parts) > 1 else parts[0]
    return index


def _read_file(path: Path, index: Any, format: str | None) -> Frames:
    if not path.exists():
        raise ReadError("no such file", source=path)
    if path.is_dir():
        raise ReadError("is a directory, not a structure file", source=path)
    if path.stat().st_size == 0:
        raise EmptyInputError("file is empty", source=path)
    if path.suffix in _H5_SUFFIXES and format is None:
        try:
            with h5py.File(path, "r") as h5:
                frames = Frames.from_hdf5(h5["frames"])
        except (OSError, KeyError) as exc:
            raise ReadError(f"not an mlipviz HDF5 file: {exc}", source=path) from exc
        frames.source = str(path)
        return frames[_as_slice(index)]

    try:
        images = ase_read(str(path), index=index, format=format)
    except StopIteration as exc:
        what = "file holds no structures" if index == ":" else f"index {index!r} selects no frames of this file"
        raise EmptyInputError(what, source=path) from exc
    except Exception as exc:  # ASE raises many types for unreadable files
        raise ReadError(f"ASE could not read it: {type(exc).__name__}: {exc}", source=path) from exc
    images = images if isinstance(images, list) else [images]
    if not images:
        raise EmptyInputError(f"no frames selected by index {index!r}", source=path)
    return frames_from_atoms(images, source=str(path))


def one_structure(obj: Any, name: str = "atoms") -> Atoms:
    """One structure as ASE ``Atoms``: an ``Atoms``, a pymatgen ``Structure``/``Molecule``, a
    one-frame `Frames` or a file holding one structure; an `InputError` naming ``name``
    otherwise."""
    if isinstance(obj, Atoms):
        read([obj])  # validated like any input: finite, sized, no overlaps
        return obj
    if isinstance(obj, (str, Path, Frames)) or type(obj).__module__.startswith("pymatgen"):
        frames = read(obj)
        if len(frames) != 1:
            raise InputError(f"{name} must be one structure; got {len(frames)} frames (pick one, e.g. "
                             f"frames[0])", source=frames.source)
        return frames.to_atoms(0)
    raise ArgumentTypeError(f"{name} must be one structure (ASE Atoms, a pymatgen Structure or Molecule, "
                            f"a one-frame Frames or a file); got {type(obj).__name__}")


def _to_atoms(obj: Any, position: int) -> Atoms:
    if isinstance(obj, Atoms):
        return obj
    if isinstance(obj, (Structure, Molecule)):
        if not obj.is_ordered:
            site = next(k for k, s in enumerate(obj) if not s.is_ordered)
            raise ReadError(f"object {position} is a disordered {type(obj).__name__} (site {site} has partial "
                            f"occupancies {obj[site].species}); models need one element per site: order it "
                            "first, e.g. with pymatgen's OrderDisorderedStructureTransformation", atom=site)
        atoms = AseAtomsAdaptor.get_atoms(obj)
        atoms.calc = None  # the adaptor may attach an empty calculator
        return atoms
    raise ReadError(f"cannot read object {position} of type {type(obj).__name__}; expected a path, "
                    "ASE Atoms, pymatgen Structure/Molecule or Frames")
