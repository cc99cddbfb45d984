"""Server-side cost of the 3D viewer, in one run.

    python benchmarks/bench_widgets.py [--atoms 1000] [--repeats 50] [--frames 10000] [--frame-atoms 100]

1. Switching frame and recolouring a 1,000-atom structure (target < 50 ms): the Python
   handler plus JSON-encoding every message it sends (what the kernel does before the
   bytes leave), as median and 95th percentile over ``--repeats`` switches. No browser:
   the front-end's drawing time is not included.
2. Opening a 10,000-frame x 100-atom trajectory with `mlipviz.view` from mlipviz's
   ``.h5`` format and from extended XYZ (target < 2 s, memory < 500 MB), each in a fresh
   process: wall time, and peak resident memory above the process's baseline after imports.
3. A 100,000-frame x 100-atom comparison store (``--store-frames``; what `mlipviz.evaluate`
   writes, here with random forces: the views' cost does not depend on the values), in a
   fresh process: `load_comparison` (mapped, lazy), building the `ErrorMap` (per-atom
   errors, softening fit, rare-event summary, density parity plot, per-frame curve), and
   switching to random frames of it; memory as in 2.

Writes benchmarks/results/widgets_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def trajectory(n_frames: int, n_atoms: int, seed: int = 0):
    """An fcc Cu supercell of about ``n_atoms`` atoms with ``n_frames`` rattled frames."""
    from ase.build import bulk

    import mlipviz

    base = bulk("Cu", "fcc", a=3.61)
    reps = max(1, round(n_atoms ** (1 / 3)))
    atoms = base * (reps, reps, max(1, n_atoms // reps ** 2))
    atoms = atoms[:n_atoms]
    rng = np.random.default_rng(seed)
    positions = atoms.positions[None] + rng.normal(0, 0.08, (n_frames, len(atoms), 3))
    return mlipviz.Frames(positions=positions.reshape(-1, 3), numbers=np.tile(atoms.numbers, n_frames),
                          n_atoms=np.full(n_frames, len(atoms)), cells=np.repeat(atoms.cell[None], n_frames, 0),
                          pbc=np.ones((n_frames, 3), bool),
                          forces=rng.normal(0, 1, (n_frames * len(atoms), 3)))


def switch_times(n_atoms: int, repeats: int) -> dict:
    import mlipviz
    from mlipviz.widgets import view

    frames = trajectory(repeats + 1, n_atoms)
    rng = np.random.default_rng(1)
    values = rng.gamma(2.0, 0.1, frames.total_atoms)
    results = {}
    cases = {
        "frame, element colours": dict(color_by=None),
        "frame, per-atom colours": dict(color_by=values),
        "frame, per-atom colours + 1 arrow set": dict(color_by=values, arrows="forces"),
    }
    for name, kwargs in cases.items():
        viewer = view(frames, **kwargs)
        encode(viewer)
        times = []
        for i in range(1, repeats + 1):
            start = time.perf_counter()
            viewer.frame = i
            flush(viewer)
            times.append(time.perf_counter() - start)
        results[name] = summary(times)
    # frames with different atoms: each switch sends a whole new structure; nglview's queue
    # waits for the browser to load it, so here only the handler (PDB text, colours) is timed
    ragged = mlipviz.Frames.concatenate([frames[i] if i % 2 else mlipviz.read(frames.to_atoms(i)[:-1], min_distance=0)
                                         for i in range(repeats + 1)])
    viewer = view(ragged, color_by=np.ones(ragged.total_atoms))
    times = []
    for i in range(1, repeats + 1):
        start = time.perf_counter()
        viewer.frame = i
        times.append(time.perf_counter() - start)
    results["frame, structure swap (handler only)"] = summary(times)
    viewer = view(frames, color_by=values)
    encode(viewer)
    times = []
    for _ in range(repeats):
        new = rng.gamma(2.0, 0.1, frames.total_atoms)
        start = time.perf_counter()
        viewer.set_colors(new)
        flush(viewer)
        times.append(time.perf_counter() - start)
    results["recolour"] = summary(times)
    return results


def encode(viewer):
    """Route the viewer's messages through JSON encoding, as a kernel would send them."""
    ngl = viewer.ngl
    ngl._remote_call_thread.q.clear()
    ngl.loaded = True  # send at once instead of queueing for the front-end

    def send(msg, buffers=None):
        json.dumps(msg)

    ngl.send = send


def flush(viewer):
    """Wait until nglview's sender thread has sent (encoded) anything still queued."""
    queue = viewer.ngl._remote_call_thread.q
    while queue:
        time.sleep(0.0002)


