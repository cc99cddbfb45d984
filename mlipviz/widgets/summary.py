"""The Explorer's summary tab: the error and softening tables of the run."""

from __future__ import annotations

import ipywidgets as widgets

from .tabs import Run, register_tab


def summary_tab(run: Run) -> widgets.Widget:
    """The comparison's error summary and softening scales, as tables."""
    cmp = run.comparison
    return widgets.HTML("<b>Errors</b>" + cmp.summary().to_html(float_format="%.4f")
                        + "<b>Softening scale</b> (Deng et al. 2025)" + cmp.softening().to_html(float_format="%.4f"))


register_tab("summary", summary_tab, order=10)
