"""One process against several under torchrun (gloo on CPU), for training and extraction.

    python benchmarks/bench_distributed.py [--nproc 2] [--products 2000] [--dim 1024] [--epochs 10]
                                           [--images 192] [--device cpu|cuda]

Both sides run the real commands as subprocesses (``python -m graphrec.cli ...`` and
``python -m torch.distributed.run --nproc_per_node N -m graphrec.cli ...``), so process
start-up and the process group are included; training also reports the training loop's own
time from metrics.json. Distributed runs give each process one torch thread (torchrun's
default); the single process uses every core. On a 2-core machine the ceiling is modest:
both sides use the same two cores, the distributed side adds a second Python, a second
copy of the network and per-step gradient all-reduces. The point is correctness and the
path to more machines.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(args: list[str], nproc: int, cwd: Path, threads: int | None = None) -> float:
    """Wall seconds of ``graphrec <args>`` in one process (nproc 1) or under torchrun."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    if nproc == 1:
        command = [sys.executable, "-m", "graphrec.cli", *args]
    else:
        env["OMP_NUM_THREADS"] = "1"
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
                   "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "graphrec.cli", *args]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    from graphrec.datasets.synthetic import draw_product_image, generate_catalogue
    from graphrec.graph import build_graph

    print(f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {args.nproc} processes under torchrun vs 1 process")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        catalogue = generate_catalogue(root / "catalogue", args.products, feature_dim=args.dim, seed=0)
        graph = build_graph(catalogue.meta_path, root / "graph", catalogue.features_path, feature_dim=args.dim,
                            quiet=True).path
        train = ["train", "--graph", str(graph), "--decoder", "mahalanobis", "--k", "10", "--epochs", str(args.epochs),
                 "--patience", "0", "--batch-size", str(args.batch_size), "--quiet"]
        rows = []
        # one process with all cores, one process with one thread (what each torchrun worker gets), N processes
        for label, nproc, threads in (("1", 1, None), ("1 (1 thread)", 1, 1), (str(args.nproc), args.nproc, None)):
            out = root / f"run-{nproc}-{threads}"
            wall = run([*train, "-o", str(out)], nproc, root, threads)
            metrics = json.loads((out / "metrics.json").read_text())
            rows.append((label, wall, metrics["train_seconds"], metrics["test"]["accuracy"], metrics["test"]["auc"]))
        print(f"\ntraining: mahalanobis K=10, {args.products} products x {args.dim}-d, "
              f"{catalogue.num_edges['also_bought']} also_bought edges, {args.epochs} epochs, batch {args.batch_size}")
        print(f"{'processes':>12} {'wall s':>8} {'train loop s':>12} {'test acc':>9} {'test auc':>9}")
        for label, wall, loop, acc, auc in rows:
            print(f"{label:>12} {wall:8.1f} {loop:12.1f} {acc:9.4f} {auc:9.4f}")
        print(f"speed-up of the training loop, {args.nproc} processes vs 1: {rows[0][2] / rows[2][2]:.2f}x "
              f"(wall {rows[0][1] / rows[2][1]:.2f}x); vs 1 process with 1 thread: {rows[1][2] / rows[2][2]:.2f}x")

        folder = root / "images"
        folder.mkdir()
        rng = np.random.default_rng(0)
        for k in range(args.images):
            draw_product_image(k % 5, bool(k % 2), k % 3, rng.random(), 0.45, k % 3, rng.standard_normal(3),
                               size=400).save(folder / f"B{k:09d}.jpg", quality=90)
        extract = ["extract-features", "--images", str(folder), "--weights", "random", "--batch-size", "32",
                   "--device", args.device, "--quiet"]
        times = {}
        for nproc in (1, args.nproc):
            times[nproc] = run([*extract, "-o", str(root / f"features-{nproc}.b")], nproc, root)
        same = (root / "features-1.b").stat().st_size == (root / f"features-{args.nproc}.b").stat().st_size
        print(f"\nextraction: {args.images} JPEG images 400x400, AlexNet fc7, device {args.device} "
              f"(both outputs {'the same size' if same else 'DIFFERENT SIZES'})")
        print(f"{'processes':>9} {'wall s':>8} {'images/s':>9}")
        for nproc, wall in times.items():
            print(f"{nproc:>9} {wall:8.1f} {args.images / wall:9.1f}")
        print(f"speed-up: {times[1] / times[args.nproc]:.2f}x (wall, including start-up of every process)")


if __name__ == "__main__":
    main()
