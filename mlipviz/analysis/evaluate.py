"""`evaluate`: models against a reference on whole datasets, chunk by chunk, on Dask.

Frames are streamed: each task reads its own chunk of a file (`mlipviz.sources`), so no
process holds the dataset. Each finished chunk is written whole to ``<store>.parts/``
(atomically), so a job interrupted at any point and run again computes only the chunks
that are missing. When all are done they are gathered into one uncompressed HDF5 file in
`Comparison.save`'s format, which `load_comparison` maps instead of reading.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
from tqdm.auto import tqdm

from ..checks import flag, number, output_path, whole_number
from ..errors import ArgumentTypeError, CheckpointMismatchError, CorruptFileWarning, InputError, MlipvizError, ReadError
from ..frames import Frames, read_info
from ..models.base import PER_FRAME, merged_meta
from ..sources import FrameSource, shifted
from ..storage import check_space, hdf5_in_memory, hdf5_reason, replacing
from .compare import (
    Comparison,
    _check_stored,
    _unique,
    list_datasets,
    load_comparison,
    open_comparison_file,
    reference_from_labels,
    write_results,
)
from .metrics import ANGLE_MIN_FORCE

if TYPE_CHECKING:
    from ..models.base import Model, Prediction
    from ._types import ModelSpec, ModelsSpec, StructuresLike

#: frames per task: large enough to batch well on a GPU, small enough to lose little on a crash.
CHUNK_FRAMES = 256
#: Dask settings for the LocalCluster started here. Dask's nannies set MALLOC_TRIM_THRESHOLD_
#: in their workers, which turns off glibc's adaptive mmap threshold: every large tensor
#: allocation then maps and unmaps fresh pages, and a single-threaded CHGNet pass took
#: 1.5x as long (docs/scale.md). Set the same in the Dask config of other clusters.
DASK_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


@dataclass(frozen=True, eq=False)
class Chunk:
    """Frames ``start:stop`` of ``source``; ``first`` is the first one's index in the dataset."""

    number: int
    source: FrameSource
    start: int
    stop: int
    first: int

    def where(self) -> str:
        """The chunk's frames and file, in words (for messages)."""
        return f"frames {self.start}..{self.stop - 1} of {self.source.name}"


