"""Attributions: which atoms' displacements and which atoms' presence drive a uMLIP's
energy, forces and force errors (`mlipviz.analysis.attribution`, Captum), and `show`,
the interactive view on the 3D structure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .analysis.attribution import (  # noqa: F401
    COMPLETENESS_TOLERANCE,
    INPUTS,
    METHODS,
    TARGETS,
    Attribution,
    attribute,
    relaxed_positions,
    site_energies,
)
from .display import show as _show
from .errors import ArgumentTypeError, InputError

if TYPE_CHECKING:
    from ._types import StructuresLike
    from .analysis._types import ModelSpec


def show(model: ModelSpec | None = None, atoms: StructuresLike | None = None, result: Attribution | None = None,
         **settings: Any) -> Any:
    """The interactive attribution view (`mlipviz.widgets.AttributionView`): of ``result``,
    or computed for ``model`` on ``atoms`` with `attribute`'s ``settings``; its pickers
    recompute with another target, method or input (where ``model`` and ``atoms`` are given).

    Parameters
    ----------
    model : Model, str, Path or ASE calculator, optional
        The model (see `attribute`).
    atoms : anything `mlipviz.read` takes, optional
        The structure.
    result : Attribution, optional
        An attribution to show.
    **settings
        `attribute`'s settings; ``top`` and ``pickers`` go to the view.

    Returns
    -------
    mlipviz.widgets.AttributionView

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
