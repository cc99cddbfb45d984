"""Shared machinery of the live reference calculators: level of theory, disk cache, parallel runs.

A `ReferenceCalculator` is a real ASE ``Calculator``. Subclasses implement `_compute`
(one structure in, a results dict out) and `level_of_theory`. Results are cached on
disk under a key made of the structure and every setting (code version included), so
a repeated call costs nothing; `evaluate` labels many frames in parallel worker
processes with a progress bar and writes the level of theory into each frame's info.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from tqdm.auto import tqdm

from .. import checks
from ..errors import CorruptFileWarning, MlipvizError, StoreWriteError, UnknownNameError
from ..frames import Frames, full_to_voigt
from ..io import read
from ..models import batching
from ..models.base import Model
from ..settings import folder_setting

if TYPE_CHECKING:
    from .._types import StructuresLike


def default_cache_dir() -> Path:
    """``$MLIPVIZ_CACHE/reference``, else ``~/.cache/mlipviz/reference``."""
    return (folder_setting("MLIPVIZ_CACHE") or Path.home() / ".cache" / "mlipviz") / "reference"


class ReferenceCalculator(Calculator):
    """Base of `PySCF` and `GPAW`: caching, provenance and parallel evaluation.

    Parameters
    ----------
    cache_dir : str or Path, optional
        Where results are cached (default: `default_cache_dir`).
    n_jobs : int, optional
        Worker processes of `evaluate` (default: the CPU count).
    **kwargs
        ASE ``Calculator`` arguments.

    Raises
    ------
    ArgumentTypeError, InputError
        A ``cache_dir`` that is not a folder path, or a bad ``n_jobs``.
    """

    implemented_properties: list[str] = ["energy", "forces"]  # noqa: RUF012 - ASE's attribute, a list there
    #: short name of the code, e.g. "PySCF"
    code: str = "reference"

    def __init__(self, cache_dir: str | Path | None = None, n_jobs: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache_dir = (checks.output_path("cache_dir", cache_dir, folder=True) if cache_dir is not None
                          else default_cache_dir())
        self.n_jobs = checks.whole_number("n_jobs", n_jobs, minimum=1, none=True)
        #: what the last `calculate` did: "cache" or "computed"
        self.last_source: str | None = None

    # -- for subclasses -------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Every setting that changes the numbers (JSON-serialisable)."""
        raise NotImplementedError

    def level_of_theory(self) -> str:
        """One human-readable line: code, version, method, basis/cutoff, k-points, smearing."""
        raise NotImplementedError

    def _compute(self, atoms: Atoms) -> dict[str, Any]:
        """Energy (eV), forces (eV/Å) and, where computed, stress (3x3, eV/Å³) of ``atoms``."""
        raise NotImplementedError

    # -- ASE protocol -----------------------------------------------------------
    def calculate(self, atoms: Atoms | None = None, properties: Sequence[str] = ("energy",),
                  system_changes: Sequence[str] = all_changes) -> None:
        """ASE's entry point: the results of ``atoms``, from the cache or computed (and cached)."""
        super().calculate(atoms, properties, system_changes)
        cached = self._load(self.atoms)
        if cached is None:
            cached = self._compute(self.atoms.copy())
            self._store(self.atoms, cached)
            self.last_source = "computed"
        else:
            self.last_source = "cache"
        self.results = {k: v for k, v in cached.items() if k in ("energy", "forces", "stress")}
        if "stress" in self.results:
            self.results["stress"] = full_to_voigt(self.results["stress"])
        self.results["free_energy"] = self.results["energy"]

    # -- cache --------------------------------------------------------------------
    def cache_key(self, atoms: Atoms, context: str = "") -> str:
        """Hash of the settings, the structure and ``context`` (what else the result
        depends on, e.g. a scan's path)."""
        digest = hashlib.sha1(json.dumps(self.settings(), sort_keys=True).encode() + context.encode())
        for array in (atoms.numbers.astype(np.int64), np.asarray(atoms.positions, dtype=np.float64),
                      np.asarray(atoms.cell.array, dtype=np.float64), np.asarray(atoms.pbc, dtype=bool)):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def _path(self, atoms: Atoms, context: str = "") -> Path:
        key = self.cache_key(atoms, context)
        return self.cache_dir / self.code.lower() / key[:2] / f"{key}.npz"

    def _load(self, atoms: Atoms, context: str = "") -> dict[str, Any] | None:
        """The cached results of ``atoms`` (under ``context``), or None. An entry that does
        not read whole (empty, cut short, not NumPy, a key or shape missing) is reported in a
        `CorruptFileWarning` naming it and deleted, so it is computed again."""
        path = self._path(atoms, context)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                out = {k: data[k] for k in data.files if k != "meta"}
                out["meta"] = json.loads(str(data["meta"]))
            n = len(atoms)
            if "energy" not in out or out["energy"].shape != ():
                raise ValueError("no scalar 'energy'")
            if "forces" not in out or out["forces"].shape != (n, 3):
                raise ValueError(f"'forces' of shape {getattr(out.get('forces'), 'shape', None)}, expected ({n}, 3)")
            if "stress" in out and out["stress"].shape != (3, 3):
                raise ValueError(f"'stress' of shape {out['stress'].shape}, expected (3, 3)")
            if not isinstance(out["meta"], dict):
                raise ValueError("'meta' is no JSON object")
        except PermissionError:
            raise  # not damage: the entry may be fine, and is not ours to delete
        except Exception as exc:  # noqa: BLE001 - numpy raises many kinds (BadZipFile, EOFError, ValueError, ...)
            path.unlink(missing_ok=True)
            warnings.warn(CorruptFileWarning(f"reference cache entry {path} cannot be read "
                                             f"({type(exc).__name__}: {exc}); deleted, it is computed again"),
                          stacklevel=3)
            return None
        out["energy"] = float(out["energy"])
        return out

    def _store(self, atoms: Atoms, results: dict[str, Any], context: str = "") -> None:
        """Cache ``results`` of ``atoms``: written next to the entry and moved there once whole,
        so an interruption or a full disk (`StoreWriteError`) leaves no half entry."""
        path = self._path(atoms, context)
        arrays: dict[str, Any] = {k: np.asarray(v) for k, v in results.items() if k != "meta"}
        # one temporary file per process and thread (workers and threads may cache at once)
        tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp.npz")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(tmp, meta=json.dumps(results.get("meta", {}), default=str), **arrays)
            os.replace(tmp, path)
        except OSError as exc:
            raise StoreWriteError(f"cannot write reference cache entry {path}: {exc.strerror or exc}",
                                  path, exc.errno) from exc
        finally:
            tmp.unlink(missing_ok=True)

    # -- many frames ------------------------------------------------------------------
    def evaluate(self, frames: StructuresLike, n_jobs: int | None = None, progress: bool = True,
                 on_error: str = "raise") -> Frames:
        """A copy of ``frames`` labelled with this calculator, level of theory in each info.

        Cached frames are read back; the others run in worker processes, one thread each;
        each finished frame is cached at once.

        Parameters
        ----------
        frames : Frames or anything `mlipviz.read` accepts
            The structures to label.
        n_jobs : int, optional
            Worker processes (default: ``self.n_jobs`` or the CPU count).
        progress : bool
            Show a progress bar.
        on_error : str
            ``on_error="raise"`` stops at the first failing frame (naming it); ``"nan"``
            carries on, gives failed frames NaN labels and the error message in
            ``info["reference_error"]``.

        Returns
        -------
        Frames
            With energy, forces (and stress where computed) and ``info["reference"]``, the
            level of theory, and ``info["reference_settings"]``.

        Raises
        ------
        MlipvizError
            A frame failed with ``on_error="raise"`` (naming it; finished frames stay cached).
        UnknownNameError
            An ``on_error`` other than "raise" or "nan".
        InputError
            A bad ``n_jobs``, or structures `mlipviz.read` refuses (its errors).
        StoreWriteError
            A cache entry could not be written (a full disk).
        """
        checks.one_of("on_error", on_error, ("raise", "nan"))
        checks.whole_number("n_jobs", n_jobs, minimum=1, none=True)
        frames = frames if isinstance(frames, Frames) else read(frames)
        results: dict[int, dict[str, Any]] = {}
        todo = []
        for i in range(len(frames)):
            cached = self._load(frames.to_atoms(i))
            if cached is None:
                todo.append(i)
            else:
                results[i] = cached
        results.update(self._run_jobs(frames, [(_frame_in_worker, (self, frames.to_atoms(i), i)) for i in todo],
                                      n_jobs, progress, on_error, f"{self.code} reference", done=len(results)))
        return self._labelled(frames, [results[i] for i in range(len(frames))])

    def _run_jobs(self, frames: Frames, jobs: list[tuple[Callable[..., dict[int, Any]], tuple]], n_jobs: int | None,
                  progress: bool, on_error: str, desc: str, done: int = 0) -> dict[int, dict[str, Any]]:
        """Run ``jobs`` ((function, args) pairs, each returning {frame index: its results or
        the exception}) here or in ``n_jobs`` spawned worker processes (default:
        ``self.n_jobs`` or the CPU count; one thread each), with a progress bar over
        ``frames`` (``done`` of them already labelled); failures as ``on_error`` says."""
        if on_error not in ("raise", "nan"):
            raise UnknownNameError(f"on_error must be 'raise' or 'nan', got {on_error!r}")
        results: dict[int, dict[str, Any]] = {}
        n_jobs = max(1, min(n_jobs or self.n_jobs or os.cpu_count() or 1, len(jobs) or 1))
        bar = tqdm(total=len(frames), initial=done, unit="frame", disable=not progress, desc=desc)

        def collect(outcome: dict[int, Any], pool: Executor | None = None) -> None:
            for i, out in outcome.items():
                if isinstance(out, Exception):
                    if on_error == "raise" and pool is not None:
                        pool.shutdown(wait=True, cancel_futures=True)
                    out = self._failed(frames, i, out, on_error)
                results[i] = out
            bar.update(len(outcome))

        try:
            if n_jobs == 1:
                for function, args in jobs:
                    collect(function(*args))
            else:
                with _one_thread_per_worker(), ProcessPoolExecutor(
                        n_jobs, mp_context=get_context("spawn")) as pool:
                    for job in as_completed([pool.submit(function, *args) for function, args in jobs]):
                        collect(job.result(), pool)
        finally:
            bar.close()
        return results

    def _failed(self, frames: Frames, i: int, exc: Exception, on_error: str) -> dict[str, Any]:
        message = (f"{self.code} failed on frame {i}"
                   f"{' of ' + str(frames.source) if frames.source else ''}: "
                   f"{type(exc).__name__}: {exc}")
        if on_error == "raise":
            raise MlipvizError(f"{message}; finished frames are cached in {self.cache_dir}") from exc
        n = int(frames.n_atoms[i])
        return {"energy": np.nan, "forces": np.full((n, 3), np.nan), "meta": {"error": message}}

    def _labelled(self, frames: Frames, results: list[dict[str, Any]]) -> Frames:
        has_stress = [("stress" in r) for r in results]
        stress = None
        if any(has_stress):
            stress = np.stack([r["stress"] if "stress" in r else np.full((3, 3), np.nan) for r in results])
        out = frames.with_labels(energy=np.array([r["energy"] for r in results]),
                                 forces=np.concatenate([r["forces"] for r in results]),
                                 stress=stress, energies=None)
        settings = json.dumps(self.settings(), sort_keys=True)
        for info, result in zip(out.info, results):
            info["reference"] = self.level_of_theory()
            info["reference_settings"] = settings
            for key, value in result.get("meta", {}).items():
                info[f"reference_{key}"] = value
        return out

    def as_model(self) -> ReferenceModel:
        """The calculator behind the `Model` interface (for `mlipviz.compare(reference=...)`)."""
        return ReferenceModel(self)


