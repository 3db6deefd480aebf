"""Standard splits from labelled pair files (GATNE's protocol): train on every edge of the
graph, early-stop on a validation file, score a test file.

* :func:`split_from_pairs` builds the :class:`~graphrec.sampling.PairSplit` that
  ``graphrec train --val-pairs FILE`` trains on: every edge of ``relation`` as a positive,
  as many uniformly random non-edges that are neither edges nor validation pairs, and the
  file's pairs of that relation as the validation split (no test split: the test file is
  scored afterwards by :func:`evaluate_pairs`). Fresh per-epoch negatives
  (:func:`~graphrec.sampling.fresh_negatives`) avoid the validation pairs too, because they
  are the split's held-out pairs.
* :func:`evaluate_pairs` scores every labelled pair of a file with a trained run. A pair
  with a product the run's graph does not have is scored too, at ``cold_score`` (the
  decoder's prior for a balanced split: 0.5), never dropped; the result counts them.
  Metrics (:func:`graphrec.metrics.pair_metrics`) are given on all pairs and with the
  pairs that are training edges of the run removed (GATNE's test files repeat some
  training edges, listed in the other direction), with counts.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import Tensor

from graphrec.errors import DataError
from graphrec.graph import Graph
from graphrec.inputs import node_inputs
from graphrec.io.pairs import LabelledPairs, read_pairs
from graphrec.metrics import pair_metrics
from graphrec.models.inputs import NodeInputs
from graphrec.runs import Run, load_run
from graphrec.sampling import (
    MAX_TRAIN_PAIRS,
    MIN_EDGES,
    PairSplit,
    pair_keys,
    sample_non_edges,
    shuffled_pairs,
    split_pairs,
)

__all__ = [
    "COLD_SCORE",
    "evaluate_pairs",
    "evaluate_run_pairs",
    "format_pair_metrics",
    "is_edge",
    "known_pairs",
    "score_pairs",
    "split_from_file",
    "split_from_pairs",
    "training_edges",
]

COLD_SCORE = 0.5  # P(edge) of a pair with a product the run never saw: the prior of a balanced split


def known_pairs(graph: Graph, pairs: LabelledPairs) -> tuple[Tensor, Tensor]:
    """(node pairs ``[m, 2]``, known mask ``[m]``): -1 marks an id that is not in ``graph``."""
    nodes = torch.from_numpy(pairs.node_pairs(graph.asin_to_index))
    return nodes, (nodes >= 0).all(dim=1)


def is_edge(pairs: Tensor, edges: Tensor, num_nodes: int) -> Tensor:
    """Mask of the rows of ``pairs`` ``[m, 2]`` that are (undirected) edges in ``edges`` ``[2, E]``."""
    if len(pairs) == 0 or edges.shape[1] == 0:
        return torch.zeros(len(pairs), dtype=torch.bool)
    return torch.isin(pair_keys(pairs, num_nodes), pair_keys(edges.t(), num_nodes))


def split_from_pairs(graph: Graph, relation: str, val: LabelledPairs, seed: int = 0,
                     max_train: int = MAX_TRAIN_PAIRS) -> tuple[PairSplit, dict[str, int]]:
    """The split ``train --val-pairs`` uses (see the module docstring) and its counts:
    ``{"val_pairs", "val_unknown_pairs", "val_self_pairs", "val_training_edges"}``.
    Validation pairs with a product outside the graph cannot be scored by early stopping
    and are left out of the validation split (counted in ``val_unknown_pairs``)."""
    edges = graph.edge_index(relation)
    num_nodes = graph.num_nodes
    if edges.shape[1] < MIN_EDGES:
        raise DataError(f"the relation {relation!r} of {graph.path} has {edges.shape[1]} edges; at least {MIN_EDGES} are needed to train.")
    nodes, known = known_pairs(graph, val)
    loops = known & (nodes[:, 0] == nodes[:, 1])
    keep = known & ~loops
    val_pairs = nodes[keep]
    val_labels = torch.from_numpy(val.labels.astype(np.float32))[keep]
    if len(val_pairs) == 0 or val_labels.min() == val_labels.max():
        raise DataError(f"{val.path}: no validation pairs of {relation!r} with both labels between products of "
                        f"{graph.path} ({int((~known).sum())} pairs name products the graph does not have).")
    generator = torch.Generator().manual_seed(seed)
    positives = edges.t().contiguous()
    edge_keys = pair_keys(positives, num_nodes).sort().values
    exclude = torch.cat([edge_keys, pair_keys(val_pairs, num_nodes)]).unique()
    negatives = sample_non_edges(num_nodes, len(positives), exclude, generator)
    pairs, labels = shuffled_pairs(positives, negatives, generator)
    pairs, labels = pairs[:max_train], labels[:max_train]
    empty = torch.empty((0, 2), dtype=torch.long)
    split = PairSplit(relation, num_nodes, seed, edge_keys, pairs, labels, val_pairs, val_labels, empty, torch.empty(0))
    counts = {"val_pairs": len(val_pairs), "val_unknown_pairs": int((~known).sum()), "val_self_pairs": int(loops.sum()),
              "val_training_edges": int(is_edge(val_pairs[val_labels > 0.5], edges, num_nodes).sum())}
    return split, counts


def split_from_file(graph: Graph, relation: str, path: str | os.PathLike, seed: int = 0,
                    relation_names: dict[str, str] | None = None, strict: bool = False) -> tuple[PairSplit, dict[str, int]]:
    """:func:`split_from_pairs` on the pairs of ``relation`` read from ``path`` (what
    ``train(val_pairs=path)`` calls instead of :func:`~graphrec.sampling.split_pairs`)."""
    return split_from_pairs(graph, relation, read_pairs(path, relation, relation_names, strict), seed)


def training_edges(run: Run) -> Tensor:
    """The edges ``[2, E]`` a run was trained on: every edge of its relation for a
    ``--val-pairs`` run (config ``val_pairs``), else its paper split's training positives."""
    relation = run.config.get("relation", "also_bought")
    if run.config.get("val_pairs"):
        return run.graph.edge_index(relation)
    return split_pairs(run.graph, relation, int(run.config.get("seed", 0))).train_positives.t()


