"""Load uMLIPs by name, weights path or ASE calculator; list what can load here.

Each backend is one module, ``<name>_adapter.py``, with its `Model` subclass and one
``BACKEND`` (`mlipviz.models.backend.Backend`: package, weight-file kinds, packaged weights,
download source, loader, named models), registered in `mlipviz.models.registry.ADAPTERS`.
What is common to every backend lives here and in `Model`: finding the weights (explicit path,
``$MLIPVIZ_MODELS``, the package's files or cache, then a download), the offline error, the
dtype check, the install hint, ``available_models()`` and the background imports.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias, cast, overload

import pandas as pd

from .. import checks
from ..errors import ArgumentTypeError, InputError, ModelNotAvailableError
from ..settings import shown
from .backend import Backend, ModelCard
from .base import Model, Prediction
from .registry import backend as get_backend
from .registry import backends, cards, detect_backend, find_local_weights, get_card, offline_error, reachable

if TYPE_CHECKING:
    from ase.calculators.calculator import BaseCalculator

    from ..frames import Frames

    #: one model as `load_model` takes it (`mlipviz.analysis._types.ModelSpec`, which this layer
    #: cannot import): a `Model`, a registry name, a weights path or an ASE calculator
    ModelSpec: TypeAlias = Model | str | Path | BaseCalculator

__all__ = [
    "CARDS",
    "Backend",
    "Model",
    "ModelCard",
    "Prediction",
    "available_models",
    "backends",
    "load_model",
    "model_specs",
    "preload",
    "resolve_device",
    "resolve_models",
    "resolve_reference",
]


def __getattr__(name: str) -> list[ModelCard]:
    """``CARDS``: the registry's named models (`mlipviz.models.registry.cards`)."""
    if name == "CARDS":  # the registry's named models, built on first use
        return cards()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` picks ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    import torch

    if isinstance(device, bool) or not isinstance(device, (str, int, torch.device)):
        raise ArgumentTypeError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {checks.short(device)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N' (a torch device), "
                         f"got {device!r}") from exc
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ModelNotAvailableError(f"device '{device}' asked for, but torch sees no CUDA GPU")
    return str(device)


def load_model(spec: ModelSpec, device: str = "auto", dtype: str = "float32", backend: str | None = None,
               embedding_layer: int | None = None, trust: bool = False) -> Model:
    """A `Model` from a registry name, a weights path, an ASE ``Calculator`` or a `Model`.

    Names: see `available_models`. ``device="auto"`` uses CUDA when present;
    ``model.device`` tells. ``dtype`` is ``"float32"`` or ``"float64"`` where the
    backend supports it. ``backend`` forces the package that reads a weights path.
    ``embedding_layer``: the interaction block whose per-atom features
    ``predict(return_embeddings=True)`` returns (1 to ``model.embedding_layers``; default:
    the adapter's documented layer, ``model.embedding_layer`` describes it).
    ``trust=True``: you know where a weights file from your own path comes from. Files that are
    pickled Python objects (MACE ``.model``, SevenNet checkpoints) run code when opened; from a
    path their package did not ship they are opened after an `UntrustedFileWarning` naming the
    file, CHGNet state dictionaries are read with ``weights_only=True`` (one that needs more is
    refused without ``trust``).
    """
    checks.flag("trust", trust)
    checks.one_of("dtype", dtype, ("float32", "float64"))
    if backend is not None:
        checks.one_of("backend", backend, list(backends()))
    device = resolve_device(device)
    model = _load(spec, device, dtype, backend, trust)
    return model if embedding_layer is None else model.use_embedding_layer(embedding_layer)


def model_specs(models: ModelSpec | Sequence[ModelSpec]) -> list[ModelSpec]:
    """``models`` as a list of specs (a list or tuple is several models; anything else is one,
    and `load_model` says what it cannot load), checked before anything loads.

    Raises
    ------
    InputError
        An empty list.
    """
    specs = list(models) if isinstance(models, (list, tuple)) else [cast("ModelSpec", models)]
    if not specs:
        raise InputError("models: give at least one model (a name, a weights path, a Model or an ASE "
                         "calculator); got an empty list")
    return specs


def resolve_models(models: ModelSpec | Sequence[ModelSpec], device: str = "auto") -> list[Model]:
    """Each of ``models`` (one, or a list of names, weights paths, ASE calculators and `Model`
    objects) as a loaded `Model`, once: what the entry points (`compare`, the scans,
    `md_stability`, `evaluate`) do first, so that nothing below them loads a model again.

    Raises
    ------
    InputError
        An empty list (`model_specs`).
    ModelNotAvailableError, ArgumentTypeError
        As `load_model`.
    """
    return [load_model(spec, device=device) for spec in model_specs(models)]


@overload
def resolve_reference(reference: None, device: str = "auto") -> None: ...


@overload
def resolve_reference(reference: Literal[False], device: str = "auto") -> Literal[False]: ...


@overload
def resolve_reference(reference: Frames, device: str = "auto") -> Frames: ...


@overload
def resolve_reference(reference: ModelSpec, device: str = "auto") -> Model: ...


@overload
def resolve_reference(reference: ModelSpec | Frames | bool | None, device: str = "auto"
                      ) -> Model | Frames | Literal[False] | None: ...


def resolve_reference(reference: ModelSpec | Frames | bool | None, device: str = "auto"
                      ) -> Model | Frames | Literal[False] | None:
    """A reference as the entry points take it, loaded once: None (the frames' labels), False
    (none) and labelled `Frames` as they are; a model or calculator as a `Model`."""
    from ..frames import Frames

    if reference is None or reference is False or isinstance(reference, Frames):
        return reference
    if reference is True:  # True is no calculator; False is the explicit "no reference"
        raise ArgumentTypeError("reference must be None (the frames' labels), a model or calculator, "
                                "or False (models only); got True")
    return load_model(reference, device=device)


def _load(spec: ModelSpec, device: str, dtype: str, backend: str | None, trust: bool) -> Model:
    """``spec`` as a `Model`, the checks of `load_model` done (see there)."""
    if isinstance(spec, Model):
        return spec
    as_model = getattr(spec, "as_model", None)
    if callable(as_model):  # e.g. mlipviz.reference calculators
        return as_model()
    from ase.calculators.calculator import BaseCalculator

    if isinstance(spec, BaseCalculator):
        from .ase_adapter import CalculatorModel

        return CalculatorModel(spec)
    if not isinstance(spec, (str, Path)) or str(spec).strip() in ("", "."):
        raise ArgumentTypeError(f"cannot make a model from {checks.short(spec)}; pass a model name (see "
                                "available_models()), a weights path, an ASE calculator or a mlipviz Model")
    card = get_card(str(spec)) if isinstance(spec, str) and backend is None else None
    if card is not None:
        found = get_backend(card.backend)
        found.require_installed(f"model '{card.name}'")
        found.check_dtype(dtype)
        weights, looked = find_local_weights(card, found.package_weights(card))
        if weights is None:
            source = found.download_source(card) if found.download_source else "its package"
            if not reachable(source):
                raise offline_error(card, looked, source)
        return found.load(card, weights, device, dtype, trust)
    path = Path(spec).expanduser()
    if not path.exists():
        names = ", ".join(c.name for c in cards())
        raise ModelNotAvailableError(f"'{spec}' is neither a known model name ({names}) nor an "
                                     "existing weights path")
    found = get_backend(backend) if backend is not None else detect_backend(path)
    found.require_installed(f"weights {path}")
    found.check_dtype(dtype)
    return found.load(None, path, device, dtype, trust)


def _availability(card: ModelCard) -> tuple[bool, str, str]:
    """(can load here, why, the same in a few words)."""
    found = get_backend(card.backend)
    if not found.installed:
        short = (f"needs its own environment: pip install 'mlipviz[{found.extra}]'" if found.coexist
                 else f"needs {found.install_hint}")
        return False, f"package '{found.pip}' not installed: {found.install_hint}", short
    weights, looked = find_local_weights(card, found.package_weights(card))
    if weights is not None:
        return True, f"weights at {shown(weights)}", "weights on this machine"
    source = found.download_source(card) if found.download_source else "its package"
    if reachable(source):
        return True, f"weights will be downloaded from {source}", "weights downloaded on first use"
    # places relative to the settings ($MLIPVIZ_MODELS/..., ~/.cache/...): this table is shown,
    # recorded by the benchmarks and read on other machines
    return (False, f"offline and no local weights (looked in {'; '.join(shown(p) for p in looked)})",
            "weights not on this machine, and offline")


def available_models() -> pd.DataFrame:
    """Every registered model, whether it can load on this machine, and why (not).

    Columns: ``available``, ``reason`` (where the weights are or every place looked; for a
    package that cannot be installed next to mlipviz's other model packages, why),
    ``short_reason`` (the same in a few words, for lists), ``description``,
    ``training_data``, ``package``, ``runs`` (``"batched"``: mlipviz's own adapter, with
    embeddings and attributions; ``"calculator"``: the package's ASE calculator, one
    structure at a time), ``citation``.
    """
    rows = []
    for card in cards():
        ok, why, short = _availability(card)
        found = get_backend(card.backend)
        rows.append({"name": card.name, "available": ok, "reason": why, "short_reason": short,
                     "description": card.description, "training_data": card.training_data,
                     "package": found.pip, "runs": "calculator" if found.calculator_only else "batched",
                     "citation": card.citation})
    return pd.DataFrame(rows).set_index("name")


def preload(names: Iterable[str]) -> None:
    """Import the packages the named registry models need (a few seconds to a quarter of a
    minute each), so that the first `load_model` of them does not wait for it; for apps that
    start this in a background thread as soon as they open. Names that are not registered or
    whose package is missing are skipped, and so are backends without an ``import_package``
    (MACE: importing ``mace`` changes a process-wide torch setting, so it waits until a MACE
    model is asked for); import errors surface later, in `load_model`."""
    for name in names:
        card = get_card(str(name))
        found = None if card is None else get_backend(card.backend)
        if found is None or not found.installed or found.import_package is None:
            continue
        try:
            found.import_package()
        except Exception:  # noqa: BLE001 - reported by load_model, where the user asks for it
            continue
