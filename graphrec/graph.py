"""The product graph: build it from the readers' output, store it as GRAPH_DIR, load it back.

GRAPH_DIR layout (``FORMAT_VERSION`` 1)::

    manifest.json      counts, sources, options, drops (see README)
    graph.pt           {"format_version", "num_nodes", "edge_index": {relation: int64 [2, E]}}
                       each undirected edge once, row < col, sorted, unique; loads with
                       torch.load(..., weights_only=True)
    features.npy       [num_nodes, feature_dim] float16 (or float32), row i = node i;
                       absent when the graph was built without features
    products.parquet   one row per node, in node order: asin, title, brand, price,
                       category, categories, image_url, image_path

:class:`Graph` is the in-memory view every later stage uses; ``Graph.to_pyg()`` gives a
PyG ``HeteroData`` with node type ``"product"`` and one edge type per relation.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
import warnings
from array import array

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: interrupted builds are then never cleaned up
    fcntl = None
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from graphrec.errors import DataError, UsageError
from graphrec.io.images import scan_images

__all__ = [
    "FORMAT_VERSION",
    "NODE_TYPE",
    "BuildResult",
    "Graph",
    "build_graph",
    "canonical_edges",
    "clean_stale_builds",
    "find_images",
    "join_category",
    "load_graph",
    "manifest_checksum",
    "read_sidecar",
    "split_category",
]

FORMAT_VERSION = 1
NODE_TYPE = "product"
RELATIONS = ("also_bought", "also_viewed", "bought_together", "buy_after_viewing")


def manifest_checksum(graph_dir: str | Path) -> str:
    """SHA-256 of a GRAPH_DIR's manifest: runs record it to detect a graph that changed."""
    return hashlib.sha256((Path(graph_dir) / "manifest.json").read_bytes()).hexdigest()


@dataclass
class Graph:
    """A loaded GRAPH_DIR. Node ``i`` is ``asins[i]``, ``products.iloc[i]`` and ``features[i]``."""

    path: Path
    manifest: dict
    products: pd.DataFrame
    edges: dict[str, torch.Tensor]
    features: np.ndarray | None = None  # memory-mapped, read-only
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_arrays(
        cls,
        asins: list[str],
        edges: dict[str, "torch.Tensor | np.ndarray"],
        features: np.ndarray | None = None,
        products: pd.DataFrame | None = None,
        manifest: dict | None = None,
        path: str | Path = "<memory>",
    ) -> "Graph":
        """An in-memory graph (tests, the Python API). Edges are canonicalised:
        undirected, row < col, unique, sorted, no self-loops."""
        table = pd.DataFrame({"asin": list(asins)}) if products is None else products.reset_index(drop=True)
        canonical = {name: canonical_edges(index, len(table)) for name, index in edges.items()}
        manifest = manifest or {
            "format_version": FORMAT_VERSION,
            "num_nodes": len(table),
            "feature_dim": None if features is None else int(features.shape[1]),
            "relations": {name: {"num_edges": int(e.shape[1])} for name, e in canonical.items()},
        }
        return cls(path=Path(path), manifest=manifest, products=table, edges=canonical, features=features)

    @property
    def num_nodes(self) -> int:
        return len(self.products)

    @property
    def images_dir(self) -> str | None:
        """The local images folder recorded at build time (``--images``, else the features
        sidecar's): pictures read only files inside it."""
        return (self.manifest.get("options") or {}).get("images") or (self.manifest.get("features") or {}).get("images_dir")

    @property
    def feature_dim(self) -> int | None:
        return None if self.features is None else int(self.features.shape[1])

    @property
    def relations(self) -> list[str]:
        return list(self.edges)

    @cached_property
    def asins(self) -> np.ndarray:
        return self.products["asin"].to_numpy()

    @cached_property
    def asin_to_index(self) -> dict[str, int]:
        return {asin: i for i, asin in enumerate(self.asins)}

    @cached_property
    def checksum(self) -> str:
        return manifest_checksum(self.path)

    def index_of(self, asin: str) -> int:
        """Node index of ``asin``; a :class:`UsageError` with close matches when unknown."""
        try:
            return self.asin_to_index[asin]
        except KeyError:
            close = difflib.get_close_matches(asin, self.asin_to_index.keys(), n=3, cutoff=0.7) if self.num_nodes <= 200_000 else []
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UsageError(f"ASIN {asin} is not in the graph {self.path} ({self.num_nodes} products).{hint}") from None

    def edge_index(self, relation: str) -> torch.Tensor:
        """Undirected edges of ``relation``, each once with row < col: int64 ``[2, E]``."""
        if relation not in self.edges:
            have = ", ".join(self.edges) or "none"
            raise UsageError(f"relation {relation!r} is not in the graph {self.path} (it has: {have}).")
        return self.edges[relation]

    def require_features(self, what: str = "this command") -> np.ndarray:
        if self.features is None:
            raise UsageError(
                f"{what} needs image features, but the graph {self.path} was built without them; "
                "rebuild it with build-graph --features FILE.b (or extract them with extract-features)."
            )
        return self.features

    def category_mask(self, prefix: str) -> np.ndarray:
        """Boolean mask over nodes: products with any category path starting with ``prefix``.

        ``prefix`` is ``|``-separated (``"Clothing, Shoes & Jewelry|Men"``) and matches whole
        names only: ``"Clothing, Shoes & Jewelry|Men"`` does not match ``...|Mens Shoes``.
        """
        wanted = split_category(prefix)
        if "categories" not in self.products:
            return np.zeros(self.num_nodes, dtype=bool)
        return np.fromiter(
            (any(path.split("|")[: len(wanted)] == wanted for path in json.loads(paths or "[]"))
             for paths in self.products["categories"]),
            dtype=bool,
            count=self.num_nodes,
        )

    def to_pyg(self, with_features: bool = True):
        """A PyG ``HeteroData``: ``data['product'].x`` and both directions of every relation."""
        from torch_geometric.data import HeteroData

        data = HeteroData()
        data[NODE_TYPE].num_nodes = self.num_nodes
        if with_features and self.features is not None:
            data[NODE_TYPE].x = torch.from_numpy(np.asarray(self.features, dtype=np.float32))
        for relation, edge_index in self.edges.items():
            both = torch.cat([edge_index, edge_index.flip(0)], dim=1)
            data[NODE_TYPE, relation, NODE_TYPE].edge_index = both
        return data


