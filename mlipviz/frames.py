"""`Frames`: many structures stored as compact arrays.

All atoms of all frames are concatenated: ``positions`` is ``(n_atoms_total, 3)``
and frame ``i`` owns rows ``offsets[i]:offsets[i+1]``, so frames may differ in
size. Reference labels ride along in the same layout.

Units follow ASE: Å, eV, eV/Å, and stress as a full 3x3 tensor in eV/Å³ with
ASE's sign convention.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import ase.io
import h5py
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import chemical_symbols
from ase.neighborlist import primitive_neighbor_list

from . import checks
from .errors import (
    ArgumentTypeError,
    EmptyInputError,
    InputError,
    InvalidStructureError,
    LabelShapeError,
    OutOfRangeError,
)

#: atoms closer than this (Å) are reported as overlapping by `Frames.validate`.
DEFAULT_MIN_DISTANCE = 0.25
#: |coordinate| and cell-vector components above this (Å) are refused: 1e6 Å is 0.1 mm, so a
#: larger value is a unit mistake or garbage that would overflow a neighbour list, not a structure
MAX_COORDINATE = 1e6

LABELS = ("energy", "forces", "stress", "energies")
_PER_FRAME = ("n_atoms", "cells", "pbc", "energy", "stress")
#: bytes of per-frame info JSON kept in an HDF5 attribute; more goes to a dataset.
INFO_ATTRIBUTE_LIMIT = 32768


@dataclass
class Frames:
    """Structures and their reference labels as concatenated arrays.

    Labels are optional; a missing value within a present label is NaN.
    ``arrays`` holds extra per-atom arrays (e.g. a mask of migrating atoms).
    All atoms of all frames are concatenated: frame ``i`` owns rows
    ``offsets[i]:offsets[i+1]`` of the per-atom arrays, so frames may differ in size.

    Parameters
    ----------
    positions : np.ndarray
        Cartesian positions (Å) of all atoms, ``(n_atoms_total, 3)``.
    numbers : np.ndarray
        Atomic numbers, ``(n_atoms_total,)``.
    n_atoms : np.ndarray
        Atoms per frame, ``(n_frames,)``.
    cells : np.ndarray
        Cell vectors (Å) as rows, ``(n_frames, 3, 3)``.
    pbc : np.ndarray
        Periodic directions, ``(n_frames, 3)`` bools.
    info : list of dict, optional
        Per-frame metadata (ASE's ``Atoms.info``); empty dicts by default.
    energy : np.ndarray, optional
        Reference energies (eV), ``(n_frames,)``.
    forces : np.ndarray, optional
        Reference forces (eV/Å), ``(n_atoms_total, 3)``.
    stress : np.ndarray, optional
        Reference stresses (eV/Å³, ASE's sign), ``(n_frames, 3, 3)`` or Voigt ``(n_frames, 6)``.
    energies : np.ndarray, optional
        Reference per-atom energies (eV), ``(n_atoms_total,)``.
    arrays : dict of str to np.ndarray, optional
        Extra per-atom arrays, one row per atom.
    source : str, optional
        The file the frames were read from, named in error messages.

    Attributes
    ----------
    offsets : np.ndarray
        ``(n_frames + 1,)``: frame ``i`` owns rows ``offsets[i]:offsets[i+1]``.

    Raises
    ------
    LabelShapeError
        An array, a label or an ``info`` list whose length does not match the atoms or frames.
    """

    positions: np.ndarray
    numbers: np.ndarray
    n_atoms: np.ndarray
    cells: np.ndarray
    pbc: np.ndarray
    info: list[dict] = field(default_factory=list)
    energy: np.ndarray | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    energies: np.ndarray | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.numbers = np.asarray(self.numbers, dtype=np.int64).reshape(-1)
        self.n_atoms = np.asarray(self.n_atoms, dtype=np.int64).reshape(-1)
        n = len(self.n_atoms)
        self.cells = np.asarray(self.cells, dtype=np.float64).reshape(n, 3, 3)
        self.pbc = np.asarray(self.pbc, dtype=bool).reshape(n, 3)
        if not self.info:
            self.info = [{} for _ in range(n)]
        self.offsets = np.concatenate([[0], np.cumsum(self.n_atoms)]).astype(np.int64)
        self._check_shapes()

    # -- shape checks -------------------------------------------------------
    def _check_shapes(self) -> None:
        n, total = len(self.n_atoms), int(self.offsets[-1])
        if len(self.positions) != total or len(self.numbers) != total:
            raise LabelShapeError(
                f"{len(self.positions)} positions and {len(self.numbers)} atomic numbers "
                f"for {total} atoms", source=self.source)
        if len(self.info) != n:
            raise LabelShapeError(f"{len(self.info)} info dicts for {n} frames", source=self.source)
        expected = {"energy": (n,), "forces": (total, 3), "stress": (n, 3, 3), "energies": (total,)}
        for name, shape in expected.items():
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value, dtype=np.float64)
            if name == "stress" and value.shape == (n, 6):
                value = voigt_to_full(value)
            if value.shape != shape:
                raise LabelShapeError(f"label '{name}' has shape {value.shape}, expected {shape}",
                                      source=self.source)
            setattr(self, name, value)
        for name, value in list(self.arrays.items()):
            value = np.asarray(value)
            if len(value) != total:
                raise LabelShapeError(
                    f"per-atom array '{name}' has {len(value)} rows for {total} atoms",
                    source=self.source)
            self.arrays[name] = value

    # -- construction -------------------------------------------------------
    @classmethod
    def from_atoms(cls, atoms_list: Iterable[Atoms], source: str | None = None) -> Frames:
        """Build from ASE ``Atoms``, taking labels from each one's calculator results.

        Parameters
        ----------
        atoms_list : iterable of ase.Atoms
            The structures; energy, forces, stress and per-atom energies come from each
            one's calculator results.
        source : str, optional
            The file they came from, named in error messages.

        Returns
        -------
        Frames

        Raises
        ------
        EmptyInputError
            No structures, or a structure without atoms.
        LabelShapeError
            A calculator result whose shape does not match its structure.
        """
        return frames_from_atoms(list(atoms_list), source=source)

    @classmethod
    def concatenate(cls, parts: Sequence[Frames]) -> Frames:
        """Join several `Frames` into one; labels missing in a part become NaN.

        Parameters
        ----------
        parts : sequence of Frames
            The parts, in order; per-atom ``arrays`` present in every part are kept.

        Returns
        -------
        Frames
            One part itself, or the joined frames (with the parts' ``source`` if they share one).
        """
        parts = list(parts)
        if len(parts) == 1:
            return parts[0]
        kw: dict[str, Any] = {
            "positions": np.concatenate([p.positions for p in parts]),
            "numbers": np.concatenate([p.numbers for p in parts]),
            "n_atoms": np.concatenate([p.n_atoms for p in parts]),
            "cells": np.concatenate([p.cells for p in parts]),
            "pbc": np.concatenate([p.pbc for p in parts]),
            "info": [d for p in parts for d in p.info],
        }
        shapes = {"energy": (), "forces": (3,), "stress": (3, 3), "energies": ()}
        for name, tail in shapes.items():
            if any(getattr(p, name) is not None for p in parts):
                kw[name] = np.concatenate([
                    getattr(p, name) if getattr(p, name) is not None
                    else np.full(((len(p) if name in ("energy", "stress") else p.total_atoms),) + tail, np.nan)
                    for p in parts])
        common = set.intersection(*(set(p.arrays) for p in parts))
        kw["arrays"] = {k: np.concatenate([p.arrays[k] for p in parts]) for k in common}
        sources = {p.source for p in parts}
        kw["source"] = sources.pop() if len(sources) == 1 else None
        return cls(**kw)

    # -- access -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.n_atoms)

    @property
    def total_atoms(self) -> int:
        """Number of atoms in all frames together."""
        return int(self.offsets[-1])

    @property
    def frame_index(self) -> np.ndarray:
        """Frame number of every atom, shape ``(n_atoms_total,)``."""
        return np.repeat(np.arange(len(self)), self.n_atoms)

    @property
    def atom_index(self) -> np.ndarray:
        """Index of every atom within its own frame."""
        return np.arange(self.total_atoms) - np.repeat(self.offsets[:-1], self.n_atoms)

    @property
    def has_labels(self) -> dict[str, bool]:
        """Which reference labels are present (and not all NaN)."""
        return {k: getattr(self, k) is not None and not np.all(np.isnan(getattr(self, k)))
                for k in LABELS}

    @property
    def same_atoms(self) -> bool:
        """Whether every frame has the same atoms (elements) in the same order, as in a trajectory."""
        counts = self.n_atoms
        if not len(self):
            return True
        if not np.all(counts == counts[0]):
            return False
        return bool(np.all(self.numbers.reshape(len(self), -1) == self.numbers[:counts[0]]))

    #: ``info`` keys that name the level of theory of the labels, first found wins
    THEORY_KEYS: ClassVar[tuple[str, ...]] = ("reference", "level_of_theory", "method")

    def describe(self) -> dict[str, Any]:
        """What the frames hold, for a reader.

        Returns
        -------
        dict
            ``frames``, ``atoms`` (total), ``atoms_per_frame`` (min, max), ``elements`` (symbols
            in order of atomic number), ``same_atoms`` (every frame has the same atoms in the same
            order: a trajectory), ``labels`` (names present), ``level_of_theory`` (the distinct
            values of the first of `THEORY_KEYS` the frames' ``info`` carries; empty if none).
        """
        counts = self.n_atoms
        theory: list[str] = []
        for key in self.THEORY_KEYS:
            values = [str(d[key]) for d in self.info if d.get(key) not in (None, "")]
            if values:
                theory = list(dict.fromkeys(values))
                break
        return {"frames": len(self), "atoms": self.total_atoms,
                "atoms_per_frame": (int(counts.min()), int(counts.max())) if len(self) else (0, 0),
                "elements": [chemical_symbols[z] for z in np.unique(self.numbers)],
                "same_atoms": self.same_atoms, "labels": [k for k, v in self.has_labels.items() if v],
                "level_of_theory": theory}

    def atoms_of(self, i: int) -> slice:
        """Rows of frame ``i`` in the per-atom arrays.

        Parameters
        ----------
        i : int
            Frame index; negative counts from the end.

        Returns
        -------
        slice

        Raises
        ------
        ArgumentTypeError
            ``i`` is not a whole number.
        OutOfRangeError
            No frame ``i``.
        """
        i = self._check_index(i)
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def _check_index(self, i: Any) -> int:
        n = len(self)
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise ArgumentTypeError(f"frame index must be a whole number, got {i!r}")
        if not -n <= i < n:
            raise OutOfRangeError(f"frame {i} out of range for {n} frames")
        return int(i) % n

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> Frames:
        """Frames at an int, slice, index array or boolean mask (always a `Frames`).

        Raises
        ------
        ArgumentTypeError
            Indices that are not whole numbers.
        OutOfRangeError
            An index beyond the frames.
        InputError
            A boolean mask of the wrong shape.
        """
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            index = [self._check_index(int(index))]
        elif not isinstance(index, slice):
            array = np.asarray(index)
            if array.dtype == bool:
                if array.shape != (len(self),):
                    raise InputError(f"frame mask has shape {array.shape}, expected ({len(self)},)")
            else:
                index = checks.indices("frame index", index, len(self), what="frame")
        idx = np.arange(len(self))[index]
        idx = np.atleast_1d(idx)
        rows = (np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in idx])
                if len(idx) else np.zeros(0, dtype=np.int64))
        kw = {
            "positions": self.positions[rows], "numbers": self.numbers[rows],
            "n_atoms": self.n_atoms[idx], "cells": self.cells[idx], "pbc": self.pbc[idx],
            "info": [dict(self.info[i]) for i in idx],
            "arrays": {k: v[rows] for k, v in self.arrays.items()},
            "source": self.source,
        }
        for name in LABELS:
            value = getattr(self, name)
            if value is not None:
                kw[name] = value[idx] if name in ("energy", "stress") else value[rows]
        if len(idx) == 0:
            kw["info"] = []
        return Frames(**kw)

    def __iter__(self) -> Iterator[Atoms]:
        """Every frame as ASE ``Atoms`` (see `to_atoms`)."""
        for i in range(len(self)):
            yield self.to_atoms(i)

    def to_atoms(self, i: int) -> Atoms:
        """Frame ``i`` as ASE ``Atoms``; labels as a `SinglePointCalculator`.

        Parameters
        ----------
        i : int
            Frame index; negative counts from the end.

        Returns
        -------
        ase.Atoms
            With ``info`` and the per-atom ``arrays``; labels that are finite for this frame
            as its calculator's results (stress in Voigt order).

        Raises
        ------
        ArgumentTypeError
            ``i`` is not a whole number.
        OutOfRangeError
            No frame ``i``.
        """
        i = self._check_index(i)
        rows = self.atoms_of(i)
        atoms = Atoms(numbers=self.numbers[rows], positions=self.positions[rows],
                      cell=self.cells[i], pbc=self.pbc[i], info=dict(self.info[i]))
        for name, value in self.arrays.items():
            atoms.new_array(name, np.array(value[rows]))
        results: dict[str, Any] = {}
        for name in LABELS:
            value = getattr(self, name)
            if value is None:
                continue
            value = value[i] if name in ("energy", "stress") else value[rows]
            if np.all(np.isfinite(value)):
                results[name] = float(value) if name == "energy" else np.array(value)
        if "stress" in results:
            results["stress"] = full_to_voigt(results["stress"])
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        return atoms

    def write(self, path: str | Path, **kwargs: Any) -> None:
        """Write all frames: ``.h5``/``.hdf5`` in mlipviz's own format, else via ``ase.io.write``.

        Parameters
        ----------
        path : str or Path
            The file; its suffix chooses the format.
        **kwargs
            Passed to ``ase.io.write`` (e.g. ``format=``).

        Raises
        ------
        ArgumentTypeError
            ``path`` is not a path.
        InputError
            ``path`` is a folder, or its folder does not exist.
        """
        path = checks.output_path("path", path)
        if path.suffix in (".h5", ".hdf5"):
            with h5py.File(path, "w") as h5:
                self.to_hdf5(h5.create_group("frames"))
            return
        ase.io.write(str(path), list(self), **kwargs)

    # -- validation ---------------------------------------------------------
    def validate(self, min_distance: float = DEFAULT_MIN_DISTANCE) -> Frames:
        """Raise `InvalidStructureError` on non-finite data, coordinates or cell vectors beyond
        `MAX_COORDINATE` Å, or atoms closer than ``min_distance`` Å.

        Parameters
        ----------
        min_distance : float
            Atoms closer than this (Å) overlap; 0 skips the overlap check.

        Returns
        -------
        Frames
            The frames themselves, when valid.

        Raises
        ------
        InvalidStructureError
            Non-finite or too large coordinates or cells, a periodic frame with a degenerate
            cell, or overlapping atoms; the message names the frame and atom.
        ArgumentTypeError
            ``min_distance`` is not a number.
        InputError
            ``min_distance`` is negative or not finite.
        """
        min_distance = checks.number("min_distance", min_distance, minimum=0.0)
        bad = ~(np.abs(self.positions) <= MAX_COORDINATE).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            frame = int(self.frame_index[row])
            what = "non-finite" if not np.isfinite(self.positions[row]).all() else \
                f"beyond {MAX_COORDINATE:g} Å (no structure is that large; units other than Å?):"
            raise InvalidStructureError(
                f"{what} coordinates {self.positions[row].tolist()}",
                source=self.source, frame=frame, atom=int(row - self.offsets[frame]))
        bad_cells = ~(np.abs(self.cells) <= MAX_COORDINATE).all(axis=(1, 2))
        if bad_cells.any():
            raise InvalidStructureError(f"non-finite cell or a cell vector beyond {MAX_COORDINATE:g} Å",
                                        source=self.source, frame=int(np.flatnonzero(bad_cells)[0]))
        for i in np.flatnonzero(self.pbc.any(axis=1)):
            volume = abs(np.linalg.det(self.cells[i][self.pbc[i]][:, self.pbc[i]])) if self.pbc[i].all() \
                else np.linalg.norm(self.cells[i][self.pbc[i]], axis=1).prod()
            if not volume > 1e-6:
                raise InvalidStructureError("periodic frame with a degenerate (zero-volume) cell",
                                            source=self.source, frame=int(i))
        if min_distance > 0:
            self._check_overlaps(min_distance)
        return self

    def _check_overlaps(self, min_distance: float) -> None:
        for i in range(len(self)):
            rows = self.atoms_of(i)
            if rows.stop - rows.start < 2:
                continue
            first, second, dist = primitive_neighbor_list(
                "ijd", self.pbc[i], self.cells[i], self.positions[rows], min_distance,
                self_interaction=False)
            if len(first):
                k = int(np.argmin(dist))
                raise InvalidStructureError(
                    f"atoms {first[k]} and {second[k]} overlap: {dist[k]:.3f} Å apart, "
                    f"below {min_distance} Å", source=self.source, frame=i, atom=int(first[k]))

    def fingerprint(self) -> str:
        """Hash of the geometry (numbers, positions, cells, pbc) to match checkpoints.

        Returns
        -------
        str
            A SHA-1 hex digest.
        """
        digest = hashlib.sha1()
        for array in (self.n_atoms, self.numbers, self.positions, self.cells, self.pbc):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    # -- HDF5 ---------------------------------------------------------------
    def to_hdf5(self, group: h5py.Group, compress: bool = True) -> None:
        """Store into an open ``h5py`` group.

        Parameters
        ----------
        group : h5py.Group
            An open, writable group.
        compress : bool
            Gzip arrays above 4096 entries; ``compress=False`` keeps arrays contiguous, so
            `from_hdf5(lazy=True)` can map them.
        """

        def store(parent: h5py.Group, name: str, value: np.ndarray) -> None:
            parent.create_dataset(name, data=value,
                                  compression="gzip" if compress and value.size > 4096 else None)

        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("info", "arrays", "source") or value is None:
                continue
            store(group, f.name, value)
        texts = [json.dumps(d, default=_json_default) for d in self.info]
        if sum(map(len, texts)) < INFO_ATTRIBUTE_LIMIT:
            group.attrs["info"] = "[" + ", ".join(texts) + "]"
        else:  # HDF5 attributes hold at most 64 KiB
            group.create_dataset("info", data=texts, dtype=h5py.string_dtype())
        group.attrs["source"] = "" if self.source is None else str(self.source)
        arrays = group.create_group("arrays")
        for name, value in self.arrays.items():
            store(arrays, name, value)

    @classmethod
    def from_hdf5(cls, group: h5py.Group, start: int = 0, stop: int | None = None, lazy: bool = False) -> Frames:
        """Read frames ``start:stop`` of what `to_hdf5` (or `mlipviz.evaluate`) stored.

        Parameters
        ----------
        group : h5py.Group
            The group `to_hdf5` wrote.
        start, stop : int, optional
            The frames to read (all by default).
        lazy : bool
            Map uncompressed, contiguous arrays from the file instead of reading them
            (read-only; the operating system reads the pages a view or analysis touches).
            Only when all frames are read.

        Returns
        -------
        Frames
        """
        n_atoms = np.asarray(group["n_atoms"][()], dtype=np.int64)
        stop = len(n_atoms) if stop is None else stop
        offsets = np.concatenate([[0], np.cumsum(n_atoms)])
        whole = start == 0 and stop == len(n_atoms)

        def load(dataset: h5py.Dataset, per_frame: bool) -> np.ndarray:
            if lazy and whole:
                return mapped(dataset)
            return dataset[start:stop] if per_frame else dataset[offsets[start]:offsets[stop]]

        kw: dict[str, Any] = {k: load(group[k], k in _PER_FRAME) for k in group
                              if k not in ("arrays", "info", "n_atoms")}
        kw["n_atoms"] = n_atoms[start:stop]
        kw["info"] = read_info(group, start, stop)
        kw["arrays"] = ({k: load(v, False) for k, v in group["arrays"].items()}
                        if "arrays" in group else {})
        kw["source"] = group.attrs.get("source") or None
        return cls(**kw)

    def with_labels(self, **labels: Any) -> Frames:
        """A copy with labels (``energy``, ``forces``, ``stress``, ``energies``) replaced.

        Parameters
        ----------
        **labels : array_like or None
            The new labels by name; None removes one.

        Returns
        -------
        Frames

        Raises
        ------
        InputError
            A name that is not a label.
        LabelShapeError
            A label of the wrong shape.
        """
        unknown = sorted(set(labels) - set(LABELS))
        if unknown:
            raise InputError(f"with_labels: {unknown[0]!r} is not a label; labels are {', '.join(LABELS)}")
        return replace(self[:], **labels)

    def __repr__(self) -> str:
        labels = [k for k, v in self.has_labels.items() if v]
        return (f"Frames({len(self)} frames, {self.total_atoms} atoms, "
                f"labels={labels or 'none'}" + (f", source={self.source!r})" if self.source else ")"))


def voigt_to_full(stress: Any) -> np.ndarray:
    """(..., 6) Voigt (xx, yy, zz, yz, xz, xy) to (..., 3, 3)."""
    s = np.asarray(stress, dtype=np.float64)
    xx, yy, zz, yz, xz, xy = np.moveaxis(s, -1, 0)
    return np.stack([np.stack([xx, xy, xz], -1), np.stack([xy, yy, yz], -1),
                     np.stack([xz, yz, zz], -1)], -2)


def full_to_voigt(stress: Any) -> np.ndarray:
    """(..., 3, 3) to (..., 6) Voigt in ASE order."""
    s = np.asarray(stress, dtype=np.float64)
    return np.stack([s[..., 0, 0], s[..., 1, 1], s[..., 2, 2], s[..., 1, 2], s[..., 0, 2], s[..., 0, 1]], -1)


def read_info(group: h5py.Group, start: int = 0, stop: int | None = None) -> list[dict]:
    """The per-frame ``info`` of frames ``start:stop`` stored by `Frames.to_hdf5`."""
    if "info" in group:  # one JSON text per frame (large sets)
        return [json.loads(t, object_hook=_json_hook) for t in group["info"].asstr()[start:stop]]
    return json.loads(group.attrs["info"], object_hook=_json_hook)[start:stop]


def mapped(dataset: h5py.Dataset) -> np.ndarray:
    """An HDF5 dataset as a read-only memory map of its file when it is stored uncompressed
    and contiguous (nothing read yet), else its values read into memory."""
    offset = dataset.id.get_offset()
    if offset is None or dataset.chunks is not None or dataset.dtype.kind not in "biuf":
        return dataset[()]
    return np.memmap(dataset.file.filename, mode="r", dtype=dataset.dtype, shape=dataset.shape,
                     offset=offset)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"info value of type {type(obj).__name__} cannot be stored")


def _json_hook(obj: dict) -> Any:
    if "__ndarray__" in obj:
        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
    return obj


def frames_from_atoms(images: Sequence[Atoms], source: str | None = None) -> Frames:
    """Pack ASE ``Atoms`` into `Frames`, with labels from their calculators' results."""
    if not images:
        raise EmptyInputError("no structures given", source=source)
    n_atoms = np.array([len(a) for a in images])
    empty = np.flatnonzero(n_atoms == 0)
    if len(empty):
        raise EmptyInputError("structure has no atoms", source=source, frame=int(empty[0]))
    total = int(n_atoms.sum())
    labels = {"energy": np.full(len(images), np.nan), "forces": np.full((total, 3), np.nan),
              "stress": np.full((len(images), 3, 3), np.nan), "energies": np.full(total, np.nan)}
    present = set()
    offsets = np.concatenate([[0], np.cumsum(n_atoms)])
    array_names = set.intersection(*(set(a.arrays) for a in images)) - {"numbers", "positions"}
    for i, atoms in enumerate(images):
        results = getattr(atoms.calc, "results", None) or {}
        rows = slice(offsets[i], offsets[i + 1])
        for name, value in results.items():
            if name == "free_energy" and "energy" in results:
                continue
            key = "energy" if name == "free_energy" else name
            if key not in labels or value is None:
                continue
            value = np.asarray(value, dtype=np.float64)
            expected = {"energy": (), "forces": (len(atoms), 3), "energies": (len(atoms),)}.get(key)
            if key == "stress":
                value = voigt_to_full(value) if value.shape == (6,) else value
                expected = (3, 3)
            if value.shape != expected:
                raise LabelShapeError(
                    f"label '{key}' has shape {value.shape}, expected {expected} for {len(atoms)} atoms",
                    source=source, frame=i)
            target = labels[key]
            if key in ("energy", "stress"):
                target[i] = value
            else:
                target[rows] = value
            present.add(key)
    return Frames(
        positions=np.concatenate([a.positions for a in images]),
        numbers=np.concatenate([a.numbers for a in images]),
        n_atoms=n_atoms,
        cells=np.stack([a.cell.array for a in images]),
        pbc=np.stack([a.pbc for a in images]),
        info=[dict(a.info) for a in images],
        arrays={k: np.concatenate([a.arrays[k] for a in images]) for k in array_names},
        source=source,
        **{k: labels[k] for k in present},
    )
