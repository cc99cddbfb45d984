"""Compare models against a reference: per-atom and per-frame errors, softening, rare events."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import h5py
import numpy as np
import pandas as pd
from ase.data import chemical_symbols

from ..checks import flag, number, output_path
from ..display import Showable
from ..errors import (
    ArgumentTypeError,
    InputError,
    MissingLabelsError,
    ModelNotAvailableError,
    ReadError,
    UnknownNameError,
)
from ..frames import Frames
from ..io import read
from ..models.base import Model, Prediction
from ..storage import hdf5_in_memory, hdf5_reason, replacing
from ..units import EV_A3_IN_GPA
from ..version import __version__
from .metrics import ANGLE_MIN_FORCE, force_errors, minimum_image_displacement, row_norms, softening_fit

if TYPE_CHECKING:
    from ..models.corrected import CorrectedModel
    from ._types import ModelSpec, ModelsSpec, StructuresLike

#: atoms per block when measuring displacements from the first frame (bounds the memory
#: of ASE's minimum-image search, which tries 27 images per vector in skewed cells).
DISPLACEMENT_BLOCK_ATOMS = 200_000
#: 2: arrays uncompressed (mapped on load), per-frame info in a dataset when large
FORMAT_VERSION = 2


def compare(models: ModelsSpec, frames: StructuresLike, reference: ModelSpec | bool | None = None,
            batch_size: int | None = None, progress: bool = True, device: str = "auto",
            checkpoint_dir: str | Path | None = None, angle_min_force: float = ANGLE_MIN_FORCE,
            callback: Callable[[str, int, int], Any] | None = None, embeddings: bool = False) -> Comparison:
    """Evaluate one or more models and a reference on the same frames.

    Parameters
    ----------
    models : Model, str, Path, ASE calculator, or a list of those
        A `Model`, a registry name, a weights path, an ASE calculator, or a list of those.
    frames : Frames or anything `mlipviz.read` accepts
        The structures.
    reference : None, a model or calculator, or False
        None for the labels in the frames (frames without reference forces raise
        `MissingLabelsError`), a model/calculator (any ``models`` entry) to evaluate on the
        same frames, or False for a models-only comparison: the models' predictions side by
        side, whatever labels the frames carry; its ``reference`` is None, ``per_atom`` and
        ``per_frame`` hold the predictions only, and what compares against a reference
        (``summary``, ``softening``, ``atom_errors``, ``rare_events``, the error map, ...)
        raises `MissingLabelsError`.
    batch_size : int, optional
        Structures per forward pass (see `Model.predict`).
    progress : bool
        Show progress bars.
    device : str
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``, for models loaded by name or path.
    checkpoint_dir : str or Path, optional
        Keeps each model's finished batches on disk so an interrupted comparison resumes.
    angle_min_force : float
        (eV/Å, >= 0): forces weaker than this get no angle error.
    callback : callable, optional
        ``callback(name, done, total)`` runs after each batch of the reference (name
        ``"reference"``) and of each model; an exception it raises stops the comparison
        (finished batches stay in ``checkpoint_dir``).
    embeddings : bool
        ``embeddings=True`` keeps each model's per-atom embeddings from the same forward pass
        (models that have none, such as plain ASE calculators, keep None), for `mlipviz.latent`.

    Returns
    -------
    Comparison

    Raises
    ------
    MissingLabelsError
        ``reference=None`` and frames without reference forces.
    ArgumentTypeError
        ``reference=True``, a ``callback`` that is not callable, or an argument of the wrong type.
    InputError
        An empty list of models, a bad ``batch_size``, ``angle_min_force`` or ``checkpoint_dir``,
        or structures `mlipviz.read` refuses (its errors).
    ModelNotAvailableError
        A model that cannot be loaded here.
    UnsupportedElementError
        Frames with an element a model was not trained on.
    """
    from ..models import model_specs, resolve_models, resolve_reference
    from ..models.batching import check_batch_size

    if reference is True:  # True is no calculator; False is the explicit "no reference"
        raise ArgumentTypeError("reference must be None (the frames' labels), a model or calculator, "
                                "or False (models only); got True")
    angle_min_force = number("angle_min_force", angle_min_force, minimum=0)
    progress, embeddings = flag("progress", progress), flag("embeddings", embeddings)
    if callback is not None and not callable(callback):
        raise ArgumentTypeError(f"callback must be a function callback(name, done, total) or None, "
                                f"got {callback!r}")
    if checkpoint_dir is not None:  # checked before any model runs, not at its first batch
        checkpoint_dir = output_path("checkpoint_dir", checkpoint_dir, folder=True)
    frames = frames if isinstance(frames, Frames) else read(frames)
    specs = model_specs(models)  # before the frames' labels are checked
    check_batch_size(batch_size)
    loaded = resolve_models(specs, device)

    def checkpoint(name: str) -> Path | None:
        if checkpoint_dir is None:
            return None
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
        return Path(checkpoint_dir) / f"{name.replace('/', '_')}.h5"

    if reference is False:
        ref = None
    elif reference is None:
        ref = reference_from_labels(frames)
    else:
        ref_model = resolve_reference(reference, device)
        ref = ref_model.predict(frames, batch_size=batch_size, progress=progress,
                                checkpoint=checkpoint("reference-" + ref_model.name),
                                callback=_named(callback, "reference"))
    predictions: dict[str, Prediction] = {}
    for model in loaded:
        name = _unique(model.name, predictions)
        predictions[name] = model.predict(frames, batch_size=batch_size, progress=progress,
                                          checkpoint=checkpoint(name), callback=_named(callback, name),
                                          return_embeddings=embeddings and model.embedding_layer is not None)
    result = Comparison(frames, predictions, ref, angle_min_force=angle_min_force)
    result.loaded_models = dict(zip(predictions, loaded))  # for corrected(): the models themselves
    return result


def reference_from_labels(frames: Frames) -> Prediction:
    """The frames' own labels as the reference; forces are required."""
    if frames.forces is None or not frames.has_labels["forces"]:
        raise MissingLabelsError(
            "the frames carry no reference forces; pass reference= a calculator or model, "
            "read a file with DFT labels, or reference=False to compare models only",
            source=frames.source)
    forces = frames.forces
    missing = np.flatnonzero([np.isnan(forces[frames.atoms_of(i)]).any() for i in range(len(frames))])
    if len(missing):
        raise MissingLabelsError(
            f"{len(missing)} frame(s) lack reference forces (first: {missing[:5].tolist()}); "
            "select the labelled frames or pass reference=", source=frames.source, frame=int(missing[0]))
    return Prediction.from_frames(frames)


