"""Exceptions raised by mlipviz.

Every error names what is wrong and where: the file, the frame and the atom
whenever those are known, so that a user can find the bad input at once.
"""

from __future__ import annotations

from typing import Any


class MlipvizError(Exception):
    """Base class of all mlipviz errors."""


def _where(source: Any = None, frame: Any = None, atom: Any = None) -> str:
    parts = []
    if source is not None:
        parts.append(f"file {source!s}")
    if frame is not None:
        parts.append(f"frame {frame}")
    if atom is not None:
        parts.append(f"atom {atom}")
    return ", ".join(parts)


class InputError(MlipvizError, ValueError):
    """Bad input data; ``source``, ``frame`` and ``atom`` locate it."""

    def __init__(self, problem: str, source: Any = None, frame: int | None = None, atom: int | None = None) -> None:
        self.problem = problem
        self.source = source
        self.frame = frame
        self.atom = atom
        where = _where(source, frame, atom)
        super().__init__(f"{problem} ({where})" if where else problem)


class ArgumentTypeError(InputError, TypeError):
    """An argument of the wrong type (a float where an atom index goes, an object that is
    not a model); a `TypeError` as well as an `InputError`."""


class UnknownNameError(InputError, KeyError):
    """A name (model, metric, element, method) that is not among the choices; a `KeyError`
    too, so that mapping look-ups keep Python's protocol."""

    __str__ = InputError.__str__


class OutOfRangeError(InputError, IndexError):
    """An index (frame, atom, mode) outside its range; an `IndexError` too, so that
    iteration and slicing keep Python's protocol."""

    __str__ = InputError.__str__


class ReadError(InputError):
    """A file or object could not be read as structures."""


class EmptyInputError(InputError):
    """The source holds no structures, or a structure holds no atoms."""


class InvalidStructureError(InputError):
    """Non-finite coordinates or cells, or atoms on top of each other."""


class LabelShapeError(InputError):
    """A reference label's shape does not match its frame."""


class MissingLabelsError(InputError):
    """Reference labels were asked for but the frames do not carry them."""


class UnsupportedElementError(InputError):
    """A structure contains an element the model was not trained on."""


class ModelNotAvailableError(MlipvizError, RuntimeError):
    """A model cannot be loaded here: missing package, weights or network."""


class CheckpointMismatchError(MlipvizError, RuntimeError):
    """A checkpoint file belongs to other frames or another model."""


class CompletenessWarning(UserWarning):
    """Integrated-gradient attributions do not sum to f(x) - f(baseline) within 1 %."""


class UntrustedFileWarning(UserWarning):
    """A pickled model file from a path its backend did not ship is about to be opened
    (unpickling runs code the file names); ``load_model(..., trust=True)`` silences it."""


class CorruptFileWarning(UserWarning):
    """A checkpoint, store or cache file (or a part of one) could not be read whole: empty,
    truncated, not HDF5/NumPy, or missing a dataset. The message names the file and what was
    wrong; the file is set aside and what it held is computed again, never half-read."""


class StoreWriteError(MlipvizError, OSError):
    """A store, checkpoint, cache entry or saved comparison could not be written (a full disk,
    no permission); the file it was to replace is left as it was. ``errno`` and ``filename``
    are those of the failed write, whose error is chained."""

    def __init__(self, message: str, path: Any = None, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno
        self.filename = None if path is None else str(path)

    __str__ = BaseException.__str__  # the message, not OSError's "[Errno n] None: path"


class NotImprovedWarning(UserWarning):
    """A fine-tuning run in which no epoch lowered the validation force error below the model's
    own: the model's own weights are returned."""
