"""Atoms per second of every registry model that loads here: batched `Model.predict` versus a loop
over the model's own ASE calculator, on the same frames, in one run.

    MLIPVIZ_MODELS=../shared/models python benchmarks/bench_models.py [--models chgnet,sevennet-0]
        [--sizes 8 64 512] [--frames 16 4 1] [--device cpu] [--threads 1] [--repeats 3]

Models: every row of `mlipviz.available_models()` with ``available`` True (or those named in
``--models``); the others are recorded as skipped, with the table's reason, and a model that fails
to load or run is recorded with its error, and the run goes on. Sets: rattled Si diamond cells
(the cubic 8-atom cell repeated 1x1x1, 2x2x2, 4x4x4: 8, 64 and 512 atoms; 0.1 Å, seeded as in
bench_predict.py), by default 16, 4 and 1 frames. Each model: one call of both paths on one
8-atom cell (one-off set-up); each size: a warm-up of both paths on as many other frames of that
size, then ``--repeats`` alternating timed runs of ``model.predict(frames, progress=False)`` and
of a loop that gives each frame to ``model.calculator()`` (energy, forces, stress; the calculator
made once per model, outside the timing); the fastest run counts. Reports atoms/s of both paths,
their ratio (batched / calculator), the largest energy-per-atom and force differences between
them, CPU seconds per wall second (about the thread count when the process had the cores to
itself), and each path's peak memory in its warm-up above what the process held before it: on
CPU the growth of the resident set (its high-water mark VmHWM, reset through
/proc/self/clear_refs after glibc's ``malloc_trim`` has handed freed heap back; where that is not
allowed, the growth of ``ru_maxrss``, which misses peaks below an earlier one), on a GPU
``torch.cuda.max_memory_allocated``. Writes benchmarks/results/models_<device>.json. Ratios, not
absolute times, are the figures to quote: these machines are noisy. ``--threads 1`` when
another process may hold a core: torch's two threads on two cores then slow down many times over
(CHGNet, 16 8-atom cells: 0.19 s on one thread, 1.2 to 3.4 s on two).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import re
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from bench_predict import rattled_cells  # the same rattled Si cells as bench_predict

import mlipviz

DEFAULT_FRAMES = {8: 16, 64: 4, 512: 1}
ROOT = Path(__file__).resolve().parents[1]


def tidy(text):
    """``text`` without this machine's absolute paths (home, repository, temporary folder)."""
    for path, short in [(str(ROOT), "."), (tempfile.gettempdir(), "$TMPDIR"), (str(Path.home()), "~")]:
        text = text.replace(path, short)
    return text


def repeat_for(size):
    """How often the cubic 8-atom Si cell is repeated along each axis for ``size`` atoms."""
    n = round((size / 8) ** (1 / 3))
    if 8 * n**3 != size:
        raise SystemExit(f"--sizes: {size} is not 8 n^3 atoms (8, 64, 216, 512, ...)")
    return n


class PeakMemory:
    """Peak memory of a block above what the process held when it began, in MB: on CPU the
    resident set's high-water mark (reset first), on a GPU torch's allocated memory."""

    def __init__(self, device):
        self.cuda = str(device).startswith("cuda")
        self.method = "torch.cuda.max_memory_allocated" if self.cuda else self._cpu_method()
        self._trim = None
        if not self.cuda:
            try:  # glibc's malloc_trim hands freed heap back, so that a block's peak is not hidden in it
                self._trim = ctypes.CDLL("libc.so.6").malloc_trim
                self.method += ", freed heap handed back first (malloc_trim)"
            except (OSError, AttributeError):
                pass

    @staticmethod
    def _status(field):
        with open("/proc/self/status") as f:
            return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.MULTILINE).group(1)) * 1024

    @staticmethod
    def _reset_hwm():
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    def _cpu_method(self):
        try:
            self._reset_hwm()
            self._status("VmHWM")
            return "VmHWM after a reset through /proc/self/clear_refs, minus VmRSS before"
        except (OSError, AttributeError):
            return "growth of ru_maxrss (misses peaks below an earlier one)"

    def __enter__(self):
        gc.collect()
        if self._trim is not None:
            self._trim(0)
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        elif self.method.startswith("VmHWM"):
            self._reset_hwm()
            self.start = self._status("VmRSS")
        else:
            self.start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        elif self.method.startswith("VmHWM"):
            peak = self._status("VmHWM")
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.mb = round(max(peak - self.start, 0) / 2**20, 1)


