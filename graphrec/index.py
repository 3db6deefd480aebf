"""A nearest-neighbour index over style vectors (faiss), and its cache in a RUN_DIR.

Distances are squared Euclidean, the model's own ``d(i, j) = ||s_i - s_j||^2``, so a
distance returned here plugs straight into ``sigmoid(c - d)``.

* ``kind="flat"`` (the default): ``faiss.IndexFlatL2``, exact.
* ``kind="ivf"``: ``faiss.IndexIVFFlat`` (approximate; ``nlist`` ~ 4 sqrt(n) lists,
  ``nprobe`` lists scanned per query). Good in low dimension, where the style space of
  a K = 10 model lives.
* ``kind="hnsw"``: ``faiss.IndexHNSWFlat`` (approximate, graph based).
* ``kind="pq"``: 4-bit product-quantisation codes scanned with SIMD ("fast scan"), the
  best ``refine * k`` re-ranked with exact distances. Inverted lists and graphs lose
  recall fast in high dimension (K = 100); a compressed full scan does not.
* ``kind="approx"``: ``ivf`` up to :data:`IVF_MAX_DIM` dimensions, ``pq`` above.
* ``kind="auto"``: flat up to :data:`APPROX_THRESHOLD` vectors, ``approx`` above.

Restricting candidates to a subset (a category) uses a faiss ID selector, so the flat
index stays exact however few products match; an approximate index that comes back
short for a subset falls back to an exact scan of that subset.

The cache (:func:`cached_style_index`) keeps, in ``RUN_DIR/index/``, the embedded style
vectors (``style.npy``, the expensive part: every product through the model) and, for an
approximate kind, the trained faiss index. Both are keyed by a hash of ``model.pt`` and
the graph checksum, so retraining or rebuilding the graph invalidates them.
"""

from __future__ import annotations

import hashlib
import json
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import faiss
import numpy as np

from graphrec.errors import UsageError
from graphrec.fs import atomic_write, sha256_file

__all__ = [
    "APPROX_THRESHOLD",
    "INDEX_KINDS",
    "IVF_MAX_DIM",
    "StyleIndex",
    "build_index",
    "brute_force_search",
    "cache_key",
    "cached_style_index",
    "recall_at_k",
]

APPROX_THRESHOLD = 2_000_000
IVF_MAX_DIM = 32
ONE_THREAD_MAX_DIM = 32
INDEX_KINDS = ("auto", "approx", "flat", "ivf", "hnsw", "pq")
CACHE_VERSION = 1


@dataclass
class StyleIndex:
    """A faiss index over ``vectors`` (float32 ``[n, d]``, row i = node i)."""

    index: faiss.Index
    vectors: np.ndarray
    kind: str

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def is_exact(self) -> bool:
        return self.kind == "flat"

    def search(self, queries: np.ndarray, k: int, subset: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest rows to each query: ``(distances [m, k], ids [m, k])``.

        ``subset`` (sorted int64 node ids, or a bool mask over all nodes) restricts the
        candidates. Missing results (fewer than ``k`` candidates) have id -1 and distance inf.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, int(k))
        if subset is None:
            with _one_thread_for_few_queries(self.kind == "flat" and len(queries) < 20 and self.dim < ONE_THREAD_MAX_DIM):
                distances, ids = self.index.search(queries, min(k, self.ntotal))
            return _pad(distances, ids, k)
        subset = _as_ids(subset, self.ntotal)
        if subset.size == 0:
            return _pad(np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64), k)
        want = min(k, subset.size)
        if self.kind in ("flat", "ivf", "hnsw"):
            params = _search_params(self.index, faiss.IDSelectorBatch(subset))
            distances, ids = self.index.search(queries, want, params=params)
        else:  # fast-scan codes take no selector
            ids = np.full((len(queries), want), -1, np.int64)
            distances = np.full((len(queries), want), np.inf, np.float32)
        if not self.is_exact and (ids < 0).any():
            # an approximate index scanned too little of a small subset: answer exactly
            distances, ids = brute_force_search(self.vectors[subset], queries, want)
            ids = subset[ids]
        return _pad(distances, ids, k)


