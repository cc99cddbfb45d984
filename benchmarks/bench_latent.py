"""Latent-space costs, in one run: embedding extraction on top of prediction, and UMAP,
PCA and OOD scores of 100,000 real per-atom embeddings.

    python benchmarks/bench_latent.py [--atoms 100000] [--repeats 5]

1. For each model that loads here, `predict` on the bundled high-energy-states frames with and
   without ``return_embeddings``, alternating, ``--repeats`` times each; reports the median
   times and their ratio (the extraction overhead).
2. CHGNet embeddings of ``--atoms`` atoms (rattled copies of the same frames, 7 elements;
   CHGNet 0.2.0 as the reference), then `mlipviz.latent.project` with UMAP (fixed seed:
   reproducible, single-threaded; and seed=None: all cores), PCA, and `ood_score` (k = 10,
   leave-one-out). The UMAP time excludes numba's one-off compilation, measured separately
   on 2,000 atoms.
3. The `LatentMap` widget over those atoms (server side): `analyse` (its UMAP comes from the
   cache), building the widget, recolouring, and the size of the figure state sent to the
   browser.

Writes benchmarks/results/latent_<device>.json. Ratios are the figures to quote: these
machines are noisy.
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
            plain.append(timed(lambda: model.predict(frames, progress=False))[0])
            embedded.append(timed(lambda: model.predict(frames, progress=False, return_embeddings=True))[0])
        rows.append({"model": name, "embedding_layer": model.embedding_layer, "atoms": int(frames.total_atoms),
                     "predict_s": round(float(np.median(plain)), 3),
                     "predict_with_embeddings_s": round(float(np.median(embedded)), 3),
                     "overhead": round(float(np.median(embedded) / np.median(plain)) - 1, 4)})
        print(rows[-1], flush=True)
    return rows


def large_comparison(frames, n_atoms: int, seed: int = 0):
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
    return mlipviz.compare("chgnet", big[:keep], reference="chgnet-0.2.0", device="cpu", embeddings=True)


def widget_costs(cmp) -> dict:
    import plotly.io

    from mlipviz.widgets import LatentMap

    analyse_s, space = timed(lambda: latent.analyse(cmp, method="umap", k=10))
    build_s, widget = timed(lambda: LatentMap(space))
    state = len(plotly.io.to_json(widget.maps))
    recolour = []
    for key in ("ood_score", "angle_error", "force_error", "frame", "ood_score"):
        recolour.append(timed(lambda: setattr(widget.color_select, "value", key))[0])
    return {"atoms": int(cmp.frames.total_atoms), "analyse_s (umap cached)": round(analyse_s, 2),
            "build_widget_s": round(build_s, 2), "recolour_median_s": round(float(np.median(recolour)), 3),
            "figure_json_MB": round(state / 1e6, 1),
            "spearman_rho_ood_vs_force_error": round(float(space.correlation["spearman_rho"].iloc[0]), 3)}


def projection_costs(cmp) -> dict:
    x = cmp.predictions["chgnet"].embeddings
    compile_s, _ = timed(lambda: latent.project(x[:2000], method="umap", seed=0))
    umap_s, fixed = timed(lambda: latent.project(cmp, method="umap", seed=0))
    umap_parallel_s, _ = timed(lambda: latent.project(cmp, method="umap", seed=None))
    cached_s, again = timed(lambda: latent.project(cmp, method="umap", seed=0))
    pca_s, _ = timed(lambda: latent.project(cmp, method="pca"))
    ood_s, _ = timed(lambda: latent.ood_score(cmp, k=10))
    return {"atoms": int(len(x)), "width": int(x.shape[1]),
            "umap_first_call_2000_atoms_s (numba compilation)": round(compile_s, 2),
            "umap_seed0_s": round(umap_s, 2), "umap_seed_none_s": round(umap_parallel_s, 2),
            "umap_cached_repeat_s": round(cached_s, 4), "cached_is_same_object": again is fixed,
            "pca_s": round(pca_s, 3), "ood_score_k10_s": round(ood_s, 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--atoms", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    frames = mlipviz.examples.load("high-energy-states")
    import torch

    result = {"device": "cpu", "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "machine": platform.machine(), "date": time.strftime("%Y-%m-%d"),
              "extraction": extraction_overhead(frames, args.repeats)}
    cmp = large_comparison(frames, args.atoms)
    result["projection"] = projection_costs(cmp)
    print(result["projection"], flush=True)
    result["widget"] = widget_costs(cmp)
    print(result["widget"], flush=True)
    out = Path(__file__).parent / "results" / "latent_cpu.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
