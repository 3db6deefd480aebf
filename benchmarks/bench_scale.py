"""Scale benchmark: build-graph, train and neighbours on a generated catalogue of N products.

The catalogue comes from graphrec's own generator in the real formats (Amazon 2014
metadata, McAuley ``.b`` features, 4096-d by default). It is generated once into
``benchmarks/cache/scale-<N>/`` (git-ignored), or read from ``--data DIR`` when it already
exists elsewhere (e.g. ``/work/scale/gen-100000``). Then each step runs in its own
process, and the parent records its wall time and peak resident memory (``ru_maxrss``
of that child, from ``os.wait4``):

* ``build``: ``build_graph`` (metadata pass, feature pass into a float16 memory map,
  edges, write), with metadata lines/s and feature MB/s;
* ``train-k10`` / ``train-k100``: the mahalanobis decoder under the paper's protocol
  (training capped at 2M pairs), with training pairs/s, epochs, test accuracy/AUC and
  the evaluation time (everything after the last epoch);
* ``neighbours-k10`` / ``neighbours-k100``: ``Recommender.load`` (embeds every product,
  builds and caches the index), then single-ASIN latency p50/p99 and batched queries/s.

Results go to ``benchmarks/results/scale-<N>.json``; ``benchmarks/results/scale.md`` is
regenerated from every ``scale-*.json`` there (one table for all sizes run so far).

    .venv/bin/python benchmarks/bench_scale.py --products 100000 [--data /work/scale/gen-100000]
        [--work DIR] [--k 10 100] [--steps build train neighbours] [--epochs E] [--keep]

Timings depend on what else runs on the machine; the JSON records the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / "cache"
RESULTS = ROOT / "benchmarks" / "results"
STEPS = ("build", "train", "neighbours")


# ----------------------------------------------------------------------------- children

def child_build(args: dict) -> dict:
    from graphrec.graph import build_graph

    result = build_graph(Path(args["meta"]), Path(args["graph"]), Path(args["features"]), feature_dim=args["dim"],
                         force=True, quiet=True)
    manifest = result.manifest
    meta_lines = manifest["sources"]["metadata"].get("lines") or 0
    feature_bytes = Path(args["features"]).stat().st_size
    seconds = result.seconds
    return {
        "seconds": seconds,
        "nodes": manifest["num_nodes"],
        "edges": {name: rel["num_edges"] for name, rel in manifest["relations"].items()},
        "metadata_lines": meta_lines,
        "metadata_lines_per_s": meta_lines / seconds["metadata"] if seconds.get("metadata") else None,
        "features_mb": feature_bytes / 1e6,
        "features_mb_per_s": feature_bytes / 1e6 / seconds["features"] if seconds.get("features") else None,
        "features_npy_mb": (Path(args["graph"]) / "features.npy").stat().st_size / 1e6,
    }


def child_train(args: dict) -> dict:
    from graphrec.train import train

    started = time.perf_counter()
    run = train(args["graph"], decoder="mahalanobis", k=args["k"], relation=args["relation"], epochs=args.get("epochs"),
                seed=0, out_dir=args["run"], quiet=True, force=True, max_queries=args.get("queries", 1000))
    total = time.perf_counter() - started
    metrics = run.metrics
    split = run.config["split"]
    epochs = metrics["epochs_run"]
    return {
        "train_seconds": metrics["train_seconds"],
        "total_seconds": total,
        "other_seconds": total - metrics["train_seconds"],  # split, model set-up, evaluation, writing
        "epochs_run": epochs,
        "best_epoch": metrics["best_epoch"],
        "train_pairs": split["train"],
        "val_pairs": split["val"],
        "test_pairs": split["test"],
        "pairs_per_s": split["train"] * epochs / metrics["train_seconds"] if metrics["train_seconds"] else None,
        "seconds_per_epoch": metrics["train_seconds"] / epochs if epochs else None,
        "test_accuracy": metrics["test"]["accuracy"],
        "test_auc": metrics["test"]["auc"],
        "hit@10": metrics["test"].get("hit@10"),
        "ranking_queries": metrics["test"].get("queries"),
    }


def child_neighbours(args: dict) -> dict:
    import numpy as np

    from graphrec.recommend import Recommender

    index_dir = Path(args["run"]) / "index"
    shutil.rmtree(index_dir, ignore_errors=True)  # time the first load: embed every product, build, cache
    started = time.perf_counter()
    rec = Recommender.load(args["run"])
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    Recommender.load(args["run"])  # second load: from the cache
    cached_seconds = time.perf_counter() - started
    asins = rec.graph.asins
    rng = np.random.default_rng(0)
    rec.neighbours(str(asins[0]), k=10)  # warm-up
    single = []
    for node in rng.integers(0, len(asins), size=args["single"]):
        t = time.perf_counter()
        rec.neighbours(str(asins[node]), k=10)
        single.append(time.perf_counter() - t)
    batch = [str(a) for a in asins[rng.integers(0, len(asins), size=args["batch"])]]
    t = time.perf_counter()
    rec.neighbours_batch(batch, k=10)
    batch_seconds = time.perf_counter() - t
    single_ms = np.array(single) * 1000
    return {
        "index_kind": rec.index.kind,
        "first_load_seconds": load_seconds,
        "cached_load_seconds": cached_seconds,
        "single_queries": len(single),
        "p50_ms": float(np.percentile(single_ms, 50)),
        "p99_ms": float(np.percentile(single_ms, 99)),
        "batch_queries": len(batch),
        "batch_qps": len(batch) / batch_seconds,
    }


CHILDREN = {"build": child_build, "train": child_train, "neighbours": child_neighbours}


class _MemorySampler:
    """Polls ``/proc/self/status`` in a thread: the peak of anonymous resident memory
    (heap, tensors) apart from resident file pages (memory-mapped features, which the
    kernel can drop at any time). ``ru_maxrss`` counts both."""

    def __init__(self, interval: float = 0.2) -> None:
        import threading

        self.peak = {"RssAnon": 0, "RssFile": 0}
        self.interval = interval
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in self.peak:
                    self.peak[key] = max(self.peak[key], int(value.split()[0]))
        except OSError:
            pass

    def _poll(self) -> None:
        while not self.done.wait(self.interval):
            self._read()

    def stop(self) -> dict:
        self.done.set()
        self.thread.join()
        self._read()
        return {"peak_anon_mb": self.peak["RssAnon"] / 1024, "peak_file_mb": self.peak["RssFile"] / 1024}


# ----------------------------------------------------------------------------- parent

def run_child(step: str, args: dict, log: Path, threads: int | None) -> dict:
    """Run one step in a fresh interpreter; wall time and that child's peak RSS."""
    out = log.with_suffix(".json")
    out.unlink(missing_ok=True)
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", step, json.dumps(args), str(out)]
    started = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    record = {"wall_seconds": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "cpu_seconds": usage.ru_utime + usage.ru_stime,
              "exit_code": process.returncode}
    if process.returncode == 0 and out.is_file():
        record.update(json.loads(out.read_text()))
    else:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        record["error"] = "\n".join(tail)
        print(f"  {step} failed (exit {process.returncode}); see {log}", file=sys.stderr)
    return record


