"""Opening weight files safely.

``torch.load(weights_only=False)`` runs whatever Python the file's pickle names, so a weights
file from an untrusted source can run code. mlipviz therefore

- reads plain state dictionaries (CHGNet ``.pth.tar``) with ``weights_only=True``; a file that
  needs more than tensors and plain containers is refused unless ``trust=True``;
- opens formats that *are* pickled Python objects (a MACE ``.model``, a SevenNet checkpoint)
  without a word only where the backend put them itself (its wheel, its download cache); from any
  other path it warns once, naming the file (`UntrustedFileWarning`), and ``trust=True`` says the
  user knows where the file came from.

What is and is not safe to open: docs/models.md, "Which weight files are safe to open".
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelNotAvailableError, UntrustedFileWarning

_warned: set[Path] = set()


def require_file(path: Path, what: str) -> None:
    """A ModelNotAvailableError naming ``path`` unless it is a file (a folder, or nothing)."""
    if not path.is_file():
        raise ModelNotAvailableError(f"{what} {path} {'is a folder' if path.is_dir() else 'does not exist'}")


def is_trusted(path: str | Path, shipped: Iterable[str | Path] = ()) -> bool:
    """``path`` is one of the files the backend itself ships or downloaded (``shipped``)."""
    path = Path(path).resolve()
    return any(path == Path(p).resolve() for p in shipped)


def check_pickle(path: str | Path, what: str, trust: bool, shipped: Iterable[str | Path] = ()) -> None:
    """Before unpickling ``path`` (a whole pickled ``what``): warn once per file unless the
    backend shipped it or the caller said ``trust=True``."""
    path = Path(path)
    if trust or is_trusted(path, shipped):
        return
    key = path.resolve()
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"{path} is a pickled {what}: opening it runs any code it names; open only files "
                      "from sources you trust (load_model(..., trust=True) says you do and silences this)",
                      UntrustedFileWarning, stacklevel=4)


def load_state(path: str | Path, what: str, trust: bool) -> Any:
    """A weights file holding tensors and plain containers, read with ``weights_only=True``;
    with ``trust=True`` one that needs more is read in full. Errors name the file."""
    path = Path(path)
    require_file(path, f"{what} weights")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's restricted unpickler names a class it will not create ("Unsupported global");
        # anything else it cannot read is no torch file at all
        if "Unsupported global" not in str(exc):
            raise ModelNotAvailableError(f"{path} is not a {what} weights file (torch cannot unpickle "
                                         "it)") from exc
        if not trust:
            raise ModelNotAvailableError(
                f"{path} holds Python objects besides tensors, which torch will not load safely "
                f"({_unsupported(exc)}); if you trust its source, pass trust=True") from exc
    except Exception as exc:
        raise ModelNotAvailableError(f"{path} is not a {what} weights file (torch cannot read it: "
                                     f"{type(exc).__name__}: {_first_line(exc)})") from exc
    return torch.load(path, map_location="cpu", weights_only=False)


def _unsupported(exc: BaseException) -> str:
    """"argparse.Namespace" from torch's "Unsupported global: GLOBAL argparse.Namespace was not
    an allowed global by default ..." (its message is a page long)."""
    import re

    match = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    return f"it names {match.group(1)}" if match else "it names classes torch does not allow"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def process_setting_kept(name: str = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD") -> Iterator[None]:
    """Restore environment variable ``name`` after the block: importing ``mace`` sets
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``, which would make every later ``torch.load`` in the
    process unpickle everything."""
    before = os.environ.get(name)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
