"""How views are arranged: side by side where the output area is wide enough, one under the
other where it is not (a narrow JupyterLab panel), never squeezed into scrolling boxes."""

from __future__ import annotations

import ipywidgets as widgets


def side_by_side(*children: widgets.Widget) -> widgets.HBox:
    """A row of ``children`` that wraps onto the next line when the output area is too narrow
    (flexbox would otherwise shrink them and give each a scroll bar). Children with a width
    (and plots) keep it; the others share what is left of the row."""
    boxes = []
    for child in children:
        fixed = not isinstance(getattr(child, "layout", None), widgets.Layout)
        if fixed:
            child = widgets.Box([child])  # a plotly figure's .layout is the plot's own (fixed size)
        # a child without a width of its own (a viewer) takes the rest of the row, down to its
        # min_width
        child.layout.flex = "0 0 auto" if fixed or child.layout.width else "1 1 0%"
        boxes.append(child)
    return widgets.HBox(boxes, layout={"flex_flow": "row wrap", "align_items": "flex-start"})
