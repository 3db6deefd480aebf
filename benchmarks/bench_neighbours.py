"""Speed of the neighbours index on random style vectors (issue 5, "Speed").

For each dimension (default 10 and 100) on ``--size`` random float32 vectors:

* single-query latency (p50 / p99, ms) and queries per second of the exact faiss index
  (``IndexFlatL2``) against brute-force numpy on the same queries (existing products as
  queries, ``k + 1`` results as ``neighbours`` asks for);
* batched throughput of both, and of the approximate index (IVF in low dimension,
  fast-scan PQ with exact re-ranking in high dimension) at a few settings, each with its
  recall@10 against the exact answer and its speed-up over brute force.

    python benchmarks/bench_neighbours.py                 # 1M vectors, d = 10 and 100
    python benchmarks/bench_neighbours.py --size 200000   # quicker

Goals (1M products, 2 cores): exact p50 < 5 ms and faster than numpy; approximate
>= 50x brute-force batched throughput with recall@10 >= 0.95.
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from graphrec.index import brute_force_search, build_index, recall_at_k, resolve_kind

K = 10


def latencies(search, queries: np.ndarray) -> np.ndarray:
    """Seconds per single-query call of ``search(q[1, d])``."""
    search(queries[:1])  # warm up
    out = np.empty(len(queries))
    for i in range(len(queries)):
        start = time.perf_counter()
        search(queries[i : i + 1])
        out[i] = time.perf_counter() - start
    return out


def timed(call):
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def row(name: str, qps: float, p50: float | None = None, p99: float | None = None, recall: float | None = None, ratio: float | None = None) -> None:
    fmt = lambda v, f: format("-", ">" + f[1:].split(",")[0].split(".")[0]) if v is None else format(v, f)  # noqa: E731
    print(f"  {name:<34} {fmt(qps, '>10,.0f')} {fmt(p50, '>9.2f')} {fmt(p99, '>9.2f')} {fmt(recall, '>8.3f')} {fmt(ratio, '>9.1f')}", flush=True)


def bench_dim(n: int, d: int, single: int, batch: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, d), dtype=np.float32)
    queries = vectors[rng.choice(n, max(single, batch), replace=False)]
    print(f"\nn = {n:,}, d = {d}  ({single} single queries, batches of {batch}, k = {K} + the query itself)")
    print(f"  {'method':<34} {'qps':>10} {'p50 ms':>9} {'p99 ms':>9} {'recall':>8} {'vs numpy':>9}")

    exact, build_s = timed(lambda: build_index(vectors, "flat"))
    numpy_lat = latencies(lambda q: brute_force_search(vectors, q, K + 1), queries[:single])
    flat_lat = latencies(lambda q: exact.search(q, K + 1), queries[:single])
    row("numpy brute force, single", 1 / numpy_lat.mean(), np.median(numpy_lat) * 1e3, np.percentile(numpy_lat, 99) * 1e3, 1.0, 1.0)
    row("faiss exact (flat), single", 1 / flat_lat.mean(), np.median(flat_lat) * 1e3, np.percentile(flat_lat, 99) * 1e3, 1.0,
        numpy_lat.mean() / flat_lat.mean())

    batch_q = queries[:batch]
    (_, truth), numpy_s = timed(lambda: brute_force_search(vectors, batch_q, K + 1))
    numpy_qps = batch / numpy_s
    _, flat_s = timed(lambda: exact.search(batch_q, K + 1))
    row("numpy brute force, batched", numpy_qps, None, None, 1.0, 1.0)
    row("faiss exact (flat), batched", batch / flat_s, None, None, 1.0, numpy_s / flat_s)
    exact = None  # frees the index before the approximate ones are built (the lambdas above have run)

    kind = resolve_kind("approx", n, d)
    settings = {"ivf": [{"nprobe": p} for p in (16, 32, 64)], "pq": [{"refine": r} for r in (20, 50, 100)]}[kind]
    approx, build_s = timed(lambda: build_index(vectors, kind, **settings[0]))
    print(f"  (approximate index: {kind}, built in {build_s:.1f} s)")
    for setting in settings:
        inner = faiss.downcast_index(approx.index)
        if kind == "ivf":
            inner.nprobe = setting["nprobe"]
        else:
            inner.k_factor = float(setting["refine"])
        (_, found), approx_s = timed(lambda: approx.search(batch_q, K + 1))
        recall = recall_at_k(found[:, :K], truth[:, :K])
        lat = latencies(lambda q: approx.search(q, K + 1), queries[: min(single, 100)])
        label = ", ".join(f"{k}={v}" for k, v in setting.items())
        row(f"faiss {kind} ({label}), batched", batch / approx_s, None, None, recall, numpy_s / approx_s)
        row(f"faiss {kind} ({label}), single", 1 / lat.mean(), np.median(lat) * 1e3, np.percentile(lat, 99) * 1e3, None, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000, help="number of random style vectors (default 1M)")
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 100], help="style-space dimensions (default 10 100)")
    parser.add_argument("--single", type=int, default=100, help="single queries timed one by one (default 100)")
    parser.add_argument("--batch", type=int, default=500, help="queries per batched search (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"faiss {faiss.__version__}, numpy {np.__version__}, {faiss.omp_get_max_threads()} OpenMP threads")
    for d in args.dims:
        bench_dim(args.size, d, args.single, args.batch, args.seed)


if __name__ == "__main__":
    main()
