"""Benchmark: metadata parsing, feature streaming and build-graph on generated data.

Writes its own inputs in the real formats (Amazon 2014 metadata as gzip Python literals,
McAuley ``.b`` features) under ``benchmarks/cache/`` (git-ignored) and prints:

* metadata lines/s with graphrec's reader, against ``ast.literal_eval`` on the same lines;
* features MB/s of ``BinaryFeatureReader``, against a raw sequential ``readinto`` of the
  same file (both from the page cache: the file has just been written);
* build-graph wall time and peak resident memory, each build in a fresh process (after
  imports and a 50-product warm-up build), as the growth over the resident memory before
  the build, next to the size of the stored feature matrix (``features.npy``); a second,
  5x larger feature file shows that the growth does not scale with the matrix.

    .venv/bin/python benchmarks/bench_build_graph.py [--products 4000] [--catalogue 100000] [--dim 4096] [--scale 5]
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / "cache"
CATEGORIES = [["Clothing, Shoes & Jewelry", "Men", "Shoes"], ["Clothing, Shoes & Jewelry", "Women", "Dresses"],
              ["Clothing, Shoes & Jewelry", "Men", "Shirts"], ["Sports & Outdoors", "Running"]]


def write_metadata(path: Path, n: int, seed: int = 0, related: int = 30) -> None:
    """``n`` products in the 2014 dump's format; each lists ~``related`` ASINs per relation,
    mostly other products of the catalogue, some outside it (dangling)."""
    rng = np.random.default_rng(seed)
    asins = [f"B{i:09d}" for i in range(n)]
    with gzip.open(path, "wt", compresslevel=1) as handle:
        for i, asin in enumerate(asins):
            def pick(k):
                ids = rng.integers(0, int(n * 1.1), size=k)
                return [asins[j] if j < n else f"X{j:09d}" for j in ids]

            record = {
                "asin": asin,
                "title": f"Men's \"Classic\" product {i}" if i % 3 == 0 else f"Product {i} in plain words",
                "price": round(float(rng.uniform(5, 200)), 2),
                "imUrl": f"http://ecx.images-amazon.com/images/I/{asin}.jpg",
                "related": {"also_bought": pick(int(rng.integers(0, related))),
                            "also_viewed": pick(int(rng.integers(0, related))),
                            "bought_together": pick(int(rng.integers(0, 3)))},
                "salesRank": {"Clothing": int(rng.integers(1, 10**6))},
                "categories": [CATEGORIES[i % len(CATEGORIES)]],
            }
            if i % 5 == 0:
                record["brand"] = "Acme"
            handle.write(repr(record) + "\n")


def write_features(path: Path, n: int, dim: int, seed: int = 1) -> None:
    """Features for a shuffled ~95% of the ``n`` products (fc7-like: ReLU, sparse, up to ~60)."""
    from graphrec.io.features import BinaryFeatureWriter

    rng = np.random.default_rng(seed)
    order = rng.permutation(n)[: int(n * 0.95)]
    with BinaryFeatureWriter(path, dim=dim) as writer:
        for start in range(0, len(order), 256):
            ids = order[start:start + 256]
            values = np.maximum(rng.normal(0, 8, size=(len(ids), dim)), 0).astype(np.float32)
            writer.write([f"B{i:09d}" for i in ids], values)


def time_metadata(path: Path) -> dict:
    from graphrec.io.metadata import MetadataReader, open_text_lines

    started = time.perf_counter()
    count = sum(1 for _ in MetadataReader(path, format="2014"))
    ours = time.perf_counter() - started
    lines = [text for _, text in open_text_lines(path)]
    sample = lines[: min(len(lines), 20_000)]
    started = time.perf_counter()
    for text in sample:
        ast.literal_eval(text)
    reference = (time.perf_counter() - started) * len(lines) / len(sample)
    return {"lines": count, "seconds": ours, "lines_per_s": count / ours, "literal_eval_lines_per_s": len(lines) / reference}


def time_features(path: Path, dim: int) -> dict:
    from graphrec.io.features import BinaryFeatureReader

    size = path.stat().st_size
    buffer = bytearray(8 * 1024 * 1024)
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as handle:
        while handle.readinto(buffer):
            pass
    raw = time.perf_counter() - started
    started = time.perf_counter()
    reader = BinaryFeatureReader(path, dim=dim, copy=False)
    for _ in reader:
        pass
    ours = time.perf_counter() - started
    started = time.perf_counter()
    for _ in BinaryFeatureReader(path, dim=dim, copy=False, checksum=False):
        pass
    no_hash = time.perf_counter() - started
    mb = size / 1e6
    return {"mb": mb, "raw_mb_per_s": mb / raw, "reader_mb_per_s": mb / ours, "reader_no_checksum_mb_per_s": mb / no_hash}


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child_build(meta: str, features: str | None, out: str, dim: int) -> None:
    """Run in a fresh process: one build, then its time and memory as JSON on stdout."""
    import pyarrow.parquet  # noqa: F401

    import graphrec.graph  # noqa: F401  (imports torch, pandas, pyarrow...)
    import graphrec.io.metadata  # noqa: F401
    import graphrec.stats  # noqa: F401
    from graphrec.graph import build_graph

    warm = Path(out).parent / "warm-up"
    warm.mkdir(exist_ok=True)
    write_metadata(warm / "meta.json.gz", 50)
    write_features(warm / "features.b", 50, dim)
    build_graph(warm / "meta.json.gz", warm / "graph", warm / "features.b", feature_dim=dim, force=True, quiet=True)
    shutil.rmtree(warm)  # lazy imports and allocator start-up now count as baseline, not as the build
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark
        reset = True
    except OSError:
        reset = False
    baseline = _status_kb("VmRSS")
    started = time.perf_counter()
    result = build_graph(meta, out, features, feature_dim=dim, force=True, quiet=True)
    seconds = time.perf_counter() - started
    peak = _status_kb("VmHWM")
    npy = Path(out) / "features.npy"
    print(json.dumps({
        "seconds": seconds, "passes": result.seconds, "baseline_mb": baseline / 1024, "peak_mb": peak / 1024, "peak_reset": reset,
        "growth_mb": (peak - baseline) / 1024, "num_nodes": result.manifest["num_nodes"],
        "edges": {k: v["num_edges"] for k, v in result.manifest["relations"].items()},
        "features_npy_mb": npy.stat().st_size / 1e6 if npy.exists() else 0.0,
    }))


def measure_build(meta: Path, features: Path | None, out: Path, dim: int) -> dict:
    command = [sys.executable, __file__, "--child", str(meta), str(features or ""), str(out), str(dim)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=4000, help="products with features (default 4000)")
    parser.add_argument("--catalogue", type=int, default=100_000, help="products of the metadata-only catalogue")
    parser.add_argument("--dim", type=int, default=4096, help="feature dimension (4096 = fc7)")
    parser.add_argument("--scale", type=int, default=5, help="size factor of the memory-scaling run (0: skip)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        meta, features, out, dim = args.child
        child_build(meta, features or None, out, int(dim))
        return

    CACHE.mkdir(parents=True, exist_ok=True)
    small_meta, small_features = CACHE / f"meta_{args.products}.json.gz", CACHE / f"features_{args.products}x{args.dim}.b"
    big_meta = CACHE / f"meta_{args.catalogue}.json.gz"
    started = time.perf_counter()
    if not small_meta.exists():
        write_metadata(small_meta, args.products)
    if not small_features.exists():
        write_features(small_features, args.products, args.dim)
    if not big_meta.exists():
        write_metadata(big_meta, args.catalogue, seed=2)
    large = args.products * args.scale
    large_meta, large_features = CACHE / f"meta_{large}.json.gz", CACHE / f"features_{large}x{args.dim}.b"
    if args.scale and not large_features.exists():
        write_metadata(large_meta, large, seed=3)
        write_features(large_features, large, args.dim, seed=4)
    print(f"inputs ready in {CACHE} ({time.perf_counter() - started:.1f} s)")
    print("note: the machine is shared; timings are noisy, and all reads come from the page cache.\n")

    meta = time_metadata(big_meta)
    print(f"metadata ({args.catalogue:,} products, 2014 format, gzip, {big_meta.stat().st_size / 1e6:.1f} MB):")
    print(f"  graphrec reader      {meta['lines_per_s']:>10,.0f} lines/s  ({meta['seconds']:.1f} s)")
    print(f"  ast.literal_eval     {meta['literal_eval_lines_per_s']:>10,.0f} lines/s  (parse only, baseline)")
    print(f"  ratio                {meta['lines_per_s'] / meta['literal_eval_lines_per_s']:>10.2f} x\n")

    feats = time_features(small_features, args.dim)
    print(f"features ({args.products:,} x {args.dim}, {feats['mb']:.0f} MB .b file):")
    print(f"  raw sequential read  {feats['raw_mb_per_s']:>10,.0f} MB/s  (baseline)")
    ratio = feats["reader_mb_per_s"] / feats["raw_mb_per_s"]
    print(f"  BinaryFeatureReader  {feats['reader_mb_per_s']:>10,.0f} MB/s  (ratio {ratio:.2f}, with SHA-256)")
    bare = feats["reader_no_checksum_mb_per_s"] / feats["raw_mb_per_s"]
    print(f"  without checksum     {feats['reader_no_checksum_mb_per_s']:>10,.0f} MB/s  (ratio {bare:.2f})\n")

    out = CACHE / "graph"
    cases = [(f"build-graph {args.products:,} products + {args.dim}-d features", small_meta, small_features)]
    if args.scale:
        cases.append((f"build-graph {large:,} products + {args.dim}-d features", large_meta, large_features))
    cases.append((f"build-graph {args.catalogue:,}-product catalogue, no features", big_meta, None))
    for label, meta_path, features_path in cases:
        build = measure_build(meta_path, features_path, out, args.dim)
        print(f"{label}:")
        passes = ", ".join(f"{name} {value:.2f} s" for name, value in build["passes"].items())
        print(f"  {build['seconds']:.1f} s ({passes}), {build['num_nodes']:,} nodes, edges {build['edges']}")
        if features_path:
            print(f"  features pass {features_path.stat().st_size / 1e6 / build['passes']['features']:,.0f} MB/s "
                  "(read, check, SHA-256, float16, write)")
        line = f"  peak RSS {build['peak_mb']:.0f} MB = {build['baseline_mb']:.0f} MB before + {build['growth_mb']:.0f} MB for the build"
        if build["features_npy_mb"]:
            line += f"; stored feature matrix {build['features_npy_mb']:.0f} MB (growth / matrix = {build['growth_mb'] / build['features_npy_mb']:.2f})"
        print(line + ("" if build["peak_reset"] else " (peak mark could not be reset: includes imports)"))
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