def evaluate(sources: StructuresLike | list[str | Path], models: ModelsSpec, reference: ModelSpec | None = None,
             store: str | Path = "mlipviz-evaluation.h5", client: Any = None, chunk_frames: int = CHUNK_FRAMES,
             device: str = "auto", batch_size: int | None = None, memory_budget: float | None = None,
             embeddings: bool = False, progress: bool = True, angle_min_force: float = ANGLE_MIN_FORCE) -> Comparison:
    """Evaluate ``models`` (and ``reference``) on every frame of ``sources``; the result is
    written to ``store`` and returned opened lazily (`load_comparison`).

    Run again with the same arguments after an interruption: finished chunks are not
    recomputed. A chunk file or a store that does not read whole (cut short, a dataset
    missing) is reported in a `CorruptFileWarning` naming it and computed again (a damaged
    store is kept as ``<store>.corrupt``).

    Parameters
    ----------
    sources : str, Path, a list of them, or structures
        A structure file, a list of them (read a chunk at a time where they are read), or
        frames in memory (anything `mlipviz.read` takes).
    models : Model, str, Path, ASE calculator, or a list of those
        As in `compare`; names and paths are loaded by each worker once, objects are sent
        once to each worker.
    reference : a model or calculator, optional
        As in `compare` (None: the labels in the files).
    store : str or Path
        The HDF5 file the result is written to (chunks go to ``<store>.parts/`` meanwhile).
    client : dask.distributed.Client, None or False
        A ``dask.distributed.Client`` of any cluster (its workers must see the files); None:
        a ``LocalCluster`` with one single-threaded worker per CPU core (one worker when
        ``device`` is a GPU), started and closed here; False: in this process, without Dask.
    chunk_frames : int
        Frames per task.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    batch_size, memory_budget : int and float, optional
        Per pass of `Model.predict`.
    embeddings : bool
        Keep each model's per-atom embeddings (see `compare`).
    progress : bool
        Show a progress bar.
    angle_min_force : float
        (eV/Å, >= 0): forces weaker than this get no angle error.

    Returns
    -------
    Comparison
        Opened lazily from ``store``.

    Raises
    ------
    StoreWriteError
        A write that fails (a full disk), naming the file; the finished chunks stay in place.
    CheckpointMismatchError
        ``store`` (or its parts folder) holds another evaluation.
    ArgumentTypeError
        ``reference`` True or False, a ``client`` that is not a Dask client, or an argument of
        the wrong type.
    InputError
        No models or sources, a bad number, or sources `mlipviz.read` refuses (its errors,
        naming ``sources``, the file and the frame).
    MissingLabelsError
        ``reference=None`` and frames without reference forces.
    MlipvizError
        Dask is not installed (``pip install 'mlipviz[scale]'``), or a model failed on a
        chunk (naming its frames and file).
    ModelNotAvailableError
        A model that cannot be loaded here.
    """
    from ..models import model_specs, resolve_device, resolve_models, resolve_reference
    from ..models.batching import check_batch_size

    # every argument checked before any source is opened, model loaded or worker started
    chunk_frames = whole_number("chunk_frames", chunk_frames, minimum=1)
    store = output_path("store", store)
    specs: list[Any] = model_specs(models)
    if reference is True or reference is False:
        raise ArgumentTypeError(f"reference={reference}: evaluate compares against a reference, None (the "
                                "files' labels) or a model or calculator; for models side by side without "
                                "one use compare(models, frames, reference=False)")
    angle_min_force = number("angle_min_force", angle_min_force, minimum=0)
    embeddings, progress = flag("embeddings", embeddings), flag("progress", progress)
    check_batch_size(batch_size)
    number("memory_budget", memory_budget, minimum=0, above=True, none=True)
    resolve_device(device)
    if client not in (None, False) and not callable(getattr(client, "submit", None)):
        raise ArgumentTypeError(f"client must be a dask.distributed.Client, None (a LocalCluster) or False "
                                f"(this process), got {type(client).__name__}")
    opened = _open_sources(sources)
    chunks = _chunks(opened, chunk_frames)
    key = {"sources": [s.identity() for s in opened], "models": [_spec_id(m) for m in specs],
           "reference": "labels" if reference is None else _spec_id(reference),
           "chunk_frames": chunk_frames, "embeddings": embeddings}
    if store.exists():
        finished = _finished(store, key)
        if finished is not None:
            return finished
    started = time.perf_counter()
    parts = _Parts(store, key)
    todo = [c for c in chunks if not parts.done(c)]
    total = sum(c.stop - c.start for c in chunks)
    settings = {"device": device, "batch_size": batch_size, "memory_budget": memory_budget,
                "embeddings": embeddings}
    bar = tqdm(total=total, unit="frame", desc="evaluate", disable=not progress,
               initial=total - sum(c.stop - c.start for c in todo))
    try:
        if todo and client is False:
            # in this process: each model loaded once for every chunk (on Dask each worker
            # loads the names once, `_model`; objects travel to it once)
            specs, reference = resolve_models(specs, device), resolve_reference(reference, device)
            for chunk in todo:
                parts.write(chunk, run_chunk(chunk, specs, reference, settings))
                bar.update(chunk.stop - chunk.start)
        elif todo:
            _run_on_dask(client, todo, specs, reference, settings, parts, bar)
    finally:
        bar.close()
    n_atoms = np.concatenate([s.n_atoms for s in opened])
    run = {"chunks": len(chunks), "chunks_computed": len(todo), "frames": len(n_atoms),
           "atoms": int(n_atoms.sum()), "seconds": round(time.perf_counter() - started, 2),
           "where": "this process" if client is False else str(client or "a LocalCluster")}
    parts.gather(chunks, store, angle_min_force, len(opened) > 1, run)
    return load_comparison(store)


def _open_sources(sources: Any) -> list[FrameSource]:
    if isinstance(sources, (str, Path, Frames)):
        return [FrameSource.open(sources)]
    items = list(sources) if isinstance(sources, (list, tuple)) else [sources]
    if not items:
        raise InputError("sources: none given (an empty list)")
    try:
        if all(isinstance(s, (str, Path)) for s in items):
            return [FrameSource.open(s) for s in items]
        return [FrameSource.open(items)]  # structures in memory (ASE, pymatgen): one source
    except InputError as exc:  # the same error, saying which argument it is about
        raise type(exc)(f"sources: {exc.problem}", exc.source, exc.frame, exc.atom) from exc


