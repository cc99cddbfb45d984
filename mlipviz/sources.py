"""Structure files read a range of frames at a time, so that no process holds a whole dataset.

`FrameSource` indexes a file once (atoms per frame; for (ext)xyz also where each frame
starts) and then reads any range of frames: mlipviz ``.h5`` by slicing its datasets,
(ext)xyz by seeking to the range's bytes, ASE ``.traj`` by random access. Other formats
ASE reads are parsed from the start up to the range. A source is small and picklable: it
is what `mlipviz.evaluate` sends to its workers.
"""

from __future__ import annotations

import io as _io
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import h5py
import numpy as np
from ase import Atoms
from ase.io import iread
from ase.io import read as ase_read
from ase.io.trajectory import Trajectory

from .errors import EmptyInputError, InputError, MlipvizError, ReadError
from .frames import DEFAULT_MIN_DISTANCE, Frames
from .io import frames_from_atoms, read

_XYZ = (".xyz", ".extxyz")


@dataclass
class FrameSource:
    """One file's frames (``path``), or frames already in memory (``frames``)."""

    path: str | None
    n_atoms: np.ndarray
    kind: str  # "h5", "xyz", "traj", "ase" or "memory"
    format: str | None = None
    byte_offsets: np.ndarray | None = None  # xyz: where each frame starts, plus the file's end
    frames: Frames | None = field(default=None, repr=False)
    size: int = 0  # bytes of the file when indexed
    mtime_ns: int = 0
    offset: int = 0  # index of the first frame held (a `part` holds frames offset.. only)

    @classmethod
    def open(cls, source: Any, format: str | None = None) -> FrameSource:
        """Index a path (a file of frames), or wrap `Frames` / anything `mlipviz.read` takes."""
        if not isinstance(source, (str, Path)):
            frames = source if isinstance(source, Frames) else read(source, min_distance=0)
            return cls(path=None, n_atoms=frames.n_atoms.copy(), kind="memory", frames=frames)
        path = Path(source)
        if not path.is_file():
            raise ReadError("no such file" if not path.exists() else "not a file", source=path)
        stat = path.stat()
        if stat.st_size == 0:
            raise EmptyInputError("file is empty", source=path)
        kind = _kind(path, format)
        offsets = None
        if kind == "h5":
            n_atoms = _h5_sizes(path)
        elif kind == "xyz":
            n_atoms, offsets = _xyz_index(path)
        elif kind == "traj":
            with Trajectory(str(path)) as traj:
                n_atoms = np.array([len(traj[i]) for i in range(len(traj))], dtype=np.int64)
        else:
            n_atoms = np.array([len(a) for a in iread(str(path), index=":", format=format)], dtype=np.int64)
        if len(n_atoms) == 0:
            raise EmptyInputError("file holds no structures", source=path)
        return cls(path=str(path), n_atoms=n_atoms, kind=kind, format=format, byte_offsets=offsets,
                   size=stat.st_size, mtime_ns=stat.st_mtime_ns)

    def __len__(self) -> int:
        return len(self.n_atoms)

    def part(self, start: int, stop: int) -> FrameSource:
        """The source of frames ``start:stop`` only (what one task needs; small to send),
        read with the same indices."""
        lo, hi = start - self.offset, stop - self.offset
        return replace(self, n_atoms=self.n_atoms[lo:hi], offset=start,
                       byte_offsets=None if self.byte_offsets is None else self.byte_offsets[lo:hi + 1],
                       frames=None if self.frames is None else self.frames[lo:hi])

    @property
    def name(self) -> str:
        """The file's path, or "frames in memory"."""
        return self.path or "frames in memory"

    def identity(self) -> dict[str, Any]:
        """What tells this source apart from an edited or another one (for resuming)."""
        if self.kind == "memory":
            assert self.frames is not None
            return {"frames": self.frames.fingerprint()}
        assert self.path is not None
        return {"path": str(Path(self.path).resolve()), "bytes": self.size, "mtime_ns": self.mtime_ns,
                "frames": len(self)}

    def read(self, start: int, stop: int, min_distance: float = DEFAULT_MIN_DISTANCE) -> Frames:
        """Frames ``start:stop``, validated; errors name the file and the frame's index in it."""
        if not self.offset <= start < stop <= self.offset + len(self):
            raise IndexError(f"frames {start}:{stop} out of range for frames {self.offset}.."
                             f"{self.offset + len(self) - 1} of {self.name}")
        try:
            frames = self._read(start, stop)
            if not np.array_equal(frames.n_atoms, self.n_atoms[start - self.offset:stop - self.offset]):
                raise ReadError(f"frames {start}:{stop} changed since the file was indexed; "
                                "index it again", source=self.path)
            frames.source = self.path
            return frames.validate(min_distance)
        except InputError as exc:
            raise shifted(exc, start, self.path) from exc

    def _read(self, start: int, stop: int) -> Frames:
        if self.kind == "memory":
            assert self.frames is not None
            return self.frames[start - self.offset:stop - self.offset]
        assert self.path is not None
        if self.kind == "h5":
            with h5py.File(self.path, "r") as h5:
                return Frames.from_hdf5(h5["frames"], start, stop)
        if self.kind == "xyz":
            assert self.byte_offsets is not None
            lo, hi = (int(self.byte_offsets[i - self.offset]) for i in (start, stop))
            with open(self.path, "rb") as handle:
                handle.seek(lo)
                text = handle.read(hi - lo).decode()
            images = _ase_read(_io.StringIO(text), ":", self.format or "extxyz", self.path)
        elif self.kind == "traj":
            with Trajectory(self.path) as traj:
                images = [traj[i] for i in range(start, stop)]
        else:
            images = _ase_read(self.path, f"{start}:{stop}", self.format, self.path)
        return frames_from_atoms(images, source=self.path)


