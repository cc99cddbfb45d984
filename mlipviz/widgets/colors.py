"""Per-atom colours for the viewer: continuous colormaps, element colours, colour bars.

Presentation only: values come in, hex colours and HTML come out.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from ase.data import chemical_symbols
from ase.data.colors import jmol_colors

from ..errors import UnknownNameError
from ..extras import needs

#: colour levels of a continuous map
LEVELS = 64


@dataclass
class AtomColors:
    """Colours of the atoms of one frame and the legend that explains them."""

    hex: list[str]
    legend_html: str
    vmin: float | None = None
    vmax: float | None = None

    @property
    def ints(self) -> list[int]:
        """The colours as 0xRRGGBB integers, as NGL's colour schemes return them."""
        return [int(colour[1:], 16) for colour in self.hex]


def check_colormap(name: str) -> str:
    """``name`` if matplotlib has that colormap; an `UnknownNameError` otherwise."""
    _colormap(name)
    return name


def _colormap(name: str) -> Any:
    with needs("widgets", "colour maps"):
        from matplotlib import colormaps

    if not isinstance(name, str) or name not in colormaps:
        raise UnknownNameError(f"cmap={name!r} is no colormap; any matplotlib colormap name works, "
                               "e.g. 'viridis', 'magma', 'RdBu_r'")
    return colormaps[name]


@lru_cache(maxsize=64)
def _hex_table(cmap: str, levels: int = LEVELS) -> np.ndarray:
    rgba = _colormap(cmap)(np.linspace(0, 1, levels))
    rgb = np.round(rgba[:, :3] * 255).astype(int)
    return np.array([f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb])


NAN_COLOR = "#bdbdbd"


def continuous(values: Any, vmin: float, vmax: float, cmap: str = "viridis", label: str = "") -> AtomColors:
    """Map ``values`` onto ``cmap`` between ``vmin`` and ``vmax``; NaN atoms are grey."""
    table = _hex_table(cmap)
    values = np.asarray(values, dtype=np.float64)
    span = vmax - vmin if vmax > vmin else 1.0
    level = np.clip(((values - vmin) / span * (len(table) - 1)).round(), 0, len(table) - 1)
    finite = np.isfinite(values)
    colours = np.where(finite, table[np.where(finite, level, 0).astype(int)], NAN_COLOR)
    return AtomColors(colours.tolist(), colorbar_html(cmap, vmin, vmax, label, has_nan=not finite.all()),
                      vmin, vmax)


def value_range(values: Any, symmetric: bool = False) -> tuple[float, float]:
    """Colour range covering the finite ``values`` (symmetric about 0 for signed metrics)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if not len(finite):
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if symmetric:
        bound = max(abs(lo), abs(hi)) or 1.0
        return -bound, bound
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def element_colors(numbers: Any) -> AtomColors:
    """Jmol element colours (as in ASE's GUI) with a legend of the elements present."""
    numbers = np.asarray(numbers, dtype=np.int64)
    rgb = np.round(jmol_colors[numbers] * 255).astype(int)
    hex_colors = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb]
    chips = []
    for z in sorted(set(numbers.tolist())):
        r, g, b = np.round(jmol_colors[z] * 255).astype(int)
        chips.append(f"<span style='display:inline-block;width:12px;height:12px;border:1px solid #555;"
                     f"background:#{r:02x}{g:02x}{b:02x};margin:0 3px 0 8px'></span>{chemical_symbols[z]}")
    return AtomColors(hex_colors, "<div class='mlipviz-legend'>" + "".join(chips) + "</div>")


def colorbar_html(cmap: str, vmin: float, vmax: float, label: str = "", has_nan: bool = False) -> str:
    """A horizontal colour bar with its range and label, as HTML."""
    stops = ", ".join(_hex_table(cmap, 11))
    nan_note = (f" <span style='display:inline-block;width:10px;height:10px;background:{NAN_COLOR}'>"
                "</span> undefined") if has_nan else ""
    return (
        "<div class='mlipviz-colorbar' style='font-size:12px;width:320px'>"
        f"<div>{label}{nan_note}</div>"
        f"<div style='height:12px;border:1px solid #555;background:linear-gradient(to right, {stops})'></div>"
        "<div style='display:flex;justify-content:space-between'>"
        f"<span class='vmin'>{vmin:.3g}</span><span class='vmax'>{vmax:.3g}</span></div></div>")
