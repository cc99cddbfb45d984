"""Attributions: which atoms' displacements and which atoms' presence drive a uMLIP's
energy, forces and force errors (`mlipviz.analysis.attribution`, Captum), and `show`,
the interactive view on the 3D structure."""

from typing import Any

from .analysis.attribution import (COMPLETENESS_TOLERANCE, INPUTS, METHODS, TARGETS,  # noqa: F401
                                   Attribution, attribute, relaxed_positions, site_energies)
from .display import show as _show
from .errors import ArgumentTypeError, InputError


def show(model: Any = None, atoms: Any = None, result: Attribution | None = None, **settings: Any) -> Any:
    """The interactive attribution view (`mlipviz.widgets.AttributionView`): of ``result``,
    or computed for ``model`` on ``atoms`` with `attribute`'s ``settings``; its pickers
    recompute with another target, method or input (where ``model`` and ``atoms`` are given).
    ``top`` and ``pickers`` go to the view.

    Raises
    ------
    InputError
        Neither ``result`` nor both ``model`` and ``atoms``.
    ArgumentTypeError
        ``result`` is no `Attribution`.
    """
    view = {key: settings.pop(key) for key in ("top", "pickers") if key in settings}  # the view's own
    if result is None:
        if model is None or atoms is None:
            raise InputError("give result= (an Attribution), or model and atoms to compute one")
        result = attribute(model, atoms, **settings)
    elif not isinstance(result, Attribution):
        raise ArgumentTypeError(f"result must be an Attribution (from mlipviz.attribute), got "
                                f"{type(result).__name__}")
    return _show(result, model=model, atoms=atoms, **view, **settings)
