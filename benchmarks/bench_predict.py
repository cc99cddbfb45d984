"""Batched `Model.predict` versus a loop over the same model's ASE calculator, in one run.

    python benchmarks/bench_predict.py [--model chgnet] [--small 500] [--large 50]

Sets: rattled 8-atom Si cells and rattled 64-atom Si cells. Reports wall times, the
speed-up ratio, the differences between the two paths, and the calculator's own float32
noise floor (how much its forces move when the input positions are rounded to float32); writes
benchmarks/results/predict_<model>_<device>.json. Ratios, not absolute times, are the
figures to quote: these machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

import mlipviz


def rattled_cells(repeat, n, seed):
    rng = np.random.default_rng(seed)
    base = bulk("Si", "diamond", a=5.43, cubic=True) * repeat
    images = []
    for _ in range(n):
        atoms = base.copy()
        atoms.positions += rng.normal(0, 0.1, atoms.positions.shape)
        images.append(atoms)
    return images


def loop_calculator(model, images):
    calc = model.calculator()
    energy, forces, stress = [], [], []
    for atoms in images:
        atoms = atoms.copy()
        atoms.calc = calc
        energy.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
        stress.append(atoms.get_stress(voigt=False))
    return np.array(energy), np.concatenate(forces), np.array(stress)


def run_set(model, images, label):
    frames = mlipviz.read(images)
    model.predict(frames[:2], progress=False)  # warm-up both paths
    loop_calculator(model, images[:2])
    start = time.perf_counter()
    pred = model.predict(frames, progress=False)
    t_batched = time.perf_counter() - start
    start = time.perf_counter()
    energy, forces, stress = loop_calculator(model, images)
    t_loop = time.perf_counter() - start
    # the calculator's own float32 noise floor: its change when the input positions are
    # rounded to float32, the precision the network works in
    rounded = [a.copy() for a in images]
    for atoms in rounded:
        atoms.positions = atoms.positions.astype(np.float32).astype(np.float64)
    _, forces_rounded, _ = loop_calculator(model, rounded)
    force_diff = np.abs(pred.forces - forces)
    return {
        "set": label, "frames": len(frames), "atoms_per_frame": int(frames.n_atoms[0]),
        "loop_s": round(t_loop, 3), "batched_s": round(t_batched, 3),
        "speedup": round(t_loop / t_batched, 2),
        "max_abs_energy_diff_eV": float(np.abs(pred.energy - energy).max()),
        "max_abs_force_diff_eV_A": float(force_diff.max()),
        "p99_abs_force_diff_eV_A": float(np.percentile(force_diff, 99)),
        "calculator_float32_input_noise_eV_A": float(np.abs(forces_rounded - forces).max()),
        "max_abs_stress_diff_eV_A3": float(np.abs(pred.stress - stress).max()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="chgnet")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--small", type=int, default=500, help="number of 8-atom cells")
    parser.add_argument("--large", type=int, default=50, help="number of 64-atom cells")
    args = parser.parse_args()

    import torch

    model = mlipviz.load_model(args.model, device=args.device)
    results = [run_set(model, rattled_cells(1, args.small, 0), "8-atom"),
               run_set(model, rattled_cells(2, args.large, 1), "64-atom")]
    record = {"model": args.model, "device": model.device, "dtype": model.dtype,
              "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
              "results": results}
    out = Path(__file__).parent / "results" / f"predict_{args.model}_{model.device}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print("| set | frames | ASE loop (s) | batched predict (s) | speed-up | max |dE| (eV) "
          "| max / p99 |dF| (eV/Å) | calculator's own float32 noise (eV/Å) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['set']} | {r['frames']} | {r['loop_s']} | {r['batched_s']} | {r['speedup']}x | "
              f"{r['max_abs_energy_diff_eV']:.1e} | {r['max_abs_force_diff_eV_A']:.1e} / "
              f"{r['p99_abs_force_diff_eV_A']:.1e} | {r['calculator_float32_input_noise_eV_A']:.1e} |")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