def _forces(pred: Prediction) -> np.ndarray:
    """A prediction's forces: every model and reference of a comparison has them."""
    return cast(np.ndarray, pred.forces)


def _named(callback: Callable[[str, int, int], Any] | None, name: str) -> Callable[[int, int], Any] | None:
    return None if callback is None else (lambda done, total: callback(name, done, total))


def _unique(name: str, taken: Iterable[str]) -> str:
    candidate, k = name, 2
    while candidate in taken:
        candidate, k = f"{name}-{k}", k + 1
    return candidate


class RareEvents:
    """Rare-event analysis (Liu, He & Mo 2023).

    Attributes
    ----------
    summary : pd.DataFrame
        One row per model and group ("rare-event" / "other") with error statistics and the
        fractions of atoms above the thresholds.
    selected : np.ndarray
        The per-atom mask of rare-event atoms (frames layout).
    per_atom : pd.DataFrame
        The per-atom errors with a boolean ``rare_event`` column, for distributions (made
        when first used).
    """

    summary: pd.DataFrame
    selected: np.ndarray

    def __init__(self, summary: pd.DataFrame, selected: np.ndarray, comparison: Comparison) -> None:
        self.summary = summary
        self.selected = selected
        self._comparison = comparison

    @cached_property
    def per_atom(self) -> pd.DataFrame:
        """The per-atom errors with a boolean ``rare_event`` column (`Comparison.per_atom` plus one)."""
        table = self._comparison.per_atom.copy()
        table["rare_event"] = np.tile(self.selected, len(self._comparison.predictions))
        return table


