"""Error metrics on plain arrays: per-atom force errors and the softening fit.

Sources: Liu, He & Mo, npj Comput. Mater. 9, 174 (2023) for magnitude and angle
errors; Deng et al., npj Comput. Mater. 11, 9 (2025) for the softening scale.
"""

from __future__ import annotations

import numpy as np

#: forces weaker than this (eV/Å) have no meaningful direction: their angle error is NaN.
ANGLE_MIN_FORCE = 0.05


def force_errors(pred: np.ndarray, ref: np.ndarray, min_force: float = ANGLE_MIN_FORCE) -> dict:
    """Per-atom errors between predicted and reference forces, both ``(n, 3)`` eV/Å.

    Returns ``force_error`` = |F_pred - F_ref|, ``magnitude_error`` = |F_pred| - |F_ref|
    and ``angle_error`` = arccos(F_pred·F_ref / (|F_pred||F_ref|)) in degrees, NaN where
    either force is below ``min_force`` eV/Å.
    """
    pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    norm_pred, norm_ref = np.linalg.norm(pred, axis=1), np.linalg.norm(ref, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.einsum("ij,ij->i", pred, ref) / (norm_pred * norm_ref)
    angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    angle[(norm_pred < min_force) | (norm_ref < min_force)] = np.nan
    return {
        "force_error": np.linalg.norm(pred - ref, axis=1),
        "magnitude_error": norm_pred - norm_ref,
        "angle_error": angle,
    }


def softening_fit(pred: np.ndarray, ref: np.ndarray) -> dict:
    """Softening scale of predicted against reference force components (Deng et al. 2025).

    All components are pooled. ``slope`` is the least-squares fit through the origin,
    s = Σ F_pred·F_ref / Σ F_ref² (matcalc's convention); ``slope_with_intercept`` and
    ``intercept`` the ordinary fit; ``mae`` = mean |F_pred - F_ref|; ``cmae`` = mean
    |F_ref - F_pred/s|; ``correction`` c = 1/s, so that E_corr = c·E and F_corr = c·F_pred.
    """
    p = np.asarray(pred, dtype=np.float64).ravel()
    r = np.asarray(ref, dtype=np.float64).ravel()
    keep = np.isfinite(p) & np.isfinite(r)
    p, r = p[keep], r[keep]
    nan = float("nan")
    if len(r) < 2 or not np.any(r):
        return {"slope": nan, "slope_with_intercept": nan, "intercept": nan, "r2": nan,
                "mae": float(np.mean(np.abs(p - r))) if len(r) else nan, "cmae": nan,
                "correction": nan, "n_components": int(len(r))}
    slope = float(np.dot(p, r) / np.dot(r, r))
    r_mean, p_mean = r.mean(), p.mean()
    r_centred = r - r_mean
    # ordinary least squares in closed form (what np.polyfit(r, p, 1) solves, in O(n) memory)
    slope_i = float(np.dot(r_centred, p - p_mean) / np.dot(r_centred, r_centred)) if np.any(r_centred) else nan
    intercept = p_mean - slope_i * r_mean
    residual = p - (slope_i * r + intercept)
    spread = np.sum((p - p_mean) ** 2)
    return {
        "slope": slope,
        "slope_with_intercept": float(slope_i),
        "intercept": float(intercept),
        "r2": float(1 - np.sum(residual ** 2) / spread) if spread > 0 else nan,
        "mae": float(np.mean(np.abs(p - r))),
        "cmae": float(np.mean(np.abs(r - p / slope))) if slope else nan,
        "correction": 1.0 / slope if slope else nan,
        "n_components": int(len(r)),
    }


def minimum_image_displacement(positions: np.ndarray, start: np.ndarray, cell: np.ndarray,
                               pbc: np.ndarray) -> np.ndarray:
    """Displacement vectors ``positions - start`` wrapped to the nearest periodic image."""
    delta = np.asarray(positions, dtype=np.float64) - start
    if not np.any(pbc):
        return delta
    from ase.geometry import find_mic

    vectors, _ = find_mic(delta, cell, pbc)
    return vectors
