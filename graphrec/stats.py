"""Graph statistics for the build-graph / info summary: components and degrees per relation.

Computed with scipy on the stored edge lists (no dense matrices), so they stay cheap
for a 1.5M-product catalogue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

if TYPE_CHECKING:
    import torch

__all__ = ["relation_stats", "graph_stats", "summary_rows"]


def relation_stats(edge_index: "torch.Tensor | np.ndarray", num_nodes: int) -> dict:
    """Statistics of one undirected edge set given each edge once (``[2, E]``).

    ``components`` counts connected components over all nodes (an isolated node is its
    own component); ``largest_component`` is the size of the biggest; degrees are over
    all nodes.
    """
    index = np.asarray(edge_index, dtype=np.int64).reshape(2, -1)
    num_edges = int(index.shape[1])
    if num_nodes == 0:
        return {"num_edges": 0, "components": 0, "largest_component": 0, "isolated": 0,
                "degree_mean": 0.0, "degree_median": 0.0, "degree_max": 0}
    degree = np.bincount(index.ravel(), minlength=num_nodes)
    small = index.astype(np.int32) if num_nodes < 2**31 else index  # halves scipy's copies
    adjacency = coo_matrix((np.ones(num_edges, dtype=np.int8), (small[0], small[1])), shape=(num_nodes, num_nodes))
    count, labels = connected_components(adjacency, directed=False)
    return {
        "num_edges": num_edges,
        "components": int(count),
        "largest_component": int(np.bincount(labels).max()),
        "isolated": int((degree == 0).sum()),
        "degree_mean": float(degree.mean()),
        "degree_median": float(np.median(degree)),
        "degree_max": int(degree.max()),
    }


def graph_stats(num_nodes: int, edges: Mapping[str, "torch.Tensor | np.ndarray"]) -> dict:
    """``{"num_nodes", "relations": {name: relation_stats}, "any": stats of the union}``."""
    per_relation = {name: relation_stats(index, num_nodes) for name, index in edges.items()}
    if edges:
        union = np.concatenate([np.asarray(index, dtype=np.int64).reshape(2, -1) for index in edges.values()], axis=1)
        if union.size:
            key = np.sort(union[0] * max(num_nodes, 1) + union[1])
            key = key[np.concatenate(([True], key[1:] != key[:-1]))]
            union = np.stack([key // max(num_nodes, 1), key % max(num_nodes, 1)])
        combined = relation_stats(union, num_nodes)
    else:
        combined = relation_stats(np.empty((2, 0), dtype=np.int64), num_nodes)
    return {"num_nodes": int(num_nodes), "relations": per_relation, "any": combined}


def _count(value) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def summary_rows(manifest: Mapping, stats: Mapping) -> list[tuple[str, str]]:
    """``(label, value)`` rows of the summary table printed by build-graph and info."""
    rows: list[tuple[str, str]] = [("nodes (products)", _count(stats["num_nodes"]))]
    features = manifest.get("features")
    if features:
        rows.append(("features", f"{features['dim']}-d {features['dtype']} from {features['path']}"))
    else:
        built_from = "an edge list" if (manifest.get("sources") or {}).get("edges") else "metadata"
        rows.append(("features", f"none (graph built from {built_from} only)"))
    for name, rel in stats["relations"].items():
        rows.append((f"{name}: edges", _count(rel["num_edges"])))
        rows.append((
            f"{name}: components",
            f"{rel['components']:,} (largest {rel['largest_component']:,}, isolated nodes {rel['isolated']:,})",
        ))
        rows.append((
            f"{name}: degree",
            f"mean {rel['degree_mean']:.2f}, median {rel['degree_median']:g}, max {rel['degree_max']:,}",
        ))
    if len(stats["relations"]) > 1:
        rel = stats["any"]
        rows.append(("any relation: edges", _count(rel["num_edges"])))
        rows.append(("any relation: components", f"{rel['components']:,} (largest {rel['largest_component']:,})"))
    for reason, value in (manifest.get("dropped") or {}).items():
        if isinstance(value, Mapping):
            for relation, count in value.items():
                rows.append((f"dropped: {reason} ({relation})", _count(count)))
        else:
            rows.append((f"dropped: {reason}", _count(value)))
    return rows
