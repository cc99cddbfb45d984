"""Latent space of uMLIPs: per-atom embeddings on UMAP/PCA maps, out-of-distribution
scores and their correlation with force errors (`mlipviz.analysis.latent`), and `show`,
the interactive map linked to the 3D viewer."""

from typing import Any

from .analysis.latent import (LatentSpace, Projection, analyse, clear_cache, embeddings_of,  # noqa: F401
                              ood_correlation, ood_score, project)
from .display import show as _show


def show(source: Any, fit_on: Any = None, method: str = "umap", models: Any = None, k: int = 10,
         color_by: str = "force_error", **projection: Any) -> Any:
    """The interactive latent-space map (`mlipviz.widgets.LatentMap`) of a `Comparison` made
    with ``embeddings=True`` (analysed with `analyse`, same arguments) or of a `LatentSpace`."""
    space = source if isinstance(source, LatentSpace) else analyse(
        source, fit_on=fit_on, method=method, models=models, k=k, **projection)
    return _show(space, color_by=color_by)