def ensure_data(products: int, data: Path | None, dim: int) -> Path:
    """The generated catalogue: ``data`` when given (must hold meta.json.gz and image_features.b),
    else ``benchmarks/cache/scale-<N>``, generated on first use."""
    folder = data or CACHE / f"scale-{products}"
    meta, features = folder / "meta.json.gz", folder / "image_features.b"
    if meta.is_file() and features.is_file():
        return folder
    if data is not None:
        sys.exit(f"{folder} has no meta.json.gz and image_features.b; generate it or leave out --data.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating {products:,} products into {folder} (once)", flush=True)
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "graphrec.datasets.synthetic", "--products", str(products), "--out", str(tmp),
                    "--meta-name", "meta.json.gz", "--feature-dim", str(dim)], check=True, cwd=ROOT)
    os.replace(tmp, folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=100_000, help="catalogue size (default 100000)")
    parser.add_argument("--data", type=Path, default=None, help="existing generator output (meta.json.gz + image_features.b)")
    parser.add_argument("--work", type=Path, default=None, help="where graphs and runs go (default benchmarks/cache/scale-work-<N>)")
    parser.add_argument("--dim", type=int, default=4096, help="feature dimension when generating (default 4096)")
    parser.add_argument("--k", type=int, nargs="+", default=[10, 100], help="style dimensions to train (default 10 100)")
    parser.add_argument("--relation", default="also_bought")
    parser.add_argument("--epochs", type=int, default=None, help="cap on training epochs (default: the decoder's default)")
    parser.add_argument("--queries", type=int, default=1000, help="ranking-metric test queries (default 1000)")
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS, help="steps to run (default all)")
    parser.add_argument("--single", type=int, default=200, help="single-ASIN neighbour queries timed (default 200)")
    parser.add_argument("--batch", type=int, default=1000, help="ASINs in the batched neighbour query (default 1000)")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the children")
    parser.add_argument("--keep", action="store_true", help="keep the graph and runs afterwards (default: delete them)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        step, payload, out = args.child
        sampler = _MemorySampler()
        result = CHILDREN[step](json.loads(payload))
        result.update(sampler.stop())
        Path(out).write_text(json.dumps(result, indent=2))
        return

    data = ensure_data(args.products, args.data, args.dim)
    work = args.work or CACHE / f"scale-work-{args.products}"
    work.mkdir(parents=True, exist_ok=True)
    graph = work / "graph"
    generator = json.loads((data / "generator.json").read_text()) if (data / "generator.json").is_file() else {}
    results_file = args.results / f"scale-{args.products}.json"
    previous = json.loads(results_file.read_text()) if results_file.is_file() else {}
    report = {
        "products": args.products,
        "data": str(data.relative_to(ROOT)) if data.is_relative_to(ROOT) else data.name,  # no path of this machine
        "feature_file_gb": (data / "image_features.b").stat().st_size / 1e9,
        "bayes_limit": (generator.get("bayes_limit") or {}).get(args.relation),
        "relation": args.relation,
        "epochs_cap": args.epochs,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "memory_gb": _memory_gb()},
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_average_at_start": os.getloadavg()[0],
        "steps": dict(previous.get("steps", {})),
    }
    print(f"scale benchmark: {args.products:,} products from {data}", flush=True)

    def record(name: str, result: dict) -> None:
        report["steps"][name] = result
        report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        report["load_average_at_end"] = os.getloadavg()[0]
        args.results.mkdir(parents=True, exist_ok=True)
        tmp = results_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        os.replace(tmp, results_file)
        write_table(args.results)
        print(f"  {name:16s} {_line(name, result)}", flush=True)

    if "build" in args.steps:
        dim = int((generator.get("params") or {}).get("feature_dim") or args.dim)
        record("build", run_child("build", {"meta": str(data / "meta.json.gz"), "features": str(data / "image_features.b"),
                                            "graph": str(graph), "dim": dim}, work / "build.log", args.threads))
    for k in args.k:
        run_dir = work / f"mahalanobis-k{k}"
        if "train" in args.steps:
            record(f"train-k{k}", run_child("train", {"graph": str(graph), "k": k, "relation": args.relation, "run": str(run_dir),
                                                      "epochs": args.epochs, "queries": args.queries},
                                            work / f"train-k{k}.log", args.threads))
        if "neighbours" in args.steps:
            record(f"neighbours-k{k}", run_child("neighbours", {"run": str(run_dir), "single": args.single, "batch": args.batch},
                                                 work / f"neighbours-k{k}.log", args.threads))
    if not args.keep:
        for path in [graph, *(work / f"mahalanobis-k{k}" for k in args.k)]:
            shutil.rmtree(path, ignore_errors=True)
    print(f"results: {results_file}\ntable:   {args.results / 'scale.md'}")
    failed = [name for name, result in report["steps"].items() if "error" in result]
    if failed:
        sys.exit(f"failed steps: {', '.join(failed)} (logs in {work})")


