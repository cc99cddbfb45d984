"""The optional dependencies (pyproject's extras): imported inside the functions that use them,
so that ``import mlipviz`` works without them, and named with their install command when missing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def needs(extra: str, what: str) -> Iterator[None]:
    """Imports inside the block come from mlipviz's optional ``extra``: a missing package raises
    `ModuleNotFoundError` saying that ``what`` needs it and how to install it, e.g.
    ``pip install 'mlipviz[latent]'``, instead of a bare ImportError (chained)."""
    try:
        yield
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] == "mlipviz":  # a fault of mlipviz's own, not a missing extra
            raise
        missing = exc.name or "a package"
        raise ModuleNotFoundError(f"{what} needs {missing}, part of mlipviz's '{extra}' extra: "
                                  f"pip install 'mlipviz[{extra}]'", name=exc.name) from exc
