"""Static evaluation throughput of `Model.predict` versus TorchSim's batched `static`, in one run.

    pip install torch-sim-atomistic        # the `bench` extra
    python benchmarks/bench_torchsim.py [--device cpu] [--small 400] [--large 40] [--repeats 3]

The same networks on the same frames, both paths computing energy, forces and
stress in float32:

- MACE: the MACE-MP-0 "small" architecture (128x0e, L=0, 2 interactions, correlation 3,
  r_max 6 Å, 89 elements) with random weights, saved and loaded by both paths (MACE-MP-0's
  own weights cannot be downloaded here; the cost of a forward pass does not depend on
  the values of the weights);
- SevenNet-0 from the weights inside the sevenn package.

Frames: rattled 8-atom and 64-atom Si cells. On CPU, TorchSim's `BinningAutoBatcher` gets
as many atoms per pass as the largest pass `predict` made (``meta["largest_pass_atoms"]``:
mlipviz sizes CPU passes by atoms and estimated edges, `Model.cost_per_batch`); on a GPU each
sizes its own passes to the memory. Each path runs ``--repeats`` times, alternating, and
the fastest run counts. Reports atoms/s, the ratio, and the largest force difference
between the two paths; writes benchmarks/results/torchsim_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from bench_predict import rattled_cells  # the same rattled Si cells as bench_predict

import mlipviz

MP0_SMALL_ELEMENTS = list(range(1, 84)) + list(range(89, 95))


def build_mace_mp0_small(path):
    """MACE-MP-0 small's architecture with random weights, saved to ``path`` (the
    interaction scale makes the forces on rattled Si of order 1 eV/Å)."""
    import mace  # noqa: F401  (before e3nn)
    from e3nn import o3
    from mace import modules

    torch.manual_seed(0)
    n = len(MP0_SMALL_ELEMENTS)
    net = modules.ScaleShiftMACE(
        r_max=6.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=3,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=2, num_elements=n, hidden_irreps=o3.Irreps("128x0e"),
        MLP_irreps=o3.Irreps("16x0e"), gate=torch.nn.functional.silu,
        atomic_energies=np.zeros(n), avg_num_neighbors=61.96, atomic_numbers=MP0_SMALL_ELEMENTS,
        correlation=3, atomic_inter_scale=1000.0, atomic_inter_shift=0.0)
    torch.save(net, path)
    return path


def torchsim_model(name, model):
    """TorchSim's wrapper around a second copy of ``model``'s network (same weights)."""
    device = torch.device(model.device)
    if name == "mace":
        from torch_sim.models.mace import MaceModel

        net = torch.load(model.weights, weights_only=False, map_location=device)
        return MaceModel(model=net, device=device, dtype=torch.float32,
                         compute_forces=True, compute_stress=True)
    import sevenn._keys
    import sevenn.util
    from torch_sim.models.sevennet import SevenNetModel

    net, _ = sevenn.util.model_from_checkpoint(str(model.weights))
    if not hasattr(net, "modal_map"):
        # sevenn < 0.11 (all that mace-torch's e3nn pin allows) has no multi-fidelity
        # models; SevenNet-0 is single-fidelity, so TorchSim's modality entry is unused
        net.modal_map = None
        sevenn._keys.DATA_MODALITY = "data_modality"
    return SevenNetModel(model=net, device=device)


def run_torchsim(ts_model, images, atoms_per_batch):
    import torch_sim as ts
    from torch_sim.autobatching import BinningAutoBatcher

    batcher = (True if atoms_per_batch is None else
               BinningAutoBatcher(ts_model, memory_scales_with="n_atoms", max_memory_scaler=atoms_per_batch))
    results = ts.static(system=images, model=ts_model, autobatcher=batcher)
    return np.concatenate([r["forces"].detach().cpu().numpy() for r in results])


def timed(fn):
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def run_set(name, model, ts_model, images, label, repeats):
    frames = mlipviz.read(images)
    cpu = model.device == "cpu"
    model.predict(frames[:4], progress=False)  # warm-up both paths
    run_torchsim(ts_model, images[:4], int(frames.n_atoms[:4].sum()) if cpu else None)
    t_predict, t_torchsim = [], []
    for _ in range(repeats):
        t, pred = timed(lambda: model.predict(frames, progress=False))
        t_predict.append(t)
        per_pass = pred.meta["largest_pass_atoms"] if cpu else None
        t, ts_forces = timed(lambda per_pass=per_pass: run_torchsim(ts_model, images, per_pass))
        t_torchsim.append(t)
    atoms = int(frames.n_atoms.sum())
    return {
        "model": name, "set": label, "frames": len(frames), "atoms": atoms,
        "predict_passes": pred.meta["passes"], "atoms_per_pass": pred.meta["largest_pass_atoms"],
        "predict_s": round(min(t_predict), 3), "torchsim_s": round(min(t_torchsim), 3),
        "predict_atoms_per_s": round(atoms / min(t_predict), 1),
        "torchsim_atoms_per_s": round(atoms / min(t_torchsim), 1),
        "ratio": round(min(t_torchsim) / min(t_predict), 2),
        "max_abs_force_diff_eV_A": float(np.abs(pred.forces - ts_forces).max()),
        "max_abs_force_eV_A": float(np.abs(pred.forces).max()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--small", type=int, default=400, help="number of 8-atom cells")
    parser.add_argument("--large", type=int, default=40, help="number of 64-atom cells")
    parser.add_argument("--models", default="mace,sevennet")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each path; the fastest counts")
    args = parser.parse_args()

    sets = [(rattled_cells(1, args.small, 0), "8-atom"), (rattled_cells(2, args.large, 1), "64-atom")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            if name == "mace":
                model = mlipviz.load_model(build_mace_mp0_small(Path(tmp) / "mace-mp0-small-random.model"),
                                           device=args.device, dtype="float32")
            else:
                model = mlipviz.load_model("sevennet-0", device=args.device)
            ts_model = torchsim_model(name, model)
            for images, label in sets:
                results.append(run_set(name, model, ts_model, images, label, args.repeats))
                print(results[-1], flush=True)
    device = "cuda" if args.device.startswith("cuda") else args.device
    record = {"device": device, "torch": torch.__version__, "torch_sim": version("torch-sim-atomistic"),
              "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
              "gpu": torch.cuda.get_device_name() if device == "cuda" else None, "results": results}
    out = Path(__file__).parent / "results" / f"torchsim_{device}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print("| model | set | frames | atoms per pass | predict (atoms/s) | TorchSim static (atoms/s) "
          "| predict / TorchSim | max |dF| between them (eV/Å) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['set']} | {r['frames']} | {r['atoms_per_pass']} | {r['predict_atoms_per_s']:.0f} | "
              f"{r['torchsim_atoms_per_s']:.0f} | {r['ratio']}x | {r['max_abs_force_diff_eV_A']:.1e} |")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
