"""Error metrics on plain arrays: per-atom force errors and the softening fit.

Sources: Liu, He & Mo, npj Comput. Mater. 9, 174 (2023) for magnitude and angle
errors; Deng et al., npj Comput. Mater. 11, 9 (2025) for the softening scale.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from ase.geometry import find_mic

from ..checks import number
from ..errors import InputError

#: forces weaker than this (eV/Å) have no meaningful direction: their angle error is NaN.
ANGLE_MIN_FORCE = 0.05


def force_errors(pred: np.ndarray, ref: np.ndarray, min_force: float = ANGLE_MIN_FORCE) -> dict[str, np.ndarray]:
    """Per-atom errors between predicted and reference forces, both ``(n, 3)`` eV/Å.

    Returns ``force_error`` = |F_pred - F_ref|, ``magnitude_error`` = |F_pred| - |F_ref|
    and ``angle_error`` = arccos(F_pred·F_ref / (|F_pred||F_ref|)) in degrees, NaN where
    either force is below ``min_force`` eV/Å.
    """
    min_force = number("min_force", min_force, minimum=0)  # a negative one would mean nothing
    pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if pred.shape != ref.shape or pred.ndim != 2 or pred.shape[1:] != (3,):
        raise InputError(f"pred and ref must both be (n, 3) force arrays, got {pred.shape} and {ref.shape}")
    norm_pred, norm_ref = row_norms(pred), row_norms(ref)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.einsum("ij,ij->i", pred, ref) / (norm_pred * norm_ref)
    angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    angle[(norm_pred < min_force) | (norm_ref < min_force)] = np.nan
    return {
        "force_error": row_norms(pred - ref),
        "magnitude_error": norm_pred - norm_ref,
        "angle_error": angle,
    }


def row_norms(vectors: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row of ``(n, 3)`` vectors."""
    return np.sqrt(np.einsum("ij,ij->i", vectors, vectors))


#: force components per block of `softening_fit` (its memory does not grow with the data)
FIT_BLOCK = 1 << 20


def softening_fit(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Softening scale of predicted against reference force components (Deng et al. 2025).

    All finite components are pooled. ``slope`` is the least-squares fit through the
    origin, s = Σ F_pred·F_ref / Σ F_ref² (matcalc's convention); ``slope_with_intercept``
    and ``intercept`` the ordinary fit, ``r2`` its coefficient of determination;
    ``mae`` = mean |F_pred - F_ref|; ``cmae`` = mean |F_ref - F_pred/s|; ``correction``
    c = 1/s, so that E_corr = c·E and F_corr = c·F_pred. Sums run over blocks of
    `FIT_BLOCK` components, around the first block's means (no cancellation).
    """
    p_all, r_all = np.ravel(pred), np.ravel(ref)

    def blocks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(r_all), FIT_BLOCK):
            p = np.asarray(p_all[start:start + FIT_BLOCK], dtype=np.float64)
            r = np.asarray(r_all[start:start + FIT_BLOCK], dtype=np.float64)
            keep = np.isfinite(p) & np.isfinite(r)
            yield (p, r) if keep.all() else (p[keep], r[keep])

    n, shift_p, shift_r = 0, None, None
    sum_p = sum_r = sum_pp = sum_rr = sum_pr = dot_pr = dot_rr = abs_error = 0.0
    for p, r in blocks():
        if shift_p is None and len(r):
            shift_p, shift_r = float(p.mean()), float(r.mean())
        if not len(r):
            continue
        dot_pr, dot_rr = dot_pr + float(p @ r), dot_rr + float(r @ r)
        abs_error += float(np.abs(p - r).sum())
        p, r = p - shift_p, r - shift_r
        n += len(r)
        sum_p, sum_r = sum_p + float(p.sum()), sum_r + float(r.sum())
        sum_pp, sum_rr, sum_pr = sum_pp + float(p @ p), sum_rr + float(r @ r), sum_pr + float(p @ r)
    nan = float("nan")
    if n < 2 or dot_rr == 0:
        return {"slope": nan, "slope_with_intercept": nan, "intercept": nan, "r2": nan,
                "mae": abs_error / n if n else nan, "cmae": nan, "correction": nan, "n_components": n}
    slope = dot_pr / dot_rr
    assert shift_p is not None and shift_r is not None  # n >= 2: set by the first block with values
    # the ordinary least squares fit (what np.polyfit(r, p, 1) solves) from centred sums
    s_rr, s_pp, s_pr = sum_rr - sum_r ** 2 / n, sum_pp - sum_p ** 2 / n, sum_pr - sum_p * sum_r / n
    slope_i = s_pr / s_rr if s_rr > 0 else nan
    intercept = shift_p + sum_p / n - slope_i * (shift_r + sum_r / n)
    cmae = sum(float(np.abs(r - p / slope).sum()) for p, r in blocks()) / n if slope else nan
    return {
        "slope": slope,
        "slope_with_intercept": slope_i,
        "intercept": intercept,
        "r2": s_pr ** 2 / (s_rr * s_pp) if s_rr > 0 and s_pp > 0 else nan,
        "mae": abs_error / n,
        "cmae": cmae,
        "correction": 1.0 / slope if slope else nan,
        "n_components": n,
    }


def minimum_image_displacement(positions: np.ndarray, start: np.ndarray, cell: np.ndarray,
                               pbc: np.ndarray) -> np.ndarray:
    """Displacement vectors ``positions - start`` wrapped to the nearest periodic image."""
    delta = np.asarray(positions, dtype=np.float64) - start
    if not np.any(pbc):
        return delta
    vectors, _ = find_mic(delta, cell, pbc)
    return vectors
