"""Attributions: which atoms' displacements and which atoms' presence drive a uMLIP's
energy, forces and force errors (`mlipviz.analysis.attribution`, Captum), and `show`,
the interactive view on the 3D structure."""

from .analysis.attribution import (COMPLETENESS_TOLERANCE, INPUTS, METHODS, TARGETS,  # noqa: F401
                                   Attribution, attribute, relaxed_positions, site_energies)


def show(model=None, atoms=None, result: Attribution | None = None, **settings):
    """The interactive attribution view (`mlipviz.widgets.AttributionView`): of ``result``,
    or computed for ``model`` on ``atoms`` with `attribute`'s ``settings``; its pickers
    recompute with another target, method or input."""
    from .widgets.attribution_view import AttributionView

    return AttributionView(model=model, atoms=atoms, result=result, **settings)
