"""Load test of ``graphrec serve`` on loopback: a fixed number of requests, then it stops.

1. Baseline, in this process: ``Recommender.neighbours(asin, k)`` called one query after
   another on the same run (what a Python caller gets without HTTP).
2. ``graphrec serve --run RUN --port 0`` in a child process (real uvicorn on 127.0.0.1),
   then ``--requests`` ``GET /api/neighbours/{asin}?k=K`` from ``--clients`` concurrent
   keep-alive connections (a small asyncio HTTP/1.1 client, so that the load generator
   takes little of the CPU it shares with the server). ASINs are drawn at random from the
   catalogue with a fixed seed, after a warm-up.
   Twice: with ``--cache 0`` (every answer computed by the recommender) and with the
   default answer cache, once the service has prefilled it (a catalogue that fits in the
   cache keeps every product's default answer, k = 10, in the background after start;
   with another ``--k`` most measured requests still repeat a query).
3. The same number of ``GET /healthz``: what the HTTP stack alone (uvicorn, FastAPI, the
   thread pool) costs, without a recommendation.

Prints requests/s, p50 and p99 latency and the error count (any status but 200, or a
body without ``k`` rows) for each, the CPU time per request (of this process for the
baseline, of the server process for HTTP; much less sensitive to other jobs on the
machine than the wall-clock numbers), and the ratio of the service to the in-process
call. The load average is printed too: on a shared machine it matters.

    python benchmarks/bench_serve.py                                  # the sample's run
    python benchmarks/bench_serve.py --run RUN_DIR --requests 5000 --clients 32 --k 10
    python benchmarks/bench_serve.py --products 1000000 [--dim 64] [--approx]   # a 1M-product stand-in

``--products N`` serves a stand-in instead of ``--run``: N products in the real formats
(2018 metadata, ``.b`` features ``--dim`` wide, 64 by default: a served query costs the same
whatever the feature width, since every product's style vector is computed once at load;
:func:`write_stand_in`), built by ``build_graph`` and trained for one epoch of mahalanobis
at K = ``--k`` (the quality of that run does not matter here; the planted generator of the
scale benchmark needs far longer at this size). All of it is kept in
``benchmarks/cache/serve-<N>-d<D>/`` (git-ignored) and reused by the next call.

Goals (2 cores): on the sample's run 0 errors, p99 < 50 ms and >= 500 requests/s; at 1M
products p50 < 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / "cache"
HOST = "127.0.0.1"  # loopback only


def baseline(run: Path, asins: list[str], k: int, approx: bool) -> tuple[dict, object]:
    from graphrec.recommend import Recommender

    rec = Recommender.load(run, approx=True if approx else "auto")
    for asin in asins[:50]:
        rec.neighbours(asin, top=k)  # warm up
    seconds = np.empty(len(asins))
    errors = 0
    started, cpu = time.perf_counter(), time.process_time()
    for i, asin in enumerate(asins):
        start = time.perf_counter()
        errors += len(rec.neighbours(asin, top=k)) != k
        seconds[i] = time.perf_counter() - start
    result = _summary(seconds, time.perf_counter() - started, errors)
    result["cpu_ms"] = (time.process_time() - cpu) / len(asins) * 1e3
    return result, rec


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, port: int, paths: list[str], clients: int, k: int | None) -> dict:
    """:func:`load`, plus the server's CPU milliseconds per request."""
    before = cpu_seconds(pid)
    result = asyncio.run(load(port, paths, clients, k))
    after = cpu_seconds(pid)
    result["cpu_ms"] = (after - before) / len(paths) * 1e3 if before is not None and after is not None else float("nan")
    return result


