"""Latent-space costs, in one run: embedding extraction on top of prediction, and UMAP,
PCA and OOD scores of 100,000 real per-atom embeddings.

    python benchmarks/bench_latent.py [--atoms 100000] [--repeats 5]

1. For each model that loads here, `predict` on the bundled high-energy-states frames with and
   without ``return_embeddings``, alternating, ``--repeats`` times each; reports the median
   times and their ratio (the extraction overhead).
2. CHGNet embeddings of ``--atoms`` atoms (rattled copies of the same frames, 7 elements;
   CHGNet 0.2.0 as the reference), then `mlipviz.latent.project` with UMAP (fixed seed:
   reproducible, its layout single-threaded, with the default and with umap-learn's 200
   epochs; and seed=None: all cores), PCA, and `ood_score` (k = 10, leave-one-out); for each
   map, the fraction of 15 nearest neighbours it keeps (3,000 sampled atoms). The UMAP times
   exclude numba's one-off compilation, measured separately (a 2,000-atom map, and one epoch
   of a map large enough for NN-descent).
3. The `LatentMap` widget over those atoms (server side): `analyse` (its UMAP comes from the
   cache), building the widget, recolouring, and the size of the figure state sent to the
   browser.
4. Cold start (``cold_start``): the first UMAP map of a fresh process (3,000, 6,000 and 20,000
   atoms) against the same map again in that process, on a fresh install (an empty numba cache)
   and in a later fresh kernel; and the same with umap-learn's own neighbour search.

Writes benchmarks/results/latent_cpu.json (``--parts`` measures some parts only and keeps
the others' figures, each part dated). Ratios are the figures to quote: these machines are
noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import mlipviz
from mlipviz import latent
from mlipviz.analysis.latent import EXACT_NEIGHBOURS_MAX, Scaler

MODELS = ("chgnet", "m3gnet", "sevennet-0", "mace-mp-0")


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def extraction_overhead(frames, repeats: int) -> list[dict]:
    rows = []
    available = mlipviz.available_models()
    for name in MODELS:
        if name not in available.index or not available.loc[name, "available"]:
            rows.append({"model": name, "skipped": str(available.loc[name, "reason"])
                         if name in available.index else "not registered"})
            continue
        model = mlipviz.load_model(name, device="cpu")
        model.predict(frames[:4], progress=False, return_embeddings=True)  # warm-up
        plain, embedded = [], []
        for _ in range(repeats):
            plain.append(timed(lambda model=model: model.predict(frames, progress=False))[0])
            embedded.append(timed(lambda model=model: model.predict(frames, progress=False,
                                                                    return_embeddings=True))[0])
        rows.append({"model": name, "embedding_layer": model.embedding_layer, "atoms": int(frames.total_atoms),
                     "predict_s": round(float(np.median(plain)), 3),
                     "predict_with_embeddings_s": round(float(np.median(embedded)), 3),
                     "overhead": round(float(np.median(embedded) / np.median(plain)) - 1, 4)})
        print(rows[-1], flush=True)
    return rows


PARTS = ("extraction", "projection", "widget", "cold_start")


def large_comparison(frames, n_atoms: int, seed: int = 0, checkpoint_dir: Path | None = None):
    rng = np.random.default_rng(seed)
    copies = int(np.ceil(n_atoms / frames.total_atoms))
    images = []
    for k in range(copies):
        for i in range(len(frames)):
            atoms = frames.to_atoms(i)
            atoms.calc = None
            atoms.positions += rng.normal(0, 0.02 + 0.13 * k / copies, atoms.positions.shape)
            images.append(atoms)
    big = mlipviz.read(images, min_distance=0.3)
    keep = int(np.searchsorted(big.offsets, n_atoms))
    return mlipviz.compare("chgnet", big[:keep], reference="chgnet-0.2.0", device="cpu", embeddings=True,
                           checkpoint_dir=checkpoint_dir)


def widget_costs(cmp) -> dict:
    import plotly.io

    from mlipviz.widgets import LatentMap

    analyse_s, space = timed(lambda: latent.analyse(cmp, method="umap", k=10))
    build_s, widget = timed(lambda: LatentMap(space))
    state = len(plotly.io.to_json(widget.maps))
    recolour = []
    for key in ("ood_score", "angle_error", "force_error", "frame", "ood_score"):
        recolour.append(timed(lambda key=key: setattr(widget.color_select, "value", key))[0])
    return {"atoms": int(cmp.frames.total_atoms), "analyse_s (umap cached)": round(analyse_s, 2),
            "build_widget_s": round(build_s, 2), "recolour_median_s": round(float(np.median(recolour)), 3),
            "figure_json_MB": round(state / 1e6, 1),
            "spearman_rho_ood_vs_force_error": round(float(space.correlation["spearman_rho"].iloc[0]), 3)}


def neighbours_kept(x: np.ndarray, coords: np.ndarray, sample: int = 3000, k: int = 15) -> float:
    """Map quality: the mean fraction of each sampled atom's k nearest neighbours in the
    (standardised) embedding space that are also among its k nearest on the 2D map."""
    from sklearn.neighbors import NearestNeighbors

    rows = np.random.default_rng(1).choice(len(x), min(sample, len(x)), replace=False)
    near = [NearestNeighbors(n_neighbors=k + 1).fit(a).kneighbors(a[rows], return_distance=False)[:, 1:]
            for a in (x, coords)]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(*near)]))


def projection_costs(cmp) -> dict:
    x = cmp.predictions["chgnet"].embeddings
    scaled = Scaler.fit(x, "zscore")(x)
    # numba compiles on first use: the exact-neighbour path, and NN-descent (above EXACT_NEIGHBOURS_MAX)
    compile_s, _ = timed(lambda: (latent.project(x[:2000], method="umap", seed=0),
                                  latent.project(x[:EXACT_NEIGHBOURS_MAX + 1000], method="umap", seed=0,
                                                 n_epochs=1)))
    umap_s, fixed = timed(lambda: latent.project(cmp, method="umap", seed=0))
    umap_200_s, fixed_200 = timed(lambda: latent.project(cmp, method="umap", seed=0, n_epochs=200))
    umap_parallel_s, parallel = timed(lambda: latent.project(cmp, method="umap", seed=None))
    cached_s, again = timed(lambda: latent.project(cmp, method="umap", seed=0))
    pca_s, pca = timed(lambda: latent.project(cmp, method="pca"))
    ood_s, _ = timed(lambda: latent.ood_score(cmp, k=10))
    return {"atoms": len(x), "width": int(x.shape[1]),
            "umap_first_calls_s (numba compilation)": round(compile_s, 2),
            f"umap_seed0_s (default {fixed.settings['n_epochs']} epochs)": round(umap_s, 2),
            "umap_seed0_200_epochs_s": round(umap_200_s, 2),
            f"umap_seed_none_s ({parallel.settings['n_epochs']} epochs)": round(umap_parallel_s, 2),
            "neighbours_kept_of_15": {
                f"umap_seed0_{fixed.settings['n_epochs']}_epochs": round(neighbours_kept(scaled, fixed.coords), 3),
                "umap_seed0_200_epochs": round(neighbours_kept(scaled, fixed_200.coords), 3),
                "umap_seed_none": round(neighbours_kept(scaled, parallel.coords), 3),
                "pca": round(neighbours_kept(scaled, pca.coords), 3)},
            "umap_cached_repeat_s": round(cached_s, 4), "cached_is_same_object": again is fixed,
            "pca_s": round(pca_s, 3), "ood_score_k10_s": round(ood_s, 2)}


COLD = """
import sys, time
import numpy as np
start = time.perf_counter()
import umap
from mlipviz import latent
imported = time.perf_counter() - start
rng = np.random.default_rng(0)
n = int(sys.argv[1])
if sys.argv[2] == "umap-learn":  # umap-learn's own neighbour search, for comparison
    import mlipviz.analysis.latent
    mlipviz.analysis.latent.EXACT_NEIGHBOURS_MAX = 0
