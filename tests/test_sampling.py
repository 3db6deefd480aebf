"""The paper's split and negatives, and the ranking candidate sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphrec.errors import DataError
from graphrec.graph import Graph
from graphrec.sampling import (
    fresh_negatives,
    knn_candidates,
    pair_keys,
    query_partners,
    random_candidates,
    sample_non_edges,
    split_pairs,
)


def ring_graph(n: int = 60, hops: int = 3, dim: int = 4) -> Graph:
    edges = np.array([[i, (i + h) % n] for i in range(n) for h in range(1, hops + 1)]).T
    angle = np.arange(n) / n * 2 * np.pi
    x = np.zeros((n, dim), dtype=np.float32)
    x[:, 0], x[:, 1] = np.cos(angle), np.sin(angle)
    return Graph.from_arrays([f"B{i:09d}" for i in range(n)], {"also_bought": edges}, features=x)


def keys(pairs, n):
    return set(pair_keys(pairs, n).tolist())


def test_split_sizes_balance_and_no_overlap():
    graph = ring_graph()
    n, edges = graph.num_nodes, graph.edge_index("also_bought")
    split = split_pairs(graph, seed=3)
    total = len(split.train_pairs) + len(split.val_pairs) + len(split.test_pairs)
    assert total == 2 * edges.shape[1]
    assert len(split.train_pairs) == round(0.8 * total) and len(split.val_pairs) == round(0.1 * total)
    labels = torch.cat([split.train_labels, split.val_labels, split.test_labels])
    assert labels.sum().item() == edges.shape[1]  # as many non-edges as edges
    train, val, test = keys(split.train_pairs, n), keys(split.val_pairs, n), keys(split.test_pairs, n)
    assert len(train) == len(split.train_pairs) and not (train & val) and not (train & test) and not (val & test)
    edge_keys = keys(edges.t(), n)
    for pairs, lab in ((split.train_pairs, split.train_labels), (split.val_pairs, split.val_labels), (split.test_pairs, split.test_labels)):
        assert all((k in edge_keys) == bool(y) for k, y in zip(pair_keys(pairs, n).tolist(), lab.tolist()))
        assert (pairs[:, 0] != pairs[:, 1]).all()


def test_split_is_fixed_by_seed_and_training_is_capped():
    graph = ring_graph()
    a, b, c = split_pairs(graph, seed=1), split_pairs(graph, seed=1), split_pairs(graph, seed=2)
    assert torch.equal(a.test_pairs, b.test_pairs) and not torch.equal(a.test_pairs, c.test_pairs)
    capped = split_pairs(graph, seed=1, max_train=50)
    assert len(capped.train_pairs) == 50 and torch.equal(capped.test_pairs, a.test_pairs)


def test_fresh_negatives_avoid_edges_and_held_out_pairs():
    graph = ring_graph()
    split = split_pairs(graph, seed=0)
    held = set(split.held_out_keys.tolist())
    edges = set(split.edge_keys.tolist())
    fresh = fresh_negatives(split, 200, torch.Generator().manual_seed(5))
    got = keys(fresh, graph.num_nodes)
    assert len(got) == 200 and not (got & held) and not (got & edges)


def test_non_edge_sampling_refuses_impossible_requests():
    with pytest.raises(DataError, match="too small or too dense"):
        sample_non_edges(4, 7, torch.empty(0, dtype=torch.long), torch.Generator())


def test_too_few_edges_is_a_data_error():
    graph = Graph.from_arrays([f"B{i:09d}" for i in range(5)], {"also_bought": np.array([[0, 1], [1, 2]])})
    with pytest.raises(DataError, match="at least"):
        split_pairs(graph)


def test_knn_candidates_are_nearest_non_partners():
    graph = ring_graph(n=60, hops=2)
    split = split_pairs(graph, seed=0)
    queries, partners = query_partners(split)
    sets = knn_candidates(graph, split, queries, partners, n=4)
    for row, q in enumerate(sets.queries.tolist()):
        real = sets.candidates[row][sets.candidates[row] >= 0].tolist()
        held = partners[row].tolist()
        assert real[: len(held)] == held and sets.relevant[row, : len(held)].all()
        negatives = real[len(held) :]
        assert len(negatives) == 4 and q not in negatives
        # on the ring the nearest non-partners are 3 and 4 steps away (1 and 2 are partners)
        steps = sorted(min((c - q) % 60, (q - c) % 60) for c in negatives)
        assert steps == [3, 3, 4, 4]


def test_random_candidates_exclude_partners():
    graph = ring_graph(n=60, hops=2)
    split = split_pairs(graph, seed=0)
    queries, partners = query_partners(split, max_queries=5)
    assert len(queries) == 5
    sets = random_candidates(split, queries, partners, n=10, seed=1)
    for row, q in enumerate(sets.queries.tolist()):
        negatives = sets.candidates[row][~sets.relevant[row] & (sets.candidates[row] >= 0)].tolist()
        assert len(negatives) == 10 and len(set(negatives)) == 10
        assert all(min((c - q) % 60, (q - c) % 60) > 2 for c in negatives)