def start_server(run: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "graphrec.cli", "serve", "--run", str(run), "--host", HOST, "--port", "0", "--no-access-log", *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    line = process.stdout.readline()
    match = re.search(r"on http://127\.0\.0\.1:(\d+)", line)
    if not match:
        process.kill()
        raise SystemExit(f"graphrec serve did not start: {line}{process.stdout.read()}")
    return process, match.group(1)


def wait_for_prefill(port: int, timeout: float = 120.0) -> None:
    """Wait until the service says it has kept every product's default answer (a small
    catalogue is prefilled in the background; with --cache 0 at once)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=10) as response:
            if json.loads(response.read())["prefilled"]:
                return
        time.sleep(0.2)
    raise SystemExit("the service did not finish prefilling its answers in time")


async def _get(reader, writer, path: str) -> tuple[int, bytes]:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    return status, await reader.readexactly(length)


async def _client(port: int, paths: list[str], k: int | None, latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        for path in paths:
            start = time.perf_counter()
            try:
                status, body = await _get(reader, writer, path)
            except (OSError, asyncio.IncompleteReadError, ValueError, AttributeError):
                errors.append(1)
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
                continue
            latencies.append(time.perf_counter() - start)
            if status != 200 or (k is not None and body.count(b'"rank"') != k):
                errors.append(1)
    finally:
        writer.close()


async def load(port: int, paths: list[str], clients: int, k: int | None) -> dict:
    latencies: list[float] = []
    errors: list[int] = []
    shares = [paths[i::clients] for i in range(clients)]
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, share, k, latencies, errors) for share in shares))
    return _summary(np.array(latencies), time.perf_counter() - started, len(errors))


def _summary(seconds: np.ndarray, wall: float, errors: int) -> dict:
    return {"requests": int(len(seconds) + (errors if not len(seconds) else 0)), "per_second": len(seconds) / wall,
            "p50_ms": float(np.percentile(seconds, 50) * 1e3), "p99_ms": float(np.percentile(seconds, 99) * 1e3), "errors": errors}


def _row(name: str, result: dict) -> str:
    return (f"| {name} | {result['per_second']:,.0f} | {result['p50_ms']:.2f} | {result['p99_ms']:.2f} | {result['errors']} "
            f"| {result['cpu_ms']:.2f} |")


def write_stand_in(folder: Path, products: int, dim: int, seed: int = 0) -> tuple[Path, Path]:
    """A ``products``-product catalogue in the real formats: 2018 metadata (JSON lines with
    title, brand, price, a category path and ``also_buy``) and McAuley ``.b`` features, from
    8-d hidden styles (``relu(z W)`` plus noise, ``dim`` wide); each product lists 3 products of
    its style group of 1,000. Written in chunks: a million products take about a minute."""
    from graphrec.io.features import BinaryFeatureWriter

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((8, dim)).astype(np.float32)
    groups = max(1, products // 1000)
    centres = rng.standard_normal((groups, 8)).astype(np.float32)
    asins = np.array([f"S{i:09d}" for i in range(products)])
    meta, features = folder / "meta.json", folder / "image_features.b"
    with meta.open("w") as lines, BinaryFeatureWriter(features, dim=dim) as writer:
        for start in range(0, products, 100_000):
            ids = np.arange(start, min(start + 100_000, products))
            group = ids % groups
            z = centres[group] + 0.3 * rng.standard_normal((len(ids), 8)).astype(np.float32)
            writer.write(list(asins[ids]), np.maximum(z @ weights + 0.1 * rng.standard_normal((len(ids), dim)), 0).astype(np.float32))
            partners = (rng.integers(0, products // groups, (len(ids), 3)) * groups + group[:, None]) % products
            for i, node in enumerate(ids):
                lines.write(json.dumps({"asin": asins[node], "title": f"Stand-in product {node} of style group {group[i]}",
                                        "brand": f"Brand {node % 500}", "price": f"${5 + node % 200}.99",
                                        "category": ["Clothing, Shoes & Jewelry", ("Women", "Men")[node % 2], f"Group {group[i] % 40}"],
                                        "also_buy": [str(asins[p]) for p in partners[i] if p != node]}) + "\n")
    return meta, features


def stand_in_run(products: int, dim: int, k: int) -> Path:
    """The RUN_DIR of a generated ``products``-product stand-in (see the module's notes),
    made on first use and then read from ``benchmarks/cache``."""
    folder = CACHE / f"serve-{products}-d{dim}"
    run = folder / f"run-k{k}"
    if (run / "config.json").is_file():
        return run
    from graphrec.graph import build_graph
    from graphrec.train import train

    started = time.perf_counter()
    if not (folder / "graph" / "manifest.json").is_file():
        print(f"writing a {products:,}-product stand-in ({dim}-d features) into {folder} (once)", flush=True)
        meta, features = write_stand_in(folder / "catalogue", products, dim)
        build_graph(meta, folder / "graph", features=features, feature_dim=dim, force=True, quiet=True)
        print(f"written and built in {time.perf_counter() - started:.0f} s", flush=True)
    train(folder / "graph", k=k, epochs=1, weight_decay=1e-3, out_dir=run, quiet=True, force=True, max_queries=100)
    print(f"stand-in run ready in {time.perf_counter() - started:.0f} s: {run}", flush=True)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("graphrec-sample/runs/mahalanobis-k10"), help="RUN_DIR to serve")
    parser.add_argument("--requests", type=int, default=5000, help="requests sent to the service (default 5000)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument("--k", type=int, default=10, help="recommendations per request (default 10)")
    parser.add_argument("--baseline-queries", type=int, default=2000, help="in-process calls timed (default 2000)")
    parser.add_argument("--approx", action="store_true", help="serve with an approximate index (graphrec serve --approx)")
    parser.add_argument("--products", type=int, default=None, help="serve a generated stand-in of this many products instead of --run")
    parser.add_argument("--dim", type=int, default=64, help="feature dimension of the --products stand-in (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.products is not None:
        args.run = stand_in_run(args.products, args.dim, args.k)
    if not (args.run / "config.json").is_file():
        raise SystemExit(f"{args.run} is not a RUN_DIR; train one first (e.g. ./run.sh demo) or pass --run.")

    from graphrec.runs import load_run

    catalogue = load_run(args.run).graph.asins
    rng = np.random.default_rng(args.seed)
    picks = [str(a) for a in catalogue[rng.integers(0, len(catalogue), args.requests + args.baseline_queries + 200)]]
    in_process, rec = baseline(args.run, picks[: args.baseline_queries], args.k, args.approx)
    index = rec.index.kind if rec.index is not None else "none"
    del rec
    paths = [f"/api/neighbours/{a}?k={args.k}" for a in picks[args.baseline_queries :]]
    served, health = {}, None
    for label, cache in (("uncached", ["--cache", "0"]), ("cached", [])):
        process, port = start_server(args.run, (["--approx"] if args.approx else []) + cache)
        try:
            wait_for_prefill(int(port))
            asyncio.run(load(int(port), paths[:200], min(args.clients, 8), args.k))  # warm up
            served[label] = measured(process.pid, int(port), paths[200:], args.clients, args.k)
            if health is None:
                health = measured(process.pid, int(port), ["/healthz"] * args.requests, args.clients, None)
        finally:
            process.terminate()
            process.wait(timeout=30)
    distinct = len(set(paths))
    load_average = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"bench_serve: run {args.run.name} ({len(catalogue):,} products, {index} index), k = {args.k}; "
          f"{args.requests:,} requests from {args.clients} clients on loopback; "
          f"{os.cpu_count()} CPUs, load average {load_average} (1, 5, 15 min)")
    print("| path | requests/s | p50 ms | p99 ms | errors | CPU ms per request |")
    print("|---|---:|---:|---:|---:|---:|")
    print(_row(f"in-process Recommender.neighbours, one caller ({args.baseline_queries:,} calls)", in_process))
    print(_row(f"HTTP GET /api/neighbours, {args.clients} clients, `--cache 0` (every answer computed)", served["uncached"]))
    print(_row(f"HTTP GET /api/neighbours, {args.clients} clients, default cache ({distinct:,} distinct queries of {len(paths):,})",
               served["cached"]))
    print(_row(f"HTTP GET /healthz, {args.clients} clients (the HTTP stack alone)", health))
    for label in ("uncached", "cached"):
        print(f"ratio {label} HTTP / in-process: {served[label]['per_second'] / in_process['per_second']:.2f}x requests/s, "
              f"p50 {served[label]['p50_ms'] / in_process['p50_ms']:.1f}x")
    print(json.dumps({"in_process": in_process, "http": served["uncached"], "http_cached": served["cached"], "healthz": health,
                      "products": len(catalogue), "load_average": os.getloadavg()}))
    return 0 if served["uncached"]["errors"] == 0 and served["cached"]["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
