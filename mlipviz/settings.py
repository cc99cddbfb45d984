"""Folder settings read from the environment, resolved to absolute paths once.

mlipviz reads these folders from environment variables:

=================  ==========================================================
``MLIPVIZ_MODELS``  offline model weights (looked in before the packages' caches)
``MLIPVIZ_CACHE``   cached reference calculations (``<it>/reference``)
``MATGL_CACHE``     matgl's download cache, for mlipviz's lookup and downloads
=================  ==========================================================

A relative value (``MLIPVIZ_MODELS=../shared/models``) means relative to the folder where it
was set. For a variable the process inherited, that is the folder the launching shell was in:
``$PWD`` as the process received it, which a Jupyter kernel, a Dask worker or a spawned worker
keeps even when it runs in another folder (a notebook's kernel runs in the notebook's folder).
For a value set inside Python (``os.environ[...] = ...``), it is the current folder. The
absolute path is written back to ``os.environ``, so every process mlipviz or the user starts
afterwards receives the absolute path.
"""

from __future__ import annotations

import os
from pathlib import Path

#: the environment variables that name folders
FOLDER_SETTINGS = ("MLIPVIZ_MODELS", "MLIPVIZ_CACHE", "MATGL_CACHE")


def _initial_environment() -> dict[str, str] | None:
    """The environment this process was started with (Linux), before any change made in it."""
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return None
    pairs = (os.fsdecode(item).partition("=") for item in raw.split(b"\0") if b"=" in item)
    return {key: value for key, _, value in pairs}


_STARTED_WITH = _initial_environment()


def _launch_folder() -> Path | None:
    """``$PWD`` as this process received it, when it names an existing folder."""
    pwd = (_STARTED_WITH or os.environ).get("PWD")
    if pwd and os.path.isabs(pwd) and os.path.isdir(pwd):
        return Path(pwd)
    return None


def folder_setting(name: str) -> Path | None:
    """The folder named by environment variable ``name`` as an absolute path, or None if unset.

    A relative value is resolved as the module docstring says and written back absolute.
    """
    value = os.environ.get(name)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        inherited = _STARTED_WITH is None or _STARTED_WITH.get(name) == value
        base = (_launch_folder() if inherited else None) or Path.cwd()
        path = Path(os.path.normpath(base / path))
        os.environ[name] = str(path)
    return path


def resolve_folder_settings() -> dict[str, Path]:
    """Resolve every setting in `FOLDER_SETTINGS` that is set; ``{name: absolute path}``."""
    return {name: path for name in FOLDER_SETTINGS if (path := folder_setting(name)) is not None}


def shown(path: str | Path) -> str:
    """``path`` written relative to the setting or home folder it lies in, for messages and
    records that are read on other machines: ``$MLIPVIZ_MODELS/x``, ``~/.cache/mace/y``."""
    path = Path(path)
    roots = [(f"${name}", folder_setting(name)) for name in FOLDER_SETTINGS]
    roots.append(("~", Path.home()))
    for label, root in roots:
        if root is None:
            continue
        try:
            rest = path.relative_to(root)
        except ValueError:
            continue
        return label if str(rest) == "." else f"{label}/{rest.as_posix()}"
    return str(path)
