"""Argument checks shared by every layer: each returns the value in its working form or raises
an `mlipviz.errors` type that names the argument and the bad value.

The public entry points call these first, before any file is opened or any model evaluated,
so that bad input never surfaces as an exception from deep inside ASE, torch or h5py.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from .errors import ArgumentTypeError, InputError, OutOfRangeError, UnknownNameError

__all__ = ["finite_array", "flag", "indices", "number", "one_of", "output_path", "short", "whole_number"]


def _bounds(value: float, minimum: float | None, maximum: float | None, above: bool) -> str | None:
    """Why ``value`` is outside the bounds, or None."""
    if minimum is not None and (value <= minimum if above else value < minimum):
        return f"must be {'>' if above else '>='} {minimum}"
    if maximum is not None and value > maximum:
        return f"must be <= {maximum}"
    return None


@overload
def whole_number(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None,
                 none: Literal[False] = False) -> int: ...
@overload
def whole_number(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None,
                 none: bool) -> int | None: ...
def whole_number(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None,
                 none: bool = False) -> int | None:
    """``value`` as an ``int`` (Python or numpy integers; not bools, floats or strings)."""
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"{name} must be a whole number{' or None' if none else ''}, got {value!r}")
    why = _bounds(int(value), minimum, maximum, above=False)
    if why:
        raise InputError(f"{name} {why}, got {value!r}")
    return int(value)


@overload
def number(name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None,
           above: bool = False, none: Literal[False] = False) -> float: ...
@overload
def number(name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None,
           above: bool = False, none: bool) -> float | None: ...
def number(name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None,
           above: bool = False, none: bool = False) -> float | None:
    """``value`` as a finite ``float``; ``above=True``: strictly greater than ``minimum``."""
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a number{' or None' if none else ''}, got {value!r}")
    out = float(value)
    if not np.isfinite(out):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    why = _bounds(out, minimum, maximum, above)
    if why:
        raise InputError(f"{name} {why}, got {value!r}")
    return out


def flag(name: str, value: Any) -> bool:
    """``value`` as a bool (Python or numpy bools only: ``"no"`` is not False)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def one_of(name: str, value: Any, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``; an `UnknownNameError` listing them otherwise."""
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise UnknownNameError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def finite_array(name: str, values: Any, shape: tuple[int, ...] | None = None, *, empty: bool = False) -> np.ndarray:
    """``values`` as a float64 array of finite numbers; ``shape``: the expected shape, ``-1``
    for any length along an axis. The first bad entry is named."""
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be numbers, got {short(values)}") from exc
    if shape is not None and (out.ndim != len(shape)
                              or any(s not in (-1, n) for s, n in zip(shape, out.shape))):
        want = "(" + ", ".join("n" if s == -1 else str(s) for s in shape) + ")"
        raise InputError(f"{name} must have shape {want}, got {out.shape}")
    if out.size == 0 and not empty:
        raise InputError(f"{name} is empty")
    bad = np.argwhere(~np.isfinite(out))
    if len(bad):
        at = tuple(int(i) for i in bad[0])
        raise InputError(f"{name}[{', '.join(map(str, at))}] is {out[at]}, not a finite number")
    return out


def indices(name: str, values: Any, count: int, what: str = "atom", **where: Any) -> np.ndarray:
    """``values`` (one index or a list) as int64 indices in ``[-count, count)`` made
    non-negative; floats, even whole ones, and bools are refused (a float array used as indices
    is almost always a mistake: positions or values passed where indices go)."""
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.kind not in "iu":  # bools are kind "b", whole floats kind "f": both refused
        raise ArgumentTypeError(f"{name} must be whole-number {what} indices, got {short(values)}")
    array = array.astype(np.int64).ravel()
    bad = array[(array < -count) | (array >= count)]
    if bad.size:
        raise OutOfRangeError(f"{name}: {what} {int(bad[0])} does not exist ({count} {what}s, "
                              f"0 to {count - 1})", **where)
    return np.where(array < 0, array + count, array)


def output_path(name: str, path: str | Path, *, folder: bool = False) -> Path:
    """``path`` as a Path where a file (``folder=True``: a folder) can be written: not an
    existing folder (file) and inside an existing folder."""
    if not isinstance(path, (str, Path)) or str(path) == "":
        raise ArgumentTypeError(f"{name} must be a path, got {path!r}")
    out = Path(path).expanduser()
    if not folder and out.is_dir():
        raise InputError(f"{name} {out} is a folder; give a file path")
    if folder and out.exists() and not out.is_dir():
        raise InputError(f"{name} {out} is a file; give a folder path")
    parent = out.absolute().parent
    if not folder and not parent.is_dir():
        raise InputError(f"{name} {out}: folder {parent} does not exist")
    return out


def short(value: Any) -> str:
    """``repr(value)`` cut to 80 characters, for messages."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