def loop_calculator(calc, images):
    """Energy, forces and stress of each frame through the ASE calculator ``calc``, one by one."""
    calc.reset()  # never a cached result of the warm-up
    energy, forces, stress = [], [], []
    for atoms in images:
        atoms = atoms.copy()
        atoms.calc = calc
        energy.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
        stress.append(atoms.get_stress(voigt=False))
    return np.array(energy), np.concatenate(forces), np.array(stress)


def timed(fn, cuda):
    """Wall seconds of ``fn()``, the process's CPU seconds meanwhile, and what it returned."""
    cpu, start = time.process_time(), time.perf_counter()
    out = fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu, out


def run_set(model, calc, size, n_frames, repeats, memory):
    images = rattled_cells(repeat_for(size), n_frames, size)
    frames = mlipviz.read(images)
    # warm-up of both paths on as many other frames of this size, which also measures their memory
    # (handing freed heap back first makes the next run fault its pages in again: not timed)
    warm = rattled_cells(repeat_for(size), n_frames, 1000 + size)
    start = time.perf_counter()
    with memory:
        model.predict(mlipviz.read(warm), progress=False)
    mem_batched = memory.mb
    with memory:
        loop_calculator(calc, warm)
    mem_calc = memory.mb
    t_warm = time.perf_counter() - start
    t_batched, t_calc = [], []
    for _ in range(repeats):
        t, cpu, pred = timed(lambda: model.predict(frames, progress=False), memory.cuda)
        t_batched.append((t, cpu))
        t, cpu, (energy, forces, _) = timed(lambda: loop_calculator(calc, images), memory.cuda)
        t_calc.append((t, cpu))
    atoms = int(frames.n_atoms.sum())
    (tb, cpu_b), (tc, cpu_c) = min(t_batched), min(t_calc)
    return {
        "model": model.name, "atoms_per_frame": size, "frames": n_frames, "atoms": atoms,
        "passes": pred.meta["passes"], "largest_pass_atoms": pred.meta["largest_pass_atoms"],
        "warm_up_s": round(t_warm, 3), "batched_s": round(tb, 3), "calculator_s": round(tc, 3),
        "batched_s_all": [round(t, 3) for t, _ in t_batched],
        "calculator_s_all": [round(t, 3) for t, _ in t_calc],
        # CPU seconds per wall second of the fastest runs: about the thread count when the
        # process had the cores to itself, less when another process held them
        "batched_cpu_per_wall": round(cpu_b / tb, 2), "calculator_cpu_per_wall": round(cpu_c / tc, 2),
        "batched_atoms_per_s": round(atoms / tb, 1), "calculator_atoms_per_s": round(atoms / tc, 1),
        "ratio": round(tc / tb, 2),
        "batched_peak_memory_MB": mem_batched, "calculator_peak_memory_MB": mem_calc,
        # what predict itself records, where it does (on CPU the tensors autograd saved in its largest pass)
        "batched_meta_peak_memory_MB": (None if not pred.meta.get("peak_memory_bytes")
                                        else round(pred.meta["peak_memory_bytes"] / 2**20, 1)),
        "max_abs_energy_per_atom_diff_eV": float(np.abs(pred.energy - energy).max() / size),
        "max_abs_force_diff_eV_A": float(np.abs(pred.forces - forces).max()),
        "max_abs_force_eV_A": float(np.abs(pred.forces).max()),
    }


