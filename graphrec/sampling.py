"""The paper's evaluation protocol: labelled pairs, the 80/10/10 split, negatives and
ranking candidate sets.

Protocol (McAuley et al., SIGIR 2015, section 4), for one relation:

1. positives are the relation's undirected edges, each once;
2. add as many uniformly random non-edges (unordered pairs of distinct products that
   are not edges of the relation);
3. shuffle with ``seed`` and split 80/10/10 into train/validation/test; training is
   capped at 2M pairs. The test pairs depend only on the graph and ``seed``.

Training may replace its negatives every epoch (:func:`fresh_negatives`); fresh
negatives avoid every edge and every validation/test pair, so nothing about held-out
pairs reaches training. Other relations trained alongside in the same style space
(:func:`auxiliary_relation`) lose every validation/test pair of the main relation too.

Ranking candidate sets (for hit@10, MRR, NDCG@10): for a test query product, its
held-out partners (test positives) plus ``n`` products that are not its partners in
any split, either its nearest neighbours in raw feature space (hard negatives,
:func:`knn_candidates`) or uniformly random ones (:func:`random_candidates`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from graphrec.errors import DataError, UsageError
from graphrec.graph import Graph

__all__ = [
    "MAX_TRAIN_PAIRS",
    "PairSplit",
    "CandidateSets",
    "pair_keys",
    "sample_non_edges",
    "shuffled_pairs",
    "split_pairs",
    "fresh_negatives",
    "AuxiliaryRelation",
    "auxiliary_relation",
    "message_edges",
    "query_partners",
    "knn_candidates",
    "nearest_rows",
    "random_candidates",
]

MAX_TRAIN_PAIRS = 2_000_000
MIN_EDGES = 10
KNN_CHUNK = 65_536  # feature rows searched at once (a multiple of faiss's 1024-row blocks)


def pair_keys(pairs: Tensor, num_nodes: int) -> Tensor:
    """Order-free int64 key of each pair ``[m, 2]``: ``min * num_nodes + max``."""
    low = torch.minimum(pairs[:, 0], pairs[:, 1])
    high = torch.maximum(pairs[:, 0], pairs[:, 1])
    return low * num_nodes + high


def sample_non_edges(num_nodes: int, count: int, exclude: Tensor, generator: torch.Generator) -> Tensor:
    """``count`` distinct uniformly random unordered pairs ``[count, 2]`` (row < col) whose
    keys are not in the sorted key tensor ``exclude`` (see :func:`pair_keys`)."""
    possible = num_nodes * (num_nodes - 1) // 2 - len(exclude)
    if count > possible:
        raise DataError(f"cannot draw {count} distinct non-edges among {num_nodes} products ({possible} available); the graph is too small or too dense.")
    chosen = torch.empty(0, dtype=torch.long)
    while len(chosen) < count:
        need = count - len(chosen)
        draw = torch.randint(0, num_nodes, (int(need * 1.25) + 16, 2), generator=generator)
        draw = draw[draw[:, 0] != draw[:, 1]]
        keys = pair_keys(draw, num_nodes)
        keys = keys[~torch.isin(keys, exclude)]
        keys = keys[~torch.isin(keys, chosen)]
        # keep the first occurrence of each key, in draw order (unique() would sort and bias the cut)
        uniq, inverse = torch.unique(keys, return_inverse=True)
        first = torch.full((len(uniq),), len(keys), dtype=torch.long).scatter_reduce(0, inverse, torch.arange(len(keys)), reduce="amin")
        keys = keys[first.sort().values]
        chosen = torch.cat([chosen, keys[:need]])
    return torch.stack([chosen // num_nodes, chosen % num_nodes], dim=1)


def shuffled_pairs(positives: Tensor, negatives: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(pairs, float labels) of ``positives`` (1) and ``negatives`` (0), shuffled by ``generator``."""
    pairs = torch.cat([positives, negatives])
    labels = torch.cat([torch.ones(len(positives)), torch.zeros(len(negatives))])
    order = torch.randperm(len(pairs), generator=generator)
    return pairs[order], labels[order]


