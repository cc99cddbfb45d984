"""The one interface every model backend implements, and what it returns.

A backend subclasses `Model` and implements `_evaluate` (one batch of frames in,
arrays out) and `calculator` (the model's own ASE calculator). `Model.predict`
does the rest for every backend: input checks, batching, progress, checkpoints.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

import numpy as np
import numpy.typing as npt
from ase import Atoms
from ase.calculators.calculator import BaseCalculator, Calculator, all_changes

from .. import checks
from ..errors import (
    ArgumentTypeError,
    CheckpointMismatchError,
    CorruptFileWarning,
    InputError,
    MlipvizError,
    UnsupportedElementError,
)
from ..frames import Frames, mapped
from ..storage import check_space, hdf5_in_memory, hdf5_reason, replacing
from . import batching

if TYPE_CHECKING:
    import h5py
    import torch

    from .._types import StructuresLike
    from .backend import Backend, ModelCard

#: a torch module that `Model._adopt` returns as it came (its own class)
ModuleT = TypeVar("ModuleT", bound="torch.nn.Module")
#: what `geometries` builds for each geometry
Built = TypeVar("Built")

PER_FRAME = ("energy", "stress")
PER_ATOM = ("forces", "energies", "embeddings")


@dataclass
class Prediction:
    """A model's outputs on `Frames`, in the same concatenated layout.

    ``energy`` (n_frames,) eV; ``forces`` (n_atoms_total, 3) eV/Å; ``stress``
    (n_frames, 3, 3) eV/Å³ (ASE sign convention; NaN for frames that are not periodic
    in all three directions) or None; ``energies`` per-atom
    energies (a fitting construct of the model, not an observable) or None;
    ``embeddings`` (n_atoms_total, width) or None.
    """

    model: str
    n_atoms: np.ndarray
    energy: np.ndarray | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    energies: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def offsets(self) -> np.ndarray:
        """(n_frames + 1,): frame ``k``'s atoms are rows ``offsets[k]:offsets[k + 1]`` of the per-atom arrays."""
        return np.concatenate([[0], np.cumsum(self.n_atoms)])

    @classmethod
    def from_frames(cls, frames: Frames, name: str = "reference") -> Prediction:
        """The reference labels that ``frames`` carry, as a `Prediction`."""
        return cls(model=name, n_atoms=frames.n_atoms, energy=frames.energy, forces=frames.forces,
                   stress=frames.stress, energies=frames.energies,
                   meta={"source": frames.source or "frames labels"})

    @classmethod
    def concatenate(cls, parts: list[Prediction]) -> Prediction:
        """The frames of ``parts`` one after another, as one `Prediction` (model and meta of the
        first part, its speed and memory those of all parts, `merged_meta`; an output that some
        part lacks is None)."""
        first = parts[0]
        kw: dict[str, Any] = {"model": first.model, "meta": merged_meta([p.meta for p in parts]),
                              "n_atoms": np.concatenate([p.n_atoms for p in parts])}
        for name in PER_FRAME + PER_ATOM:
            values = [getattr(p, name) for p in parts]
            kw[name] = None if any(v is None for v in values) else np.concatenate(values)
        return cls(**kw)

    def to_hdf5(self, group: h5py.Group, compress: bool = True) -> None:
        """Store into an open ``h5py`` group (``compress=False``: contiguous, mappable)."""
        group.attrs["model"] = self.model
        group.attrs["meta"] = json.dumps(self.meta, default=str)
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                group.create_dataset(f.name, data=value,
                                     compression="gzip" if compress and value.size > 4096 else None)

    @classmethod
    def from_hdf5(cls, group: h5py.Group, lazy: bool = False) -> Prediction:
        """Read what `to_hdf5` stored; ``lazy`` maps contiguous arrays (see `Frames.from_hdf5`)."""
        return cls(model=group.attrs["model"], meta=json.loads(group.attrs["meta"]),
                   **{k: mapped(group[k]) if lazy else group[k][()] for k in group})