def canonical_edges(edge_index, num_nodes: int) -> torch.Tensor:
    """Undirected, unique, sorted int64 ``[2, E]`` with row < col; self-loops removed."""
    index = torch.as_tensor(np.asarray(edge_index), dtype=torch.long).reshape(2, -1)
    if index.numel() and (index.min() < 0 or index.max() >= num_nodes):
        raise ValueError(f"edge index out of range for {num_nodes} nodes")
    pairs = index.numpy()
    low, high = np.minimum(pairs[0], pairs[1]), np.maximum(pairs[0], pairs[1])
    keep = low != high
    key = np.sort(low[keep] * num_nodes + high[keep])  # sort + neighbour compare: faster than unique
    if len(key):
        key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    return torch.from_numpy(np.stack([key // num_nodes, key % num_nodes]))


def _text_columns_as_objects(table: pd.DataFrame) -> pd.DataFrame:
    """Text columns as Python ``str`` / ``None`` (pandas 3 would read them as a string
    dtype with NaN for missing values), matching the documented ``str | None`` types."""
    for column in table.columns:
        if column != "price" and (pd.api.types.is_string_dtype(table[column]) or table[column].dtype == object):
            values = table[column].astype(object)
            table[column] = values.where(values.notna(), None)
    return table


def load_graph(graph_dir: str | Path, mmap: bool = True) -> Graph:
    """Load a GRAPH_DIR written by ``build-graph``; features stay memory-mapped."""
    path = Path(graph_dir)
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise UsageError(f"{path} is not a graph directory (no manifest.json); build one with graphrec build-graph.")
    rebuild = "rebuild it with graphrec build-graph --force"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{manifest_path} is not valid JSON ({error}); {rebuild}.") from None
    if not isinstance(manifest, dict):
        raise DataError(f"{manifest_path} does not hold a JSON object; {rebuild}.")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise DataError(
            f"{path} was written in graph format version {version}, this graphrec reads version "
            f"{FORMAT_VERSION}; rebuild it with graphrec build-graph --force."
        )
    stored = _load_graph_file(path / "graph.pt", rebuild)
    try:
        products = _text_columns_as_objects(pd.read_parquet(path / "products.parquet"))
    except Exception as error:  # missing, truncated or not Parquet
        raise DataError(f"{path / 'products.parquet'} cannot be read ({type(error).__name__}); {rebuild}.") from None
    if "asin" not in products:
        raise DataError(f"{path / 'products.parquet'} has no asin column; {rebuild}.")
    features = None
    if (path / "features.npy").is_file():
        features = _load_features(path / "features.npy", mmap, manifest.get("feature_dim"), rebuild)
        if features.shape[0] != len(products):
            raise DataError(f"{path / 'features.npy'} has {features.shape[0]} rows but the graph has {len(products)} products; rebuild it.")
    if stored["num_nodes"] != len(products):
        raise DataError(f"{path / 'graph.pt'} has {stored['num_nodes']} nodes but products.parquet has {len(products)}; rebuild it.")
    return Graph(path=path, manifest=manifest, products=products, edges=dict(stored["edge_index"]), features=features)


def _load_graph_file(file: Path, rebuild: str) -> dict:
    """``graph.pt`` read with ``weights_only=True`` (never unpickles code) and checked:
    ``num_nodes`` and one int64 ``[2, E]`` tensor per relation with indices in range."""
    try:
        stored = torch.load(file, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise DataError(f"{file} is missing; {rebuild}.") from None
    except Exception as error:  # pickle.UnpicklingError for anything but plain tensors and containers
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{file} is not a graph file graphrec wrote (refused to load it: {first[:160]}); {rebuild}.") from None
    edges = stored.get("edge_index") if isinstance(stored, dict) else None
    num_nodes = stored.get("num_nodes") if isinstance(stored, dict) else None
    if not isinstance(edges, dict) or not isinstance(num_nodes, int):
        raise DataError(f"{file} does not hold num_nodes and edge_index; {rebuild}.")
    for relation, index in edges.items():
        if (not isinstance(index, torch.Tensor) or index.dtype != torch.long or index.dim() != 2 or index.shape[0] != 2
                or (index.numel() and (int(index.min()) < 0 or int(index.max()) >= num_nodes))):
            raise DataError(f"{file}: the edges of {relation!r} are not a valid [2, E] index over {num_nodes} nodes; {rebuild}.")
    return stored


def _load_features(file: Path, mmap: bool, dim, rebuild: str) -> np.ndarray:
    """``features.npy`` as a 2-d float16/float32 array (memory-mapped), never unpickled."""
    try:
        features = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as error:  # object arrays (pickles), a damaged header, a truncated body
        raise DataError(f"{file} is not a plain float feature matrix ({error}); {rebuild}.") from None
    if features.ndim != 2 or features.dtype not in (np.float16, np.float32):
        raise DataError(f"{file} holds a {features.dtype} array of shape {features.shape}, not a [products, dim] float matrix; {rebuild}.")
    if dim is not None and features.shape[1] != dim:
        raise DataError(f"{file} has {features.shape[1]} columns but the manifest says feature_dim {dim}; {rebuild}.")
    return features


# ----------------------------------------------------------------------------- building
#
# build_graph streams the metadata once (ASINs become int ids as they are read; related
# lists are kept as int32 arrays per relation), then the features file once (rows of
# the products that survive are appended to features.npy as they arrive), then turns
# the id arrays into canonical edge lists. Node order: first appearance in the features
# file when features are given (so they are written in one sequential pass), otherwise
# first appearance in the metadata.

DTYPES = ("float16", "float32")
_TORCH_DTYPES = {"float16": torch.float16, "float32": torch.float32}
_KEPT, _FILTERED = 1, 2  # per-ASIN status; 0 = only seen in someone's related list


def split_category(prefix: str) -> list[str]:
    """``"A|B"`` -> ``["A", "B"]`` (names stripped, empty names dropped)."""
    return [name.strip() for name in str(prefix).split("|") if name.strip()]


def join_category(path: list[str]) -> str:
    """A category path as one string, names joined with ``|`` (a ``|`` inside a name becomes ``/``)."""
    return "|".join(name.replace("|", "/") for name in path)


@dataclass
class BuildResult:
    """What :func:`build_graph` did: where the graph is, its manifest, messages for the user."""

    path: Path
    manifest: dict
    warnings: list[str] = field(default_factory=list)  # first few bad lines / records
    notes: list[str] = field(default_factory=list)  # e.g. "this graph has no features"
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per pass


class _Catalogue:
    """Products of the metadata pass, with ASINs interned as int ids."""

    def __init__(self, relations: tuple[str, ...] | None) -> None:
        self.ids: dict[str, int] = {}
        self.status = bytearray()
        self.relations = relations  # None: every relation present
        self.present: set[str] = set()
        self.src: dict[str, array] = {}
        self.dst: dict[str, array] = {}
        self.product_ids = array("i")  # id of row r
        self.titles: list = []
        self.brands: list = []
        self.prices = array("d")
        self.category: list[str] = []
        self.categories: list[str] = []
        self.image_urls: list = []
        self.duplicates = 0
        self.outside = 0
        self.top_categories: dict[str, int] = {}

    def intern(self, asin: str) -> int:
        ids = self.ids
        index = ids.setdefault(asin, len(ids))
        if index == len(self.status):
            self.status.append(0)
        return index

    def add(self, product, wanted: list[str] | None) -> None:
        pid = self.intern(product.asin)
        if self.status[pid]:
            self.duplicates += 1
            return
        paths = product.categories
        if paths:
            top = paths[0][0]
            self.top_categories[top] = self.top_categories.get(top, 0) + 1
        primary = paths[0] if paths else None
        if wanted is not None:
            depth = len(wanted)
            matching = [path for path in paths if path[:depth] == wanted]
            if not matching:
                self.status[pid] = _FILTERED
                self.outside += 1
                return
            primary = matching[0]
        self.status[pid] = _KEPT
        self.product_ids.append(pid)
        self.titles.append(product.title)
        self.brands.append(product.brand)
        self.prices.append(product.price)
        self.category.append(join_category(primary) if primary else "")
        self.categories.append(json.dumps([join_category(path) for path in paths], ensure_ascii=False))
        self.image_urls.append(product.image_url)
        ids, setdefault = self.ids, self.ids.setdefault
        for name, listed in product.related.items():
            if self.relations is not None and name not in self.relations:
                continue
            self.present.add(name)
            if not listed:
                continue
            targets = list(map(ids.get, listed))  # most listed ASINs are already known
            if None in targets:
                targets = [setdefault(asin, len(ids)) for asin in listed]
                self.status.extend(bytes(len(ids) - len(self.status)))
            if name not in self.dst:
                self.src[name], self.dst[name] = array("i"), array("i")
            self.dst[name].extend(targets)
            self.src[name].extend(array("i", [pid]) * len(targets))


class _NpyRowWriter:
    """Append rows to a ``.npy`` file through a plain file handle (no memory map, so
    resident memory does not grow with the matrix); the header's row count is
    reserved for ``capacity`` rows and rewritten on :meth:`close`."""

    def __init__(self, path: Path, capacity: int, dim: int, dtype: np.dtype) -> None:
        self.path, self.dim, self.dtype = path, dim, np.dtype(dtype)
        self.header_len = len(self._header(capacity))
        self.rows = 0
        self.handle = open(path, "wb")
        self.handle.write(self._header(capacity))

    def _header(self, rows: int, length: int | None = None) -> bytes:
        body = repr({"descr": self.dtype.str, "fortran_order": False, "shape": (rows, self.dim)}).encode("latin1")
        total = length or -(-(10 + len(body) + 1) // 64) * 64
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", total - 10) + body + b" " * (total - 11 - len(body)) + b"\n"

    def write(self, rows: np.ndarray) -> None:
        self.handle.write(np.ascontiguousarray(rows, dtype=self.dtype).data)
        self.rows += len(rows)

    def close(self) -> None:
        self.handle.seek(0)
        self.handle.write(self._header(self.rows, self.header_len))
        self.handle.truncate(self.header_len + self.rows * self.dim * self.dtype.itemsize)
        self.handle.close()


def _progress(quiet: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, disable=quiet or not console.is_terminal, transient=True,
    )


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _source(path: Path, **extra) -> dict:
    return {"path": str(path.resolve()), "size": path.stat().st_size, **extra}


def read_sidecar(features: str | Path) -> dict | None:
    """The JSON sidecar of a features file (``<features>.json``), or None when absent."""
    path = Path(str(features) + ".json")
    if not path.is_file():
        return None
    try:
        sidecar = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not valid JSON ({error}); fix it or delete it (it only describes the extractor).") from None
    if not isinstance(sidecar, dict):
        raise DataError(f"{path} should hold a JSON object describing the extractor; fix it or delete it.")
    return sidecar


def _check_features_finished(features: Path, sidecar: dict | None, records: int) -> None:
    """Refuse a features file that extract-features has not finished writing: its
    ``<file>.parts`` folder still exists, or its sidecar counts other records (a run killed
    after writing the file but before its sidecar), so the recorded network may be wrong."""
    parts = Path(str(features) + ".parts")
    if parts.is_dir():
        raise DataError(
            f"{features} is still being written by extract-features or its run was interrupted ({parts} exists); "
            "run the same extract-features command again to finish it, then build the graph."
        )
    expected = (sidecar or {}).get("num_images")
    if isinstance(expected, int) and expected != records:
        raise DataError(
            f"{features} has {records} records but its sidecar {features}.json describes {expected} images; "
            "the two do not belong together. Run extract-features again, or delete the sidecar if the file is right."
        )


def find_images(images_dir: str | Path) -> dict[str, str]:
    """``{ASIN: absolute path}`` of the product images directly inside ``images_dir``, chosen
    exactly as extract-features chooses them (:func:`graphrec.io.images.scan_images`)."""
    found, _, _ = scan_images(images_dir)
    return {asin: str(path) for asin, path in found.items()}


BUILD_LOCK = ".building.lock"
STALE_GRACE_SECONDS = 600.0


def _hold_build_lock(tmp: Path) -> int:
    """Create ``tmp/.building.lock`` and hold an exclusive ``flock`` on it for the build.

    The kernel releases the lock when the process dies, even by SIGKILL, so a later build
    can tell a directory left by a dead build from one that is still being written."""
    fd = os.open(tmp / BUILD_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _lock_is_free(lock: Path) -> bool | None:
    """True when nobody holds ``lock``, False when a running build does, None when it is absent."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return None
    except OSError:  # e.g. another user's build: leave it alone
        return False
    try:
        if fcntl is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True
    finally:
        os.close(fd)  # closing releases a lock we took


def clean_stale_builds(out: str | Path, grace_seconds: float = STALE_GRACE_SECONDS) -> list[Path]:
    """Remove what interrupted builds of ``out`` left beside it; returns the removed paths.

    * ``.<name>.building-*``: removed when its lock is free (its build died) or, lacking a
      lock file, when it is older than ``grace_seconds``; a build still running keeps it.
    * ``.<name>.old-*`` (a previous graph moved aside by ``--force``): when ``out`` is
      missing because the build died between its two renames, the newest complete one
      is renamed back to ``out``; when ``out`` exists, older ones are removed.
    """
    out = Path(out)
    parent = out.parent
    if not parent.is_dir():
        return []
    removed: list[Path] = []
    now = time.time()
    prefix = f".{out.name}."
    with os.scandir(parent) as entries:
        names = [e.name for e in entries if e.name.startswith(prefix) and e.is_dir(follow_symlinks=False)]
    for name in sorted(names):
        candidate = parent / name
        if not name[len(prefix):].startswith("building-"):
            continue
        free = _lock_is_free(candidate / BUILD_LOCK)
        try:
            old_enough = now - candidate.stat().st_mtime >= grace_seconds
        except FileNotFoundError:
            continue
        if free or (free is None and old_enough):
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    olds = [parent / n for n in names if n[len(prefix):].startswith("old-") and (parent / n / "manifest.json").is_file()]
    if olds and not out.exists() and not out.is_symlink():
        newest = max(olds, key=lambda p: p.stat().st_mtime)
        os.rename(newest, out)
        olds.remove(newest)
    if out.is_dir() and (out / "manifest.json").is_file():
        for old in olds:
            try:
                if now - old.stat().st_ctime >= grace_seconds or grace_seconds <= 0:
                    shutil.rmtree(old, ignore_errors=True)
                    removed.append(old)
            except FileNotFoundError:
                continue
    return removed


def _prepare_target(out: Path, force: bool) -> None:
    if out.exists() or out.is_symlink():
        if not force:
            raise UsageError(f"{out} already exists; pass --force to replace it, or choose another -o directory.")
        if not out.is_dir() or (any(out.iterdir()) and not (out / "manifest.json").is_file()):
            raise UsageError(f"{out} exists and is not a graph directory; refusing to replace it even with --force. Choose another -o directory.")


def build_graph(
    meta: str | Path,
    out: str | Path,
    features: str | Path | None = None,
    *,
    category: str | None = None,
    relations: "list[str] | tuple[str, ...] | None" = None,
    meta_format: str | None = None,
    feature_dim: int = 4096,
    dtype: str = "float16",
    images: str | Path | None = None,
    strict: bool = False,
    force: bool = False,
    quiet: bool = False,
) -> BuildResult:
    """Build a GRAPH_DIR at ``out`` from Amazon metadata (2014 or 2018 dump) and,
    optionally, a McAuley ``.b`` features file.

    Nodes are the products of ``meta`` (first record of a duplicated ASIN), restricted to
    those with a category path starting with ``category`` and, when ``features`` is
    given, to those with a feature record. One undirected edge set per relation in
    ``relations`` (default: every relation present). Everything is written to a
    temporary directory beside ``out`` and renamed into place at the end; an existing
    ``out`` is replaced only with ``force``. Raises :class:`DataError` /
    :class:`UsageError` with one clear sentence on bad input.
    """
    from graphrec import __version__
    from graphrec.io.features import BinaryFeatureReader
    from graphrec.io.metadata import RELATIONS as KNOWN, MetadataReader

    meta, out = Path(meta), Path(out)
    if dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}.")
    if relations is not None:
        relations = tuple(dict.fromkeys(r.strip() for r in relations if r.strip()))
        unknown = [r for r in relations if r not in KNOWN]
        if unknown or not relations:
            raise UsageError(f"unknown relation {', '.join(unknown) or '(none given)'}; choose from {', '.join(KNOWN)}.")
    wanted = split_category(category) if category else None
    if category is not None and not wanted:
        raise UsageError(f"--category {category!r} names no category; use a '|'-separated path such as 'Clothing, Shoes & Jewelry|Men'.")
    if images is not None and not Path(images).is_dir():
        raise UsageError(f"images directory {images} not found; pass an existing directory with --images.")
    notes: list[str] = [f"removed {stale.name}, left by an interrupted build" for stale in clean_stale_builds(out)]
    _prepare_target(out, force)
    reader = MetadataReader(meta, format=meta_format, strict=strict)  # checks the file, detects the format
    feature_reader = None
    if features is not None:
        feature_reader = BinaryFeatureReader(features, dim=feature_dim, copy=False)
    sidecar = read_sidecar(features) if features is not None else None
    if features is not None:
        _check_features_finished(Path(features), sidecar, feature_reader.num_records)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the graph is an ordinary directory
    lock = _hold_build_lock(tmp)  # tells a later build that this directory is in use
    result_warnings: list[str] = []
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    try:
        with _progress(quiet) as progress, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # --- pass 1: metadata
            catalogue = _Catalogue(relations)
            task = progress.add_task(f"metadata {meta.name}", total=reader.size)
            for count, product in enumerate(reader, start=1):
                catalogue.add(product, wanted)
                if not count & 4095:
                    progress.update(task, completed=reader.bytes_read)
            progress.update(task, completed=reader.size)
            result_warnings.extend(reader.messages)
            seconds["metadata"], clock = time.perf_counter() - clock, time.perf_counter()
            kept = len(catalogue.product_ids)
            if kept == 0:
                raise _empty(meta, reader, catalogue, category)
            num_ids = len(catalogue.ids)
            id_to_row = np.full(num_ids, -1, dtype=np.int64)
            id_to_row[np.frombuffer(catalogue.product_ids, dtype=np.int32)] = np.arange(kept)

            # --- pass 2: features (node order = order in the features file)
            dropped_features: dict[str, int] = {}
            feature_info = None
            if feature_reader is not None:
                node_ids, dropped_features, unused = _write_features(
                    feature_reader, catalogue, tmp / "features.npy", np.dtype(dtype), strict, progress
                )
                result_warnings.extend(feature_reader.messages)
                if len(node_ids) == 0:
                    raise DataError(
                        f"none of the {kept:,} products kept from {meta} has a record in {features} "
                        f"({feature_reader.num_records:,} records); check that both files are for the same category."
                    )
                feature_info = {
                    "path": str(Path(features).resolve()),
                    "dim": feature_dim,
                    "dtype": dtype,
                    "extractor": (sidecar or {}).get("extractor"),
                    "images_dir": (sidecar or {}).get("images_dir"),
                    "image_manifest": (sidecar or {}).get("image_manifest"),
                    "records": feature_reader.num_records,
                    "unused_records": unused,
                }
            else:
                node_ids = np.frombuffer(catalogue.product_ids, dtype=np.int32).astype(np.int64)
            seconds["features"], clock = time.perf_counter() - clock, time.perf_counter()
            num_nodes = len(node_ids)
            id_to_node = np.full(num_ids, -1, dtype=np.int64)
            id_to_node[node_ids] = np.arange(num_nodes)

            # --- pass 3: edges
            task = progress.add_task("edges", total=len(catalogue.present))
            edges, dangling, self_loops, listed = _edges(catalogue, id_to_node, num_nodes, lambda: progress.advance(task))
            for name in relations or ():
                if name not in edges:
                    notes.append(f"relation {name} does not occur in {meta}; its edge set is empty.")
                    edges[name] = torch.empty((2, 0), dtype=torch.long)
                    dangling[name], listed[name] = 0, 0

            seconds["edges"], clock = time.perf_counter() - clock, time.perf_counter()
            # --- products table, in node order
            rows = id_to_row[node_ids]
            images_dir = Path(images) if images is not None else None
            if images_dir is None and sidecar and sidecar.get("images_dir"):
                images_dir = Path(sidecar["images_dir"])
                if not images_dir.is_dir():
                    notes.append(f"the images directory {images_dir} named in {features}.json no longer exists; image_path is empty.")
                    images_dir = None
            table = _products_table(catalogue, node_ids, rows, images_dir)
            duplicates, outside = catalogue.duplicates, catalogue.outside
            del catalogue, id_to_row, id_to_node

            from graphrec.stats import graph_stats

            stats = graph_stats(num_nodes, edges)
            dropped = {
                "bad_lines": reader.bad_lines,
                "duplicate_asins": duplicates,
                "outside_category": outside,
                "no_features": (kept - num_nodes) if feature_reader is not None else 0,
                "self_loops": self_loops,
                "dangling": dangling,
                **{name: dropped_features.get(name, 0) for name in ("bad_asin", "non_finite", "duplicate_feature_asins")},
            }
            manifest = {
                "format_version": FORMAT_VERSION,
                "graphrec_version": __version__,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "num_nodes": num_nodes,
                "feature_dim": feature_dim if feature_reader is not None else None,
                "node_order": "features file" if feature_reader is not None else "metadata",
                "relations": {name: {"num_edges": int(index.shape[1]), "listed": listed[name]} for name, index in edges.items()},
                "dropped": dropped,
                "features": feature_info,
                "sources": {
                    "metadata": _source(meta, format=reader.format, lines=reader.lines, sha256=_sha256(meta),
                                        other_format_lines=reader.other_format_lines,
                                        bad_related=reader.bad_related),  # records kept, malformed relation lists ignored
                    "features": None if feature_reader is None else _source(Path(features), sha256=feature_reader.sha256),
                },
                "options": {
                    "category": category,
                    "relations": list(relations) if relations else None,
                    "format": meta_format or "auto",
                    "feature_dim": feature_dim,
                    "dtype": dtype,
                    "images": str(Path(images).resolve()) if images is not None else None,
                    "strict": strict,
                },
                "stats": stats,
            }
            torch.save({"format_version": FORMAT_VERSION, "num_nodes": num_nodes, "edge_index": edges}, tmp / "graph.pt")
            table.to_parquet(tmp / "products.parquet", index=False)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        _move_into_place(tmp, out, force)
        (out / BUILD_LOCK).unlink(missing_ok=True)
        seconds["write"] = time.perf_counter() - clock
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(lock)
    if feature_reader is None:
        notes.append(
            f"this graph has no image features: commands that need them (train with a visual decoder, neighbours) "
            f"will refuse it. Get features with graphrec extract-features (or McAuley's image_features_*.b) and "
            f"rebuild with --features FILE.b --force."
        )
    return BuildResult(path=out, manifest=manifest, warnings=result_warnings, notes=notes, seconds=seconds)


def _empty(meta: Path, reader, catalogue: _Catalogue, category: str | None) -> DataError:
    """The error for a metadata pass that kept no product, saying why."""
    if reader.lines == 0 or (reader.bad_lines == 0 and not catalogue.ids):
        return DataError(f"{meta} holds no products; pass an Amazon meta_*.json(.gz) file with --meta.")
    if catalogue.outside:
        top = sorted(catalogue.top_categories.items(), key=lambda item: -item[1])[:5]
        seen = "; ".join(f"{name!r} ({count:,})" for name, count in top) or "none"
        return DataError(
            f"no product of {meta} is in the category {category!r} ({catalogue.outside:,} products outside it); "
            f"top-level categories in the file: {seen}. Use a '|'-separated path starting with one of them."
        )
    return DataError(
        f"{meta} has no readable product ({reader.bad_lines:,} bad lines of {reader.lines:,}); "
        f"check that it is an Amazon 2014 or 2018 metadata file (or pass --format)."
    )


def _write_features(reader, catalogue: _Catalogue, path: Path, dtype: np.dtype, strict: bool, progress):
    """Stream ``reader`` into ``path`` keeping rows of kept products, first record wins.

    Returns ``(node_ids, dropped counts, unused records)``: ``node_ids[i]`` is the
    interned id of node ``i``.
    """
    ids, status = catalogue.ids, catalogue.status
    has_row = bytearray(len(status))
    node_ids = array("i")
    duplicates = unused = 0
    writer = _NpyRowWriter(path, len(catalogue.product_ids), reader.dim, dtype)
    task = progress.add_task(f"features {reader.path.name}", total=reader.num_records)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 4 MiB conversion is memory-bound; extra threads only add sync cost
    try:
        for chunk in reader:
            if strict and reader.dropped:
                raise DataError(f"{reader.messages[0]} (--strict: fix the file or drop --strict to skip such records).")
            take = []
            for i, asin in enumerate(chunk.asins):
                index = ids.get(asin)
                if index is None or status[index] != _KEPT:
                    unused += 1
                elif has_row[index]:
                    duplicates += 1
                else:
                    has_row[index] = 1
                    node_ids.append(index)
                    take.append(i)
            if take:
                values = chunk.values if len(take) == len(chunk.asins) else chunk.values[take]
                # torch converts float32 -> float16 several times faster than numpy (same rounding)
                aligned = np.array(values, dtype=np.float32, order="C")  # records are 2-byte aligned only
                rows = torch.from_numpy(aligned).to(_TORCH_DTYPES[dtype.name]).numpy()
                if dtype == np.float16 and not np.isfinite(rows).all():
                    bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))[0]
                    asin = chunk.asins[take[bad]]
                    raise DataError(
                        f"{reader.path}: ASIN {asin} has values beyond the float16 range (±65504); "
                        "rebuild with --dtype float32."
                    )
                writer.write(rows)
            if len(chunk.offsets):
                progress.update(task, completed=int(chunk.offsets[-1]) // reader.dtype.itemsize + 1)
        progress.update(task, completed=reader.num_records)
    finally:
        torch.set_num_threads(threads)
        writer.close()
    dropped = dict(reader.dropped)
    dropped["duplicate_feature_asins"] = duplicates
    return np.frombuffer(node_ids, dtype=np.int32).astype(np.int64), dropped, unused


def _edges(catalogue: _Catalogue, id_to_node: np.ndarray, num_nodes: int, advance=lambda: None):
    """Canonical edge lists per relation, plus drop counts and listed pair counts."""
    edges: dict[str, torch.Tensor] = {}
    dangling: dict[str, int] = {}
    listed: dict[str, int] = {}
    self_loops = 0
    for name in sorted(catalogue.present, key=lambda r: (r not in _RELATION_ORDER, _RELATION_ORDER.get(r, 0), r)):
        if name not in catalogue.dst:
            edges[name] = torch.empty((2, 0), dtype=torch.long)
            dangling[name] = listed[name] = 0
            continue
        src_ids = np.frombuffer(catalogue.src[name], dtype=np.int32)
        dst_ids = np.frombuffer(catalogue.dst[name], dtype=np.int32)
        src, dst = id_to_node[src_ids], id_to_node[dst_ids]
        from_node = src >= 0  # edges of a product that is not a node went with it
        loop = from_node & (src_ids == dst_ids)
        hanging = from_node & ~loop & (dst < 0)
        keep = from_node & ~loop & ~hanging
        self_loops += int(loop.sum())
        dangling[name] = int(hanging.sum())
        listed[name] = int(keep.sum())
        edges[name] = canonical_edges(np.stack([src[keep], dst[keep]]), num_nodes)
        del catalogue.src[name], catalogue.dst[name]
        advance()
    return edges, dangling, self_loops, listed


_RELATION_ORDER = {name: i for i, name in enumerate(RELATIONS)}


def _products_table(catalogue: _Catalogue, node_ids: np.ndarray, rows: np.ndarray, images_dir: Path | None) -> pd.DataFrame:
    asins = list(catalogue.ids)  # insertion order == interned id
    node_asins = [asins[i] for i in node_ids]
    del asins
    image_paths = [None] * len(node_asins)
    if images_dir is not None:
        found = find_images(images_dir)
        image_paths = [found.get(asin) for asin in node_asins]
    take = rows.tolist()
    return pd.DataFrame({
        "asin": pd.Series(node_asins, dtype=object),
        "title": pd.Series([catalogue.titles[r] for r in take], dtype=object),
        "brand": pd.Series([catalogue.brands[r] for r in take], dtype=object),
        "price": np.frombuffer(catalogue.prices, dtype=np.float64)[rows] if len(rows) else np.empty(0),
        "category": pd.Series([catalogue.category[r] for r in take], dtype=object),
        "categories": pd.Series([catalogue.categories[r] for r in take], dtype=object),
        "image_url": pd.Series([catalogue.image_urls[r] for r in take], dtype=object),
        "image_path": pd.Series(image_paths, dtype=object),
    })


def _move_into_place(tmp: Path, out: Path, force: bool) -> None:
    """Rename the finished ``tmp`` to ``out`` (replacing an old graph only with ``force``)."""
    _prepare_target(out, force)
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rmdir(old)
        os.rename(out, old)
    os.rename(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