def score_pairs(model, inputs: NodeInputs, nodes: Tensor, known: Tensor, cold_score: float = COLD_SCORE) -> Tensor:
    """P(edge) of every row of ``nodes``: the model's for known pairs, ``cold_score`` for the rest."""
    scores = torch.full((len(nodes),), float(cold_score), dtype=torch.float64)
    if bool(known.any()):
        scores[known] = model.predict_proba(inputs, nodes[known]).double()
    return scores


def evaluate_pairs(model, graph: Graph, pairs_file: str | os.PathLike, relation: str, training_edges: Tensor,
                   relation_names: dict[str, str] | None = None, strict: bool = False, seed: int = 0,
                   cold_score: float = COLD_SCORE, inputs: NodeInputs | None = None) -> dict[str, Any]:
    """Score the labelled pairs of ``relation`` in ``pairs_file`` with ``model`` (see the
    module docstring). ``training_edges`` ``[2, E]`` are the edges the model was trained on
    (every edge of the relation for a ``--val-pairs`` run); ``inputs`` are the graph's model
    inputs (built from ``graph`` when None)."""
    pairs = read_pairs(pairs_file, relation, relation_names=relation_names, strict=strict)
    nodes, known = known_pairs(graph, pairs)
    scores = score_pairs(model, inputs if inputs is not None else node_inputs(graph), nodes, known, cold_score)
    labels = torch.from_numpy(pairs.labels.astype(np.float64))
    seen = is_edge(nodes.clamp(min=0), training_edges, graph.num_nodes) & known
    unknown_ids = {node for node, index in zip(pairs.u + pairs.v, nodes.t().reshape(-1).tolist()) if index < 0}
    return {
        "pairs_file": str(pairs.path), "relation": relation, "bad_lines": pairs.bad_lines, "messages": pairs.messages,
        "other_relation_pairs": pairs.other_relations, "unknown_pairs": int((~known).sum()), "unknown_ids": len(unknown_ids),
        "cold_score": cold_score,
        "training_edges_removed": {"positives": int((seen & (labels > 0.5)).sum()), "negatives": int((seen & (labels < 0.5)).sum())},
        "all": pair_metrics(scores, labels, threshold=0.5, seed=seed),
        "without_training_edges": pair_metrics(scores[~seen], labels[~seen], threshold=0.5, seed=seed),
    }


def evaluate_run_pairs(run_dir: str | os.PathLike | Run, pairs_file: str | os.PathLike,
                       relation_names: dict[str, str] | None = None, strict: bool = False) -> tuple[Run, dict[str, Any]]:
    """``graphrec evaluate RUN --pairs FILE``: :func:`evaluate_pairs` for a RUN_DIR, on the
    pairs of the run's relation, with the run's training edges removed in the second view."""
    run = run_dir if isinstance(run_dir, Run) else load_run(run_dir)
    relation = run.config.get("relation", "also_bought")
    result = evaluate_pairs(run.model, run.graph, pairs_file, relation, training_edges(run), relation_names, strict,
                            seed=int(run.config.get("seed", 0)), inputs=run.inputs)
    return run, {"decoder": run.config.get("decoder"), "run": str(run.path), **result}


def format_pair_metrics(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(view, metric, value) rows for printing :func:`evaluate_pairs`' result."""
    rows = []
    for view, label in (("all", "all pairs"), ("without_training_edges", "training edges removed")):
        metrics = result[view]
        for key in ("pairs", "positives", "accuracy", "roc_auc", "pr_auc", "average_precision", "f1", "threshold_ties"):
            value = metrics[key]
            rows.append((label, key, str(value) if isinstance(value, int) else f"{value:.4f}"))
    return rows