def merged_meta(metas: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The meta of predictions made in parts (batches of a checkpointed run, chunks of
    `mlipviz.evaluate`): the first part's, with the speed of all of them (seconds and atoms added
    up, so atoms per second per device) and the largest pass's memory of any."""
    out = dict(metas[0]) if metas else {}
    timed = [m for m in metas if m.get("timed_atoms")]
    if timed:
        seconds, atoms = sum(m["seconds"] for m in timed), sum(m["timed_atoms"] for m in timed)
        peaks = [m["peak_memory_bytes"] for m in timed if m.get("peak_memory_bytes")]
        out.update(seconds=seconds, timed_atoms=atoms, atoms_per_second=atoms / seconds if seconds else None,
                   peak_memory_bytes=max(peaks) if peaks else None)
    return out


class Model:
    """A machine-learning interatomic potential behind one small interface.

    Attributes: ``name``, ``device`` ("cpu"/"cuda"), ``dtype`` ("float32"/"float64"),
    ``cutoff`` (Å), ``elements`` (atomic numbers it covers, or None for any),
    ``embedding_layer`` and ``embedding_width`` (what `predict(return_embeddings=True)`
    returns; ``embedding_layers`` interaction blocks to choose from with
    `use_embedding_layer`), ``meta`` (version, weights path, training data).
    """

    name: str = "model"
    device: str = "cpu"
    dtype: str = "float32"
    cutoff: float | None = None
    elements: frozenset[int] | None = None
    embedding_layer: str | None = None
    embedding_width: int | None = None
    embedding_layers: int = 0
    has_stress: bool = True
    has_energies: bool = False
    #: the registry's card of a named model (None for a bare weights path or a calculator)
    card: ModelCard | None = None
    #: where the per-atom gate of `site_energies_torch` acts, in words; None: no attributions
    atom_gate: str | None = None
    #: atoms per forward pass on CPU when ``batch_size`` is not given.
    atoms_per_batch: int = 2048
    #: cost units (atoms plus estimated edges, `batching.frame_costs`) per forward pass on
    #: CPU when ``batch_size`` is not given; None: no limit. Equivariant (e3nn) networks run
    #: faster on CPU in small passes, whose edge features stay in cache.
    cost_per_batch: float | None = None
    #: first guess of the bytes a pass takes per cost unit (atom or estimated edge), before
    #: a pass has been measured (`batching.frame_costs`); None: the first pass is not limited.
    bytes_per_unit: float | None = None

    def __init__(self) -> None:
        self.meta: dict = {}

    # -- for backends -------------------------------------------------------
    def _adopt(self, net: ModuleT, device: str, dtype: str = "float32") -> ModuleT:
        """``net`` (a torch module) as every backend runs it: in ``dtype``, on ``device``, in
        evaluation mode, its parameters frozen (forces come from gradients of the inputs, never
        of the weights). Sets ``device`` and ``dtype``; returns the module."""
        net = net.double() if dtype == "float64" else net.float()
        net = net.to(device)
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self.device, self.dtype = str(device), dtype
        return net

    def _describe(self, backend: Backend[Model], card: ModelCard | None, weights: str | Path | None, name: str,
                  **meta: Any) -> None:
        """The model's ``name`` (``card``'s, else ``name``, from the weights) and the ``meta``
        every backend records (backend, version, description, weights, training data, package
        and its version), then the backend's own ``meta``; for a bare weights path without a
        card, ``meta`` may give ``version`` and ``training_data``."""
        import importlib
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as installed_version

        package = importlib.import_module(backend.package)
        package_version: str | None
        try:  # the distribution's version: some packages (fairchem's namespace) have no __version__
            package_version = installed_version(backend.pip)
        except PackageNotFoundError:
            package_version = getattr(package, "__version__", None)
        version, training_data = meta.pop("version", None), meta.pop("training_data", None)
        self.name = card.name if card is not None else name
        self.card = card
        self.meta = {
            "backend": backend.name,
            "version": card.version if card is not None else version,
            "description": card.description if card is not None else None,
            "weights": None if weights is None else str(weights),
            "training_data": card.training_data if card is not None else training_data,
            "package": backend.pip,
            "package_version": package_version,
            **meta,
        }

    def _evaluate(self, frames: Frames, return_embeddings: bool) -> dict[str, np.ndarray | None]:
        """One forward pass over ``frames``: energy, forces, [stress, energies, embeddings]."""
        raise NotImplementedError

    def calculator(self) -> BaseCalculator:
        """The model's own ASE calculator, using the same weights."""
        raise NotImplementedError

    def site_energies_torch(self, frame: Frames, positions: torch.Tensor,
                            gate: torch.Tensor | None = None) -> torch.Tensor:
        """Per-atom energies, differentiable, of copies of the one-frame ``frame``.

        ``positions`` (S, N, 3) torch tensor: one geometry per copy (graphs are built from
        its values, gradients flow through it); ``gate`` None or (S, N) in [0, 1]: each
        atom's presence (``atom_gate`` says where it acts; 0 removes the atom exactly).
        Returns (S, N) eV, summing to each copy's energy. What `mlipviz.attribute` runs.
        The backend gates the edges (`_edge_gated_site_energies`); each atom's own energy is
        gated here, the same way for every backend.
        """
        site = self._edge_gated_site_energies(frame, positions, None if gate is None else gate.reshape(-1))
        return site if gate is None else site * gate

    def _edge_gated_site_energies(self, frame: Frames, positions: torch.Tensor,
                                  gate: torch.Tensor | None) -> torch.Tensor:
        """`site_energies_torch` with ``gate`` (S * N,) or None applied to the interactions
        only (see ``atom_gate``), not yet to each atom's own energy."""
        raise MlipvizError(f"model {self.name} ({type(self).__name__}) has no differentiable "
                           "per-atom energies, so no attributions (the adapters of the model packages "
                           "have them; an ASE calculator does not)")

    def _choose_embedding_layer(self, layer: int | None) -> None:
        """Extract embeddings after interaction block ``layer`` (None: the default); set
        ``embedding_layer`` and ``embedding_width`` to say what they are."""
        raise NotImplementedError

    def use_embedding_layer(self, layer: int | None) -> Model:
        """Return embeddings from interaction block ``layer`` (1 to ``embedding_layers``) from
        now on; None restores the default layer. Returns the model."""
        if layer is not None and (isinstance(layer, bool) or not isinstance(layer, (int, np.integer))
                                  or not 1 <= layer <= self.embedding_layers):
            choice = (f"interaction blocks 1 to {self.embedding_layers}" if self.embedding_layers
                      else "no choice of embedding layer")
            raise InputError(f"embedding_layer={layer!r}: model {self.name} has {choice}")
        self._choose_embedding_layer(None if layer is None else int(layer))
        return self

    # -- public ---------------------------------------------------------------
    def predict(self, frames: StructuresLike, batch_size: int | None = None, return_embeddings: bool = False,
                progress: bool = True, checkpoint: str | Path | None = None,
                callback: Callable[[int, int], None] | None = None,
                memory_budget: float | None = None) -> Prediction:
        """Evaluate the model on all frames, many structures per forward pass.

        ``batch_size`` is structures per pass (default: as many as fit in
        ``atoms_per_batch`` atoms and ``cost_per_batch`` on CPU, or in the memory budget on
        a GPU).
        ``memory_budget``: bytes one pass may take (default: on a GPU, its free memory;
        on CPU, none); passes are sized to it from each frame's atoms and estimated edges
        and from what earlier passes took (`mlipviz.models.batching`). A pass that runs out
        of memory is split and retried, keeping finished ones. ``checkpoint`` is an HDF5
        path: each finished batch is written there, and a rerun with the same path skips
        finished frames (parts that do not read whole are reported in a `CorruptFileWarning`
        and computed again; see `_Checkpoint`). ``callback(done, total)`` runs after each
        batch (frames done so far); an exception it raises stops the run, keeping the
        checkpointed batches (how a GUI cancels).
        """
        from tqdm.auto import tqdm

        from ..io import read

        batching.check_batch_size(batch_size)
        checks.number("memory_budget", memory_budget, minimum=0, above=True, none=True)
        checks.flag("return_embeddings", return_embeddings)
        checks.flag("progress", progress)
        if callback is not None and not callable(callback):
            raise ArgumentTypeError(f"callback must be a function callback(done, total) or None, got {callback!r}")
        frames = frames.validate(min_distance=0) if isinstance(frames, Frames) else read(frames)
        self.check_elements(frames)
        if return_embeddings and self.embedding_layer is None:
            raise MlipvizError(f"model {self.name} does not provide per-atom embeddings")
        store = _Checkpoint(checkpoint, frames, self, return_embeddings) if checkpoint else None
        done = store.load() if store else {}
        todo = np.array([i for i in range(len(frames)) if i not in done], dtype=np.int64)
        plan = self._plan(frames, todo, batch_size, memory_budget)
        meter = batching.MemoryMeter(self.device, plan.budget, enforce=memory_budget is not None)
        bar = tqdm(total=len(frames), initial=len(frames) - len(todo), unit="frame",
                   desc=f"{self.name} ({self.device})", disable=not progress)
        start = 0
        # the speed and memory of this run (`Comparison.model_choice`): the passes' wall time, and
        # the largest pass's memory as `MemoryMeter` measures it (on a GPU the allocator's peak;
        # on CPU the tensors autograd saves, which does not depend on what ran before, unlike the
        # process's resident memory)
        seconds, timed_atoms, peak = 0.0, 0, 0.0
        try:
            while start < len(todo):
                stop = plan.stop(start)
                ids = todo[start:stop]
                out = None
                began = time.perf_counter()
                try:
                    with meter.measure():
                        out = self._evaluate(frames[ids], return_embeddings)
                except MlipvizError:
                    raise
                except Exception as exc:
                    if not (batching.is_out_of_memory(exc) and len(ids) > 1):
                        raise self._failure(frames, ids, exc, checkpoint if store else None) from exc
                if out is None:  # out of memory: retry the first half (the error is freed by now)
                    plan.split(start, stop)
                    _release_memory(self.device)
                    continue
                seconds += time.perf_counter() - began
                timed_atoms += int(frames.n_atoms[ids].sum())
                peak = max(peak, meter.nbytes or 0.0)
                plan.measured(start, stop, meter.nbytes)
                part = self._to_prediction(frames.n_atoms[ids], out, frames.pbc[ids].all(axis=1))
                for k, i in enumerate(ids):
                    done[int(i)] = part_slice(part, k)
                if store:
                    store.write(ids, part)
                bar.update(len(ids))
                if callback is not None:
                    callback(len(done), len(frames))
                start = stop
        finally:
            bar.close()
        result = Prediction.concatenate([done[i] for i in range(len(frames))])
        result.meta = dict(self.meta, model=self.name, device=self.device, dtype=self.dtype,
                           embedding_layer=self.embedding_layer if return_embeddings else None)
        result.meta.update(passes=plan.passes, largest_pass_atoms=plan.largest_pass_atoms)
        if plan.largest_pass_bytes:  # measured (on CPU: the tensors autograd saved; none without autograd)
            result.meta["largest_pass_bytes"] = plan.largest_pass_bytes
        if plan.splits:
            result.meta["out_of_memory_splits"] = plan.splits
        if timed_atoms:  # frames evaluated in this call (not read back from a checkpoint)
            result.meta.update(seconds=seconds, timed_atoms=timed_atoms, atoms_per_second=timed_atoms / seconds,
                               peak_memory_bytes=peak or None)  # None: nothing measured (no torch autograd)
        return result

    def _failure(self, frames: Frames, ids: np.ndarray, exc: Exception, checkpoint: str | Path | None) -> MlipvizError:
        where = f"frame {ids[0]}" if len(ids) == 1 else f"frames {ids[0]}..{ids[-1]}"
        if len(ids) == 1 and batching.is_out_of_memory(exc):
            where += f" ({frames.n_atoms[ids[0]]} atoms, alone in its pass)"
        return MlipvizError(
            f"model {self.name} failed on {where}"
            f"{' of ' + str(frames.source) if frames.source else ''}: {type(exc).__name__}: {exc}"
            + (f"; finished batches are kept in {checkpoint}" if checkpoint else ""))

    def check_elements(self, frames: Frames) -> None:
        """Raise `UnsupportedElementError` at the first atom the model does not cover."""
        if self.elements is None:
            return
        bad = ~np.isin(frames.numbers, list(self.elements))
        if bad.any():
            from ase.data import chemical_symbols

            row = int(np.flatnonzero(bad)[0])
            frame = int(frames.frame_index[row])
            missing = sorted({chemical_symbols[z] for z in np.unique(frames.numbers[bad])})
            raise UnsupportedElementError(
                f"model {self.name} does not cover element(s) {', '.join(missing)} "
                f"(first: {chemical_symbols[frames.numbers[row]]})",
                source=frames.source, frame=frame, atom=row - int(frames.offsets[frame]))

    def _plan(self, frames: Frames, todo: np.ndarray, batch_size: int | None, memory_budget: float | None
              ) -> batching.BatchPlan:
        """How frames ``todo`` of ``frames`` are split into passes (`batching.BatchPlan`)."""
        budget = memory_budget if memory_budget is not None else batching.default_budget(self.device)
        cpu = not str(self.device).startswith("cuda")
        return batching.BatchPlan(frames.n_atoms[todo], batching.frame_costs(frames, self.cutoff)[todo],
                                  max_frames=batch_size,
                                  max_atoms=self.atoms_per_batch if cpu and batch_size is None else None,
                                  max_cost=self.cost_per_batch if cpu and batch_size is None else None,
                                  budget=budget, bytes_per_unit=self.bytes_per_unit)

    def _to_prediction(self, n_atoms: np.ndarray, out: dict[str, np.ndarray | None],
                       periodic: npt.ArrayLike | None = None) -> Prediction:
        """A backend's arrays as a `Prediction`, shapes checked; stress NaN for the frames that
        are not periodic in all three directions (``periodic``: one flag per frame), whatever
        the backend computed there (a stress needs a cell volume)."""
        n, total = len(n_atoms), int(np.sum(n_atoms))
        arrays = {k: (None if out.get(k) is None else np.array(out[k], dtype=np.float64))
                  for k in PER_FRAME + PER_ATOM}
        expected = {"energy": (n,), "forces": (total, 3), "stress": (n, 3, 3), "energies": (total,)}
        for k, shape in expected.items():
            value = arrays[k]
            if value is not None and value.shape != shape:
                raise MlipvizError(f"backend of {self.name} returned {k} of shape "
                                   f"{value.shape}, expected {shape}")
        stress = arrays["stress"]
        if stress is not None and periodic is not None:
            stress[~np.asarray(periodic, dtype=bool)] = np.nan
        return Prediction(model=self.name, n_atoms=np.asarray(n_atoms), energy=arrays["energy"],
                          forces=arrays["forces"], stress=stress, energies=arrays["energies"],
                          embeddings=arrays["embeddings"])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} on {self.device} ({self.dtype})>"


