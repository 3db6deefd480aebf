"""Edge lists: the canonical form every graph stores (undirected, each edge once with
row < col, sorted, unique, no self-loops) and the edge pass of a build, which turns the
interned ids of the metadata's related lists into canonical edges between nodes."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from graphrec.io.metadata import RELATIONS

__all__ = ["canonical_edges", "empty_edges", "relation_edges"]

_RELATION_ORDER = {name: i for i, name in enumerate(RELATIONS)}


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


def empty_edges() -> torch.Tensor:
    """An edge set with no edges: int64 ``[2, 0]``."""
    return torch.empty((2, 0), dtype=torch.long)


def _relation_key(name: str) -> tuple:
    """Known relations in their usual order, then any other in alphabetical order."""
    return (name not in _RELATION_ORDER, _RELATION_ORDER.get(name, 0), name)


def relation_edges(catalogue, id_to_node: np.ndarray, num_nodes: int, advance: Callable[[], object] = lambda: None):
    """Canonical edge lists per relation of ``catalogue`` (see graphrec.graph.catalogue),
    plus drop counts: ``(edges, dangling per relation, self_loops, listed pairs per relation)``.

    ``id_to_node[id]`` is the node of an interned ASIN id, -1 when it is not a node. Each
    relation's id arrays are freed from the catalogue as soon as they are converted."""
    edges: dict[str, torch.Tensor] = {}
    dangling: dict[str, int] = {}
    listed: dict[str, int] = {}
    self_loops = 0
    for name in sorted(catalogue.present, key=_relation_key):
        if name not in catalogue.dst:
            edges[name] = empty_edges()
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