def shifted(exc: InputError, start: int, path: str | Path | None) -> InputError:
    """``exc`` with its frame counted from the start of the file (not of the range read)."""
    frame = None if exc.frame is None else exc.frame + start
    return type(exc)(exc.problem, source=path if path is not None else exc.source, frame=frame, atom=exc.atom)


def _kind(path: Path, format: str | None) -> str:
    if format is None and path.suffix in (".h5", ".hdf5"):
        return "h5"
    if (format or "").startswith(("xyz", "extxyz")) or (format is None and path.suffix in _XYZ):
        return "xyz"
    if format == "traj" or (format is None and path.suffix == ".traj"):
        return "traj"
    return "ase"


def _h5_sizes(path: Path) -> np.ndarray:
    try:
        with h5py.File(path, "r") as h5:
            return np.asarray(h5["frames"]["n_atoms"][()], dtype=np.int64)
    except (OSError, KeyError) as exc:
        raise ReadError(f"not an mlipviz HDF5 file: {exc}", source=path) from exc


def _xyz_index(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Atoms per frame and each frame's first byte (plus the end), from the count lines."""
    sizes: list[int] = []
    offsets: list[int] = []
    with open(path, "rb") as handle:
        while True:
            where = handle.tell()
            line = handle.readline()
            if not line:
                break
            if not line.strip():
                continue  # blank lines between or after frames
            try:
                n = int(line)
            except ValueError:
                raise ReadError(f"expected the atom count of frame {len(sizes)} at byte {where}, "
                                f"found {line[:60]!r}", source=path, frame=len(sizes)) from None
            offsets.append(where)
            sizes.append(n)
            for _ in range(n + 1):
                if not handle.readline():
                    raise ReadError(f"file ends inside frame {len(sizes) - 1} ({n} atoms announced)",
                                    source=path, frame=len(sizes) - 1)
        end = handle.tell()
    return np.asarray(sizes, dtype=np.int64), np.asarray(offsets + [end], dtype=np.int64)


def _ase_read(handle: str | IO[str], index: str, format: str | None, path: str) -> list[Atoms]:
    try:
        images = ase_read(handle, index=index, format=format)
    except MlipvizError:
        raise
    except Exception as exc:  # ASE raises many types for unreadable files
        raise ReadError(f"ASE could not read it: {type(exc).__name__}: {exc}", source=path) from exc
    return images if isinstance(images, list) else [images]
