"""One way to show any result: ``mlipviz.show(result)``, or ``result.show()`` on every result type.

Results live in the analysis layer and know nothing of widgets; views live in `mlipviz.widgets`
and register themselves for the result types they show (`register_view`). `show` imports
``mlipviz.widgets`` by name when it is first called (the view modules register on import), then
calls the view registered for the result's class or its nearest base class. The `Showable`
mixin gives each result type its ``show()`` method through the same path.

Why a registry and not a method per result that imports its widget: the analysis layer stays
importable and testable without Jupyter (no import of widgets, not even inside a function), a
new view is one module plus one `register_view` call, and ``mlipviz.show`` and ``result.show()``
cannot drift apart. pandas' plotting backends work the same way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from .errors import ArgumentTypeError

#: result class -> the view factory ``factory(result, **kwargs)`` (filled by `mlipviz.widgets`)
VIEWS: dict[type, Callable[..., Any]] = {}


def register_view(result_type: type, factory: Callable[..., Any]) -> None:
    """Make ``factory(result, **kwargs)`` the view of ``result_type`` (and of its subclasses
    that have no view of their own) for `show`."""
    if not isinstance(result_type, type) or not callable(factory):
        raise ArgumentTypeError("register_view takes a class and a callable that makes its view")
    VIEWS[result_type] = factory


def show(result: Any, **kwargs: Any) -> Any:
    """The interactive view of ``result`` (a `Comparison`, `Scan`, `LatentSpace`,
    `Attribution`, `Stability`, or any type with a registered view); ``kwargs`` go to the view.

    Raises
    ------
    ModuleNotFoundError
        With an install hint, where the widget extras are not installed.
    ArgumentTypeError
        For an object with no registered view.
    """
    try:
        importlib.import_module("mlipviz.widgets")  # its view modules call register_view
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"showing results needs the widget extras ({exc.name} is missing): pip install 'mlipviz[widgets]'"
        ) from exc
    for cls in type(result).__mro__:
        if cls in VIEWS:
            return VIEWS[cls](result, **kwargs)
    names = ", ".join(sorted(cls.__name__ for cls in VIEWS))
    raise ArgumentTypeError(f"mlipviz has no view for a {type(result).__name__}; show() takes one of: {names}")


class Showable:
    """Mixin of the result types: ``result.show(**kwargs)`` is ``mlipviz.show(result, **kwargs)``."""

    def show(self, **kwargs: Any) -> Any:
        """The interactive view of this result (`mlipviz.show`); needs the widget extras."""
        return show(self, **kwargs)


__all__ = ["VIEWS", "Showable", "register_view", "show"]