def geometries(frame: Frames, positions: np.ndarray, build: Callable[[Atoms], Built]) -> list[Built]:
    """``build(atoms)`` for the `Atoms` of ``frame`` at each of ``positions`` (S, N, 3), built
    once per distinct geometry (attributions over atom gates repeat one geometry)."""
    built: dict[bytes, Built] = {}
    out = []
    for p in np.asarray(positions, dtype=np.float64):
        key = p.tobytes()
        if key not in built:
            atoms = frame.to_atoms(0)
            atoms.calc = None
            atoms.positions = p
            built[key] = build(atoms)
        out.append(built[key])
    return out


@overload
def edge_gate(gate: None, first: torch.Tensor, second: torch.Tensor) -> None: ...


@overload
def edge_gate(gate: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor: ...


@overload
def edge_gate(gate: torch.Tensor | None, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor | None: ...


def edge_gate(gate: torch.Tensor | None, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor | None:
    """Per-edge gate: the product of its two atoms' gates (None without a gate)."""
    return None if gate is None else gate[first] * gate[second]


def part_slice(pred: Prediction, k: int) -> Prediction:
    """Frame ``k`` of a `Prediction` as a one-frame `Prediction`."""
    lo, hi = int(pred.offsets[k]), int(pred.offsets[k + 1])
    kw = {name: None if getattr(pred, name) is None else getattr(pred, name)[k:k + 1]
          for name in PER_FRAME}
    kw.update({name: None if getattr(pred, name) is None else getattr(pred, name)[lo:hi]
               for name in PER_ATOM})
    return Prediction(model=pred.model, n_atoms=pred.n_atoms[k:k + 1], meta=pred.meta, **kw)


def _release_memory(device: str) -> None:
    """Return cached GPU blocks after an out-of-memory error, before the retry."""
    import gc

    gc.collect()
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


class _Checkpoint:
    """Finished batches of one `predict` call, kept so that a rerun resumes.

    ``path`` is an HDF5 file of batches (attribute ``key``: the frames and the model). It is
    only ever replaced whole, never appended to: an append cut short (a killed job) can leave
    an HDF5 file that does not open, losing every batch in it. Each new batch goes to a file
    of its own in ``<path>.batches/``, written next to its place and moved there once whole;
    when all frames are done, or at the next `load`, they are gathered into ``path`` and the
    folder removed. Whatever fails to read (a file cut short, a missing dataset, rows that do
    not match the frames) is reported in a `CorruptFileWarning` naming it and computed again;
    a ``path`` that does not open at all is moved to ``<path>.corrupt``.
    """

    def __init__(self, path: str | Path, frames: Frames, model: Model, embeddings: bool) -> None:
        from ..checks import output_path

        self.path = output_path("checkpoint", path)
        self.journal = self.path.with_name(self.path.name + ".batches")
        self.n_atoms = np.asarray(frames.n_atoms)
        self.key = {"frames": frames.fingerprint(), "model": model.name,
                    "weights": str(model.meta.get("weights", "")),
                    "embeddings": model.embedding_layer if embeddings else False,
                    # two models of one name (EMT with other parameters) must not share batches;
                    # object addresses in reprs change from run to run and are left out
                    "settings": re.sub(r" at 0x[0-9a-fA-F]+", "",
                                       json.dumps(model.meta, sort_keys=True, default=str))}
        self._done: set[int] = set()
        self._written = 0

    # -- reading ----------------------------------------------------------------
    def load(self) -> dict[int, Prediction]:
        """The frames finished so far, by index; damaged parts are warned about and dropped."""
        done: dict[int, Prediction] = {}
        damaged = False
        if self.path.exists():
            damaged = self._load_file(self.path, done, main=True)
        batches = sorted(self.journal.glob("batch-*.h5")) if self.journal.is_dir() else []
        for batch in batches:
            if self._load_file(batch, done, main=False):
                batch.unlink(missing_ok=True)  # a journal entry that does not read: gone, recomputed
        self._done = set(done)
        if damaged or batches or not self.path.exists():
            self._compact(keep_aside=damaged)
        return done

    def _load_file(self, path: Path, done: dict[int, Prediction], main: bool) -> bool:
        """Read the batches of ``path`` into ``done``; True where some or all of it was damaged."""
        import h5py

        what = f"checkpoint {self.path}" if main else f"checkpoint batch file {path}"
        try:
            h5 = h5py.File(path, "r")
        except (OSError, RuntimeError) as exc:
            self._warn(f"{what} cannot be read ({hdf5_reason(exc)})", path if main else None)
            return True
        with h5:
            if "key" not in h5.attrs:
                raise CheckpointMismatchError(
                    f"{path} is an HDF5 file but no mlipviz checkpoint (it has no 'key'); use another "
                    "checkpoint path, or delete or move that file")
            try:
                key = json.loads(h5.attrs["key"])
                if not isinstance(key, dict):
                    raise ValueError("key is no JSON object")
            except (ValueError, TypeError) as exc:
                self._warn(f"{what} has an unreadable key ({exc})", path if main else None)
                return True
            if key != self.key:
                diff = sorted(k for k in self.key if key.get(k) != self.key[k])
                where = path if main else f"{self.journal} (batch file {path.name})"
                raise CheckpointMismatchError(
                    f"checkpoint {where} was written for other {', '.join(diff)}; "
                    "use a new checkpoint path or delete it")
            bad = []
            for name in h5:
                try:
                    ids, part = self._read_batch(h5[name])
                except (KeyError, OSError, RuntimeError, ValueError, TypeError) as exc:
                    bad.append(f"{name}: {hdf5_reason(exc)}")
                    continue
                for k, i in enumerate(ids):
                    done[int(i)] = part_slice(part, k)
        if bad:
            kept = f"; it is rewritten without them, the original kept as {path}.corrupt" if main else ""
            self._warn(f"{what}: {len(bad)} batch(es) do not read ({'; '.join(bad)}); their frames are "
                       f"computed again{kept}", None)
        return bool(bad)

    def _read_batch(self, group: h5py.Group) -> tuple[np.ndarray, Prediction]:
        """One batch group, read whole and checked against the frames, or an exception."""
        import h5py

        ids = np.asarray(group.attrs["frames"])
        if ids.ndim != 1 or not len(ids) or ids.dtype.kind not in "iu" or ids.min() < 0 \
                or ids.max() >= len(self.n_atoms) or len(np.unique(ids)) != len(ids):
            raise ValueError(f"frame indices {ids!r} do not fit {len(self.n_atoms)} frames")
        listed = json.loads(group.attrs["datasets"]) if "datasets" in group.attrs else ["n_atoms", "energy", "forces"]
        for name in listed:
            if not isinstance(group.get(name), h5py.Dataset):
                raise KeyError(f"dataset '{name}' missing")
        part = Prediction.from_hdf5(group)
        if not np.array_equal(part.n_atoms, self.n_atoms[ids]):
            raise ValueError("atom counts do not match the frames")
        for name in PER_FRAME + PER_ATOM:
            value = getattr(part, name)
            rows = len(ids) if name in PER_FRAME else int(self.n_atoms[ids].sum())
            if value is not None and (value.ndim == 0 or len(value) != rows):
                raise ValueError(f"'{name}' has shape {value.shape}, expected {rows} rows")
        return ids, part

    def _warn(self, problem: str, aside: Path | None) -> None:
        """Warn about ``problem`` (a `CorruptFileWarning`); move ``aside``, a file that does not
        read at all, to ``<aside>.corrupt``."""
        import warnings

        if aside is not None:  # the file itself does not read: keep it for a look, start anew
            moved = aside.with_name(aside.name + ".corrupt")
            os.replace(aside, moved)
            problem += f"; moved to {moved}, its batches are computed again"
        warnings.warn(CorruptFileWarning(problem), stacklevel=4)

    # -- writing ----------------------------------------------------------------
    def write(self, ids: np.ndarray, part: Prediction) -> None:
        """Keep one finished batch (a file of its own, whole or absent); gather all batches into
        ``path`` once every frame is done."""
        self.journal.mkdir(exist_ok=True)
        self._written += 1
        name = f"batch-{int(ids[0]):09d}-{os.getpid()}-{self._written:06d}.h5"
        # not synced: a batch file cut short by a power cut is found and computed again
        with replacing(self.journal / name, what="checkpoint batch", sync=False) as tmp:
            with hdf5_in_memory(tmp) as h5:  # a full disk fails in Python's write, not in HDF5's
                h5.attrs["key"] = json.dumps(self.key)
                _write_batch(h5.create_group(f"batch_{int(ids[0]):09d}"), ids, part)
        self._done.update(int(i) for i in ids)
        if len(self._done) == len(self.n_atoms):
            self._compact(keep_aside=False)

    def _compact(self, keep_aside: bool) -> None:
        """Rewrite ``path`` whole from its readable batches and the batch files, then remove
        those (``keep_aside``: the damaged ``path`` is kept as ``<path>.corrupt``)."""
        import shutil

        import h5py

        sources = [self.path] if self.path.exists() else []
        sources += sorted(self.journal.glob("batch-*.h5")) if self.journal.is_dir() else []
        check_space(self.path, sum(p.stat().st_size for p in sources), "checkpoint")
        with replacing(self.path, what="checkpoint") as tmp:
            with h5py.File(tmp, "w") as out:
                out.attrs["key"] = json.dumps(self.key)
                for source in sources:
                    with h5py.File(source, "r") as h5:
                        for name in h5:
                            try:
                                ids, _ = self._read_batch(h5[name])
                            except (KeyError, OSError, RuntimeError, ValueError, TypeError):
                                continue  # warned about in load
                            h5.copy(h5[name], out, name=f"batch_{int(ids[0]):09d}_{len(out):06d}")
            if keep_aside and self.path.exists():
                os.replace(self.path, self.path.with_name(self.path.name + ".corrupt"))
        shutil.rmtree(self.journal, ignore_errors=True)


def _write_batch(group: h5py.Group, ids: np.ndarray, part: Prediction) -> None:
    """Store one batch into ``group``: its predictions, frame indices and the datasets written."""
    part.to_hdf5(group)
    group.attrs["frames"] = np.asarray(ids, dtype=np.int64)
    group.attrs["datasets"] = json.dumps(sorted(group))


class ModelCalculator(Calculator):
    """Any `Model` as an ASE calculator, one structure per call (e.g. to drive MD or NEB
    with mlipviz's adapters); its results are those of `Model.predict`."""

    implemented_properties: list[str] = [  # noqa: RUF012 - ASE's attribute, a list there
        "energy", "free_energy", "forces", "stress", "energies"]

    def __init__(self, model: Model) -> None:
        super().__init__()
        self.model = model

    def calculate(self, atoms: Atoms | None = None, properties: Sequence[str] = ("energy",),
                  system_changes: Sequence[str] = all_changes) -> None:
        """Evaluate the model on ``atoms`` (one `Model.predict` call) and store the results."""
        from ..frames import full_to_voigt

        super().calculate(atoms, properties, system_changes)
        assert self.atoms is not None  # set by Calculator.calculate
        pred = self.model.predict(Frames.from_atoms([self.atoms]), progress=False)
        assert pred.energy is not None  # every backend returns the total energy
        energy = float(pred.energy[0])
        self.results = {"energy": energy, "free_energy": energy, "forces": pred.forces}
        if pred.stress is not None and np.isfinite(pred.stress[0]).all():
            self.results["stress"] = full_to_voigt(pred.stress[0])
        if pred.energies is not None:
            self.results["energies"] = pred.energies
