"""How `Model.predict` splits frames into forward passes: by frame or atom counts, or by a
memory budget that is estimated from each frame's graph size, then learnt from each pass.

A frame's *cost* is its atoms plus an estimate of its directed edges within the model's
cutoff (number density x cutoff sphere; no neighbour search). Under a memory budget, the
first pass is sized with the backend's ``bytes_per_unit`` guess; every pass then measures
the bytes it took (the CUDA allocator's peak on a GPU; on CPU, the tensors autograd saves
for the backward pass) and the next pass is sized from that. A pass that runs out of memory
is split in half and retried; the passes after it stay no larger.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ..frames import Frames

if TYPE_CHECKING:
    import torch

#: atoms per Å³ assumed around atoms of non-periodic frames (diamond: 0.176): an upper bound.
DENSE_PACKING = 0.18
#: share of the budget a pass is sized to use (the rest absorbs the estimate's error).
FILL = 0.8


def frame_costs(frames: Frames, cutoff: float | None) -> np.ndarray:
    """Atoms plus estimated directed edges within ``cutoff`` Å, per frame."""
    n = frames.n_atoms.astype(np.float64)
    if not cutoff:
        return n
    density = np.full(len(frames), DENSE_PACKING)
    periodic = frames.pbc.all(axis=1)
    if periodic.any():
        volume = np.abs(np.linalg.det(frames.cells[periodic]))
        density[periodic] = n[periodic] / np.maximum(volume, 1e-6)
    neighbours = density * 4.0 / 3.0 * math.pi * cutoff ** 3
    neighbours[~periodic] = np.minimum(neighbours[~periodic], n[~periodic] - 1)
    return n * (1.0 + neighbours)


class BatchPlan:
    """The passes over ``costs``: at most ``max_frames`` frames, ``max_atoms`` atoms and
    ``max_cost`` cost units each, and, with a ``budget`` in bytes, at most what fits in it."""

    def __init__(self, n_atoms: np.ndarray, costs: np.ndarray, max_frames: int | None = None,
                 max_atoms: int | None = None, budget: float | None = None,
                 bytes_per_unit: float | None = None, max_cost: float | None = None) -> None:
        if max_frames is not None and max_frames < 1:
            raise InputError(f"batch_size must be >= 1, got {max_frames}")
        if budget is not None and not budget > 0:
            raise InputError(f"memory_budget must be > 0 bytes, got {budget}")
        self.n_atoms = np.asarray(n_atoms, dtype=np.int64)
        self.costs = np.asarray(costs, dtype=np.float64)
        self.max_frames = max_frames
        self.max_atoms = max_atoms
        self.budget = budget
        self.bytes_per_unit = bytes_per_unit
        self.ceiling = max_cost or math.inf  # lowered by out-of-memory splits
        self.splits = 0
        self.passes = 0
        self.largest_pass_atoms = 0
        self.largest_pass_bytes = 0.0

    def stop(self, start: int) -> int:
        """End (exclusive) of the pass that begins at frame ``start``; at least one frame."""
        limit = self.ceiling
        if self.budget is not None and self.bytes_per_unit:
            limit = min(limit, FILL * self.budget / self.bytes_per_unit)
        stop, atoms, cost = start, 0, 0.0
        while stop < len(self.costs):
            if self.max_frames is not None and stop - start >= self.max_frames:
                break
            atoms_next, cost_next = atoms + int(self.n_atoms[stop]), cost + float(self.costs[stop])
            if stop > start and ((self.max_atoms is not None and atoms_next > self.max_atoms)
                                 or cost_next > limit):
                break
            stop, atoms, cost = stop + 1, atoms_next, cost_next
        return stop

    def measured(self, start: int, stop: int, nbytes: float | None) -> None:
        """Count a finished pass; learn the bytes per cost unit from it."""
        self.passes += 1
        self.largest_pass_atoms = max(self.largest_pass_atoms, int(self.n_atoms[start:stop].sum()))
        if nbytes:
            self.bytes_per_unit = nbytes / float(self.costs[start:stop].sum())
            self.largest_pass_bytes = max(self.largest_pass_bytes, nbytes)

    def split(self, start: int, stop: int) -> None:
        """The pass ``start:stop`` ran out of memory: later passes take at most half its cost."""
        self.ceiling = 0.5 * float(self.costs[start:stop].sum())
        self.splits += 1


def is_out_of_memory(exc: BaseException) -> bool:
    """A torch out-of-memory error (CUDA, or the CPU allocator failing)."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class MemoryMeter:
    """Bytes one forward and backward pass takes; raises ``torch.OutOfMemoryError`` when the
    tensors autograd saves exceed ``budget`` (how a budget is kept on CPU)."""

    def __init__(self, device: str, budget: float | None, enforce: bool) -> None:
        self.device = device
        self.budget = budget
        self.enforce = enforce and budget is not None
        self.nbytes: float | None = None

    @contextmanager
    def measure(self) -> Iterator[MemoryMeter]:
        """Measure the pass run inside the block: ``nbytes`` is set when it ends (on CPU, the
        bytes of the tensors autograd saved, which a pass's memory grows with; 0 for a pass
        that runs no autograd); with ``enforce``, a pass over the budget raises
        ``torch.OutOfMemoryError``."""
        import torch

        self.nbytes = None
        cuda = str(self.device).startswith("cuda")
        seen: set[int] = set()
        saved = [0]

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            try:
                storage = tensor.untyped_storage()
                key, size = storage.data_ptr(), storage.nbytes()
            except (RuntimeError, NotImplementedError):  # e.g. sparse or nested tensors
                key, size = id(tensor), tensor.numel() * tensor.element_size()
            if key not in seen:
                seen.add(key)
                saved[0] += size
                if self.enforce and self.budget is not None and saved[0] > self.budget:
                    raise torch.OutOfMemoryError(
                        f"tensors saved for the backward pass exceed the memory budget of "
                        f"{self.budget / 2**20:.1f} MiB")
            return tensor

        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            start = torch.cuda.memory_allocated(self.device)
        counting = self.enforce or not cuda
        with torch.autograd.graph.saved_tensors_hooks(pack, _same) if counting else nullcontext():
            yield self
        if cuda:
            self.nbytes = float(torch.cuda.max_memory_allocated(self.device) - start)
        else:
            self.nbytes = float(saved[0])


def _same(tensor: torch.Tensor) -> torch.Tensor:
    """The saved tensor unchanged (the unpack hook of `MemoryMeter.measure`)."""
    return tensor


def default_budget(device: str) -> float | None:
    """On a GPU: the memory free on it now; on CPU: None (passes sized by atom count)."""
    if not str(device).startswith("cuda"):
        return None
    import torch

    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return float(free)


def to_device(array: npt.ArrayLike, device: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A numpy array as a torch tensor on ``device``; to a GPU through pinned memory,
    without blocking the host."""
    import torch

    tensor = torch.as_tensor(np.ascontiguousarray(array), dtype=dtype)
    if str(device).startswith("cuda"):
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def batch_to_device(batch: Any, device: str) -> Any:
    """A torch_geometric-style batch (``apply``, ``to``) on ``device``; to a GPU through
    pinned memory, without blocking the host."""
    if str(device).startswith("cuda"):
        return batch.apply(lambda tensor: tensor.pin_memory()).to(device, non_blocking=True)
    return batch.to(device)


def check_batch_size(batch_size: object) -> None:
    """None or a positive whole number of structures per pass; an InputError otherwise."""
    if batch_size is None:
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive whole number of structures per pass (or None), "
                         f"got {batch_size!r}")
