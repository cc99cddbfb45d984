"""Writing files so that a failure never leaves half of one: atomic replacement, HDF5 files
built in memory, a disk-space check, and h5py's error messages without their wrapping.

Below every other layer (frames, models and analysis all write through it).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py

from .errors import InputError, MlipvizError, StoreWriteError

#: bytes left free beyond a file's estimated size when the disk is checked before writing it
SPACE_MARGIN = 1 << 20


@contextmanager
def hdf5_in_memory(path: Path) -> Iterator[h5py.File]:
    """A new HDF5 file built in memory and written to ``path`` in one go when the block ends.

    A write that fails (a full disk) then fails in Python's own write and is reported like
    any other; inside HDF5 it can crash the process: HDF5 2.0 segfaults when a write fails
    while it flushes a file it is closing (seen with h5py 3.16). For files that fit in
    memory: evaluation chunks, checkpoint batches, saved comparisons.
    """
    h5 = h5py.File(path, "w", driver="core", backing_store=False)
    try:
        yield h5
        h5.flush()
        image = h5.id.get_file_image()
    finally:
        h5.close()
    with open(path, "wb") as f:
        f.write(image)


def check_space(path: Path, size: int, what: str = "file") -> None:
    """Raise `StoreWriteError` (``errno`` ENOSPC) when the disk of ``path`` has less than
    ``size`` bytes (and `SPACE_MARGIN`) free: better than a write that fails inside HDF5
    (see `hdf5_in_memory`) for files too large to build in memory."""
    free = shutil.disk_usage(Path(path).absolute().parent).free
    if free < size + SPACE_MARGIN:
        kept = "the previous file is unchanged" if Path(path).exists() else "nothing was written"
        raise StoreWriteError(f"cannot write {what} {path}: it needs about {size / 2**20:.1f} MiB, the disk "
                              f"has {free / 2**20:.1f} MiB free; {kept}", path, errno.ENOSPC)


@contextmanager
def replacing(path: Path, what: str = "file", sync: bool = True) -> Iterator[Path]:
    """A temporary path next to ``path`` that replaces it once written whole.

    A reader that maps the old file keeps its old contents; an interruption or a failed
    write (a full disk) leaves the old file as it was and removes the temporary one. A
    failed write raises `StoreWriteError` naming ``path`` (``what`` says what it is, e.g.
    "store"), with the original error chained. ``sync``: the new file's bytes reach the
    disk before it replaces the old one, so that a power cut leaves one of the two whole
    (skipped for files whose readers check them anyway, e.g. checkpoint batches).
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder; give a file path")
    # one temporary file per process and thread: two writers of one path never share one
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        yield tmp
        if sync:
            _sync(tmp)
        os.replace(tmp, path)
        if sync:
            _sync(path.parent)  # the rename itself
    except MlipvizError:
        raise
    except (OSError, RuntimeError) as exc:  # HDF5 reports a failed write at close as RuntimeError
        found = re.search(r"errno = (\d+)", str(exc))
        code = getattr(exc, "errno", None) or (int(found.group(1)) if found else None)
        why = getattr(exc, "strerror", None) or (os.strerror(code) if code else hdf5_reason(exc))
        kept = "the previous file is unchanged" if path.exists() else "no file was written there"
        raise StoreWriteError(f"cannot write {what} {path}: {why}; {kept}", path, code) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _sync(path: Path) -> None:
    """Flush a file's (or a folder's entries') bytes to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # folders cannot be synced on some file systems; the file was
        if not path.is_dir():
            raise
    finally:
        os.close(fd)


def hdf5_reason(exc: BaseException) -> str:
    """What h5py's error says went wrong, without its "Unable to synchronously open file"
    wrapping: the words in its last parentheses (e.g. "file signature not found")."""
    text = str(exc).strip("\"'")
    found = re.findall(r"\(([^()]+)\)", text) if "Unable to" in text else []
    return found[-1] if found else text or type(exc).__name__