def summary(times) -> dict:
    times = np.array(times) * 1000
    return {"median_ms": round(float(np.median(times)), 2), "p95_ms": round(float(np.percentile(times, 95)), 2)}


OPEN_SCRIPT = """
import json, resource, sys, time
import psutil
import mlipviz
from mlipviz.widgets import view
process = psutil.Process()
base = process.memory_info().rss
start = time.perf_counter()
viewer = view(sys.argv[1])
seconds = time.perf_counter() - start
after = process.memory_info().rss
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": round(seconds, 3), "rss_increase_MB": round((after - base) / 1e6, 1),
                  "peak_rss_above_start_MB": round(max(0, peak - base) / 1e6, 1),
                  "frames": len(viewer.frames), "atoms": int(viewer.frames.n_atoms[0])}))
"""


def open_times(n_frames: int, n_atoms: int) -> dict:
    frames = trajectory(n_frames, n_atoms)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".h5", ".extxyz"):
            path = Path(tmp) / f"trajectory{suffix}"
            frames.write(path)
            run = subprocess.run([sys.executable, "-c", OPEN_SCRIPT, str(path)], capture_output=True, text=True,
                                 check=True)
            out[suffix] = json.loads(run.stdout.strip().splitlines()[-1])
            out[suffix]["file_MB"] = round(path.stat().st_size / 1e6, 1)
    return out


STORE_SCRIPT = """
import json, resource, sys, time
import numpy as np, psutil
import mlipviz
from mlipviz.widgets.error_map import ErrorMap
process = psutil.Process()
base = process.memory_info().rss
start = time.perf_counter()
comparison = mlipviz.load_comparison(sys.argv[1])
opened = time.perf_counter() - start
after_open = process.memory_info().rss
start = time.perf_counter()
emap = ErrorMap(comparison)
built = time.perf_counter() - start
viewer = emap.viewer
viewer.ngl._remote_call_thread.q.clear()
viewer.ngl.loaded = True
viewer.ngl.send = lambda msg, buffers=None: json.dumps(msg)
times = []
for frame in np.random.default_rng(0).integers(0, len(comparison.frames), 50):
    t = time.perf_counter()
    viewer.frame = int(frame)
    while viewer.ngl._remote_call_thread.q:
        time.sleep(0.0002)
    times.append(time.perf_counter() - t)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"open_s": round(opened, 3), "open_rss_increase_MB": round((after_open - base) / 1e6, 1),
                  "error_map_s": round(built, 2),
                  "switch_median_ms": round(float(np.median(times)) * 1000, 2),
                  "switch_p95_ms": round(float(np.percentile(times, 95)) * 1000, 2),
                  "rss_increase_MB": round((process.memory_info().rss - base) / 1e6, 1),
                  "peak_rss_above_start_MB": round(max(0, peak - base) / 1e6, 1)}))
"""


def store_times(n_frames: int, n_atoms: int) -> dict:
    import mlipviz

    frames = trajectory(n_frames, n_atoms)
    rng = np.random.default_rng(2)
    predicted = frames.forces * 0.8 + rng.normal(0, 0.1, frames.forces.shape)
    prediction = mlipviz.Prediction(model="random", n_atoms=frames.n_atoms, forces=predicted,
                                    energy=rng.normal(0, 1, len(frames)))
    reference = mlipviz.Prediction.from_frames(frames.with_labels(energy=rng.normal(0, 1, len(frames))))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "comparison.h5"
        mlipviz.Comparison(frames, {"random": prediction}, reference).save(path)
        del frames, predicted, prediction, reference
        run = subprocess.run([sys.executable, "-c", STORE_SCRIPT, str(path)], capture_output=True, text=True,
                             check=True)
        out = json.loads(run.stdout.strip().splitlines()[-1])
        out["file_MB"] = round(path.stat().st_size / 1e6, 1)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--atoms", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--frame-atoms", type=int, default=100)
    parser.add_argument("--store-frames", type=int, default=100_000)
    args = parser.parse_args()
    switch = switch_times(args.atoms, args.repeats)
    opened = open_times(args.frames, args.frame_atoms)
    stored = store_times(args.store_frames, args.frame_atoms)
    result = {"machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPUs",
              "date": time.strftime("%Y-%m-%d"), f"switch_{args.atoms}_atoms": switch,
              f"open_{args.frames}x{args.frame_atoms}": opened,
              f"comparison_store_{args.store_frames}x{args.frame_atoms}": stored,
              "targets": {"switch_ms": 50, "open_s": 2, "open_MB": 500}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "widgets_cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
