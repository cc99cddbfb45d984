"""Fine-tuning time per epoch and time to convergence of `mlipviz.finetune`, with the library's
defaults, on the bundled labelled frames.

    MLIPVIZ_MODELS=../shared/models python benchmarks/bench_finetune.py [--models chgnet,m3gnet]
        [--train 1 5 20] [--epochs 50] [--patience 5] [--seed 0] [--threads 1] [--one-material]
        [--no-vacancy]

Cases: from ``mlipviz.examples.load("high-energy-states")`` (60 labelled 8-atom snapshots of six
solids, GPAW PBE) a fixed validation set of 12 frames (two of each material, drawn with the seed)
that is never trained on, passed as ``validation=<Frames>``, and 1, 5 and 20 training frames
drawn from the other 48, one material after another (5: five materials; 20: all six; 1: the
issue's case, one structure, run once for each of the six materials, or for the first only with
``--one-material``); then, unless ``--no-vacancy``, one 63-atom frame of
``mlipviz.examples.load("si-vacancy-migration")`` (the first 1230 K MD snapshot) trained on and
three later MD snapshots as validation. Every run:
``mlipviz.finetune(model, train, validation=val, epochs=..., patience=..., seed=...,
progress=False, callback=...)`` with the backend's ``FINETUNE_DEFAULTS`` (learning rate, batch
size; recorded in the JSON) and the library's loss weights and freezing recipe. "Converged" is the
library's early stopping (``patience`` epochs without a lower validation force MAE) or, where it
does not stop, the best epoch of the run. Reports the wall time of the whole call and up to the end
of the best epoch, the epochs run, the median time of an epoch after the first (the first includes
the set-up: graphs, optimizer), and the validation force MAE of the base model (epoch-0 baseline,
``model.predict`` on the validation frames) and of the returned model, on all validation frames
and on those of the materials trained on. Each model: one untimed warm-up call (one epoch) first,
so that one-off imports are not in the first case. Writes benchmarks/results/finetune_<device>.json.
Ratios and orders of magnitude, not absolute times, are the figures to quote: these machines are
noisy. ``--threads 1`` when another process may hold a core (see bench_models.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import mlipviz

#: the issue's target: one high-energy structure fine-tuned to a converged result in this time
TARGET_S = 120.0
VALIDATION_PER_MATERIAL = 2


def high_energy_sets(seed, sizes, one_each):
    """The fixed validation frames of high-energy-states and, for each size, the training frame
    indices drawn from the rest, one material after another (size 1 with ``one_each``: one case
    per material)."""
    frames = mlipviz.examples.load("high-energy-states")
    materials = [info["material_id"] for info in frames.info]
    rng = np.random.default_rng(seed)
    order = list(dict.fromkeys(materials))
    pools, val_ids = {}, []
    for material in order:
        ids = [int(i) for i in rng.permutation([i for i, m in enumerate(materials) if m == material])]
        val_ids += ids[:VALIDATION_PER_MATERIAL]
        pools[material] = ids[VALIDATION_PER_MATERIAL:]
    start = int(rng.integers(len(order)))
    rotation = order[start:] + order[:start]
    round_robin = [pools[m][k] for k in range(max(len(p) for p in pools.values())) for m in rotation
                   if k < len(pools[m])]
    cases = []
    for n in sizes:
        if n > len(round_robin):
            raise SystemExit(f"--train: {n} is more than the {len(round_robin)} frames outside the validation set")
        if n == 1 and one_each:  # the case, one structure: each material in turn
            cases += [{"case": f"high-energy-states, 1 x 8 atoms, {m}", "train_ids": [pools[m][0]]} for m in rotation]
        else:
            cases.append({"case": f"high-energy-states, {n} x 8 atoms", "train_ids": sorted(round_robin[:n])})
    return frames, sorted(val_ids), materials, cases


def vacancy_case():
    """One 63-atom 1230 K MD snapshot to train on, three later ones to validate on."""
    frames = mlipviz.examples.load("si-vacancy-migration")
    md = [i for i, info in enumerate(frames.info) if info.get("kind") == "md"]
    return frames, [md[0]], [md[5], md[7], md[9]]


def force_mae(model, frames):
    """Mean absolute force-component error (eV/Å) and energy error (eV/atom) of ``model`` on
    ``frames`` (what the tuners report as ``val_force_mae`` and ``val_energy_mae``)."""
    pred = model.predict(frames, progress=False)
    return (float(np.abs(pred.forces - frames.forces).mean()),
            float(np.abs((pred.energy - frames.energy) / frames.n_atoms).mean()))


def run_case(model, frames, train_ids, val_ids, args, groups=None):
    """One fine-tuning run: timings from the callback, errors before and after."""
    train, val = frames[train_ids], frames[val_ids]
    before_f, before_e = force_mae(model, val)
    ticks = []
    cpu0 = time.process_time()
    load_before = [round(x, 2) for x in os.getloadavg()]
    start = time.perf_counter()
    tuned = mlipviz.finetune(model, train, validation=val, epochs=args.epochs, patience=args.patience,
                             seed=args.seed, progress=False,
                             callback=lambda epoch, errors: ticks.append(time.perf_counter() - start))
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    meta = tuned.meta["finetune"]
    history, best = meta["history"], meta["best_epoch"]
    after_f, after_e = force_mae(tuned, val)
    epochs = np.diff([0.0, *ticks])
    settings = {k: v for k, v in meta["settings"].items() if k not in ("seed", "device")}
    entry = {
        "settings": settings, "train_frames": len(train_ids), "atoms_per_frame": int(frames.n_atoms[train_ids[0]]),
        "train_ids": [int(i) for i in train_ids], "validation_frames": len(val_ids),
        "epochs_run": len(history), "best_epoch": best, "stopped_early": meta["stopped_early"],
        "total_s": round(total, 2), "to_best_epoch_s": round(ticks[best], 2),
        "first_epoch_s": round(float(epochs[0]), 2),
        "median_epoch_s": round(float(statistics.median(epochs[1:])), 3) if len(epochs) > 1 else None,
        "max_epoch_s": round(float(epochs.max()), 2),
        "cpu_s_per_wall_s": round(cpu / total, 2),
        "val_force_mae_before": round(before_f, 4), "val_force_mae_after": round(after_f, 4),
        "val_force_mae_ratio": round(after_f / before_f, 3),
        "val_energy_mae_per_atom_before": round(before_e, 4), "val_energy_mae_per_atom_after": round(after_e, 4),
        "best_val_force_mae_tuner": round(float(meta["best_val_force_mae"]), 4),
        "history": [{"epoch": h["epoch"], "s": round(t, 2), "train_force_mae": round(h["train_force_mae"], 4),
                     "val_force_mae": round(h["val_force_mae"], 4)} for h, t in zip(history, ticks)],
        "load_average_before": load_before, "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    if groups is not None:  # the validation frames of the materials trained on
        trained = {groups[i] for i in train_ids}
        seen = [i for i in val_ids if groups[i] in trained]
        entry["materials_trained"] = sorted(trained)
        entry["seen_validation_frames"] = len(seen)
        entry["seen_val_force_mae_before"] = round(force_mae(model, frames[seen])[0], 4)
        entry["seen_val_force_mae_after"] = round(force_mae(tuned, frames[seen])[0], 4)
    entry["converged_s"] = entry["total_s"] if entry["stopped_early"] else entry["to_best_epoch_s"]
    return entry


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="chgnet,m3gnet")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train", type=int, nargs="+", default=[1, 5, 20], help="training frames per case")
    parser.add_argument("--epochs", type=int, default=50, help="the most epochs (the library's default: 50)")
    parser.add_argument("--patience", type=int, default=5, help="early stopping (the library's default: 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own, one per core)")
    parser.add_argument("--one-material", action="store_true",
                        help="one case of 1 training frame (the first material) instead of one per material")
    parser.add_argument("--no-vacancy", action="store_true", help="skip the 63-atom si-vacancy-migration case")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    from mlipviz.models.registry import backend as get_backend

    begin = time.perf_counter()
    high, val_ids, materials, cases = high_energy_sets(args.seed, args.train, not args.one_material)
    vacancy, vac_train, vac_val = (None, None, None) if args.no_vacancy else vacancy_case()
    record = {"device": args.device, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
              "cpu": platform.processor() or platform.machine(), "epochs": args.epochs,
              "patience": args.patience, "seed": args.seed, "target_s": TARGET_S,
              "high_energy_validation_ids": val_ids, "vacancy_train_ids": vac_train, "vacancy_validation_ids": vac_val,
              "load_average_start": [round(x, 2) for x in os.getloadavg()], "models": []}
    for name in args.models.split(","):
        start = time.perf_counter()
        model = mlipviz.load_model(name, device=args.device)
        entry = {"model": name, "name": model.name, "load_s": round(time.perf_counter() - start, 2),
                 "finetune_defaults": dict(get_backend(str(model.meta.get("backend"))).finetune_defaults),
                 "cases": []}
        start = time.perf_counter()  # warm-up: one-off imports and first-call costs, not timed below
        mlipviz.finetune(model, high[[cases[0]["train_ids"][0]]], validation=high[val_ids[:1]], epochs=1,
                         patience=None, seed=args.seed, progress=False)
        entry["warm_up_s"] = round(time.perf_counter() - start, 2)
        for case in cases:
            result = run_case(model, high, case["train_ids"], val_ids, args, groups=materials)
            entry.setdefault("settings", result["settings"])
            entry["cases"].append({"case": case["case"], **result})
            print(f"{name}: {case['case']}: {result['epochs_run']} epochs, best {result['best_epoch']}, "
                  f"{result['total_s']} s", flush=True)
        if vacancy is not None:
            result = run_case(model, vacancy, vac_train, vac_val, args)
            entry["cases"].append({"case": "si-vacancy-migration, 1 x 63 atoms", **result})
            print(f"{name}: 63 atoms: {result['epochs_run']} epochs, best {result['best_epoch']}, "
                  f"{result['total_s']} s", flush=True)
        one = [c["total_s"] for c in entry["cases"] if c["train_frames"] == 1 and c["atoms_per_frame"] == 8]
        entry["one_structure_total_s_range"] = [min(one), max(one)] if one else None
        entry["target_met_one_structure"] = bool(one) and max(one) < TARGET_S
        record["models"].append(entry)
    record["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    record["run_s"] = round(time.perf_counter() - begin, 1)
    out = Path(__file__).parent / "results" / f"finetune_{args.device}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")

    print("| model | case | epochs run (best) | per epoch (s) | to best epoch (s) | total (s) "
          "| val force MAE before -> after (eV/Å) | trained materials' val frames |")
    print("|---|---|---|---|---|---|---|---|")
    for entry in record["models"]:
        for c in entry["cases"]:
            seen = (f"{c['seen_val_force_mae_before']:.3f} -> {c['seen_val_force_mae_after']:.3f}"
                    if "seen_val_force_mae_before" in c else "")
            print(f"| {entry['name']} | {c['case']} | {c['epochs_run']} ({c['best_epoch']}) | {c['median_epoch_s']} "
                  f"| {c['to_best_epoch_s']} | {c['total_s']} | {c['val_force_mae_before']:.3f} -> "
                  f"{c['val_force_mae_after']:.3f} ({c['val_force_mae_ratio']}x) | {seen} |")
    print(f"run {record['run_s']} s; written to {out}")


if __name__ == "__main__":
    main()
