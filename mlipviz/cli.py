"""Command line: ``mlipviz models | fetch NAME ... | compare FILE ... | demo | explore [FILE ...]``
(also as ``python -m mlipviz ...``)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd
from ase.build import bulk

if TYPE_CHECKING:
    from .analysis.compare import Comparison
    from .models.base import Prediction


def _print(title: str, table: pd.DataFrame) -> None:
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 4):
        print(f"\n== {title}\n{table}")


def _report(cmp: Comparison, out: str | None) -> None:
    reference = cast("Prediction", cmp.reference)  # the command line always compares against one
    _print(f"summary ({', '.join(cmp.models)} vs {reference.model})", cmp.summary())
    _print("softening (Deng et al. 2025): slope < 1 means softened forces", cmp.softening())
    worst = cmp.per_atom.nlargest(5, "force_error")[["model", "frame", "atom", "element", "force_error",
                                                      "magnitude_error", "angle_error"]]
    _print("largest per-atom force errors (eV/Å, degrees)", worst.reset_index(drop=True))
    if out:
        print(f"\nsaved to {cmp.save(out)} (open with mlipviz.load_comparison)")


def _demo(args: argparse.Namespace) -> None:
    """Rattled Si and Cu cells: CHGNet and SevenNet-0 against M3GNet as the reference model."""
    import mlipviz

    rng = np.random.default_rng(0)
    images = []
    for atoms in (bulk("Si", "diamond", a=5.43, cubic=True), bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 1, 1)):
        for _ in range(args.frames):
            copy = atoms.copy()
            copy.positions += rng.normal(0, 0.1, copy.positions.shape)
            copy.info["material"] = copy.get_chemical_formula()
            images.append(copy)
    frames = mlipviz.read(images)
    print("mlipviz demo: reference is M3GNet, a model, not DFT (bundled DFT data comes with "
          "mlipviz.examples).")
    print(mlipviz.available_models()[["available", "description"]].to_string())
    cmp = mlipviz.compare(args.model or ["chgnet", "sevennet-0"], frames, reference=args.reference)
    _report(cmp, args.out)
    _print("softening per material", cmp.softening(by="material"))


def _explore(args: argparse.Namespace) -> int:
    """Serve the Explorer with Voila, loaded on ``args.files``, until Ctrl-C."""
    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        print(f"mlipviz: error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    files = [str(Path(f).resolve()) for f in args.files]
    source = ("import mlipviz\n"
              f"mlipviz.Explorer(files={files!r}, folder={str(Path.cwd())!r})")
    notebook = {"cells": [{"cell_type": "code", "execution_count": None, "id": "explorer", "metadata": {},
                           "outputs": [], "source": source}],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    with tempfile.TemporaryDirectory(prefix="mlipviz-explore-") as folder:
        path = Path(folder) / "mlipviz-explorer.ipynb"
        path.write_text(json.dumps(notebook))
        command = [sys.executable, "-m", "voila", str(path), f"--port={args.port}", "--Voila.ip=127.0.0.1",
                   "--Voila.port_retries=0", "--theme=light", "--show_tracebacks=True"]
        if args.no_browser:
            command.append("--no-browser")
        print(f"mlipviz explore: the Explorer at http://127.0.0.1:{args.port}/ "
              f"({len(files)} file(s) loaded); Ctrl-C stops it", flush=True)
        server = subprocess.Popen(command, env=dict(os.environ), start_new_session=True)
        try:
            return server.wait()
        except KeyboardInterrupt:
            os.killpg(server.pid, signal.SIGTERM)  # voila, its kernels and their workers
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
            print("mlipviz explore: stopped", flush=True)
            return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``mlipviz ...`` with ``argv`` (default: ``sys.argv[1:]``).

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name.

    Returns
    -------
    int
        The exit status: 0, or 2 when mlipviz reports an error (printed to stderr).
    """
    parser = argparse.ArgumentParser(prog="mlipviz", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="list registered models and whether they load here")
    fetch = sub.add_parser("fetch", help="load registered models once, downloading their weights into "
                                         "the packages' caches where they are not on disk (e.g. at image build time)")
    fetch.add_argument("names", nargs="+")
    run = sub.add_parser("compare", help="compare models against the labels in FILE or a reference")
    run.add_argument("file")
    run.add_argument("--index", default=":")
    demo = sub.add_parser("demo", help="a small offline comparison with pretrained models")
    demo.add_argument("--frames", type=int, default=6, help="rattled frames per material")
    for p in (run, demo):
        p.add_argument("--model", action="append", help="model name or weights path (repeatable)")
        p.add_argument("--reference", default="m3gnet" if p is demo else None,
                       help="reference model/weights (default: labels in the file)")
        p.add_argument("--out", default="mlipviz-demo.h5" if p is demo else None,
                       help="save the comparison to this HDF5 file")
    explore = sub.add_parser("explore", help="serve the Explorer app (Voila) on these files and open it in a "
                                             "browser; Ctrl-C stops it")
    explore.add_argument("files", nargs="*", help="structure files to load at once")
    explore.add_argument("--port", type=int, default=8866, help="port on this machine (default 8866)")
    explore.add_argument("--no-browser", action="store_true", help="only print the address")
    sub.add_parser("warm-up", help="compile and cache on disk what a fresh kernel would otherwise compile on its "
                                   "first latent map (UMAP's numba functions), e.g. at image build time")
    args = parser.parse_args(argv)
    if args.command == "explore":
        return _explore(args)

    import mlipviz

    try:
        if args.command == "models":
            _print("models", mlipviz.available_models()[["available", "reason", "description"]])
        elif args.command == "fetch":
            for name in args.names:
                model = mlipviz.load_model(name, device="cpu")
                print(f"{name}: ready ({model.meta.get('weights') or 'weights inside its package'})")
        elif args.command == "warm-up":
            from mlipviz.analysis.latent import warm_up

            start = time.perf_counter()
            switched = warm_up()
            print(f"warm-up: {switched} UMAP functions compiled into numba's disk cache "
                  f"({time.perf_counter() - start:.0f} s)")
        elif args.command == "compare":
            if not args.model:
                parser.error("compare needs at least one --model")
            frames = mlipviz.read(args.file, index=args.index)
            _report(mlipviz.compare(args.model, frames, reference=args.reference), args.out)
        else:
            _demo(args)
    except mlipviz.errors.MlipvizError as exc:
        print(f"mlipviz: error: {exc}", file=sys.stderr)
        return 2
    return 0
