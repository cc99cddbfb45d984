"""Latent space of uMLIPs: per-atom embeddings on UMAP/PCA maps, out-of-distribution
scores and their correlation with force errors (`mlipviz.analysis.latent`), and `show`,
the interactive map linked to the 3D viewer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .analysis.latent import (  # noqa: F401
    LatentSpace,
    Projection,
    analyse,
    clear_cache,
    embeddings_of,
    ood_correlation,
    ood_score,
    project,
)
from .display import show as _show

if TYPE_CHECKING:
    from .analysis.compare import Comparison


def show(source: Comparison | LatentSpace, fit_on: Comparison | None = None, method: str = "umap",
         models: str | Sequence[str] | None = None, k: int = 10, color_by: str = "force_error",
         **projection: Any) -> Any:
    """The interactive latent-space map (`mlipviz.widgets.LatentMap`) of a `Comparison` made
    with ``embeddings=True`` (analysed with `analyse`, same arguments) or of a `LatentSpace`.

    Parameters
    ----------
    source : Comparison or LatentSpace
        What to map.
    fit_on, method, models, k, **projection
        As in `analyse` (for a `Comparison`).
    color_by : str
        How the points are coloured at first: ``"force_error"``, ``"magnitude_error"``,
        ``"angle_error"``, ``"ood_score"``, ``"frame"``, ``"element"`` or ``"model"``.

    Returns
    -------
    mlipviz.widgets.LatentMap

    Raises
    ------
    ModuleNotFoundError
        The widget or ``latent`` extras are not installed.
    """
    space = source if isinstance(source, LatentSpace) else analyse(
        source, fit_on=fit_on, method=method, models=models, k=k, **projection)
    return _show(space, color_by=color_by)