@contextmanager
def _one_thread_for_few_queries(enabled: bool):
    """Run a search of a few low-dimensional queries on one OpenMP thread.

    faiss scans the whole index for each query; below 20 queries and in low dimension
    that scan is short (a few ms at 1M x 10) and a second thread mostly adds
    synchronisation, which costs 10x when the cores are busy (measured by the benchmark).
    """
    if not enabled:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _search_params(index: faiss.Index, selector) -> faiss.SearchParameters:
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexIVF):
        return faiss.SearchParametersIVF(sel=selector, nprobe=inner.nprobe)
    if isinstance(inner, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(sel=selector, efSearch=inner.hnsw.efSearch)
    return faiss.SearchParameters(sel=selector)


def _as_ids(subset: np.ndarray, n: int) -> np.ndarray:
    subset = np.asarray(subset)
    if subset.dtype == bool:
        if subset.shape != (n,):
            raise ValueError(f"subset mask has shape {subset.shape}, expected ({n},)")
        return np.flatnonzero(subset).astype(np.int64)
    return np.unique(subset.astype(np.int64))


def _pad(distances: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    distances = np.where(ids < 0, np.inf, distances).astype(np.float32)
    if ids.shape[1] < k:
        extra = k - ids.shape[1]
        distances = np.hstack([distances, np.full((len(ids), extra), np.inf, np.float32)])
        ids = np.hstack([ids, np.full((len(ids), extra), -1, np.int64)])
    return distances, ids.astype(np.int64)


def brute_force_search(vectors: np.ndarray, queries: np.ndarray, k: int, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN in plain numpy (the baseline the index is measured against).

    Squared distances ``|q|^2 + |x|^2 - 2 q.x`` by matrix product, then ``argpartition``;
    queries go ``chunk`` at a time (default: about 64M distances at once) to bound memory.
    Returns ``(distances, ids)`` sorted by distance.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    chunk = chunk or max(1, (1 << 26) // max(1, len(vectors)))
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    k = min(int(k), len(vectors))
    norms = np.einsum("ij,ij->i", vectors, vectors)
    out_d = np.empty((len(queries), k), np.float32)
    out_i = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), chunk):
        q = queries[start : start + chunk]
        dist = norms[None, :] - 2.0 * (q @ vectors.T)
        dist += np.einsum("ij,ij->i", q, q)[:, None]
        top = np.argpartition(dist, k - 1, axis=1)[:, :k] if k < dist.shape[1] else np.tile(np.arange(dist.shape[1]), (len(q), 1))
        top_d = np.take_along_axis(dist, top, axis=1)
        order = np.argsort(top_d, axis=1, kind="stable")
        out_i[start : start + len(q)] = np.take_along_axis(top, order, axis=1)
        out_d[start : start + len(q)] = np.maximum(np.take_along_axis(top_d, order, axis=1), 0.0)
    return out_d, out_i


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of ``truth`` (exact ids) present in the same row of ``found``."""
    k = truth.shape[1]
    hits = [len(set(a[a >= 0].tolist()) & set(b.tolist())) for a, b in zip(found, truth)]
    return float(np.sum(hits) / (k * len(truth)))


def build_index(
    vectors: np.ndarray,
    kind: str = "auto",
    *,
    nlist: int | None = None,
    nprobe: int | None = None,
    hnsw_m: int = 32,
    ef_search: int = 128,
    refine: int = 50,
    threshold: int = APPROX_THRESHOLD,
    seed: int = 0,
) -> StyleIndex:
    """Index ``vectors`` (float32 ``[n, d]``) with the given ``kind`` (see module docstring)."""
    if kind not in INDEX_KINDS:
        raise UsageError(f"unknown index kind {kind!r}; choose one of {', '.join(INDEX_KINDS)}.")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    kind = resolve_kind(kind, n, d, threshold)
    if kind in ("ivf", "pq") and n < 1000:
        kind = "flat"  # too few points to train lists; exact is cheap anyway
    if kind == "flat":
        index = faiss.IndexFlatL2(d)
    elif kind == "ivf":
        nlist = nlist or default_nlist(n)
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist)
        rng = np.random.default_rng(seed)
        train = vectors if n <= 64 * nlist else vectors[np.sort(rng.choice(n, 64 * nlist, replace=False))]
        index.cp.seed = seed
        index.train(train)
        index.nprobe = nprobe or default_nprobe(nlist)
    elif kind == "pq":
        index = faiss.index_factory(d, f"PQ{pq_subquantizers(d)}x4fs,RFlat")
        rng = np.random.default_rng(seed)
        index.train(vectors if n <= 65_536 else vectors[np.sort(rng.choice(n, 65_536, replace=False))])
        faiss.downcast_index(index).k_factor = float(refine)
    else:
        index = faiss.IndexHNSWFlat(d, hnsw_m)
        index.hnsw.efConstruction = max(40, hnsw_m * 2)
        index.hnsw.efSearch = ef_search
    index.add(vectors)
    return StyleIndex(index=index, vectors=vectors, kind=kind)


def resolve_kind(kind: str, n: int, d: int, threshold: int = APPROX_THRESHOLD) -> str:
    """The concrete index kind for ``kind`` ("auto"/"approx" resolved by size and dimension)."""
    if kind == "auto":
        kind = "approx" if n > threshold else "flat"
    if kind == "approx":
        kind = "ivf" if d <= IVF_MAX_DIM else "pq"
    return kind


def pq_subquantizers(d: int) -> int:
    """Sub-quantisers for the fast-scan PQ: about two dimensions each (a divisor of ``d``)."""
    for m in range(max(1, d // 2), 0, -1):
        if d % m == 0 and d // m <= 2:
            return m
    return d


def default_nlist(n: int) -> int:
    """About 4 sqrt(n) inverted lists, at least 1 and at most n / 39 (faiss's training floor)."""
    return int(max(1, min(4 * math.sqrt(n), n // 39)))


def default_nprobe(nlist: int) -> int:
    """Lists scanned per query: recall@10 >= 0.95 on 10-d data at 1M vectors (see benchmark)."""
    return int(min(nlist, max(8, round(nlist / 128))))


def cache_key(model_path: str | Path, graph_checksum: str, extra: str = "") -> str:
    """Hash of the model weights file and the graph checksum (and cache format version)."""
    return hashlib.sha256(f"{sha256_file(model_path)}|{graph_checksum}|{CACHE_VERSION}|{extra}".encode()).hexdigest()


def cached_style_index(
    cache_dir: str | Path | None,
    key: str,
    embed_all: Callable[[], np.ndarray],
    kind: str = "auto",
    rows: int | None = None,
    **options,
) -> StyleIndex:
    """Load the style vectors and index from ``cache_dir`` when ``key`` matches, else rebuild.

    A cached file that is damaged, pickled, of another shape than ``rows`` (when given)
    or not finite is ignored and rebuilt, never trusted.

    ``embed_all()`` computes the ``[n, d]`` style vectors (called only on a miss). A cache
    directory that cannot be written (a read-only RUN_DIR) only costs the rebuild;
    ``cache_dir`` None skips the cache altogether.
    """
    if cache_dir is None:
        return build_index(embed_all(), kind, **options)
    cache_dir = Path(cache_dir)
    meta_path = cache_dir / "index.json"
    meta = _read_cache_meta(meta_path)
    vectors = None
    if meta.get("key") == key and (cache_dir / "style.npy").is_file():
        vectors = _load_vectors(cache_dir / "style.npy", rows)
    if vectors is None:
        meta = {"key": key, "indexes": {}}
    if vectors is None:
        vectors = np.ascontiguousarray(embed_all(), dtype=np.float32)
        if _try_write(cache_dir, "style.npy", lambda path: np.save(path, vectors)):
            _try_write(cache_dir, "index.json", lambda path: path.write_text(json.dumps(meta, indent=2)))
    n = len(vectors)
    resolved = resolve_kind(kind, n, vectors.shape[1], options.get("threshold", APPROX_THRESHOLD))
    if resolved == "flat":
        return build_index(vectors, "flat")
    name = f"{resolved}-" + "-".join(f"{k}{v}" for k, v in sorted(options.items()) if k != "threshold") + ".faiss"
    if name in meta.get("indexes", {}) and (cache_dir / name).is_file():
        try:
            index = faiss.read_index(str(cache_dir / name))
        except RuntimeError:  # damaged or foreign: rebuilt below
            index = None
        if index is not None and index.ntotal == n and index.d == vectors.shape[1]:
            return StyleIndex(index=index, vectors=np.ascontiguousarray(vectors), kind=faiss_kind(index))
    built = build_index(vectors, resolved, **options)
    if _try_write(cache_dir, name, lambda path: faiss.write_index(built.index, str(path))):
        meta.setdefault("indexes", {})[name] = {"kind": built.kind, "ntotal": built.ntotal}
    _try_write(cache_dir, "index.json", lambda path: path.write_text(json.dumps(meta, indent=2)))
    return built


def _load_vectors(path: Path, rows: int | None) -> np.ndarray | None:
    """The cached ``style.npy`` (memory-mapped) when it is a sane float32 matrix, else None."""
    try:
        vectors = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if vectors.ndim != 2 or vectors.dtype != np.float32 or (rows is not None and vectors.shape[0] != rows):
        return None
    if not np.isfinite(vectors).all():
        return None
    return vectors


def faiss_kind(index: faiss.Index) -> str:
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexIVF):
        return "ivf"
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(inner, faiss.IndexRefine):
        return "pq"
    return "flat"


def _read_cache_meta(path: Path) -> dict:
    """``index.json`` of a cache when it has the shape this module writes (``key`` a string,
    ``indexes`` an object of objects); anything else (missing, damaged, another shape) is
    an empty cache, rebuilt by the caller."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(meta, dict) or not isinstance(meta.get("key"), str):
        return {}
    indexes = meta.get("indexes", {})
    if not isinstance(indexes, dict) or not all(isinstance(entry, dict) for entry in indexes.values()):
        return {"key": meta["key"], "indexes": {}}
    return meta


def _try_write(directory: Path, name: str, write: Callable[[Path], object]) -> bool:
    """Write ``directory/name`` via a temp file renamed into place; False if not writable."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write(directory / name, write)
        return True
    except OSError:
        return False