def _memory_gb() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError):
        return None


def _fmt(value, spec: str = ".1f", unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def _line(name: str, r: dict) -> str:
    head = f"{r['wall_seconds']:8.1f} s  peak RSS {r['peak_rss_mb'] / 1024:6.2f} GB"
    if "error" in r:
        return head + "  FAILED"
    if name == "build":
        s = r["seconds"]
        return (head + f"  (metadata {s['metadata']:.1f} s = {r['metadata_lines_per_s']:,.0f} lines/s, features "
                f"{s['features']:.1f} s = {r['features_mb_per_s']:,.0f} MB/s, edges {s['edges']:.1f} s, write {s.get('write', 0):.1f} s)")
    if name.startswith("train"):
        return (head + f"  ({r['epochs_run']} epochs, {r['seconds_per_epoch']:.1f} s/epoch, {r['pairs_per_s']:,.0f} pairs/s, "
                f"eval+setup {r['other_seconds']:.1f} s, test acc {r['test_accuracy']:.4f}, auc {r['test_auc']:.4f})")
    return (head + f"  (first load {r['first_load_seconds']:.1f} s, cached {r['cached_load_seconds']:.2f} s, p50 {r['p50_ms']:.2f} ms, "
            f"p99 {r['p99_ms']:.2f} ms, batch {r['batch_qps']:,.0f} q/s)")


def write_table(results: Path) -> Path:
    """``scale.md``: one row per (size, step) from every ``scale-*.json`` in ``results``."""
    reports = []
    for file in results.glob("scale-*.json"):
        try:
            reports.append(json.loads(file.read_text()))
        except ValueError:
            continue
    reports.sort(key=lambda r: r["products"])
    lines = [
        "# Scale benchmark (generated by benchmarks/bench_scale.py; do not edit)",
        "",
        "Generated catalogues in the real formats, 4096-d features; each step in its own process on a shared "
        "2-core machine (timings are noisy: wall time depends on the other jobs, the CPU seconds in brackets much less). "
        "Peak RSS is the step's own process (ru_maxrss), in brackets its "
        "anonymous part (heap and tensors, without resident pages of memory-mapped files).",
        "",
        "| products | step | wall (CPU) | peak RSS (anon) | throughput | notes |",
        "|---:|---|---:|---:|---|---|",
    ]
    for report in reports:
        n = f"{report['products']:,}"
        for name, r in report["steps"].items():
            wall, rss = f"{r['wall_seconds']:.0f} s ({r['cpu_seconds']:.0f})", f"{r['peak_rss_mb'] / 1024:.2f} GB"
            if r.get("peak_anon_mb") is not None:
                rss += f" ({r['peak_anon_mb'] / 1024:.2f})"
            if "error" in r:
                lines.append(f"| {n} | {name} | {wall} | {rss} | failed | {r['error'].splitlines()[-1][:80] if r['error'] else ''} |")
                continue
            if name == "build":
                s = r["seconds"]
                throughput = f"{r['metadata_lines_per_s']:,.0f} lines/s; {r['features_mb_per_s']:,.0f} MB/s"
                notes = (f"metadata {s['metadata']:.0f} s, features {s['features']:.0f} s ({r['features_mb'] / 1e3:.1f} GB .b), "
                         f"edges {s['edges']:.0f} s, write {s.get('write', 0):.0f} s")
            elif name.startswith("train"):
                throughput = f"{r['pairs_per_s']:,.0f} pairs/s"
                notes = (f"{r['train_pairs']:,} train pairs, {r['epochs_run']} epochs x {r['seconds_per_epoch']:.0f} s, "
                         f"set-up + eval {r['other_seconds']:.0f} s; test acc {r['test_accuracy']:.3f} (Bayes "
                         f"{_fmt(report.get('bayes_limit'), '.3f')}), AUC {r['test_auc']:.3f}")
            else:
                throughput = f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms; {r['batch_qps']:,.0f} q/s batched"
                notes = f"{r['index_kind']} index; first load {r['first_load_seconds']:.0f} s (embed + index), cached {r['cached_load_seconds']:.1f} s"
            lines.append(f"| {n} | {name} | {wall} | {rss} | {throughput} | {notes} |")
    out = results / "scale.md"
    out.write_text("\n".join(lines) + "\n")
    return out


if __name__ == "__main__":
    main()
