"""Cost of integrated gradients relative to one forward+backward pass, in one run.

    python benchmarks/bench_attribution.py [--steps 32] [--repeats 3] [--device cpu]

For each model that loads here, on a 64-atom Si cell (2x2x2 cubic diamond, rattled by 0.1 Å):

- one forward+backward pass: `predict` of the one structure (energy and forces), median of
  ``--repeats`` runs after a warm-up;
- `mlipviz.attribute` with integrated gradients, ``--steps`` steps, positions input, baseline
  the ideal cell (given, so no relaxation is timed): target total energy batched (steps per
  pass as `attribute` chooses) and one step per pass (``batch_size=1``), and target the
  force on atom 0 (a second derivative) batched.

Reports each time as a multiple of the forward+backward pass (target: energy IG <= 8x) and the
completeness error. Writes benchmarks/results/attribution_<device>.json. Ratios are the figures
to quote: these machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

import mlipviz
from mlipviz.frames import Frames

MODELS = ("chgnet", "m3gnet", "sevennet-0", "mace-mp-0")


def timed(fn, repeats: int):
    """Median wall time of ``fn()`` over ``repeats`` runs after one warm-up, and its last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def silicon_64():
    from ase.build import bulk

    ideal = bulk("Si", "diamond", a=5.43, cubic=True) * (2, 2, 2)
    atoms = ideal.copy()
    atoms.positions += np.random.default_rng(0).normal(0, 0.1, atoms.positions.shape)
    return atoms, ideal.positions.copy()


def measure(model, atoms, ideal, steps: int, repeats: int) -> dict:
    frames = Frames.from_atoms([atoms])
    one_pass, _ = timed(lambda: model.predict(frames, progress=False), repeats)
    row = {"model": model.name, "device": model.device, "atoms": len(atoms),
           "forward_backward_s": round(one_pass, 4)}
    cases = {"energy_batched": {"target": "energy"},
             "energy_one_step_per_pass": {"target": "energy", "batch_size": 1},
             "force_batched": {"target": "force", "atom": 0, "component": "x"}}
    for case, settings in cases.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seconds, result = timed(lambda settings=settings: mlipviz.attribute(model, atoms, baseline=ideal,
                                                                                n_steps=steps, **settings), repeats)
        row[case] = {"seconds": round(seconds, 3), "ratio": round(seconds / one_pass, 2),
                     "steps_per_pass": result.meta["steps_per_pass"],
                     "completeness_error": float(f"{result.completeness_error:.3g}")}
        print(model.name, case, row[case], flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    atoms, ideal = silicon_64()
    available = mlipviz.available_models()
    rows = []
    for name in MODELS:
        if not available.loc[name, "available"]:
            rows.append({"model": name, "skipped": str(available.loc[name, "reason"])})
            continue
        rows.append(measure(mlipviz.load_model(name, device=args.device), atoms, ideal, args.steps, args.repeats))
    import torch

    out = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "machine": platform.processor() or platform.machine(), "steps": args.steps,
           "structure": "64-atom Si (2x2x2 cubic diamond), rattled 0.1 Å; baseline the ideal cell",
           "models": rows}
    path = Path(__file__).parent / "results" / f"attribution_{args.device}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