def run_model(name, args, memory):
    """One model over every size: its record, and a line per size as it goes."""
    entry = {"model": name, "status": "ok", "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    stage = "load"
    try:
        start = time.perf_counter()
        model = mlipviz.load_model(name, device=args.device)
        entry["load_s"] = round(time.perf_counter() - start, 2)
        entry.update(device=model.device, dtype=model.dtype, version=model.meta.get("version"),
                     package=model.meta.get("package"), package_version=model.meta.get("package_version"))
        stage = "calculator"
        start = time.perf_counter()
        calc = model.calculator()
        entry["calculator"] = f"{type(calc).__module__}.{type(calc).__name__}"
        entry["calculator_setup_s"] = round(time.perf_counter() - start, 2)
        stage = "first call"  # one-off set-up of either path, before any figure is taken
        first = rattled_cells(1, 1, 999)
        model.predict(mlipviz.read(first), progress=False)
        loop_calculator(calc, first)
        entry["results"] = []
        for size, n_frames in zip(args.sizes, args.frames):
            stage = f"{size}-atom set"
            start = time.perf_counter()
            r = run_set(model, calc, size, n_frames, args.repeats, memory)
            r["wall_s"] = round(time.perf_counter() - start, 2)
            entry["results"].append(r)
            print(f"  {name} {size:>4} atoms x {n_frames:>2}: batched {r['batched_atoms_per_s']:8.1f} atoms/s, "
                  f"calculator {r['calculator_atoms_per_s']:8.1f} atoms/s, ratio {r['ratio']:5.2f}x, "
                  f"max |dF| {r['max_abs_force_diff_eV_A']:.1e} eV/Å, peak +{r['batched_peak_memory_MB']} / "
                  f"+{r['calculator_peak_memory_MB']} MB", flush=True)
    except Exception as exc:  # noqa: BLE001 - recorded, and the other models still run
        entry.update(status="failed", stage=stage, error=tidy(f"{type(exc).__name__}: {exc}"))
        print(f"  {name} failed at {stage}: {entry['error']}", flush=True)
        traceback.print_exc()
    entry["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return entry


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None,
                        help="comma-separated registry names (default: every model available here)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 64, 512], help="atoms per frame, 8 n^3")
    parser.add_argument("--frames", type=int, nargs="+", default=None,
                        help="frames per size, one per --sizes entry (default 16, 4, 1; else 256 // size)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own, one per core)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each path; the fastest counts")
    args = parser.parse_args()
    if args.frames is None:
        args.frames = [DEFAULT_FRAMES.get(s, max(1, 256 // s)) for s in args.sizes]
    if len(args.frames) != len(args.sizes):
        parser.error("--frames needs one number per --sizes entry")
    for size in args.sizes:
        repeat_for(size)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    began = time.perf_counter()
    table = mlipviz.available_models()
    if args.models is None:
        names = list(table.index)
    else:
        names = [n.strip() for n in args.models.split(",") if n.strip()]
        unknown = [n for n in names if n not in table.index]
        if unknown:
            parser.error(f"--models: not in the registry: {', '.join(unknown)} (registered: {', '.join(table.index)})")
    memory = PeakMemory(args.device)
    models, skipped = [], []
    for name in names:
        row = table.loc[name]
        if not row["available"]:
            skipped.append({"model": name, "reason": tidy(str(row["reason"])),
                            "short_reason": tidy(str(row["short_reason"]))})
            print(f"skipped {name}: {row['short_reason']}", flush=True)
            continue
        print(f"{name}", flush=True)
        models.append(run_model(name, args, memory))

    device = "cuda" if args.device.startswith("cuda") else args.device
    record = {
        "device": device,
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "mlipviz": mlipviz.__version__,
        "sizes": args.sizes, "frames": args.frames, "repeats": args.repeats,
        "rattle_A": 0.1,
        "memory": memory.method,
        "total_s": round(time.perf_counter() - began, 1),
        "models": models,
        "skipped": skipped,
    }
    out = Path(__file__).parent / "results" / f"models_{device}.json"
    out.parent.mkdir(exist_ok=True)
    text = json.dumps(record, indent=2) + "\n"
    if re.search(r"(^|[\s\"'(])/(work|root|tmp|home)/", text):
        print("warning: an absolute path is left in the record", file=sys.stderr)
    out.write_text(text)

    print("| model | atoms | frames | batched (atoms/s) | calculator (atoms/s) | batched / calculator "
          "| max |dF| (eV/Å) | peak memory, batched / calculator (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for m in models:
        for r in m.get("results", []):
            print(f"| {m['model']} | {r['atoms_per_frame']} | {r['frames']} | {r['batched_atoms_per_s']:.0f} | "
                  f"{r['calculator_atoms_per_s']:.0f} | {r['ratio']}x | {r['max_abs_force_diff_eV_A']:.1e} | "
                  f"+{r['batched_peak_memory_MB']:.0f} / +{r['calculator_peak_memory_MB']:.0f} |")
    for m in models:
        if m["status"] != "ok":
            print(f"failed: {m['model']} at {m['stage']}: {m['error']}")
    for s in skipped:
        print(f"skipped: {s['model']}: {s['short_reason']}")
    print(f"{record['total_s']} s in all; written to {out}")


if __name__ == "__main__":
    main()