def _chunks(sources: list[FrameSource], chunk_frames: int) -> list[Chunk]:
    out: list[Chunk] = []
    first = 0
    for source in sources:
        for start in range(0, len(source), chunk_frames):
            stop = min(start + chunk_frames, len(source))
            out.append(Chunk(len(out), source.part(start, stop), start, stop, first + start))
        first += len(source)
    return out


def _spec_id(spec: Any) -> str:
    """What names a model in the job's key (a resumed job must use the same models)."""
    if isinstance(spec, (str, Path)):
        return str(spec)
    meta = getattr(spec, "meta", None) or getattr(spec, "parameters", None) or {}
    return f"{type(spec).__name__}:{getattr(spec, 'name', '')}:{json.dumps(meta, sort_keys=True, default=str)}"


def _finished(store: Path, key: dict[str, Any]) -> Comparison | None:
    """The finished evaluation in ``store``; None when the file does not read whole (it is
    then moved aside, with a warning, and the evaluation computed again)."""
    try:
        h5 = h5py.File(store, "r")
    except (OSError, RuntimeError) as exc:
        _set_aside(store, hdf5_reason(exc))
        return None
    with h5:
        if "evaluation" not in h5.attrs:
            stored = {}
        else:
            try:
                stored = json.loads(h5.attrs["evaluation"])
            except (ValueError, TypeError) as exc:
                _set_aside(store, f"its evaluation key does not read: {exc}")
                return None
    if stored != key:
        raise CheckpointMismatchError(
            f"{store} exists and holds another evaluation (or a saved comparison); "
            "choose another store path or delete it")
    try:
        finished = load_comparison(store)
    except ReadError as exc:
        _set_aside(store, exc.problem)
        return None
    shutil.rmtree(store.with_name(store.name + ".parts"), ignore_errors=True)  # if stopped while removing
    return finished


def _set_aside(store: Path, why: str) -> None:
    """Move a store that does not read to ``<store>.corrupt``, with a warning naming both."""
    moved = store.with_name(store.name + ".corrupt")
    os.replace(store, moved)
    warnings.warn(CorruptFileWarning(f"store {store} cannot be read ({why}); moved to {moved}, the "
                                     "evaluation is computed again from its finished chunks"), stacklevel=3)


# -- in the workers ---------------------------------------------------------------
_LOADED: dict[tuple[str, str], Model] = {}  # models loaded in this process, by (spec, device): each once


def _model(spec: Any, device: str) -> Model:
    from ..models import load_model

    if not isinstance(spec, (str, Path)):
        return load_model(spec, device=device)
    key = (str(spec), device)
    if key not in _LOADED:
        _LOADED[key] = load_model(spec, device=device)
    return _LOADED[key]


