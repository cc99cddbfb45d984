"""Fine-tune a pretrained uMLIP on labelled frames, through its package's own training code.

`finetune` does what is common to every backend: it checks the frames (labels, elements, enough
of them), splits off validation frames that are never trained on, runs epochs with a progress
bar that shows the validation error, stops early when the validation force error stops
improving, keeps the best epoch's weights, writes a checkpoint after every epoch and resumes from
it, and saves the weights in the package's own format so that `load_model(path)` reads them. The
backend's adapter supplies a `Tuner` (its ``Backend.finetuner``): the package's trainer on the
model's network for one epoch at a time.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .. import checks
from ..errors import ArgumentTypeError, InputError, MissingLabelsError, MlipvizError, NotImprovedWarning
from ..frames import Frames
from ..storage import replacing
from .base import Model

#: what `finetune` needs at least: one frame to train on and one to validate on
MIN_FRAMES = 2


@dataclass(frozen=True)
class FineTuneSettings:
    """The settings of one fine-tuning run (`finetune` fills the backend's defaults in).

    Parameters
    ----------
    epochs
        The most epochs to run (early stopping may end sooner).
    learning_rate
        The optimizer's initial learning rate.
    batch_size
        Structures per optimizer step.
    energy_weight, force_weight, stress_weight
        Weights of the energy (per atom), force and stress terms of the loss.
    freeze
        ``"default"``: the backend's recipe (which layers stay fixed); ``"none"``: train every
        parameter; or a list of parameter-name prefixes to keep fixed.
    patience
        Epochs without a lower validation force error before stopping; None: never stop early.
    seed
        Seeds the split, the shuffling and torch: the same seed gives the same weights.
    device
        Where the training runs.
    """

    epochs: int
    learning_rate: float
    batch_size: int
    energy_weight: float
    force_weight: float
    stress_weight: float
    freeze: str | tuple[str, ...]
    patience: int | None
    seed: int
    device: str


class Tuner(Protocol):
    """One backend's training code on a copy of a model's network (what ``Backend.finetuner``
    returns for ``(model, train, validation, settings)``)."""

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training frames in the order of ``epoch``'s shuffle; their errors."""
        ...

    def validate(self) -> dict[str, float]:
        """Errors on the validation frames: ``energy_mae`` (eV/atom), ``force_mae`` (eV/Å)."""
        ...

    def state(self) -> dict[str, Any]:
        """Everything a resumed run needs (network, optimizer and scheduler states)."""
        ...

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from what `state` returned."""
        ...

    def weights(self) -> dict[str, Any]:
        """The network's current parameters (a copy)."""
        ...

    def set_weights(self, weights: dict[str, Any]) -> None:
        """Put parameters from `weights` back."""
        ...

    def save(self, path: Path) -> None:
        """Write the network in its package's checkpoint format (a file, or a folder for a
        backend whose weights are folders), which `load_model` reads; whole or not at all."""
        ...

    def model(self, weights: Path | None) -> Model:
        """The trained network as a `Model` (``weights``: where it was saved, or None)."""
        ...


class TorchTuner:
    """What every `Tuner` over a torch network does alike: its state (network, optimizer,
    scheduler) for checkpoints, and copies of its weights for the best epoch. A backend's tuner
    sets ``net``, ``optimizer`` and ``scheduler`` and writes the rest."""

    net: Any
    optimizer: Any
    scheduler: Any

    def state(self) -> dict[str, Any]:
        """The network's, optimizer's and scheduler's states."""
        return {"network": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from what `state` returned."""
        self.net.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def weights(self) -> dict[str, Any]:
        """A copy of the network's parameters and buffers."""
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def set_weights(self, weights: dict[str, Any]) -> None:
        """Put `weights` back into the network."""
        self.net.load_state_dict(weights)

    def freeze(self, settings: FineTuneSettings, recipe: Sequence[str]) -> None:
        """Train every parameter of ``net`` but those whose names start with a frozen prefix
        (``recipe`` for ``freeze="default"``)."""
        frozen = recipe if settings.freeze == "default" else () if settings.freeze == "none" else settings.freeze
        for name, parameter in self.net.named_parameters():
            parameter.requires_grad = not any(name.startswith(prefix) for prefix in frozen)

    @staticmethod
    def shuffled(count: int, settings: FineTuneSettings, epoch: int | None) -> list[int]:
        """The order of ``count`` frames in ``epoch`` (fixed by the seed and the epoch, so that a
        resumed run sees what an uninterrupted one saw), or in order for None."""
        if epoch is None:
            return list(range(count))
        return [int(i) for i in np.random.default_rng([settings.seed, epoch]).permutation(count)]


def finetune(model: Any, frames: Any, *, validation: float | Sequence[int] | Frames = 0.2,
             epochs: int | None = None, learning_rate: float | None = None, batch_size: int | None = None,
             energy_weight: float = 1.0, force_weight: float = 1.0, stress_weight: float = 0.1,
             freeze: str | Sequence[str] = "default", patience: int | None = 5, seed: int = 0,
             energy_zero: str = "fit",
             checkpoint: str | Path | None = None, save: str | Path | None = None, name: str | None = None,
             device: str = "auto", progress: bool = True,
             callback: Callable[[int, dict[str, float]], Any] | None = None) -> Model:
    """Fine-tune ``model`` on the labelled ``frames`` and return the result as a `Model`.

    The defaults suit a few structures: the backend's learning rate and number of epochs, its
    usual layers frozen, energy, force and stress weights 1, 1 and 0.1 (stress only where every
    frame is periodic and labelled), early stopping after 5 epochs without a lower validation
    force error, the best epoch's weights kept (the model's own, with a `NotImprovedWarning`, when no
    epoch beats them on the validation frames). Everything can be overridden. Trains in the model's own
    precision (float32 unless it was loaded in float64).

    Parameters
    ----------
    model : Model, str or Path
        A model of a backend that can be fine-tuned (``Backend.finetuner``): a `Model`, a registry
        name or a weights path.
    frames : Frames or anything `mlipviz.read` accepts
        Labelled structures (energy and forces; stress used where every frame has it).
    validation : float, list of int or Frames
        The share of ``frames`` held out for validation (at least one frame, chosen with
        ``seed``), the indices of those frames, or separate validation frames. They are never
        trained on; the early stopping and the progress bar use their errors.
    epochs, learning_rate, batch_size : optional
        Default: the backend's (``Backend.finetune_defaults``, its adapter's ``FINETUNE_DEFAULTS``).
    energy_weight, force_weight, stress_weight : float
        Loss weights (energy per atom, forces, stress).
    freeze : str or list of str
        ``"default"`` (the backend's recipe), ``"none"``, or parameter-name prefixes to keep fixed.
    patience : int or None
        Epochs without improvement before stopping; None trains all ``epochs``.
    seed : int
        The same seed, frames and settings give the same weights.
    energy_zero : str
        ``"fit"``: the labels' energies are moved to the model's zero first, by one constant per
        element fitted (least squares) to the differences between the labels and the model's own
        energies on the training frames (``meta["finetune"]["energy_offsets_eV"]``), so that the
        fine-tuned model keeps its zero and learns energy differences and forces: what labels from
        another code or pseudopotentials (GPAW, an all-electron PySCF) need, whose zero is not the
        one the model learned. ``"labels"``: train on the labels' energies as they are.
    checkpoint : str or Path, optional
        A file written after every epoch; a run with the same file, model, frames and settings
        resumes from it, and its result equals an uninterrupted run's.
    save : str or Path, optional
        Where to write the fine-tuned weights in the package's format (`load_model(save)` reads
        them); default: not written (the returned model lives in memory).
    name : str, optional
        The new model's name (default: the model's name plus ``-finetuned``).
    device : str
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    progress : bool
        A progress bar over the epochs, with the validation errors.
    callback : callable, optional
        ``callback(epoch, errors)`` after each epoch (training and validation errors); an
        exception it raises stops the run, the checkpoint keeping the finished epochs.

    Returns
    -------
    Model
        The fine-tuned model; ``meta["finetune"]`` holds the settings, the training and
        validation frame indices, the model's own validation errors (``baseline``), every epoch's
        errors, the best epoch (-1: none beat the model's own weights) and ``improved``.

    Raises
    ------
    MissingLabelsError
        Frames without reference energies or forces.
    UnsupportedElementError
        An element the model was not trained on.
    InputError
        Fewer than two frames, a validation share or indices that leave no frame to train or
        to validate on, or a bad setting.
    MlipvizError
        A backend that cannot be fine-tuned here.
    """
    from tqdm.auto import tqdm

    from ..io import read
    from . import load_model
    from .registry import backend as get_backend
    from .registry import backends

    if not isinstance(model, Model):
        model = load_model(model, device=device)
    able = ", ".join(n for n, b in backends().items() if b.finetuner is not None)
    if model.meta.get("backend") not in backends():  # an ASE calculator, a reference, a corrected model ...
        raise MlipvizError(f"model {model.name} ({type(model).__name__}) is no network mlipviz can train; it "
                           f"fine-tunes models of the backends {able}")
    found = get_backend(str(model.meta["backend"]))
    make_tuner = found.finetuner
    if make_tuner is None:
        raise MlipvizError(f"model {model.name}: mlipviz cannot fine-tune {found.name} models yet (it can: {able})")
    frames = frames if isinstance(frames, Frames) else read(frames)
    train, held_out, train_ids, val_ids = _split(frames, validation, seed)
    for part in (train, held_out):
        _check_labels(part)
        model.check_elements(part)
    checks.one_of("energy_zero", energy_zero, ("fit", "labels"))
    offsets: dict[str, float] = {}
    if energy_zero == "fit":
        offsets = _energy_offsets(model, train)
        train, held_out = _shifted(train, offsets), _shifted(held_out, offsets)
    defaults = found.finetune_defaults
    settings = FineTuneSettings(
        epochs=checks.whole_number("epochs", epochs if epochs is not None else defaults["epochs"], minimum=1),
        learning_rate=checks.number("learning_rate", learning_rate if learning_rate is not None
                                    else defaults["learning_rate"], minimum=0, above=True),
        batch_size=checks.whole_number("batch_size", batch_size if batch_size is not None else defaults["batch_size"],
                                  minimum=1),
        energy_weight=checks.number("energy_weight", energy_weight, minimum=0),
        force_weight=checks.number("force_weight", force_weight, minimum=0),
        stress_weight=checks.number("stress_weight", stress_weight, minimum=0) if _has_stress(frames) else 0.0,
        freeze=_freeze(freeze),
        patience=None if patience is None else checks.whole_number("patience", patience, minimum=1),
        seed=checks.whole_number("seed", seed), device=model.device)
    progress = checks.flag("progress", progress)
    if callback is not None and not callable(callback):
        raise ArgumentTypeError(f"callback must be a function callback(epoch, errors) or None, got {callback!r}")
    tuner: Tuner = make_tuner(model, train, held_out, settings)
    fingerprint = _fingerprint(model, frames, held_out, train_ids, val_ids, settings, offsets)
    path = None if checkpoint is None else Path(checkpoint)
    history: list[dict[str, Any]] = []
    if path is not None and path.exists():
        start, history, best, baseline = _resume(path, fingerprint, tuner)
    else:  # the model as it is is the first candidate: a run that makes it worse returns it unchanged
        baseline = {f"val_{k}": v for k, v in tuner.validate().items()}
        start, best = 0, _Best(-1, baseline["val_force_mae"], tuner.weights())
    bar = tqdm(total=settings.epochs, initial=start, unit="epoch", desc=f"fine-tuning {model.name}",
               disable=not progress)
    try:
        for epoch in range(start, settings.epochs):
            if settings.patience is not None and epoch - best.epoch > settings.patience:
                break
            errors = {f"train_{k}": v for k, v in tuner.train_epoch(epoch).items()}
            errors.update({f"val_{k}": v for k, v in tuner.validate().items()})
            history.append({"epoch": epoch, **errors})
            if errors["val_force_mae"] < best.force_mae:
                best = _Best(epoch, errors["val_force_mae"], tuner.weights())
            if path is not None:
                _write_checkpoint(path, fingerprint, tuner, history, best, baseline)
            bar.update(1)
            bar.set_postfix(val_force_mae=f"{errors['val_force_mae']:.4f}",
                            val_energy_mae=f"{errors.get('val_energy_mae', np.nan):.4f}")
            if callback is not None:
                callback(epoch, errors)
    finally:
        bar.close()
    if best.weights is not None:
        tuner.set_weights(best.weights)
    if best.epoch < 0 and history:
        warnings.warn(f"fine-tuning {model.name}: no epoch lowered the validation force error below the model's own "
                      f"({baseline['val_force_mae']:.4g} eV/Å); its own weights are returned (try a smaller "
                      "learning_rate, other frames, or more of them)", NotImprovedWarning, stacklevel=2)
    saved = None
    if save is not None:
        saved = Path(checks.output_path("save", save, folder=found.folder_marker is not None))
        tuner.save(saved)
    result = tuner.model(saved)
    result.name = name or f"{model.name}-finetuned"
    result.meta["finetune"] = {
        "base_model": model.name, "settings": asdict(settings), "train_frames": train_ids, "validation_frames": val_ids,
        "n_train_frames": len(train), "n_validation_frames": len(held_out), "history": history,
        "energy_zero": energy_zero, "energy_offsets_eV": offsets,
        "baseline": baseline, "best_epoch": best.epoch, "best_val_force_mae": best.force_mae,
        "improved": best.epoch >= 0,
        "stopped_early": len(history) < settings.epochs and bool(history)}
    return result


@dataclass
class _Best:
    """The epoch with the lowest validation force error so far, and its weights."""

    epoch: int = -1
    force_mae: float = float("inf")
    weights: dict[str, Any] | None = None


def _split(frames: Frames, validation: Any, seed: int) -> tuple[Frames, Frames, list[int] | None, list[int] | None]:
    """The training and validation frames, and their indices in ``frames`` (None for separate
    validation frames)."""
    if isinstance(validation, Frames):
        if len(frames) < 1 or len(validation) < 1:
            raise InputError(f"fine-tuning needs at least one frame to train on and one to validate on; got "
                             f"{len(frames)} and {len(validation)}")
        return frames, validation, list(range(len(frames))), None
    n = len(frames)
    if n < MIN_FRAMES:
        raise InputError(f"fine-tuning needs at least {MIN_FRAMES} labelled frames (one to train on, one held out "
                         f"to validate on); got {n}", source=frames.source)
    if isinstance(validation, (float, int)) and not isinstance(validation, bool):
        share = checks.number("validation", float(validation), minimum=0, maximum=1, above=True)
        if share >= 1:
            raise InputError(f"validation={validation!r}: a share below 1 of the frames (or indices, or Frames)")
        count = min(n - 1, max(1, round(share * n)))
        order = np.random.default_rng(seed).permutation(n)
        val_ids = sorted(int(i) for i in order[:count])
    else:
        try:
            val_ids = sorted({int(i) for i in validation})
        except (TypeError, ValueError) as exc:
            raise InputError(f"validation must be a share of the frames, frame indices or Frames; got "
                             f"{checks.short(validation)}") from exc
        if not val_ids or val_ids[0] < 0 or val_ids[-1] >= n or len(val_ids) == n:
            raise InputError(f"validation indices must name at least one and fewer than all of the {n} frames "
                             f"(0 to {n - 1}); got {list(validation)!r}", source=frames.source)
    train_ids = [i for i in range(n) if i not in set(val_ids)]
    return frames[train_ids], frames[val_ids], train_ids, val_ids


def _energy_offsets(model: Model, frames: Frames) -> dict[str, float]:
    """One energy per element (eV) that best moves the labels of ``frames`` to ``model``'s zero:
    the least-squares (minimum-norm) solution of counts x offsets = label - model energy."""
    from ase.data import chemical_symbols

    predicted = np.asarray(model.predict(frames, progress=False).energy)
    elements = np.unique(frames.numbers)
    counts = np.stack([np.bincount(frames.frame_index[frames.numbers == z], minlength=len(frames))
                       for z in elements], axis=1).astype(float)
    offsets, *_ = np.linalg.lstsq(counts, np.asarray(frames.energy) - predicted, rcond=None)
    return {chemical_symbols[int(z)]: float(o) for z, o in zip(elements, offsets)}


def _shifted(frames: Frames, offsets: dict[str, float]) -> Frames:
    """``frames`` with each energy label minus its elements' offsets (elements without one: 0)."""
    from ase.data import atomic_numbers

    per_atom = np.zeros(frames.total_atoms)
    for symbol, offset in offsets.items():
        per_atom[frames.numbers == atomic_numbers[symbol]] = offset
    shift = np.bincount(frames.frame_index, per_atom, minlength=len(frames))
    return frames.with_labels(energy=np.asarray(frames.energy) - shift)


def _check_labels(frames: Frames) -> None:
    """A `MissingLabelsError` naming the first frame without reference energy or forces."""
    for what, values in (("energy", frames.energy), ("forces", frames.forces)):
        if values is None:
            raise MissingLabelsError(f"fine-tuning needs reference energies and forces; the frames have no {what}",
                                     source=frames.source)
        per_frame = values if what == "energy" else [values[frames.atoms_of(i)] for i in range(len(frames))]
        for i, value in enumerate(per_frame):
            if not np.isfinite(value).all():
                raise MissingLabelsError(f"fine-tuning needs reference energies and forces; this frame has no "
                                         f"{what}", source=frames.source, frame=i)


def _has_stress(frames: Frames) -> bool:
    """Stress is trained on only where every frame is periodic and has it."""
    return frames.stress is not None and bool(frames.pbc.all()) and bool(np.isfinite(frames.stress).all())


def _freeze(freeze: Any) -> str | tuple[str, ...]:
    if isinstance(freeze, str):
        checks.one_of("freeze", freeze, ("default", "none"))
        return freeze
    if isinstance(freeze, (list, tuple)) and all(isinstance(p, str) for p in freeze):
        return tuple(freeze)
    raise InputError(f"freeze must be 'default', 'none' or a list of parameter-name prefixes; got {freeze!r}")


def _fingerprint(model: Model, frames: Frames, held_out: Frames, train_ids: Any, val_ids: Any,
                 settings: FineTuneSettings, offsets: dict[str, float]) -> str:
    """What must match for a checkpoint to be resumed: model, frames, split and settings."""
    digest = hashlib.sha256()
    for part in (frames, held_out):
        digest.update(np.ascontiguousarray(part.positions, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(part.numbers).tobytes())
    digest.update(json.dumps({"model": model.name, "weights": str(model.meta.get("weights")), "train": train_ids,
                              "validation": val_ids, "settings": asdict(settings), "energy_offsets": offsets},
                             sort_keys=True,
                             default=str).encode())
    return digest.hexdigest()


def _write_checkpoint(path: Path, fingerprint: str, tuner: Tuner, history: list[dict[str, Any]], best: _Best,
                      baseline: dict[str, float]) -> None:
    import torch

    state = {"fingerprint": fingerprint, "tuner": tuner.state(), "history": history, "baseline": baseline,
             "best": {"epoch": best.epoch, "force_mae": best.force_mae, "weights": best.weights}}
    with replacing(path) as tmp:
        torch.save(state, tmp)


def _resume(path: Path, fingerprint: str, tuner: Tuner
            ) -> tuple[int, list[dict[str, Any]], _Best, dict[str, float]]:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file: say which, and how to start again
        raise InputError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); delete it to start "
                         "again") from exc
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        raise InputError(f"checkpoint {path} belongs to another fine-tuning run (other model, frames, split or "
                         "settings); pass another path or delete it")
    tuner.load_state(state["tuner"])
    best = state["best"]
    return (len(state["history"]), list(state["history"]), _Best(best["epoch"], best["force_mae"], best["weights"]),
            dict(state["baseline"]))
