"""The stored graph: :class:`Graph`, the in-memory view every later stage uses, and
:func:`load_graph`, which reads a GRAPH_DIR back and checks every file before trusting it.

GRAPH_DIR layout (``FORMAT_VERSION`` 1)::

    manifest.json      counts, sources, options, drops (see README)
    graph.pt           {"format_version", "num_nodes", "edge_index": {relation: int64 [2, E]}}
                       each undirected edge once, row < col, sorted, unique; loads with
                       torch.load(..., weights_only=True)
    features.npy       [num_nodes, feature_dim] float16 (or float32), row i = node i;
                       absent when the graph was built without features
    products.parquet   one row per node, in node order: asin, title, brand, price,
                       category, categories, image_url, image_path

``Graph.to_pyg()`` gives a PyG ``HeteroData`` with node type ``"product"`` and one edge
type per relation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from graphrec.errors import DataError, UsageError, closest
from graphrec.fs import sha256_file
from graphrec.graph.categories import category_mask
from graphrec.graph.edges import canonical_edges
from graphrec.graph.suggest import IdSuggester
from graphrec.io.schema import Field, read_json_object, shape_problem

__all__ = [
    "FORMAT_VERSION", "MANIFEST", "NODE_TYPE", "Graph", "load_graph", "manifest_checksum", "manifest_fingerprint", "read_manifest",
]

FORMAT_VERSION = 1
NODE_TYPE = "product"


def manifest_checksum(graph_dir: str | Path) -> str:
    """SHA-256 of a GRAPH_DIR's manifest: runs record it to detect a graph that changed."""
    return sha256_file(Path(graph_dir) / "manifest.json")


# Manifest keys that say when, with which graphrec and from where a graph was built, not what it holds.
_WHEN = ("created", "graphrec_version")
_WHERE = ("path", "images", "images_dir", "image_manifest")


def _content(value):
    """``value`` without the keys of :data:`_WHERE` at any depth."""
    if isinstance(value, dict):
        return {key: _content(item) for key, item in value.items() if key not in _WHERE}
    if isinstance(value, list):
        return [_content(item) for item in value]
    return value


def manifest_fingerprint(manifest: dict) -> str:
    """SHA-256 of what a graph holds: its sources' checksums and sizes, the build options,
    the counts and statistics of the manifest, but not when, with which graphrec version or
    from which paths it was built. A ``build-graph --force`` on unchanged inputs, or the same
    inputs in a moved folder, gives the same fingerprint; any change of inputs or options a new one."""
    content = _content({key: item for key, item in manifest.items() if key not in _WHEN})
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class Graph:
    """A loaded GRAPH_DIR. Node ``i`` is ``asins[i]``, ``products.iloc[i]`` and ``features[i]``."""

    path: Path
    manifest: dict
    products: pd.DataFrame
    edges: dict[str, torch.Tensor]
    features: np.ndarray | None = None  # memory-mapped, read-only

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

    def __repr__(self) -> str:
        """``Graph('graphrec-sample/graph', 800 products, also_bought: 2,046 edges, features 800x4096 float16)``"""
        edges = ", ".join(f"{name}: {int(e.shape[1]):,} edges" for name, e in self.edges.items()) or "no edges"
        features = "no features" if self.features is None else \
            f"features {self.features.shape[0]}x{self.features.shape[1]} {self.features.dtype}"
        return f"Graph({str(self.path)!r}, {self.num_nodes:,} products, {edges}, {features})"

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
    def _suggest(self) -> IdSuggester:
        return IdSuggester(self.asins)

    def index_of(self, asin: str) -> int:
        """Node index of ``asin``; a :class:`UsageError` with close matches when unknown."""
        try:
            return self.asin_to_index[asin]
        except KeyError:
            close = self._suggest(str(asin))
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UsageError(f"ASIN {asin} is not in the graph {self.path} ({self.num_nodes} products).{hint}") from None

    def edge_index(self, relation: str) -> torch.Tensor:
        """Undirected edges of ``relation``, each once with row < col: int64 ``[2, E]``."""
        if relation not in self.edges:
            have = ", ".join(self.edges) or "none"
            near = closest(relation, self.edges)
            hint = f" Did you mean {near[0]}?" if near else ""
            raise UsageError(f"relation {relation!r} is not in the graph {self.path} (it has: {have}).{hint}")
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
        return category_mask(self.products.get("categories"), prefix, self.num_nodes)

    def to_pyg(self, with_features: bool = True, dtype: torch.dtype | None = None):
        """A PyG ``HeteroData``: both directions of every relation, ``data['product'].asin``
        (the ASIN of each node) and ``data['product'].x``, the features without a copy
        (a read-only view of the memory map, in their stored dtype) unless ``dtype`` asks
        for a conversion."""
        import warnings

        from torch_geometric.data import HeteroData

        data = HeteroData()
        data[NODE_TYPE].num_nodes = self.num_nodes
        data[NODE_TYPE].asin = [str(asin) for asin in self.asins]
        if with_features and self.features is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # a read-only map: PyG never writes to x
                x = torch.from_numpy(np.asarray(self.features))
            data[NODE_TYPE].x = x if dtype is None else x.to(dtype)
        for relation, edge_index in self.edges.items():
            both = torch.cat([edge_index, edge_index.flip(0)], dim=1)
            data[NODE_TYPE, relation, NODE_TYPE].edge_index = both
        return data