class ReferenceModel(Model):
    """A `ReferenceCalculator` as a `Model`: parallel, cached, checkpointed by batch."""

    has_energies: bool = False

    def __init__(self, calc: ReferenceCalculator) -> None:
        super().__init__()
        self.calc = calc
        self.name = f"{calc.code} ({calc.level_of_theory()})"
        self.has_stress = "stress" in calc.implemented_properties
        self.meta = {"level_of_theory": calc.level_of_theory(), "settings": calc.settings()}

    def _plan(self, frames: Frames, todo: np.ndarray, batch_size: int | None,
              memory_budget: float | None) -> batching.BatchPlan:
        """One frame per worker and pass (``batch_size`` frames if given)."""
        per_batch = batch_size or max(1, self.calc.n_jobs or os.cpu_count() or 1)
        return batching.BatchPlan(frames.n_atoms[todo], frames.n_atoms[todo], max_frames=per_batch)

    def calculator(self) -> ReferenceCalculator:
        """The `ReferenceCalculator` itself."""
        return self.calc

    def _evaluate(self, frames: Frames, return_embeddings: bool) -> dict[str, Any]:
        labelled = self.calc.evaluate(frames, progress=False)
        return {"energy": labelled.energy, "forces": labelled.forces, "stress": labelled.stress}


@contextmanager
def _one_thread_per_worker() -> Iterator[None]:
    """Workers started meanwhile (spawn copies the environment) use one BLAS/OpenMP thread."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: "1" for name in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _compute_in_worker(calc: ReferenceCalculator, atoms: Atoms, context: str = "",
                       meta: dict[str, Any] | None = None, **compute: Any) -> dict[str, Any]:
    """Compute one structure (``compute``: further `_compute` arguments) and cache it at once
    (under ``context``), its time and ``meta`` in its meta, so finished work survives a
    failing batch."""
    start = time.perf_counter()
    out = calc._compute(atoms.copy(), **compute)
    out.setdefault("meta", {}).update(seconds=round(time.perf_counter() - start, 2), **(meta or {}))
    calc._store(atoms, out, context)
    return out


def _frame_in_worker(calc: ReferenceCalculator, atoms: Atoms, index: int) -> dict[int, Any]:
    """{index: the frame's results (cached at once), or the exception it raised}."""
    try:
        return {index: _compute_in_worker(calc, atoms)}
    except Exception as exc:  # noqa: BLE001 - reported per frame by `_run_jobs`
        return {index: exc}