def run_chunk(chunk: Chunk, specs: list[Any], reference: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """Read one chunk and evaluate the reference and every model on it (a task)."""
    frames = chunk.source.read(chunk.start, chunk.stop)

    def predict(spec: Any, with_embeddings: bool) -> Prediction:
        model = _model(spec, settings["device"])
        return model.predict(frames, batch_size=settings["batch_size"], progress=False,
                             memory_budget=settings["memory_budget"],
                             return_embeddings=with_embeddings and model.embedding_layer is not None)

    try:
        ref = reference_from_labels(frames) if reference is None else predict(reference, False)
        predictions = [predict(spec, settings["embeddings"]) for spec in specs]
    except InputError as exc:
        raise shifted(exc, chunk.start, chunk.source.path) from exc
    except MlipvizError as exc:
        raise MlipvizError(f"{chunk.where()}: {exc}") from exc
    return {"frames": frames, "reference": ref, "predictions": predictions}


# -- on Dask ----------------------------------------------------------------------
def _run_on_dask(client: Any, todo: list[Chunk], specs: list[Any], reference: Any, settings: dict[str, Any],
                 parts: _Parts, bar: Any) -> None:
    try:
        import dask
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise MlipvizError("evaluate on Dask needs dask.distributed: pip install 'mlipviz[scale]' "
                           "(or pass client=False to run in this process)") from exc
    own = client is None
    if own:
        from ..models import resolve_device

        workers = 1 if resolve_device(settings["device"]).startswith("cuda") else (os.cpu_count() or 1)
        with dask.config.set(DASK_CONFIG):
            cluster = LocalCluster(n_workers=min(workers, len(todo)), threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        client = Client(cluster)
    pending: dict = {}
    try:
        sent = [s if isinstance(s, (str, Path)) else client.scatter(s, broadcast=True) for s in specs]
        ref = reference if reference is None or isinstance(reference, (str, Path)) \
            else client.scatter(reference, broadcast=True)
        pending = {client.submit(run_chunk, chunk, sent, ref, settings, pure=False): chunk for chunk in todo}
        for future in as_completed(list(pending)):
            chunk = pending.pop(future)
            parts.write(chunk, future.result())
            future.release()  # its arrays leave the worker's memory
            bar.update(chunk.stop - chunk.start)
    finally:
        for future in pending:
            future.cancel()
        if own:
            client.close()
            cluster.close()


# -- the store --------------------------------------------------------------------
class _Parts:
    """Finished chunks, one HDF5 file each, in ``<store>.parts/``; ``job.json`` holds the key."""

    def __init__(self, store: Path, key: dict[str, Any]) -> None:
        self.dir = store.with_name(store.name + ".parts")
        self.key = key
        #: chunk files without the key in them count only when job.json vouches for them
        self.vouched = False
        job = self.dir / "job.json"
        if self.dir.exists() and not self.dir.is_dir():
            raise InputError(f"store {store}: {self.dir} (where its chunks go) is a file; move it away")
        stored = None
        if job.exists():
            try:
                stored = json.loads(job.read_text())
                if not isinstance(stored, dict):
                    raise ValueError("no JSON object")
            except (ValueError, OSError) as exc:  # e.g. cut short by a power cut
                warnings.warn(CorruptFileWarning(f"{job} cannot be read ({exc}); it is written again, and "
                                                 "only chunk files that name this evaluation are kept"),
                              stacklevel=3)
                stored = None
        if stored is not None:
            if stored != key:
                diff = sorted(k for k in key if stored.get(k) != key[k])
                raise CheckpointMismatchError(
                    f"{self.dir} holds chunks of another evaluation (other {', '.join(diff)}); "
                    "choose another store path or delete that folder")
            self.vouched = True
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            with replacing(job, what="evaluation job file") as tmp:
                tmp.write_text(json.dumps(key, indent=1))

    def path(self, chunk: Chunk) -> Path:
        return self.dir / f"chunk-{chunk.number:07d}.h5"

    def done(self, chunk: Chunk) -> bool:
        """Whether ``chunk``'s file is there and reads whole; one that does not is reported,
        removed and so computed again."""
        path = self.path(chunk)
        if not path.exists():
            return False
        why = self._damage(chunk, path)
        if why is None:
            return True
        warnings.warn(CorruptFileWarning(f"evaluation chunk {path} ({chunk.where()}) cannot be read "
                                         f"({why}); it is computed again"), stacklevel=3)
        path.unlink()
        return False

    def _damage(self, chunk: Chunk, path: Path) -> str | None:
        """What is wrong with a chunk file, or None: it opens, names this evaluation, and holds
        every dataset with one row per frame or atom of the chunk."""
        try:
            with h5py.File(path, "r") as h5:
                if "evaluation" in h5.attrs:
                    if json.loads(h5.attrs["evaluation"]) != self.key:
                        return "it belongs to another evaluation"
                elif not self.vouched:
                    return "it does not name its evaluation"
                if len(json.loads(h5.attrs["models"])) != len(self.key["models"]):
                    return "it holds another number of models"
                _check_stored(h5, len(self.key["models"]), True)
                if not np.array_equal(h5["frames/n_atoms"][()], chunk.source.n_atoms):
                    return "its atom counts are not those of the chunk's frames"
        except (KeyError, OSError, RuntimeError, ValueError, TypeError) as exc:
            return hdf5_reason(exc)
        return None

    def write(self, chunk: Chunk, result: dict[str, Any]) -> None:
        with replacing(self.path(chunk), what="evaluation chunk") as tmp:
            with hdf5_in_memory(tmp) as h5:  # a chunk is small: a full disk fails in Python's write
                h5.attrs["models"] = json.dumps([p.model for p in result["predictions"]])
                h5.attrs["evaluation"] = json.dumps(self.key)
                write_results(h5, result["frames"], result["reference"], result["predictions"])

    def gather(self, chunks: list[Chunk], store: Path, angle_min_force: float, many_sources: bool,
               run: dict[str, Any]) -> None:
        """All parts into ``store`` (contiguous arrays; ``run``: what this call computed, where,
        in how long), then the parts folder is removed."""
        names: list[str] = []
        for name in json.loads(_attr(self.path(chunks[0]), "models")):
            names.append(_unique(name, names))
        n_atoms = np.concatenate([c.source.n_atoms for c in chunks])
        offsets = np.concatenate([[0], np.cumsum(n_atoms)])
        layout = _layout(self.path(c) for c in chunks)
        # the store holds what the chunks hold: check the disk has room before HDF5 writes any
        check_space(store, sum(self.path(c).stat().st_size for c in chunks), "store")
        with replacing(store, what="store") as tmp:
            with open_comparison_file(tmp, names, angle_min_force, evaluation=json.dumps(self.key),
                                      evaluation_run=json.dumps(run)) as out:
                for group, datasets in layout.items():
                    target = out.require_group(group)
                    for name, (dtype, tail, per_frame) in datasets.items():
                        rows = len(n_atoms) if per_frame else int(offsets[-1])
                        target.create_dataset(name, shape=(rows, *tail), dtype=dtype)
                texts = []
                metas: dict[str, list[dict[str, Any]]] = {}
                for chunk in chunks:
                    with h5py.File(self.path(chunk), "r") as part:
                        _copy_chunk(part, out, layout, chunk, offsets)
                        for i, info in enumerate(read_info(part["frames"])):
                            if many_sources:
                                info.update(source=chunk.source.name, source_frame=chunk.start + i)
                            texts.append(json.dumps(info, default=str))
                        for src, dst in [("reference", "reference"), *(
                                (f"predictions/{k}", f"predictions/{k}") for k in range(len(names)))]:
                            if chunk.number == 0:
                                out[dst].attrs["model"] = part[src].attrs["model"]
                            metas.setdefault(dst, []).append(json.loads(part[src].attrs["meta"]))
                for dst, parts in metas.items():  # the first chunk's, with every chunk's speed
                    out[dst].attrs["meta"] = json.dumps(merged_meta(parts), default=str)
                for k, name in enumerate(names):
                    out[f"predictions/{k}"].attrs["model"] = name
                out["frames"].create_dataset("info", data=texts, dtype=h5py.string_dtype())
                out["frames"].attrs["source"] = "" if many_sources else chunks[0].source.name
                list_datasets(out)
        shutil.rmtree(self.dir)


def _attr(path: Path, name: str) -> Any:
    with h5py.File(path, "r") as h5:
        return h5.attrs[name]


def _layout(paths: Iterable[Path]) -> dict[str, dict[str, tuple]]:
    """Every dataset of the parts (some may lack a label others have): group -> name ->
    (dtype, trailing shape, per frame?)."""
    layout: dict[str, dict[str, tuple]] = {}
    per_frame = {"n_atoms", "cells", "pbc", *PER_FRAME}
    for path in paths:
        with h5py.File(path, "r") as part:
            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset) and not name.endswith("frames/info"):
                    group, _, leaf = name.rpartition("/")
                    entry = (obj.dtype, obj.shape[1:], leaf in per_frame and "/arrays" not in f"/{group}")
                    layout.setdefault(group, {}).setdefault(leaf, entry)
            part.visititems(visit)
    return layout


def _copy_chunk(part: h5py.File, out: h5py.File, layout: dict[str, dict[str, tuple]], chunk: Chunk,
                offsets: np.ndarray) -> None:
    frames = slice(chunk.first, chunk.first + chunk.stop - chunk.start)
    atoms = slice(int(offsets[frames.start]), int(offsets[frames.stop]))
    for group, datasets in layout.items():
        for name, (dtype, tail, per_frame) in datasets.items():
            rows = frames if per_frame else atoms
            path = f"{group}/{name}"
            if path in part:
                out[path][rows] = part[path][()]
            elif np.issubdtype(dtype, np.floating):  # a label or output missing in this chunk
                out[path][rows] = np.full((rows.stop - rows.start, *tail), np.nan, dtype=dtype)
            else:
                raise MlipvizError(f"{chunk.where()}: no '{path}' in its results, which other chunks have")