def _text_columns_as_objects(table: pd.DataFrame) -> pd.DataFrame:
    """Text columns as Python ``str`` / ``None`` (pandas 3 would read them as a string
    dtype with NaN for missing values), matching the documented ``str | None`` types."""
    for column in table.columns:
        if column != "price" and (pd.api.types.is_string_dtype(table[column]) or table[column].dtype == object):
            values = table[column].astype(object)
            table[column] = values.where(values.notna(), None)
    return table


_NULL = type(None)
_COUNTS = Field((int, dict), each=Field((int,)))  # a count, or a count per relation
MANIFEST = Field((dict,), fields={
    "format_version": Field((int,), required=True),
    "num_nodes": Field((int,), required=True),
    "feature_dim": Field((int, _NULL)),
    "relations": Field((dict,), each=Field((dict,), fields={"num_edges": Field((int,)), "listed": Field((int,))})),
    "dropped": Field((dict,), each=_COUNTS),
    "features": Field((dict, _NULL), fields={
        "dim": Field((int,), required=True),
        "dtype": Field((str,), required=True),
        "path": Field((str,), required=True),
        "extractor": Field((dict, _NULL)),
        "images_dir": Field((str, _NULL)),
        "image_manifest": Field((str, _NULL)),
    }),
    "options": Field((dict, _NULL), fields={"images": Field((str, _NULL)), "category": Field((str, _NULL))}),
    "sources": Field((dict,)),
    "stats": Field((dict,)),
})
"""The shape of manifest.json that graphrec reads back (build-graph writes more keys)."""


def read_manifest(path: Path) -> dict:
    """``path/manifest.json``, checked: valid JSON, this format version, the shape of :data:`MANIFEST`."""
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise UsageError(f"{path} is not a graph directory (no manifest.json); build one with graphrec build-graph.")
    manifest = read_json_object(manifest_path, Field((dict,)), _REBUILD)
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise DataError(
            f"{path} was written in graph format version {version}, this graphrec reads version "
            f"{FORMAT_VERSION}; rebuild it with graphrec build-graph --force."
        )
    problem = shape_problem(manifest, MANIFEST)
    if problem:
        raise DataError(f"{manifest_path} does not have the shape build-graph writes ({problem}); {_REBUILD}.")
    return manifest


_REBUILD = "rebuild it with graphrec build-graph --force"


def load_graph(graph_dir: str | Path, mmap: bool = True) -> Graph:
    """Load a GRAPH_DIR written by ``build-graph``; features stay memory-mapped."""
    path = Path(graph_dir)
    manifest = read_manifest(path)
    stored = _load_graph_file(path / "graph.pt", _REBUILD)
    try:
        products = _text_columns_as_objects(pd.read_parquet(path / "products.parquet"))
    except Exception as error:  # missing, truncated or not Parquet
        raise DataError(f"{path / 'products.parquet'} cannot be read ({type(error).__name__}); {_REBUILD}.") from None
    if "asin" not in products:
        raise DataError(f"{path / 'products.parquet'} has no asin column; {_REBUILD}.")
    features = None
    if (path / "features.npy").is_file():
        features = _load_features(path / "features.npy", mmap, manifest.get("feature_dim"), _REBUILD)
        if features.shape[0] != len(products):
            raise DataError(f"{path / 'features.npy'} has {features.shape[0]} rows but the graph has {len(products)} products; rebuild it.")
    elif manifest.get("feature_dim") is not None or manifest.get("features"):
        raise DataError(
            f"{path / 'features.npy'} is missing, but {path} was built with features "
            f"({manifest.get('feature_dim')}-d); restore the file or {_REBUILD}."
        )
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
        raise DataError(f"{file} has {features.shape[1]} columns but manifest.json beside it says feature_dim {dim}; {rebuild}.")
    return features