@dataclass
class PairSplit:
    """Labelled pairs ``[m, 2]`` with float labels ``[m]`` (1 edge, 0 non-edge) per split."""

    relation: str
    num_nodes: int
    seed: int
    edge_keys: Tensor  # sorted keys of every edge of the relation
    train_pairs: Tensor
    train_labels: Tensor
    val_pairs: Tensor
    val_labels: Tensor
    test_pairs: Tensor
    test_labels: Tensor

    @property
    def held_out_keys(self) -> Tensor:
        """Sorted keys of every validation and test pair (both labels)."""
        return torch.cat([pair_keys(self.val_pairs, self.num_nodes), pair_keys(self.test_pairs, self.num_nodes)]).unique()

    @property
    def train_positives(self) -> Tensor:
        return self.train_pairs[self.train_labels > 0.5]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_pairs), "val": len(self.val_pairs), "test": len(self.test_pairs)}


def split_pairs(graph: Graph, relation: str = "also_bought", seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                max_train: int = MAX_TRAIN_PAIRS) -> PairSplit:
    """The paper's labelled pairs and 80/10/10 split for ``relation``, fixed by ``seed``."""
    edges = graph.edge_index(relation)  # [2, E], row < col, unique
    num_nodes = graph.num_nodes
    if edges.shape[1] < MIN_EDGES:
        raise DataError(f"the relation {relation!r} of {graph.path} has {edges.shape[1]} edges; "
                        f"at least {MIN_EDGES} are needed to split train/validation/test.")
    generator = torch.Generator().manual_seed(seed)
    positives = edges.t().contiguous()
    edge_keys = pair_keys(positives, num_nodes).sort().values
    negatives = sample_non_edges(num_nodes, len(positives), edge_keys, generator)
    pairs, labels = shuffled_pairs(positives, negatives, generator)
    n_train = int(round(fractions[0] * len(pairs)))
    n_val = int(round(fractions[1] * len(pairs)))
    train = slice(0, min(n_train, max_train))
    val = slice(n_train, n_train + n_val)
    test = slice(n_train + n_val, len(pairs))
    return PairSplit(relation, num_nodes, seed, edge_keys, pairs[train], labels[train], pairs[val], labels[val], pairs[test], labels[test])


def fresh_negatives(split: PairSplit, count: int, generator: torch.Generator) -> Tensor:
    """New random non-edges for one training epoch, avoiding held-out pairs."""
    exclude = torch.cat([split.edge_keys, split.held_out_keys]).unique()
    return sample_non_edges(split.num_nodes, count, exclude, generator)