x = rng.normal(size=(n, 64)) + rng.normal(scale=4, size=(8, 64))[rng.integers(0, 8, n)]
times = []
for _ in range(2):  # the first map of this process, then the same again (warm)
    latent.clear_cache()
    start = time.perf_counter()
    latent.project(x, method="umap", seed=0).transform(x[:100] + 0.01)
    times.append(time.perf_counter() - start)
print(imported, *times)
"""


def cold_start(runs=((3000, "exact"), (6000, "exact"), (20_000, "exact"), (3000, "umap-learn"),
                     (6000, "umap-learn"))) -> dict:
    """The first UMAP map (and placing 100 new atoms on it) of a fresh process against the same
    map again in that process: on a fresh install (numba's disk cache empty) and in a fresh
    kernel later (the cache filled). Clustered random points, 64 wide. Neighbours: "exact"
    (scikit-learn's, what mlipviz hands umap-learn up to EXACT_NEIGHBOURS_MAX atoms) or, for
    comparison, "umap-learn" (its own: a dense distance matrix below 4,096 points, NN-descent
    above, compiled in every process)."""
    import subprocess
    import sys
    import tempfile

    rows = []
    for n, neighbours in runs:
        with tempfile.TemporaryDirectory() as cache:  # numba's disk cache, empty for each size
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            row = {"atoms": n, "neighbours": neighbours if neighbours == "exact" else
                   "umap-learn: dense exact" if n < 4096 else "umap-learn: NN-descent"}
            for when in ("fresh_install", "fresh_kernel"):
                out = subprocess.run([sys.executable, "-c", COLD, str(n), neighbours], env=env, capture_output=True,
                                     text=True, check=True).stdout.split()
                imported, first, warm = map(float, out[-3:])
                row[f"{when}_first_map_s"] = round(first, 2)
                row[f"{when}_import_s"] = round(imported, 2)
                row["warm_map_s"] = round(warm, 2)  # the last process's
            row["fresh_kernel_over_warm"] = round(row["fresh_kernel_first_map_s"] / row["warm_map_s"], 2)
            print(row, flush=True)
            rows.append(row)
    return {"note": "each size: a process with NUMBA_CACHE_DIR an empty folder (fresh install), then a "
                    "second process with the cache it filled (fresh kernel); warm: the same map again in "
                    "the second process", "sizes": rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--atoms", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="what to measure; the other parts' figures stay as the results file has them")
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="keep the large comparison's predictions here, so a rerun skips them")
    args = parser.parse_args()
    frames = mlipviz.examples.load("high-energy-states")
    import torch

    out = Path(__file__).parent / "results" / "latent_cpu.json"
    result = json.loads(out.read_text()) if out.exists() else {}
    result.update({"device": "cpu", "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                   "machine": platform.machine()})
    result.pop("date", None)
    today = time.strftime("%Y-%m-%d")
    if "extraction" in args.parts:
        result["extraction"] = {"date": today, "models": extraction_overhead(frames, args.repeats)}
    if "cold_start" in args.parts:
        result["cold_start"] = {"date": today, **cold_start()}
    if {"projection", "widget"} & set(args.parts):
        cmp = large_comparison(frames, args.atoms, checkpoint_dir=args.checkpoint_dir)
        for part, measure in (("projection", projection_costs), ("widget", widget_costs)):
            if part in args.parts:
                result[part] = {"date": today, **measure(cmp)}
                print(result[part], flush=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
