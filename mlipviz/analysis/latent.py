"""A model's latent space: per-atom embeddings projected to 2D (PCA, UMAP) and
out-of-distribution scores (distance to the nearest atoms of a reference set).

Embeddings come as arrays ``(n_atoms, width)``, `Prediction`s or `Comparison`s made with
``embeddings=True``; results are arrays and DataFrames. A projection can be fitted on one
set (a reference set) and applied to another, so new atoms land on a fixed map.
"""

from __future__ import annotations

import hashlib
import importlib
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from ..checks import number, one_of, whole_number
from ..display import Showable
from ..errors import ArgumentTypeError, InputError, MissingLabelsError, UnknownNameError
from ..extras import needs
from ..models.base import Prediction
from .compare import Comparison

METHODS = ("umap", "pca")
STANDARDIZE = ("zscore", "l2", "none")
#: per-atom embeddings as the functions here take them: an ``(n_atoms, width)`` array, a `Prediction` made
#: with ``return_embeddings=True`` or a `Comparison` made with ``embeddings=True``
EmbeddingsLike: TypeAlias = np.ndarray | Prediction | Comparison
_CACHE: OrderedDict[tuple, Projection] = OrderedDict()
_CACHE_SIZE = 8


def embeddings_of(source: EmbeddingsLike, model: str | None = None) -> tuple[np.ndarray, str | None]:
    """``(embeddings, model name)`` from an array, a `Prediction` or a `Comparison`.

    Parameters
    ----------
    source : np.ndarray, Prediction or Comparison
        An ``(n_atoms, width)`` array, a `Prediction` with embeddings or a `Comparison` made
        with ``embeddings=True``.
    model : str, optional
        Picks one of a comparison's models; default the first that has embeddings. For a
        `Prediction`, the model it must be of.

    Returns
    -------
    tuple of (np.ndarray, str or None)
        The float64 embeddings and the model's name (``model`` for an array).

    Raises
    ------
    InputError
        No embeddings (of that model), embeddings of another model, or an array that is not
        a non-empty, finite 2D array.
    UnknownNameError
        No model ``model`` in the comparison.
    """
    if isinstance(source, Comparison):
        having = [name for name, p in source.predictions.items() if p.embeddings is not None]
        if model is None:
            if not having:
                raise InputError("this comparison holds no embeddings; run "
                                 "mlipviz.compare(..., embeddings=True)")
            model = having[0]
        if not isinstance(model, str) or model not in source.predictions:
            raise UnknownNameError(f"model: no model {model!r} in this comparison (models: "
                                   f"{', '.join(source.models)})")
        if model not in having:
            raise InputError(f"the comparison holds no embeddings of model '{model}' (with embeddings: "
                             f"{', '.join(having) or 'none'}); run mlipviz.compare(..., embeddings=True)")
        return np.asarray(source.predictions[model].embeddings, dtype=np.float64), model
    if isinstance(source, Prediction):
        if source.embeddings is None:
            raise InputError(f"prediction of model '{source.model}' holds no embeddings; "
                             "predict with return_embeddings=True")
        if model is not None and source.model != model:
            raise InputError(f"embeddings of model '{source.model}' given where model '{model}' is meant")
        return np.asarray(source.embeddings, dtype=np.float64), source.model
    array = np.asarray(source, dtype=np.float64)
    if array.ndim != 2 or len(array) == 0:
        raise InputError(f"embeddings must be a non-empty (n_atoms, width) array, got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if len(bad):
        raise InputError(f"embeddings of {len(bad)} atom(s) are not finite (first: row {bad[0]})")
    return array, model


@dataclass(frozen=True)
class Scaler:
    """Standardisation fitted on one set and applied to any: ``zscore`` (per-feature mean
    and standard deviation; constant features left unscaled), ``l2`` (each atom's vector to
    unit length) or ``none``."""

    kind: str
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    @classmethod
    def fit(cls, x: np.ndarray, kind: str) -> Scaler:
        """The standardisation ``kind`` fitted on the rows of ``x``."""
        kind = one_of("standardize", kind, STANDARDIZE)
        if kind != "zscore":
            return cls(kind)
        std = x.std(axis=0)
        return cls(kind, x.mean(axis=0), np.where(std > 1e-12 * max(float(std.max()), 1.0), std, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``x`` standardised."""
        if self.kind == "zscore":
            return (x - self.mean) / self.scale
        if self.kind == "l2":
            norm = np.linalg.norm(x, axis=1, keepdims=True)
            return x / np.where(norm > 0, norm, 1.0)
        return x


def _pca(x: np.ndarray, n_components: int) -> Any:
    """scikit-learn's PCA fitted on ``x``, with the exact LAPACK SVD so that the same data give
    the same map (its "auto" solver turns randomised above 500 atoms and 500 features)."""
    with needs("latent", "a PCA map"):
        from sklearn.decomposition import PCA

    if n_components > min(x.shape):
        raise InputError(f"n_components={n_components}: PCA of {x.shape[0]} atoms with {x.shape[1]}-wide "
                         f"embeddings has at most {min(x.shape)} components")
    return PCA(n_components=n_components, svd_solver="full").fit(x)


@dataclass
class Projection:
    """Atoms of a latent space on a 2D (or ``n_components``-D) map.

    `transform` puts other atoms of the same model on this map.

    Attributes
    ----------
    coords : np.ndarray
        The projected atoms (rows as in the source).
    fit_coords : np.ndarray
        The atoms the map was fitted on (``coords`` itself when fitted on the source).
    method : str
        ``"umap"`` or ``"pca"``.
    model : str or None
        The model whose embeddings these are.
    settings : dict
        The projection's settings (standardisation, components, width, UMAP's).
    explained_variance_ratio : np.ndarray or None
        For PCA.
    scaler : Scaler
        The standardisation fitted on the fit set.
    reducer : Any
        The fitted UMAP or PCA estimator.
    """

    coords: np.ndarray
    fit_coords: np.ndarray
    method: str
    model: str | None
    settings: dict[str, Any]
    explained_variance_ratio: np.ndarray | None = None
    scaler: Scaler = field(default=None, repr=False)  # type: ignore[assignment]  # always given by project
    reducer: Any = field(default=None, repr=False)

    def transform(self, source: EmbeddingsLike, model: str | None = None) -> np.ndarray:
        """Put other atoms of the same model on this map.

        Parameters
        ----------
        source : np.ndarray, Prediction or Comparison
            Their embeddings (see `embeddings_of`).
        model : str, optional
            A comparison's model; default this map's.

        Returns
        -------
        np.ndarray
            Their coordinates on the map.

        Raises
        ------
        InputError
            Embeddings of another width, or none.
        """
        x, _ = embeddings_of(source, model or self.model)
        if x.shape[1] != self.settings["width"]:
            raise InputError(f"embeddings are {x.shape[1]} wide; this map was fitted on "
                             f"{self.settings['width']}-wide ones")
        return np.asarray(self.reducer.transform(self.scaler(x)))


def project(source: EmbeddingsLike, method: str = "umap", fit_on: EmbeddingsLike | None = None,
            model: str | None = None, standardize: str = "zscore", n_components: int = 2, seed: int | None = 0,
            n_neighbors: int = 15, min_dist: float = 0.1, n_epochs: int | None = None) -> Projection:
    """Project per-atom embeddings to ``n_components`` dimensions with UMAP or PCA.

    The map is fitted on ``fit_on`` (default: ``source``) and ``source`` is placed on it,
    so new atoms land on a fixed map. UMAP (umap-learn, on exact neighbours up to
    `EXACT_NEIGHBOURS_MAX` atoms, see `_umap`); PCA is scikit-learn's
    (``sklearn.decomposition.PCA``, full SVD, its ``svd_flip`` sign convention); the
    projection's ``reducer`` is the fitted estimator. Results are cached in memory, keyed
    by the data and settings, so asking again (e.g. to recolour) never recomputes.

    Parameters
    ----------
    source : np.ndarray, Prediction or Comparison
        Embeddings (array, `Prediction` or `Comparison`; ``model`` picks a comparison's model).
    method : str
        ``"umap"`` or ``"pca"``.
    fit_on : np.ndarray, Prediction or Comparison, optional
        Embeddings of the same model to fit the map on (default: ``source``).
    model : str, optional
        Picks a comparison's model.
    standardize : str
        ``"zscore"``, ``"l2"`` or ``"none"``: see `Scaler`, fitted on the fit set.
    n_components : int
        >= 1.
    seed : int or None
        UMAP's random seed (a fixed seed makes it reproducible and its layout
        single-threaded; None lets it use every core).
    n_neighbors : int
        UMAP's neighbours, >= 2.
    min_dist : float
        UMAP's minimum distance, >= 0.
    n_epochs : int, optional
        Epochs of UMAP's layout optimisation (>= 1), default `umap_epochs` of the fit set's size.

    Returns
    -------
    Projection

    Raises
    ------
    UnknownNameError
        An unknown ``method`` or ``standardize``, or no model ``model`` in a comparison.
    InputError
        Embeddings missing or of different widths, settings out of range, more PCA
        components than the data have, or fewer atoms than UMAP's ``n_neighbors``.
    ArgumentTypeError
        Settings of the wrong type.
    ModuleNotFoundError
        The ``latent`` extra (umap-learn, scikit-learn) is not installed.
    """
    method = one_of("method", method, METHODS)
    standardize = one_of("standardize", standardize, STANDARDIZE)
    n_components = whole_number("n_components", n_components, minimum=1)
    if method == "umap":
        n_neighbors = whole_number("n_neighbors", n_neighbors, minimum=2)
        min_dist = number("min_dist", min_dist, minimum=0)
        n_epochs = whole_number("n_epochs", n_epochs, minimum=1, none=True)
        seed = whole_number("seed", seed, minimum=0, none=True)
    x, name = embeddings_of(source, model)
    fit, _ = (x, name) if fit_on is None else embeddings_of(fit_on, name)
    if fit.shape[1] != x.shape[1]:
        raise InputError(f"embeddings to project are {x.shape[1]} wide but the fit set's are "
                         f"{fit.shape[1]} wide: both must come from the same model and layer")
    settings: dict[str, Any] = {"standardize": standardize, "n_components": int(n_components), "width": x.shape[1]}
    if method == "umap":
        settings.update(seed=seed, n_neighbors=int(n_neighbors), min_dist=float(min_dist),
                        n_epochs=int(umap_epochs(len(fit)) if n_epochs is None else n_epochs))
    key = (_digest(x), None if fit_on is None else _digest(fit), method, name, tuple(sorted(settings.items())))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    scaler = Scaler.fit(fit, standardize)
    fit_scaled = scaler(fit)
    ratio = None
    if method == "pca":
        reducer = _pca(fit_scaled, n_components)
        fit_coords = reducer.transform(fit_scaled)
        ratio = reducer.explained_variance_ratio_
    else:
        reducer = _umap(fit_scaled, n_components, seed, n_neighbors, min_dist, settings["n_epochs"])
        fit_coords = np.asarray(reducer.embedding_)
    coords = fit_coords if fit_on is None else np.asarray(reducer.transform(scaler(x)))
    result = Projection(coords, fit_coords, method, name, settings, ratio, scaler, reducer)
    _CACHE[key] = result
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return result


def clear_cache() -> None:
    """Forget the cached projections (they hold their fitted maps)."""
    _CACHE.clear()


def umap_epochs(n_atoms: int) -> int:
    """Default UMAP layout epochs: umap-learn's (500 up to 10,000 points, 200 above), but
    100 above 50,000 atoms, where the single-threaded layout of a fixed seed dominates the
    time (100,000 atoms: see benchmarks/bench_latent.py for the time and the neighbours
    kept)."""
    return 500 if n_atoms <= 10_000 else 200 if n_atoms <= 50_000 else 100


#: umap-learn's and pynndescent's modules of numba-compiled functions (most without cache=True)
NUMBA_MODULES = ("umap.umap_", "umap.layouts", "umap.utils", "umap.distances", "umap.sparse", "umap.spectral",
                 "pynndescent.pynndescent_", "pynndescent.distances", "pynndescent.utils", "pynndescent.rp_trees",
                 "pynndescent.sparse", "pynndescent.sparse_nndescent", "pynndescent.graph_utils")


def cache_compiled_umap() -> int:
    """Let numba keep umap-learn's and pynndescent's compiled functions on disk.

    Most of them are compiled afresh in every new process (``cache=True`` is missing), which
    makes the first UMAP map of a fresh kernel wait for compilation (3,000 points: 21 s cold
    against 9 s warm here). With their caches on, numba writes each compiled function next to
    its source (``__pycache__``, or numba's user cache folder where that is read-only) the first
    time and a new process loads it (9 s, as warm); numba recompiles when the source changes.
    Called before every UMAP; ``python -m mlipviz warm-up`` fills the caches ahead (e.g. at image
    build time). Returns how many functions it switched on."""
    with needs("latent", "UMAP maps"):  # numba comes with umap-learn
        from numba.core.caching import NullCache
        from numba.core.dispatcher import Dispatcher

    switched = 0
    for name in NUMBA_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for function in list(vars(module).values()):
            if isinstance(function, Dispatcher) and isinstance(function._cache, NullCache):  # type: ignore[attr-defined, unused-ignore]
                function.enable_caching()
                switched += 1
    return switched


def warm_up(n_points: int = 5000) -> int:
    """Compile and cache (see `cache_compiled_umap`) the functions a UMAP map of this module's
    float64 inputs runs, on random points, placing new points on the map too (``fit_on``).
    Returns how many functions were switched to caching."""
    switched = cache_compiled_umap()
    rng = np.random.default_rng(0)
    _umap(rng.normal(size=(n_points, 16)), 2, 0, 15, 0.1, 20).transform(rng.normal(size=(50, 16)))
    return switched


#: up to this many atoms UMAP's neighbours are found exactly by scikit-learn (see `_umap`); above,
#: by umap-learn's approximate NN-descent, whose numba code is compiled in every process (~15 s)
#: but which grows more slowly than the exact search's n^2
EXACT_NEIGHBOURS_MAX = 50_000


class _ExactNeighbours:
    """Exact Euclidean nearest neighbours (scikit-learn) in the shape umap-learn expects of its
    search index: ``query(x, k, epsilon)`` -> (int32 indices, float32 distances), used by
    ``UMAP.transform`` to place new atoms on a fitted map."""

    _angular_trees = False  # read by umap-learn's transform to choose epsilon (unused here)

    def __init__(self, x: np.ndarray, k: int) -> None:
        with needs("latent", "UMAP maps"):
            from sklearn.neighbors import NearestNeighbors

        self.x = x
        self.index = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(x)

    def query(self, x: np.ndarray, k: int, epsilon: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        dists, indices = self.index.kneighbors(x, k)
        return indices.astype(np.int32), dists.astype(np.float32)

    def graph(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each fit point's ``k`` nearest fit points, itself first (as pynndescent gives them)."""
        return self.query(self.x, k)


def _umap(x: np.ndarray, n_components: int, seed: int | None, n_neighbors: int, min_dist: float,
          n_epochs: int) -> Any:
    """Fit umap-learn's UMAP. Up to `EXACT_NEIGHBOURS_MAX` atoms the neighbour graph is computed
    exactly by scikit-learn and handed to it: from 4,096 points umap-learn would use NN-descent,
    numba code compiled afresh in every process (numba cannot cache it, it takes the distance
    function as an argument), which made a fresh kernel's first 6,000-atom map 3.6 times as slow
    as the next; below 4,096 its own exact path builds a dense distance matrix, 3.4 times as slow
    as this one warm (benchmarks/bench_latent.py, ``cold_start``)."""
    with needs("latent", "UMAP maps"):
        import umap

    cache_compiled_umap()

    if len(x) <= n_neighbors:
        raise InputError(f"UMAP needs more atoms than n_neighbors={n_neighbors}; got {len(x)} "
                         "(use method='pca' or a smaller n_neighbors)")
    knn: dict[str, Any] = {}
    if len(x) <= EXACT_NEIGHBOURS_MAX:
        index = _ExactNeighbours(x, n_neighbors)
        knn["precomputed_knn"] = (*index.graph(n_neighbors), index)
    with warnings.catch_warnings():  # "n_jobs value 1 overridden by setting random_state"
        warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
        # our index is not pynndescent's but does what transform needs of it
        warnings.filterwarnings("ignore", message=".*is not an NNDescent object.*", category=UserWarning)
        return umap.UMAP(n_components=n_components, n_neighbors=n_neighbors, min_dist=min_dist,
                         n_epochs=n_epochs, random_state=seed, **knn).fit(x)


def _digest(x: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(x).view(np.uint8).data, digest_size=16).hexdigest() + str(x.shape)


def ood_score(source: EmbeddingsLike, fit_on: EmbeddingsLike | None = None, model: str | None = None,
              k: int = 10, standardize: str = "zscore") -> np.ndarray:
    """Out-of-distribution score of each atom: the mean distance from its embedding to the
    ``k`` nearest atoms of the reference set ``fit_on`` (default: the source itself, each
    atom leaving itself out), in the reference set's standardised embedding space (not
    the 2D map), divided by the median of the same leave-one-out distance among the
    reference atoms. About 1 in distribution; larger means further from anything in the
    reference set.

    Parameters
    ----------
    source : np.ndarray, Prediction or Comparison
        The atoms' embeddings (see `embeddings_of`).
    fit_on : np.ndarray, Prediction or Comparison, optional
        The reference set's embeddings, of the same model.
    model : str, optional
        Picks a comparison's model.
    k : int
        Nearest neighbours (>= 1); the reference set needs more than ``k`` atoms.
    standardize : str
        ``"zscore"``, ``"l2"`` or ``"none"`` (see `Scaler`), fitted on the reference set.

    Returns
    -------
    np.ndarray
        One score per atom of ``source``.

    Raises
    ------
    InputError
        Embeddings missing or of different widths, a reference set of ``k`` atoms or fewer,
        or one whose atoms all have ``k`` identical neighbours (no scale).
    UnknownNameError
        An unknown ``standardize`` or model.
    ModuleNotFoundError
        The ``latent`` extra (scikit-learn) is not installed.
    """
    with needs("latent", "OOD scores"):
        from sklearn.neighbors import NearestNeighbors

    k = whole_number("k", k, minimum=1)
    standardize = one_of("standardize", standardize, STANDARDIZE)
    x, name = embeddings_of(source, model)
    ref = x if fit_on is None else embeddings_of(fit_on, name)[0]
    if ref.shape[1] != x.shape[1]:
        raise InputError(f"embeddings are {x.shape[1]} wide but the reference set's are {ref.shape[1]} wide")
    if len(ref) <= k:  # leave-one-out within the reference set needs k others per atom
        raise InputError(f"k={k} nearest neighbours need a reference set of more than k atoms "
                         f"(it has {len(ref)})")
    scaler = Scaler.fit(ref, standardize)
    ref_scaled = scaler(ref)
    index = NearestNeighbors(n_neighbors=k + 1).fit(ref_scaled)
    within = index.kneighbors(ref_scaled, k + 1, return_distance=True)[0][:, 1:].mean(axis=1)
    positive = within[within > 0]
    if not len(positive):
        raise InputError("every atom of the reference set has k identical neighbours in embedding "
                         "space; the score has no scale (use a more varied reference set or a smaller k)")
    scale = float(np.median(positive))
    if fit_on is None:
        return within / scale
    return index.kneighbors(scaler(x), k, return_distance=True)[0].mean(axis=1) / scale


def ood_correlation(comparison: Comparison, fit_on: EmbeddingsLike | None = None, k: int = 10,
                    error: str = "force_error", standardize: str = "zscore") -> pd.DataFrame:
    """Spearman rank correlation between each model's OOD score and its per-atom ``error``,
    one row per model with embeddings. Needs a comparison with a reference (the errors).

    Parameters
    ----------
    comparison : Comparison
        Made with ``embeddings=True``, against a reference.
    fit_on : np.ndarray, Prediction or Comparison, optional
        The reference set of the OOD scores (see `ood_score`).
    k : int
        Nearest neighbours of the OOD scores.
    error : str
        A column of ``comparison.per_atom``: "force_error" |dF|, "angle_error", ...
    standardize : str
        ``"zscore"``, ``"l2"`` or ``"none"`` (see `Scaler`).

    Returns
    -------
    pd.DataFrame
        Per model: ``error``, ``spearman_rho``, ``p_value``, ``atoms``, ``k``, ``reference_set``.

    Raises
    ------
    ArgumentTypeError
        ``comparison`` is not a `Comparison`.
    MissingLabelsError
        A models-only comparison.
    InputError
        No model with embeddings, or the errors of `ood_score`.
    UnknownNameError
        An ``error`` that is not a column of ``per_atom``, or an unknown ``standardize``.
    ModuleNotFoundError
        The ``latent`` extra (scikit-learn, scipy) is not installed.
    """
    k = whole_number("k", k, minimum=1)
    standardize = one_of("standardize", standardize, STANDARDIZE)
    _check_comparison(comparison, "ood_correlation")
    columns = [c for c in comparison.per_atom.columns
               if c not in ("model", "frame", "atom", "element") and comparison.per_atom[c].dtype.kind == "f"]
    error = one_of("error", error, columns)
    rows = []
    for name, pred in comparison.predictions.items():
        if pred.embeddings is not None:
            score = ood_score(comparison, fit_on, name, k, standardize)
            values = comparison.per_atom.loc[comparison.per_atom["model"] == name, error].to_numpy()
            rows.append(_correlation(name, score, values, error, k, fit_on))
    if not rows:
        raise InputError("no model in this comparison has embeddings; run mlipviz.compare(..., embeddings=True)")
    return pd.DataFrame(rows).set_index("model")


def _check_comparison(comparison: Any, what: str) -> None:
    """A `Comparison` with a reference, or an error saying why ``what`` needs one."""
    if not isinstance(comparison, Comparison):
        raise ArgumentTypeError(f"comparison: {what} takes a Comparison (mlipviz.compare(..., "
                                f"embeddings=True)), got {type(comparison).__name__}")
    if not comparison.has_reference:
        raise MissingLabelsError(f"{what} correlates OOD scores with force errors, which need a reference; "
                                 "this comparison holds models only (latent.project and latent.ood_score "
                                 "work without one)", source=comparison.frames.source)


def _correlation(model: str, score: np.ndarray, values: np.ndarray, error: str, k: int,
                 fit_on: Any) -> dict[str, Any]:
    with needs("latent", "OOD correlations"):
        from scipy.stats import spearmanr

    ok = np.isfinite(values) & np.isfinite(score)
    rho, p = spearmanr(score[ok], values[ok]) if ok.sum() > 2 else (np.nan, np.nan)
    return {"model": model, "error": error, "spearman_rho": float(rho), "p_value": float(p),
            "atoms": int(ok.sum()), "k": k,
            "reference_set": "the same atoms (leave-one-out)" if fit_on is None else "fit_on"}


@dataclass
class LatentSpace(Showable):
    """Every embedded model of a comparison on its own map, with OOD scores.

    Attributes
    ----------
    comparison : Comparison
        The comparison analysed.
    table : pd.DataFrame
        One row per model, frame and atom: element, force errors (from
        ``comparison.per_atom``), map coordinates ``x``, ``y`` and ``ood_score``.
    projections : dict of str to Projection
        Model -> `Projection`.
    correlation : pd.DataFrame
        `ood_correlation` with |dF|.
    settings : dict
        The settings of `analyse`.
    """

    comparison: Comparison
    table: pd.DataFrame
    projections: dict[str, Projection]
    correlation: pd.DataFrame
    settings: dict[str, Any]

    @property
    def models(self) -> list[str]:
        """The models on maps, in order."""
        return list(self.projections)


def analyse(comparison: Comparison, fit_on: Comparison | None = None, method: str = "umap",
            models: str | Sequence[str] | None = None, k: int = 10, standardize: str = "zscore",
            **projection: Any) -> LatentSpace:
    """Project each embedded model's atoms and score them on 2D maps.

    Needs a comparison with a reference (its table holds force errors).

    Parameters
    ----------
    comparison : Comparison
        Made with ``embeddings=True``, against a reference.
    fit_on : Comparison, optional
        A `Comparison` of the same models on a reference set to fit the maps on and score
        against; default the atoms themselves.
    method : str
        ``"umap"`` or ``"pca"``.
    models : str or list of str, optional
        Names, default all with embeddings.
    k : int
        Nearest neighbours of the OOD scores (see `ood_score`).
    standardize : str
        ``"zscore"``, ``"l2"`` or ``"none"`` (see `Scaler`).
    **projection
        Further `project` settings (``seed``, ``n_neighbors``, ``min_dist``, ``n_epochs``).

    Returns
    -------
    LatentSpace

    Raises
    ------
    ArgumentTypeError
        ``comparison`` is not a `Comparison`.
    MissingLabelsError
        A models-only comparison.
    InputError
        No model with embeddings, or the errors of `project` and `ood_score`.
    UnknownNameError
        An unknown model, ``method`` or ``standardize``.
    ModuleNotFoundError
        The ``latent`` extra is not installed.
    """
    method = one_of("method", method, METHODS)
    k = whole_number("k", k, minimum=1)
    standardize = one_of("standardize", standardize, STANDARDIZE)
    _check_comparison(comparison, "latent.analyse")
    embedded = [n for n, p in comparison.predictions.items() if p.embeddings is not None]
    names = embedded if models is None else ([models] if isinstance(models, str) else list(models))
    if not names:
        raise InputError("no model in this comparison has embeddings; run mlipviz.compare(..., embeddings=True)")
    for name in names:  # named before any map is fitted
        embeddings_of(comparison, name)
    per_atom = comparison.per_atom
    tables: list[pd.DataFrame] = []
    projections: dict[str, Projection] = {}
    rows: list[dict[str, Any]] = []
    for name in names:
        proj = project(comparison, method, fit_on, name, standardize, n_components=2, **projection)
        score = ood_score(comparison, fit_on, name, k, standardize)
        table = per_atom[per_atom["model"] == name].reset_index(drop=True)
        table["x"], table["y"], table["ood_score"] = proj.coords[:, 0], proj.coords[:, 1], score
        rows.append(_correlation(name, score, table["force_error"].to_numpy(), "force_error", k, fit_on))
        projections[name] = proj
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    table["model"] = pd.Categorical(table["model"].astype(str), categories=names)
    return LatentSpace(comparison, table, projections, pd.DataFrame(rows).set_index("model"),
                       {"method": method, "k": k, "standardize": standardize, "fit_on": fit_on is not None,
                        **projection})