@dataclass
class AuxiliaryRelation:
    """Training pairs of a second relation learnt in the main relation's style space."""

    relation: str
    num_nodes: int
    positives: Tensor  # [m, 2] its edges, minus every held-out pair of the main split
    exclude: Tensor  # sorted keys its negatives avoid: its edges and the held-out pairs

    def epoch_pairs(self, negatives: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(pairs, labels) for one epoch: every edge and ``negatives`` fresh random
        non-edges per edge, shuffled."""
        fresh = sample_non_edges(self.num_nodes, negatives * len(self.positives), self.exclude, generator)
        return shuffled_pairs(self.positives, fresh, generator)


def auxiliary_relation(graph: Graph, split: PairSplit, relation: str, max_edges: int = MAX_TRAIN_PAIRS // 2) -> AuxiliaryRelation:
    """``relation``'s edges as extra training signal for ``split``'s model. Any pair that is
    a validation or test pair of the main relation (an edge or a non-edge there) is dropped
    from its edges and never drawn as its negative: an also_viewed edge between two test
    products would otherwise tell training that they are alike. Like the main relation's
    training pairs, the edges are capped (``max_edges``, a random subset fixed by the
    split's seed), so a large catalogue's epoch stays bounded."""
    if relation == split.relation:
        raise UsageError(f"the auxiliary relation {relation!r} is the relation being learnt; choose another one.")
    edges = graph.edge_index(relation).t().contiguous()
    held_out = split.held_out_keys
    keys = pair_keys(edges, split.num_nodes)
    keep = ~torch.isin(keys, held_out)
    if int(keep.sum()) == 0:
        raise DataError(f"the relation {relation!r} of {graph.path} has no edges outside the held-out pairs; it cannot help training.")
    exclude = torch.cat([keys, held_out]).unique()
    edges = edges[keep]
    if len(edges) > max_edges:
        pick = torch.randperm(len(edges), generator=torch.Generator().manual_seed(split.seed))[:max_edges]
        edges = edges[pick.sort().values]
    return AuxiliaryRelation(relation, split.num_nodes, edges, exclude)


def message_edges(graph: Graph, split: PairSplit, relations: Sequence[str] = ()) -> Tensor:
    """The message-passing graph of a collaborative encoder: ``[2, E]``, each undirected
    edge once (row < col). It holds the split's training positives and the edges of the
    other ``relations``, minus every validation and test pair of the split (an edge or a
    non-edge there): a held-out pair never reaches the encoder, whichever relation lists it."""
    parts = [split.train_positives]
    held_out = split.held_out_keys
    for relation in relations:
        if relation == split.relation:
            continue  # its training edges are in already; its other edges are held out
        edges = graph.edge_index(relation).t()
        parts.append(edges[~torch.isin(pair_keys(edges, split.num_nodes), held_out)])
    pairs = torch.cat(parts)
    keys = torch.unique(pair_keys(pairs, split.num_nodes))
    return torch.stack([keys // split.num_nodes, keys % split.num_nodes])


@dataclass
class CandidateSets:
    """Per query: ``candidates[q]`` (node ids, padded with -1) and which are true partners.

    ``candidates`` is ``[Q, L]``; ``relevant`` ``[Q, L]`` bool marks held-out partners.
    """

    queries: Tensor
    candidates: Tensor
    relevant: Tensor
    kind: str

    def pairs(self) -> tuple[Tensor, Tensor]:
        """(query, candidate) pairs ``[m, 2]`` for every real (non-padding) slot, and the slot mask ``[Q, L]``."""
        mask = self.candidates >= 0
        rows = self.queries.unsqueeze(1).expand_as(self.candidates)
        return torch.stack([rows[mask], self.candidates[mask]], dim=1), mask


def query_partners(split: PairSplit, max_queries: int | None = 1000, seed: int = 0) -> tuple[Tensor, list[Tensor]]:
    """Query products (ends of test positives; at most ``max_queries``, chosen by ``seed``)
    and each one's held-out partners."""
    positives = split.test_pairs[split.test_labels > 0.5]
    both = torch.cat([positives, positives.flip(1)])
    order = torch.argsort(both[:, 0], stable=True)
    both = both[order]
    queries, counts = torch.unique_consecutive(both[:, 0], return_counts=True)
    partners = list(torch.split(both[:, 1], counts.tolist()))
    if max_queries is not None and len(queries) > max_queries:
        pick = torch.randperm(len(queries), generator=torch.Generator().manual_seed(seed))[:max_queries].sort().values
        queries = queries[pick]
        partners = [partners[i] for i in pick.tolist()]
    return queries, partners


def _all_partners(split: PairSplit, queries: Tensor) -> dict[int, set[int]]:
    n = split.num_nodes
    low, high = split.edge_keys // n, split.edge_keys % n
    wanted = torch.zeros(n, dtype=torch.bool)
    wanted[queries] = True
    out: dict[int, set[int]] = {int(q): set() for q in queries}
    for a, b in ((low, high), (high, low)):
        keep = wanted[a]
        for q, p in zip(a[keep].tolist(), b[keep].tolist()):
            out[q].add(p)
    return out


def _assemble(queries: Tensor, partners: list[Tensor], negatives: list[list[int]], kind: str) -> CandidateSets:
    width = max((len(p) + len(n) for p, n in zip(partners, negatives)), default=0)
    candidates = torch.full((len(queries), width), -1, dtype=torch.long)
    relevant = torch.zeros((len(queries), width), dtype=torch.bool)
    for row, (pos, neg) in enumerate(zip(partners, negatives)):
        candidates[row, : len(pos)] = pos
        relevant[row, : len(pos)] = True
        candidates[row, len(pos) : len(pos) + len(neg)] = torch.as_tensor(neg, dtype=torch.long)
    return CandidateSets(queries, candidates, relevant, kind)


def knn_candidates(graph: Graph, split: PairSplit, queries: Tensor, partners: list[Tensor], n: int = 100) -> CandidateSets:
    """Held-out partners plus each query's ``n`` nearest neighbours (raw features, L2)
    that are not its partners in any split: hard negatives (exact search, streamed
    over the memory-mapped features by :func:`nearest_rows`)."""
    features = graph.require_features("nearest-neighbour candidate sets")
    known = _all_partners(split, queries)
    degree = max((len(s) for s in known.values()), default=0)
    depth = min(n + degree + 1, graph.num_nodes)
    query_rows = np.ascontiguousarray(features[np.asarray(queries)], dtype=np.float32)
    found = nearest_rows(features, query_rows, depth)
    negatives = []
    for q, row in zip(queries.tolist(), found):
        skip = known[q] | {q}
        negatives.append([int(c) for c in row if c >= 0 and int(c) not in skip][:n])
    return _assemble(queries, partners, negatives, "knn")


def nearest_rows(features: np.ndarray, queries: np.ndarray, depth: int, chunk: int | None = None) -> np.ndarray:
    """Ids ``[Q, depth]`` of the rows of ``features`` nearest (L2) to each query, nearest first.

    Exact, and streamed: ``chunk`` rows (default :data:`KNN_CHUNK`) of the (memory-mapped,
    float16) matrix become float32 at a time and are merged into the running best, so
    memory stays at one chunk (a float32 index of 1.5M x 4096 would need 24 GB).
    """
    import faiss

    chunk = chunk or KNN_CHUNK
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    best_d = np.empty((len(queries), 0), dtype=np.float32)
    best_i = np.empty((len(queries), 0), dtype=np.int64)
    for start in range(0, features.shape[0], chunk):
        block = np.ascontiguousarray(features[start : start + chunk], dtype=np.float32)
        d, i = faiss.knn(queries, block, min(depth, len(block)))
        d, i = np.concatenate([best_d, d], axis=1), np.concatenate([best_i, i + start], axis=1)
        order = np.argsort(d, axis=1, kind="stable")[:, :depth]  # earlier rows first on ties
        best_d, best_i = np.take_along_axis(d, order, axis=1), np.take_along_axis(i, order, axis=1)
    return best_i


def random_candidates(split: PairSplit, queries: Tensor, partners: list[Tensor], n: int = 100, seed: int = 0) -> CandidateSets:
    """Held-out partners plus ``n`` uniformly random products that are not partners."""
    generator = torch.Generator().manual_seed(seed)
    known = _all_partners(split, queries)
    negatives = []
    for q in queries.tolist():
        skip = known[q] | {q}
        room = split.num_nodes - len(skip)
        want = min(n, room)
        picked: list[int] = []
        seen: set[int] = set()
        while len(picked) < want:
            for c in torch.randint(0, split.num_nodes, (2 * (want - len(picked)) + 8,), generator=generator).tolist():
                if c not in skip and c not in seen and len(picked) < want:
                    seen.add(c)
                    picked.append(c)
        negatives.append(picked)
    return _assemble(queries, partners, negatives, "random")
