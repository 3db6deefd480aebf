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
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from graphrec.errors import DataError, UsageError

__all__ = ["FORMAT_VERSION", "NODE_TYPE", "Graph", "canonical_edges", "load_graph", "manifest_checksum"]

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
    low, high = torch.minimum(index[0], index[1]), torch.maximum(index[0], index[1])
    keep = low != high
    key = torch.unique(low[keep] * num_nodes + high[keep])  # sorted
    return torch.stack([key // num_nodes, key % num_nodes])


def load_graph(graph_dir: str | Path, mmap: bool = True) -> Graph:
    """Load a GRAPH_DIR written by ``build-graph``; features stay memory-mapped."""
    path = Path(graph_dir)
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise UsageError(f"{path} is not a graph directory (no manifest.json); build one with graphrec build-graph.")
    manifest = json.loads(manifest_path.read_text())
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise DataError(
            f"{path} was written in graph format version {version}, this graphrec reads version "
            f"{FORMAT_VERSION}; rebuild it with graphrec build-graph --force."
        )
    stored = torch.load(path / "graph.pt", weights_only=True)
    products = pd.read_parquet(path / "products.parquet")
    features = None
    if (path / "features.npy").is_file():
        features = np.load(path / "features.npy", mmap_mode="r" if mmap else None)
        if features.shape[0] != len(products):
            raise DataError(f"{path / 'features.npy'} has {features.shape[0]} rows but the graph has {len(products)} products; rebuild it.")
    if stored["num_nodes"] != len(products):
        raise DataError(f"{path / 'graph.pt'} has {stored['num_nodes']} nodes but products.parquet has {len(products)}; rebuild it.")
    return Graph(path=path, manifest=manifest, products=products, edges=dict(stored["edge_index"]), features=features)
