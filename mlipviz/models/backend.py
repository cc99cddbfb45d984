"""What mlipviz knows about a model package (`Backend`) and about one pretrained model of it
(`ModelCard`).

A backend is one adapter module, ``mlipviz/models/<name>_adapter.py``, that defines its `Model`
subclass (graph building and the forward pass) and one ``BACKEND = Backend(...)``: the package,
the weight files it reads, where the package keeps packaged weights, where it downloads them,
how to load them, and its named models (`ModelCard`). The module is registered by adding its
name to `mlipviz.models.registry.ADAPTERS`; everything else (finding weights, the offline
error, dtype checks, ``available_models()``, background imports, freezing the network, the card
metadata, NaN stress for frames that are not fully periodic) lives once in `mlipviz.models`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..errors import InputError, ModelNotAvailableError

#: the `Model` subclass a backend's ``load`` returns (a type parameter, not an import of
#: `mlipviz.models.base`, which names `Backend` and `ModelCard` itself)
ModelT = TypeVar("ModelT", covariant=True)


@dataclass(frozen=True)
class ModelCard:
    """One named pretrained model: what `load_model(name)` loads and ``available_models()`` lists.

    ``backend``: the `Backend` name whose package reads it; ``version``: the model's own id,
    passed to its package; ``filenames``: names looked for in ``$MLIPVIZ_MODELS``; ``url``:
    download address, where the package downloads by URL; ``options``: (name, value) pairs the
    backend's loader passes on (a multi-head model's ``head``, a UMA ``task``). Its package and
    extra are its backend's (`mlipviz.models.registry.backend`).
    """

    name: str
    backend: str
    version: str
    description: str
    training_data: str
    filenames: tuple[str, ...] = ()
    url: str | None = None
    citation: str = ""
    aliases: tuple[str, ...] = field(default=())
    options: tuple[tuple[str, str], ...] = ()

    def option(self, name: str, default: str | None = None) -> str | None:
        """The value of option ``name`` (`options`), or ``default``."""
        return dict(self.options).get(name, default)


def _no_weights(card: ModelCard | None) -> list[Path]:
    """No packaged weights: the default ``package_weights`` of a `Backend`."""
    return []


@dataclass(frozen=True)
class Backend(Generic[ModelT]):
    """A model package behind mlipviz's `Model` interface (``Backend[M]``: its ``load`` returns
    an ``M``, the backend's `Model` subclass).

    Parameters
    ----------
    name
        Short name (``backend=`` of `load_model`), e.g. ``"chgnet"``.
    package, pip, extra
        Its import name, its pip name, and the extra of mlipviz that installs it.
    load
        ``load(card, weights, device, dtype, trust) -> Model``: ``card`` is None for a bare
        weights path; ``weights`` None when the package should download (called only once the
        source is known to be reachable); ``dtype`` is one of `dtypes` (checked before);
        ``trust``: the user vouches for a pickled file from a path the package did not ship.
        Raises `ModelNotAvailableError` for weights it cannot use.
    package_weights
        ``package_weights(card) -> list[Path]``: where the package ships or caches that
        card's weights, found without importing the package.
    download_source
        ``download_source(card) -> str``: the address its package downloads from.
    suffixes, folder_marker, name_hint
        The weight files it reads, for telling a bare path's backend: file name endings
        (``".pth.tar"``), a file that marks a model folder (``"model.json"``), and a word in
        the name that suggests it when nothing else does.
    dtypes, dtype_note
        The dtypes it runs in, and why only those (shown when another is asked for).
    import_package
        Imports the package's model code ahead of the first load (`mlipviz.models.preload`);
        None where importing it has side effects that should wait (MACE).
    cards
        Its named pretrained models.
    coexist
        Why its package cannot be installed next to mlipviz's other model packages (a pin on
        torch or e3nn), or ``""``; such a backend stays out of ``mlipviz[all]``, and
        ``available_models()`` and the install error say why.
    calculator_only
        Runs through its package's own ASE calculator: one structure at a time, with no
        embeddings or attributions (the package does not expose its network to mlipviz).
    finetuner, finetune_defaults
        ``finetuner(model, train, validation, settings) -> Tuner``: the package's training code
        on a copy of the model's network (`mlipviz.models.finetune`), and its default
        ``epochs``, ``learning_rate`` and ``batch_size``; None where mlipviz cannot fine-tune it.
    """

    name: str
    package: str
    pip: str
    extra: str
    load: Callable[..., ModelT]
    package_weights: Callable[[ModelCard | None], list[Path]] = _no_weights
    download_source: Callable[[ModelCard], str] | None = None
    suffixes: tuple[str, ...] = ()
    folder_marker: str | None = None
    name_hint: str | None = None
    dtypes: tuple[str, ...] = ("float32",)
    dtype_note: str = ""
    import_package: Callable[[], None] | None = None
    cards: tuple[ModelCard, ...] = ()
    coexist: str = ""
    calculator_only: bool = False
    finetuner: Callable[..., Any] | None = None
    finetune_defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def installed(self) -> bool:
        """Whether its package can be imported here (found without importing it)."""
        return importlib.util.find_spec(self.package) is not None

    @property
    def install_hint(self) -> str:
        """The pip command that installs its package, as mlipviz's extra (in an environment of
        its own where it cannot be installed next to the other model packages)."""
        hint = f"pip install 'mlipviz[{self.extra}]'"
        return f"{hint} in an environment of its own ({self.coexist})" if self.coexist else hint

    def require_installed(self, what: str) -> None:
        """A `ModelNotAvailableError` with the install command unless the package is here."""
        if not self.installed:
            raise ModelNotAvailableError(f"{what} needs the Python package '{self.pip}', which is not installed; "
                                         f"install it with: {self.install_hint}")

    def check_dtype(self, dtype: str) -> None:
        """An `InputError` naming ``dtype`` unless the backend runs in it."""
        if dtype not in self.dtypes:
            note = f": {self.dtype_note}" if self.dtype_note else ""
            raise InputError(f"dtype={dtype!r}: {self.name} runs in {' or '.join(self.dtypes)} only{note}")

    def recognises(self, path: Path) -> int:
        """How surely ``path`` holds weights of this backend: 2 for its file kind (a suffix or
        a marked folder), 1 for a hint in the name, 0 otherwise."""
        name = path.name.lower()
        if self.folder_marker and (name == self.folder_marker or (path / self.folder_marker).exists()):
            return 2
        if any(name.endswith(s) for s in self.suffixes):
            return 2
        return 1 if self.name_hint and self.name_hint in name else 0
