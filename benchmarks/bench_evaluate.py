"""`mlipviz.evaluate` on a Dask LocalCluster versus one process, in one run.

    python benchmarks/bench_evaluate.py [--model chgnet] [--frames 2000] [--workers 2]

Frames: small rattled and strained fcc metal cells (1 to 4 atoms of Cu, Al, Ni, Pd, Ag, Au,
Pt) labelled by ASE's EMT, written to one extxyz file that both runs stream. The model is
evaluated against the EMT labels five ways: in this process (``client=False``) with torch on
one thread and on all cores, on a LocalCluster of ``--workers`` single-threaded workers
started by `evaluate` (its start-up included), and on such a cluster already running, with
`evaluate.DASK_CONFIG` and, last, with Dask's default worker environment (MALLOC_TRIM_THRESHOLD_).
Reports wall times, the speed-ups and the largest difference between the runs' forces; writes
benchmarks/results/evaluate_<model>_cpu.json. Quote the ratios: these machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write

import mlipviz

METALS = {"Cu": 3.61, "Al": 4.05, "Ni": 3.52, "Pd": 3.89, "Ag": 4.09, "Au": 4.08, "Pt": 3.92}


def small_cells(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    symbols = list(METALS)
    images = []
    for i in range(n):
        symbol = symbols[i % len(symbols)]
        atoms = bulk(symbol, "fcc", a=METALS[symbol], cubic=bool(i % 2))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.normal(0, 0.01, (3, 3))), scale_atoms=True)
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        atoms.calc = EMT()
        atoms.get_forces()
        atoms.get_stress()
        images.append(atoms)
    return images


def timed(run):
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="chgnet")
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-frames", type=int, default=100)
    args = parser.parse_args()

    import dask
    import torch
    from dask.distributed import Client, LocalCluster

    from mlipviz.analysis.evaluate import DASK_CONFIG

    folder = Path(tempfile.mkdtemp(prefix="bench-evaluate-"))
    source = folder / "cells.extxyz"
    write(source, small_cells(args.frames))
    common = {"chunk_frames": args.chunk_frames, "progress": False}
    mlipviz.load_model(args.model, device="cpu").predict(mlipviz.read(source)[:4], progress=False)  # warm caches

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    _, t_single = timed(lambda: mlipviz.evaluate(source, args.model, store=folder / "single.h5", client=False,
                                                 **common))
    torch.set_num_threads(threads)
    one, t_one = timed(lambda: mlipviz.evaluate(source, args.model, store=folder / "one.h5", client=False,
                                                **common))
    own, t_own = timed(lambda: mlipviz.evaluate(source, args.model, store=folder / "own.h5", **common))
    def on_running_cluster(name, config):
        with dask.config.set(config), \
                LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            client.run(lambda: None)  # the workers are up
            return timed(lambda: mlipviz.evaluate(source, args.model, store=folder / f"{name}.h5",
                                                  client=client, **common))

    warm, t_warm = on_running_cluster("warm", DASK_CONFIG)
    # last: Dask's default worker environment (its nannies also set it in this process)
    _, t_trim = on_running_cluster("trim", {})
    frames = one.frames
    diff = max(float(np.abs(r.predictions[args.model].forces - one.predictions[args.model].forces).max())
               for r in (own, warm))
    record = {
        "model": args.model, "frames": len(frames), "atoms": frames.total_atoms,
        "chunk_frames": args.chunk_frames, "workers": args.workers, "cpus": os.cpu_count(),
        "torch_threads_in_process": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "one_process_one_thread_s": round(t_single, 2), "one_process_s": round(t_one, 2),
        "local_cluster_started_by_evaluate_s": round(t_own, 2), "running_local_cluster_s": round(t_warm, 2),
        "running_local_cluster_dask_default_environment_s": round(t_trim, 2),
        "speedup_running_cluster_vs_one_thread": round(t_single / t_warm, 2),
        "speedup_with_startup": round(t_one / t_own, 2), "speedup_running_cluster": round(t_one / t_warm, 2),
        "max_abs_force_diff_eV_A": diff,
        "atoms_per_s_one_process": round(frames.total_atoms / t_one, 1),
        "atoms_per_s_running_cluster": round(frames.total_atoms / t_warm, 1),
    }
    out = Path(__file__).parent / "results" / f"evaluate_{args.model}_cpu.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