class Comparison(Showable):
    """Predictions of one or more models and a reference on the same `Frames`.

    ``reference`` None makes a models-only comparison (``compare(..., reference=False)``,
    or a PES scan without a reference): `per_atom` and `per_frame` then hold the
    predictions without error columns, and everything measured against a reference
    raises `MissingLabelsError` naming what was asked.

    Units: eV, eV/Å, degrees; energy errors per atom; stress errors in GPa.

    Parameters
    ----------
    frames : Frames
        The structures.
    predictions : dict of str to Prediction
        Each model's predictions on ``frames``, by name.
    reference : Prediction or None
        The reference (labels or a reference model), or None for models only.
    angle_min_force : float
        (eV/Å, >= 0): forces weaker than this get no angle error.

    Attributes
    ----------
    frames : Frames
    predictions : dict of str to Prediction
    reference : Prediction or None
    angle_min_force : float

    Raises
    ------
    InputError
        A prediction whose atom counts do not match the frames, or a bad ``angle_min_force``.
    """

    frames: Frames
    predictions: dict[str, Prediction]
    reference: Prediction | None
    angle_min_force: float

    def __init__(self, frames: Frames, predictions: dict[str, Prediction], reference: Prediction | None,
                 angle_min_force: float = ANGLE_MIN_FORCE) -> None:
        sides = {**predictions, **({} if reference is None else {"reference": reference})}
        for name, pred in sides.items():
            if not np.array_equal(pred.n_atoms, frames.n_atoms):
                raise InputError(f"prediction '{name}' does not match the frames' atom counts")
        self.frames = frames
        self.predictions = dict(predictions)
        self.reference = reference
        self.angle_min_force = number("angle_min_force", angle_min_force, minimum=0)
        self._atom_errors: dict[str, dict[str, np.ndarray]] = {}
        #: the models behind the predictions, where this process made them (`compare`); not saved
        self.loaded_models: dict[str, Model] = {}

    @property
    def models(self) -> list[str]:
        """The models' names, in order."""
        return list(self.predictions)

    @property
    def has_reference(self) -> bool:
        """False for a models-only comparison (no reference to measure errors against)."""
        return self.reference is not None

    def __getitem__(self, model: str) -> Prediction:
        """``cmp[name]``: the `Prediction` of one model (see `prediction`)."""
        return self.prediction(model)

    def __repr__(self) -> str:
        against = f"vs {self.reference.model}" if self.reference is not None else "models only"
        return (f"Comparison({', '.join(self.models)} {against}; "
                f"{len(self.frames)} frames, {self.frames.total_atoms} atoms)")

    def _require_reference(self, what: str) -> Prediction:
        """The reference, or a `MissingLabelsError` saying that ``what`` needs one."""
        if self.reference is None:
            raise MissingLabelsError(
                f"{what} needs a reference, and this comparison holds models only; compare with "
                "reference= a calculator or model, or on frames with reference labels",
                source=self.frames.source)
        return self.reference

    def prediction(self, model: str) -> Prediction:
        """The `Prediction` of one model.

        Parameters
        ----------
        model : str
            A name of `models`.

        Returns
        -------
        Prediction

        Raises
        ------
        UnknownNameError
            (a KeyError) names unknown ones.
        """
        if not isinstance(model, str) or model not in self.predictions:
            raise UnknownNameError(f"model: no model {model!r} in this comparison "
                                   f"(models: {', '.join(self.models)})")
        return self.predictions[model]

    @property
    def has_site_energy_reference(self) -> bool:
        """Whether the reference has per-atom energies (another model can; DFT labels rarely do)."""
        energies = None if self.reference is None else self.reference.energies
        return energies is not None and bool(np.isfinite(energies).all())

    def force_vectors(self, model: str) -> dict[str, np.ndarray]:
        """Per-atom force vectors (frames layout, eV/Å): ``predicted``, ``reference``, ``difference``.

        Parameters
        ----------
        model : str
            A name of `models`.

        Returns
        -------
        dict of str to np.ndarray
            ``(n_atoms_total, 3)`` arrays.

        Raises
        ------
        UnknownNameError
            No such model.
        MissingLabelsError
            A models-only comparison.
        """
        pred = self._predicted_forces(model)
        ref = _forces(self._require_reference(f"force_vectors({model!r})"))
        return {"predicted": pred, "reference": ref, "difference": pred - ref}

    def _predicted_forces(self, model: str) -> np.ndarray:
        return _forces(self.prediction(model))

    def atom_errors(self, model: str) -> dict[str, np.ndarray]:
        """Per-atom errors of one model as arrays (frames layout): ``force_error``,
        ``magnitude_error``, ``angle_error`` and, where both sides have site energies,
        ``site_energy_error``; computed once. What `per_atom` tabulates for every model,
        without the table (for large sets).

        Parameters
        ----------
        model : str
            A name of `models`.

        Returns
        -------
        dict of str to np.ndarray
            One value per atom.

        Raises
        ------
        UnknownNameError
            No such model.
        MissingLabelsError
            A models-only comparison.
        """
        if model not in self._atom_errors:
            pred = self._predicted_forces(model)
            ref = self._require_reference(f"atom_errors({model!r})")
            errors = force_errors(pred, _forces(ref), self.angle_min_force)
            energies = self.predictions[model].energies
            if energies is not None and ref.energies is not None and self.has_site_energy_reference:
                errors["site_energy_error"] = energies - ref.energies
            self._atom_errors[model] = errors
        return self._atom_errors[model]

    # -- tables ---------------------------------------------------------------
    @cached_property
    def per_atom(self) -> pd.DataFrame:
        """One row per model, frame and atom: forces, |dF|, magnitude and angle errors, and
        per-atom (site) energies and their error where the model and reference have them.
        Models only (no reference): the predicted forces and site energies alone."""
        f = self.frames
        base = {"frame": f.frame_index, "atom": f.atom_index,
                "element": pd.Categorical(np.asarray(chemical_symbols)[f.numbers])}
        tables = []
        for name, pred in self.predictions.items():
            cols = {"model": name, **base}
            forces = _forces(pred)
            for k, axis in enumerate("xyz"):
                cols[f"f{axis}_pred"] = forces[:, k]
            if self.reference is None:
                if pred.energies is not None:
                    cols["site_energy_pred"] = pred.energies
                tables.append(pd.DataFrame(cols))
                continue
            ref = _forces(self.reference)
            for k, axis in enumerate("xyz"):
                cols[f"f{axis}_ref"] = ref[:, k]
            errors = dict(self.atom_errors(name))
            site_error = errors.pop("site_energy_error", None)
            cols.update(errors)
            if pred.energies is not None:
                cols["site_energy_pred"] = pred.energies
                if site_error is not None:
                    cols["site_energy_ref"] = self.reference.energies
                    cols["site_energy_error"] = site_error
            tables.append(pd.DataFrame(cols))
        table = pd.concat(tables, ignore_index=True)
        table["model"] = pd.Categorical(table["model"], categories=self.models)
        return table

    @cached_property
    def per_frame(self) -> pd.DataFrame:
        """One row per model and frame: energies, energy error per atom, force MAE/RMSE.
        Models only (no reference): atoms and predicted energy alone."""
        f, ref = self.frames, self.reference
        frame_of_atom = f.frame_index
        rows = []
        for name, pred in self.predictions.items():
            if ref is None:
                rows.append(pd.DataFrame({"model": name, "frame": np.arange(len(f)), "n_atoms": f.n_atoms,
                                          "energy_pred": pred.energy}))
                continue
            diff = _forces(pred) - _forces(ref)
            abs_sum = np.bincount(frame_of_atom, np.abs(diff).sum(axis=1), minlength=len(f))
            norm = row_norms(diff)
            sq_sum = np.bincount(frame_of_atom, norm ** 2, minlength=len(f))
            max_err = np.zeros(len(f))
            filled = f.n_atoms > 0  # frames' atoms are contiguous: one maximum per run of rows
            max_err[filled] = np.maximum.reduceat(norm, f.offsets[:-1][filled])
            table = pd.DataFrame({
                "model": name, "frame": np.arange(len(f)), "n_atoms": f.n_atoms,
                "energy_pred": pred.energy, "energy_ref": ref.energy if ref.energy is not None else np.nan,
                "force_mae": abs_sum / (3 * f.n_atoms), "force_rmse": np.sqrt(sq_sum / (3 * f.n_atoms)),
                "force_error_max": max_err,
            })
            table["energy_error_per_atom"] = (table["energy_pred"] - table["energy_ref"]) / f.n_atoms
            if pred.stress is not None and ref.stress is not None:
                table["stress_mae_GPa"] = np.abs(pred.stress - ref.stress).mean(axis=(1, 2)) * EV_A3_IN_GPA
            rows.append(table)
        table = pd.concat(rows, ignore_index=True)
        table["model"] = pd.Categorical(table["model"], categories=self.models)
        return table

    def summary(self) -> pd.DataFrame:
        """MAE/RMSE per model: energy per atom (eV/atom), force components (eV/Å), stress (GPa).

        Returns
        -------
        pd.DataFrame
            One row per model (index ``model``): ``n_frames``, ``n_atoms``,
            ``energy_mae_eV_atom`` and ``energy_rmse_eV_atom`` (where the reference has
            energies), ``force_mae_eV_A``, ``force_rmse_eV_A``, ``stress_mae_GPa`` and
            ``stress_rmse_GPa`` (where both sides have stresses).

        Raises
        ------
        MissingLabelsError
            A models-only comparison.
        """
        ref = self._require_reference("summary()")
        e_ref_pa = (ref.energy / self.frames.n_atoms) if ref.energy is not None else None
        rows = {}
        for name, pred in self.predictions.items():
            row: dict[str, float] = {"n_frames": len(self.frames), "n_atoms": self.frames.total_atoms}
            if e_ref_pa is not None:
                err = cast(np.ndarray, pred.energy) / self.frames.n_atoms - e_ref_pa
                row["energy_mae_eV_atom"] = np.nanmean(np.abs(err))
                row["energy_rmse_eV_atom"] = np.sqrt(np.nanmean(err ** 2))
            dF = (_forces(pred) - _forces(ref)).ravel()
            row["force_mae_eV_A"] = np.nanmean(np.abs(dF))
            row["force_rmse_eV_A"] = np.sqrt(np.nanmean(dF ** 2))
            if pred.stress is not None and ref.stress is not None and np.isfinite(ref.stress).any():
                dS = (pred.stress - ref.stress).ravel() * EV_A3_IN_GPA
                row["stress_mae_GPa"] = np.nanmean(np.abs(dS))
                row["stress_rmse_GPa"] = np.sqrt(np.nanmean(dS ** 2))
            rows[name] = row
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")

    # -- softening --------------------------------------------------------------
    def softening(self, by: str | None = None) -> pd.DataFrame:
        """Softening scale per model (Deng et al. 2025), optionally per group of frames.

        Columns: ``slope`` (fit through the origin), ``slope_with_intercept``,
        ``intercept``, ``r2``, ``mae``, ``cmae``, ``correction`` (c = 1/slope),
        ``n_components``.

        Parameters
        ----------
        by : str, optional
            None (all frames pooled), ``"frame"``, or a key of the frames' ``info`` (e.g. a
            material id); then one row per model and group.

        Returns
        -------
        pd.DataFrame
            Indexed by ``model`` (and ``by``).

        Raises
        ------
        MissingLabelsError
            A models-only comparison.
        UnknownNameError
            ``by`` is an ``info`` key that some frames lack.
        """
        reference = self._require_reference("softening()")
        groups = self._frame_groups(by)
        frame_of_atom = self.frames.frame_index if by is not None else None
        rows = []
        for name, pred in self.predictions.items():
            for group, frame_ids in groups.items():
                mask = slice(None) if frame_of_atom is None else np.isin(frame_of_atom, frame_ids)
                rows.append({"model": name, **({by: group} if by else {}),
                             **softening_fit(_forces(pred)[mask], _forces(reference)[mask])})
        return pd.DataFrame(rows).set_index(["model", by] if by else "model")

    # -- more models, and the reference as labels --------------------------------------
    def with_model(self, model: ModelSpec, name: str | None = None, progress: bool = False) -> Comparison:
        """A new `Comparison`: these frames, reference and models, and one more model evaluated on
        the same frames (the others are not run again).

        Parameters
        ----------
        model : Model, str, Path or ASE calculator
            The model to add (`load_model` takes it).
        name : str, optional
            Its name here (default: its own, made unique).
        progress : bool
            Show a progress bar.

        Returns
        -------
        Comparison
        """
        from ..models import load_model

        loaded = load_model(model)
        added = _unique(name or loaded.name, self.predictions)
        pred = loaded.predict(self.frames, progress=progress)
        result = Comparison(self.frames, {**self.predictions, added: pred}, self.reference,
                            angle_min_force=self.angle_min_force)
        result.loaded_models = {**self.loaded_models, added: loaded}
        return result

    def labelled_frames(self) -> Frames:
        """The frames with the reference as their labels (energy, forces, stress where it has
        them): what to fine-tune on when the reference is a model or a live calculation.

        Raises
        ------
        MissingLabelsError
            A models-only comparison.
        """
        ref = self._require_reference("labelled_frames()")
        labels = {"energy": ref.energy, "forces": ref.forces}
        if ref.stress is not None and np.isfinite(ref.stress).all():
            labels["stress"] = ref.stress
        return self.frames.with_labels(**labels)

    # -- correction ---------------------------------------------------------------
    def corrected(self, model: str, by: str | None = None, base: ModelSpec | None = None) -> CorrectedModel:
        """The linear softening correction of ``model`` (Deng et al. 2025) as a model of its own:
        forces, stress and energy differences scaled by c = 1/s, s its softening scale on these
        frames against this reference (`softening`), optionally per group of frames.

        The result works wherever a model does (`compare`, the scans, `md_stability`, the
        Explorer) and as an ASE calculator (``.calculator()``); its card says what it is and
        what the correction was fitted on. Judge it on frames it was not fitted on.

        Parameters
        ----------
        model : str
            A model of this comparison.
        by : str, optional
            None: one c for all frames; or a key of the frames' ``info`` (e.g. ``"material_id"``):
            one c per value, chosen for each frame it is run on from the same key (a frame whose
            value has no fit is refused).
        base : Model, str, Path or ASE calculator, optional
            The model itself, where this comparison does not hold it (one read from a file, or
            made from predictions); default: the model `compare` loaded, or the registry model of
            that name.

        Returns
        -------
        mlipviz.models.corrected.CorrectedModel

        Raises
        ------
        MissingLabelsError
            A models-only comparison.
        UnknownNameError
            ``model`` is not in this comparison, or ``by`` an ``info`` key some frames lack.
        InputError
            A slope that is not positive (forces that do not follow the reference at all).
        ModelNotAvailableError
            ``base`` not given, and no model of that name can be loaded.
        """
        from ..models import get_card, load_model
        from ..models.corrected import CorrectedModel

        pred = self.prediction(model)
        fits = self.softening(by)
        if base is not None:
            underlying = load_model(base)
        elif model in self.loaded_models:
            underlying = self.loaded_models[model]
        elif get_card(model) is not None:
            underlying = load_model(model)
        else:
            raise ModelNotAvailableError(f"corrected({model!r}): this comparison does not hold that model (it was "
                                         "read from a file or built from predictions); pass it as base=")
        groups = self._frame_groups(by)
        per_atom = cast(np.ndarray, pred.energy) / self.frames.n_atoms
        scales, anchors = {}, {}
        for group, frame_ids in groups.items():
            slope = float(fits.loc[(model, group) if by else model, "slope"])
            if not (np.isfinite(slope) and slope > 0):
                raise InputError(f"corrected({model!r}): its softening slope{f' for {by}={group!r}' if by else ''} "
                                 f"is {slope:.3g}: its forces do not follow the reference, and no scaling fixes that")
            key = None if by is None else group
            scales[key], anchors[key] = 1.0 / slope, float(np.min(per_atom[frame_ids]))
        if self.reference is not None and self.reference.meta.get("model"):  # a reference model
            against = f"model {self.reference.meta['model']}"
        else:  # the frames' labels, at the level of theory they record
            against = "; ".join(sorted({str(i["reference"]) for i in self.frames.info if "reference" in i})) \
                or "the frames' labels"
        source = f" of {Path(str(self.frames.source)).name}" if self.frames.source else ""
        fitted_on = f"{len(self.frames)} frames{source} against {against}"
        return CorrectedModel(underlying, scales if by else scales[None], anchors if by else anchors[None], by=by,
                              fitted_on=fitted_on)

    # -- model choice -------------------------------------------------------------
    def model_choice(self, rare_events: dict[str, Any] | None = None) -> pd.DataFrame:
        """Accuracy on these frames against speed measured in the same run: which model to
        choose for this data on this machine (Jacobs et al. 2025, execution speed and model choice).

        Parameters
        ----------
        rare_events : dict, optional
            Keyword arguments of `rare_events` that choose the rare-event atoms (``atoms``,
            ``threshold``); default: atoms displaced more than 1 Å from the first frame. Where
            the frames allow no such choice (different structures), the rare-event columns are
            NaN and ``attrs["rare_events"]`` says why.

        Returns
        -------
        pd.DataFrame
            One row per model (index ``model``): ``force_mae_eV_A``, ``energy_mae_eV_atom``
            (where the reference has energies), ``softening_slope`` (Deng et al. 2025; 1 is no
            softening), ``rare_event_force_error_eV_A`` (mean |ΔF| on the rare-event atoms, Liu,
            He & Mo 2023) and ``n_rare_event_atoms``; ``atoms_per_second`` (atoms evaluated per
            second of the model's forward passes in this comparison, graph building included),
            ``seconds``, ``peak_memory_MiB`` (its largest forward pass: the CUDA allocator's peak
            above what was allocated before it on a GPU; on CPU the tensors autograd saved for the
            forces, which unlike the process's resident memory does not depend on what ran
            before; NaN for a calculator that runs no torch autograd), ``device``, ``dtype``;
            and ``best_tradeoff``: no other model is both faster and more accurate in forces
            (the Pareto front). NaN speed where a model's predictions were read back from a
            checkpoint or a file written before speeds were recorded. ``attrs`` holds
            ``device``, ``dtype`` and ``rare_events`` (how the atoms were chosen).

        Raises
        ------
        MissingLabelsError
            A models-only comparison.
        InputError, ArgumentTypeError
            ``rare_events`` that `rare_events` refuses (its errors), or not a dict.
        """
        self._require_reference("model_choice()")
        if rare_events is not None and not isinstance(rare_events, dict):
            raise ArgumentTypeError(f"rare_events must be a dict of rare_events() arguments or None, "
                                    f"got {type(rare_events).__name__}")
        summary, slopes = self.summary(), self.softening()["slope"]
        table = pd.DataFrame(index=pd.Index(self.models, name="model"))
        table["force_mae_eV_A"] = summary["force_mae_eV_A"]
        if "energy_mae_eV_atom" in summary:
            table["energy_mae_eV_atom"] = summary["energy_mae_eV_atom"]
        table["softening_slope"] = slopes
        how = "atoms displaced more than 1 Å from the first frame" if not rare_events else \
            "rare_events(" + ", ".join(f"{k}={v!r}" for k, v in rare_events.items()) + ")"
        try:
            rare = self.rare_events(**(rare_events or {})).summary
        except InputError as exc:
            if rare_events:  # the user's own selection: their error
                raise
            rare, how = None, f"none: {exc}"
        table["rare_event_force_error_eV_A"] = np.nan
        table["n_rare_event_atoms"] = 0
        if rare is not None:
            for name in self.models:
                if (name, "rare-event") in rare.index:
                    table.loc[name, "rare_event_force_error_eV_A"] = rare.loc[(name, "rare-event"), "force_error_mean"]
                    table.loc[name, "n_rare_event_atoms"] = rare.loc[(name, "rare-event"), "n_atoms"]
            if not table["n_rare_event_atoms"].any():
                how += " (none found)"
        for name, pred in self.predictions.items():
            meta = pred.meta
            table.loc[name, "atoms_per_second"] = meta.get("atoms_per_second", np.nan)
            table.loc[name, "seconds"] = meta.get("seconds", np.nan)
            peak = meta.get("peak_memory_bytes")
            table.loc[name, "peak_memory_MiB"] = np.nan if peak is None else peak / 2 ** 20
            table.loc[name, "device"] = str(meta.get("device", "unknown"))
            table.loc[name, "dtype"] = str(meta.get("dtype", "unknown"))
        table["best_tradeoff"] = _pareto(table["force_mae_eV_A"].to_numpy(), table["atoms_per_second"].to_numpy())
        table.attrs.update(device=", ".join(sorted(set(table["device"]))),
                           dtype=", ".join(sorted(set(table["dtype"]))), rare_events=how)
        return table

    def _frame_groups(self, by: str | None) -> dict[Any, np.ndarray]:
        n = len(self.frames)
        if by is None:
            return {"all": np.arange(n)}
        if by == "frame":
            return {i: np.array([i]) for i in range(n)}
        missing = [i for i, d in enumerate(self.frames.info) if by not in d]
        if missing:
            raise UnknownNameError(f"by: info key {by!r} is missing in {len(missing)} frame(s); by is None, "
                                   "'frame' or a key of every frame's info", source=self.frames.source,
                                   frame=missing[0])
        keys = [_hashable(d[by]) for d in self.frames.info]
        groups: dict = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        return {k: np.array(v) for k, v in groups.items()}

    def errors_by_element(self) -> pd.DataFrame:
        """Per model and element: atoms, mean and largest |dF| (eV/Å), mean magnitude error dF
        (eV/Å, signed: < 0 means too small forces), mean angle error (degrees). Meaningful for
        any frames, also where atoms differ from frame to frame.

        Returns
        -------
        pd.DataFrame
            Indexed by ``model`` and ``element``: ``n_atoms``, ``force_error_mean``,
            ``force_error_max``, ``magnitude_error_mean``, ``angle_error_mean``.

        Raises
        ------
        MissingLabelsError
            A models-only comparison.
        """
        self._require_reference("errors_by_element()")
        numbers = self.frames.numbers
        rows = []
        for name in self.models:
            errors = self.atom_errors(name)
            for z in np.unique(numbers):
                mask = numbers == z
                rows.append({"model": name, "element": chemical_symbols[z], "n_atoms": int(mask.sum()),
                             "force_error_mean": _finite(errors["force_error"][mask], np.mean),
                             "force_error_max": _finite(errors["force_error"][mask], np.max),
                             "magnitude_error_mean": _finite(errors["magnitude_error"][mask], np.mean),
                             "angle_error_mean": _finite(errors["angle_error"][mask], np.mean)})
        return pd.DataFrame(rows).set_index(["model", "element"])

    # -- rare events ------------------------------------------------------------
    def rare_events(self, atoms: np.ndarray | Sequence[int] | str | None = None, threshold: float = 1.0,
                    force_threshold: float = 0.5, angle_thresholds: Sequence[float] = (15.0, 30.0)) -> RareEvents:
        """Errors on rare-event atoms versus all others (Liu, He & Mo 2023).

        Parameters
        ----------
        atoms : np.ndarray, list of int or str, optional
            Selects the rare-event atoms: a boolean per-atom mask (frames layout), atom
            indices (within each frame, the same in every frame), the name of a per-atom
            array or of a frames ``info`` key holding indices; by default, atoms displaced
            more than ``threshold`` Å from their position in the first frame (minimum image).
        threshold : float
            Displacement (Å) that makes an atom a rare-event atom, when ``atoms`` is None.
        force_threshold : float
            The summary reports the fraction of atoms with |dF| > ``force_threshold`` eV/Å.
        angle_thresholds : sequence of float
            ... and with angle errors above ``angle_thresholds`` degrees (increasing, in [0, 180]).

        Returns
        -------
        RareEvents

        Raises
        ------
        MissingLabelsError
            A models-only comparison.
        InputError
            A selection that does not fit the frames (mask shape, indices out of range, a name
            that is neither a per-atom array nor an ``info`` key of every frame; the default
            needs the same atoms in every frame), or bad thresholds.
        ArgumentTypeError
            A selection or threshold of the wrong type (e.g. float indices).
        """
        self._require_reference("rare_events()")
        threshold = number("threshold", threshold, minimum=0)
        force_threshold = number("force_threshold", force_threshold, minimum=0)
        angle_thresholds = _angle_thresholds(angle_thresholds)
        selected = self._select_atoms(atoms, threshold)
        stats = []
        for name in self.models:
            errors = self.atom_errors(name)
            for is_rare in (True, False):
                mask = selected == is_rare
                if not mask.any():
                    continue
                force, magnitude, angle = (errors[k][mask] for k in
                                           ("force_error", "magnitude_error", "angle_error"))
                row: dict[str, Any] = {"model": name, "group": "rare-event" if is_rare else "other",
                                       "n_atoms": int(mask.sum())}
                for column, values in (("force_error", force), ("magnitude_error", magnitude),
                                       ("angle_error", angle)):
                    row[f"{column}_mean"] = _finite(values, np.mean)
                    row[f"{column}_max"] = _finite(np.abs(values) if column == "magnitude_error" else values,
                                                   np.max)
                row["magnitude_error_std"] = _finite(magnitude, lambda v: np.std(v, ddof=1) if len(v) > 1
                                                     else np.nan)
                row[f"frac_force_error_gt_{force_threshold:g}"] = float(np.mean(force > force_threshold))
                row[f"frac_abs_magnitude_error_gt_{force_threshold:g}"] = float(
                    np.mean(np.abs(magnitude) > force_threshold))
                for deg in angle_thresholds:
                    row[f"frac_angle_gt_{deg:g}"] = _finite(angle, _share_above(deg))
                stats.append(row)
        summary = pd.DataFrame(stats).set_index(["model", "group"]).sort_index()
        return RareEvents(summary=summary, selected=selected, comparison=self)

    def _select_atoms(self, atoms: Any, threshold: float) -> np.ndarray:
        f = self.frames
        if atoms is None:
            if not f.same_atoms:
                raise InputError("default rare-event selection needs the same atoms in every frame; "
                                 "pass atoms=", source=f.source)
            return self._displaced(threshold)
        if isinstance(atoms, str):
            if atoms in f.arrays:
                return np.asarray(f.arrays[atoms]).astype(bool).reshape(-1)
            if all(atoms in d for d in f.info):
                mask = np.zeros(f.total_atoms, dtype=bool)
                for i, d in enumerate(f.info):
                    idx = np.atleast_1d(np.asarray(d[atoms]))
                    if idx.size and idx.dtype.kind not in "iu":
                        raise ArgumentTypeError(f"atoms: info key {atoms!r} must hold whole-number atom "
                                                f"indices, holds {d[atoms]!r}", source=f.source, frame=i)
                    idx = idx.astype(np.int64)
                    self._check_indices(idx, i)
                    mask[f.offsets[i] + idx] = True
                return mask
            raise InputError(f"'{atoms}' is neither a per-atom array nor an info key of every frame",
                             source=f.source)
        given, atoms = atoms, np.asarray(atoms)
        if atoms.dtype.kind not in "biu":  # 2.5 or an array of positions where indices go
            raise ArgumentTypeError(f"atoms must be a boolean per-atom mask, whole-number atom indices or "
                                    f"a name, got {given!r}")
        if atoms.dtype == bool:
            if atoms.shape != (f.total_atoms,):
                raise InputError(f"atom mask has shape {atoms.shape}, expected ({f.total_atoms},)",
                                 source=f.source)
            return atoms
        idx = np.atleast_1d(atoms).astype(np.int64)
        mask = np.zeros(f.total_atoms, dtype=bool)
        for i in range(len(f)):
            self._check_indices(idx, i)
            mask[f.offsets[i] + idx] = True
        return mask

    def _displaced(self, threshold: float) -> np.ndarray:
        """Atoms displaced more than ``threshold`` Å from the first frame (minimum image), in
        blocks of frames that share a cell (a long trajectory in one cell: few blocks)."""
        f = self.frames
        n = int(f.n_atoms[0])
        positions = f.positions.reshape(len(f), n, 3)
        same_cell = bool(np.allclose(f.cells, f.cells[0]) and np.all(f.pbc == f.pbc[0]))
        step = max(1, DISPLACEMENT_BLOCK_ATOMS // n) if same_cell else 1
        moved = np.empty((len(f), n), dtype=bool)
        for lo in range(0, len(f), step):
            block = positions[lo:lo + step]
            delta = minimum_image_displacement(block.reshape(-1, 3), np.tile(positions[0], (len(block), 1)),
                                               f.cells[lo], f.pbc[lo])
            moved[lo:lo + step] = np.linalg.norm(delta, axis=1).reshape(len(block), n) > threshold
        return moved.ravel()

    def _check_indices(self, idx: np.ndarray, frame: int) -> None:
        n = int(self.frames.n_atoms[frame])
        bad = idx[(idx < 0) | (idx >= n)]
        if len(bad):
            raise InputError(f"atom index {int(bad[0])} out of range for {n} atoms",
                             source=self.frames.source, frame=frame)

    # -- storage ----------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write frames, predictions and reference to one HDF5 file (no pickle; arrays
        uncompressed, so `load_comparison` maps them instead of reading them).

        The file is written next to ``path`` and then moved over it, so an interruption or a
        failed write (a full disk: `StoreWriteError`) leaves the previous file at ``path``
        readable as it was.

        Parameters
        ----------
        path : str or Path
            The file to write.

        Returns
        -------
        Path
            ``path``.

        Raises
        ------
        StoreWriteError
            The file could not be written (a full disk, no permission).
        ArgumentTypeError
            ``path`` is not a path.
        InputError
            ``path`` is a folder, or its folder does not exist.
        """
        path = output_path("path", path)
        with replacing(path, what="comparison file") as tmp:
            with hdf5_in_memory(tmp) as h5:  # the comparison is in memory already
                write_header(h5, self.models, self.angle_min_force, has_reference=self.reference is not None)
                write_results(h5, self.frames, self.reference, self.predictions.values())
        return path


def open_comparison_file(path: Path, models: list[str], angle_min_force: float, **attrs: Any) -> h5py.File:
    """A new comparison file at ``path``, its header written (``attrs``: more of it)."""
    h5 = h5py.File(path, "w")
    write_header(h5, models, angle_min_force, **attrs)
    return h5


def write_header(h5: h5py.File, models: list[str], angle_min_force: float, **attrs: Any) -> None:
    """The attributes that make ``h5`` a comparison file (``attrs``: more of them)."""
    h5.attrs["format"] = "mlipviz-comparison"
    h5.attrs["format_version"] = FORMAT_VERSION
    h5.attrs["mlipviz_version"] = __version__
    h5.attrs["angle_min_force"] = angle_min_force
    h5.attrs["models"] = json.dumps(models)
    for key, value in attrs.items():
        h5.attrs[key] = value


def write_results(h5: h5py.File, frames: Frames, reference: Prediction | None,
                  predictions: Iterable[Prediction]) -> None:
    """Frames, reference (None: a models-only comparison, no group) and predictions into an
    open file, uncompressed."""
    frames.to_hdf5(h5.create_group("frames"), compress=False)
    if reference is not None:
        reference.to_hdf5(h5.create_group("reference"), compress=False)
    group = h5.create_group("predictions")
    for k, pred in enumerate(predictions):
        pred.to_hdf5(group.create_group(str(k)), compress=False)
    list_datasets(h5)


def list_datasets(h5: h5py.File) -> None:
    """Name each group's datasets in its ``datasets`` attribute: what `load_comparison`
    checks is all there before it reads any of it."""

    def mark(group: h5py.Group) -> None:
        group.attrs["datasets"] = json.dumps(sorted(k for k, v in group.items() if isinstance(v, h5py.Dataset)))
        for value in group.values():
            if isinstance(value, h5py.Group):
                mark(value)

    for value in h5.values():
        if isinstance(value, h5py.Group):
            mark(value)


#: what every stored comparison holds, whatever wrote it (also files without ``datasets`` lists)
_REQUIRED = {"frames": ("n_atoms", "numbers", "positions", "cells", "pbc"),
             "reference": ("n_atoms", "forces"), "predictions": ("n_atoms", "energy", "forces")}
#: datasets with one row per frame; all others have one per atom
_FRAME_ROWS = ("n_atoms", "cells", "pbc", "energy", "stress", "info")


def _check_stored(h5: h5py.File, n_models: int, has_reference: bool) -> None:
    """Raise `KeyError`/`ValueError` unless every group holds every dataset it should, each
    with one row per frame or per atom."""
    groups = {"frames": "frames", **({"reference": "reference"} if has_reference else {}),
              **{f"predictions/{k}": "predictions" for k in range(n_models)}}
    for name in groups:
        if not isinstance(h5.get(name), h5py.Group):
            raise KeyError(f"group '{name}' missing")
    if not isinstance(h5["frames"].get("n_atoms"), h5py.Dataset):
        raise KeyError("dataset 'frames/n_atoms' missing")
    n_atoms = h5["frames/n_atoms"][()]
    rows = {True: len(n_atoms), False: int(np.sum(n_atoms))}
    for name, kind in groups.items():
        group = h5[name]
        listed = json.loads(group.attrs["datasets"]) if "datasets" in group.attrs else _REQUIRED[kind]
        for leaf in listed:
            if not isinstance(group.get(leaf), h5py.Dataset):
                raise KeyError(f"dataset '{name}/{leaf}' missing")
        datasets = {f"{name}/{k}": v for k, v in group.items() if isinstance(v, h5py.Dataset)}
        if isinstance(group.get("arrays"), h5py.Group):
            datasets.update({f"{name}/arrays/{k}": v for k, v in group["arrays"].items()})
        for path, dataset in datasets.items():
            per_frame = path.rpartition("/")[2] in _FRAME_ROWS and "/arrays/" not in path
            if not dataset.shape or dataset.shape[0] != rows[per_frame]:
                raise ValueError(f"dataset '{path}' has shape {dataset.shape}, expected "
                                 f"{rows[per_frame]} rows (one per {'frame' if per_frame else 'atom'})")


def load_comparison(path: str | Path, lazy: bool = True) -> Comparison:
    """Read a `Comparison` written by `Comparison.save` or `mlipviz.evaluate`.

    Parameters
    ----------
    path : str or Path
        The comparison file.
    lazy : bool
        Map the arrays from the file (read-only) instead of reading them, so a large
        evaluation opens at once and only what is looked at is read.

    Returns
    -------
    Comparison

    Raises
    ------
    ReadError
        A folder, a missing file, a file that is not HDF5 (empty, truncated, another format)
        or a comparison file that lacks part of its contents raises `ReadError` naming the file.
    """
    path = Path(path)
    if path.is_dir():
        raise ReadError("is a folder, not a comparison file", source=path)
    if not path.exists():
        raise ReadError("no such file", source=path)
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise ReadError(f"not a readable HDF5 file ({hdf5_reason(exc)}): empty, truncated or "
                        "another format", source=path) from exc
    with h5:
        if h5.attrs.get("format") != "mlipviz-comparison":
            raise ReadError("not an mlipviz comparison file", source=path)
        try:
            names = json.loads(h5.attrs["models"])
            has_reference = bool(h5.attrs.get("has_reference", True))
            _check_stored(h5, len(names), has_reference)
            predictions = {name: Prediction.from_hdf5(h5["predictions"][str(k)], lazy=lazy)
                           for k, name in enumerate(names)}
            reference = (Prediction.from_hdf5(h5["reference"], lazy=lazy)
                         if has_reference else None)
            return Comparison(Frames.from_hdf5(h5["frames"], lazy=lazy), predictions, reference,
                              angle_min_force=float(h5.attrs["angle_min_force"]))
        except (KeyError, OSError, ValueError, TypeError) as exc:  # InputError is a ValueError
            # a group, a dataset or bytes missing: refuse the whole file, never half of it
            raise ReadError(f"damaged or incomplete comparison file ({hdf5_reason(exc)})",
                            source=path) from exc


def _angle_thresholds(values: Any) -> list[float]:
    """Angle thresholds (degrees) as an increasing list in [0, 180], or an error naming them."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise ArgumentTypeError(f"angle_thresholds must be a list of angles in degrees, e.g. (15, 30); "
                                f"got {values!r}")
    out = [number(f"angle_thresholds[{k}]", deg, minimum=0, maximum=180) for k, deg in enumerate(values)]
    if any(b <= a for a, b in itertools.pairwise(out)):  # one column per threshold, in order
        raise InputError(f"angle_thresholds must increase, got {tuple(values)!r}")
    return out


def _pareto(error: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """True for the models no other model beats in both (lower ``error`` and higher ``speed``,
    one of them strictly); a model without a measured speed is on the front only if its error is
    the lowest."""
    out = np.zeros(len(error), dtype=bool)
    for i in range(len(error)):
        if not np.isfinite(error[i]):
            continue
        if not np.isfinite(speed[i]):
            out[i] = bool(error[i] <= np.nanmin(error))
            continue
        dominated = (error <= error[i]) & (speed >= speed[i]) & ((error < error[i]) | (speed > speed[i]))
        out[i] = not dominated.any()
    return out


def _finite(values: np.ndarray, statistic: Callable[[np.ndarray], Any]) -> float:
    """``statistic`` of the finite values (NaN when there are none), as pandas skips NaN."""
    values = values[np.isfinite(values)]
    return float(statistic(values)) if len(values) else float("nan")


def _share_above(limit: float) -> Callable[[np.ndarray], Any]:
    """The statistic "share of values above ``limit``"."""
    return lambda values: np.mean(values > limit)


def _hashable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return tuple(value.tolist())
    if isinstance(value, list):
        return tuple(value)
    return value
