"""The model registry: named pretrained uMLIPs and where their weights are found.

Weights lookup order: an explicit path, then the directory named by the
``MLIPVIZ_MODELS`` environment variable, then the model package's own files or
cache, then a download. Offline and with no local weights, loading fails within
seconds with a message naming the model, every place looked, and the fix.
"""

from __future__ import annotations

import importlib
import importlib.util
import socket
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from ..errors import ModelNotAvailableError, UnknownNameError
from ..settings import folder_setting
from .backend import Backend, ModelCard

if TYPE_CHECKING:
    from .base import Model

__all__ = ["ADAPTERS", "Backend", "ModelCard", "backend", "backends", "cards", "detect_backend", "find_local_weights",
           "get_card", "models_dir", "offline_error", "package_dir", "package_installed", "reachable"]


#: the adapter modules of mlipviz.models, each defining one ``BACKEND`` (`Backend`): a new
#: backend is its module plus its name here. Their named models are listed in this order.
ADAPTERS = ("chgnet_adapter", "mace_adapter", "matgl_adapter", "sevenn_adapter", "orb_adapter", "upet_adapter",
            "mattersim_adapter", "fairchem_adapter")

_BACKENDS: dict[str, Backend[Model]] = {}
_BY_NAME: dict[str, ModelCard] = {}
_LOCK = threading.Lock()


def backends() -> dict[str, Backend[Model]]:
    """Every registered `Backend`, by name, in `ADAPTERS` order (their modules are imported on
    the first call; they import torch, not their model packages)."""
    with _LOCK:
        if not _BACKENDS:  # all or nothing: an adapter that fails to import leaves none registered
            loaded: dict[str, Backend[Model]] = {}
            for module in ADAPTERS:
                found = importlib.import_module(f"{__package__}.{module}").BACKEND
                loaded[found.name] = found
            _BY_NAME.update({alias.lower(): card for found in loaded.values() for card in found.cards
                             for alias in (card.name, *card.aliases)})
            _BACKENDS.update(loaded)
    return dict(_BACKENDS)


def backend(name: str) -> Backend[Model]:
    """The `Backend` called ``name``; an `UnknownNameError` listing them otherwise."""
    found = backends()
    if name not in found:
        raise UnknownNameError(f"backend must be one of {', '.join(map(repr, found))}; got {name!r}")
    return found[name]


def cards() -> list[ModelCard]:
    """Every named pretrained model, backend by backend."""
    return [card for found in backends().values() for card in found.cards]


def get_card(name: str) -> ModelCard | None:
    """The named model called ``name`` or one of its aliases (any case); None if there is none."""
    backends()
    return _BY_NAME.get(name.lower())


def detect_backend(path: Path) -> Backend[Model]:
    """The backend whose weight files ``path`` looks like (its file kind before a name hint;
    ties in registration order), or a `ModelNotAvailableError` saying to pass ``backend=``."""
    scores = [(found.recognises(path), -k, found) for k, found in enumerate(backends().values())]
    score, _, found = max(scores, key=lambda item: item[:2])
    if score == 0:
        raise ModelNotAvailableError(f"cannot tell which package reads weights {path}; pass backend= one of "
                                     f"{sorted(backends())}")
    return found


def __getattr__(name: str) -> list[ModelCard]:
    """``CARDS``: `cards`, built on first use."""
    if name == "CARDS":  # the registry's table, built on first use
        return cards()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def models_dir() -> Path | None:
    """The directory named by ``MLIPVIZ_MODELS``, if set, as an absolute path (a relative
    value is resolved as `mlipviz.settings` says)."""
    return folder_setting("MLIPVIZ_MODELS")


def package_installed(package: str) -> bool:
    """Whether ``package`` can be imported here (found without importing it)."""
    return importlib.util.find_spec(package) is not None


def package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


_ONLINE: dict[str, bool] = {}


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether the host of ``url`` accepts a TCP connection within ``timeout`` s (cached)."""
    host = urlparse(url).hostname or url
    if host not in _ONLINE:
        # a thread bounds the DNS lookup too, which ignores socket timeouts
        answer: list[bool] = []

        def probe() -> None:
            try:
                with socket.create_connection((host, 443), timeout=timeout):
                    answer.append(True)
            except OSError:
                answer.append(False)

        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        thread.join(timeout)
        _ONLINE[host] = bool(answer and answer[0])
    return _ONLINE[host]


def find_local_weights(card: ModelCard, package_candidates: Iterable[str | Path] = ()
                       ) -> tuple[Path | None, list[str]]:
    """First existing weights in ``$MLIPVIZ_MODELS`` then ``package_candidates``; and where it looked."""
    looked: list[str] = []
    root = models_dir()
    if root is None:
        looked.append("$MLIPVIZ_MODELS (not set)")
    else:
        for name in card.filenames:
            candidate = root / name
            looked.append(str(candidate))
            if candidate.exists():
                return candidate, looked
    for place in package_candidates:
        looked.append(str(place))
        if Path(place).exists():
            return Path(place), looked
    return None, looked


def offline_error(card: ModelCard, looked: list[str], download_from: str) -> ModelNotAvailableError:
    """The error of a model with no local weights whose ``download_from`` cannot be reached: the
    model, every place ``looked``, and how to put the weights where they are found."""
    places = "\n  ".join(looked)
    target = (f"{models_dir()} (your $MLIPVIZ_MODELS)" if models_dir()
              else "a folder of your choice and set $MLIPVIZ_MODELS to it")
    return ModelNotAvailableError(
        f"cannot load model '{card.name}' ({card.description}): no local weights and "
        f"{download_from} cannot be reached (offline?).\nLooked in:\n  {places}\n"
        f"Fix: download {download_from} on a machine with internet access and put it in "
        f"{target} as one of: {', '.join(card.filenames)}; or pass a weights path to load_model.")
