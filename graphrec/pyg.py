"""graphrec's evaluation protocol for your own PyTorch Geometric model.

The paper's split of a relation (its edges and as many random non-edges, 80/10/10 by seed,
exactly the pairs ``graphrec train`` uses) as three PyG ``Data`` objects shaped like
``torch_geometric.transforms.RandomLinkSplit``'s output, and the metrics graphrec reports,
computed from your model's probabilities:

>>> from graphrec.graph import load_graph
>>> from graphrec.pyg import paper_split_data, score_pairs
>>> train_data, val_data, test_data = paper_split_data(load_graph("graphrec-sample/graph"))
>>> probs = my_model(test_data.x, train_data.edge_index, test_data.edge_label_index)  # yours
>>> score_pairs(probs, test_data)["accuracy"]

Every part's ``edge_index`` is the **training** edges only (both directions), for message
passing: validation and test edges are never visible to the model (RandomLinkSplit would add
the validation edges to the test part's). ``edge_label_index`` ``[2, m]`` and ``edge_label``
``[m]`` (1 edge, 0 non-edge) are the part's labelled pairs; ``x`` is the graph's feature
matrix without a copy (a read-only view of the memory map, float16 as stored) and ``asin``
names each node.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from graphrec.errors import UsageError
from graphrec.evaluate import binary_metrics
from graphrec.graph import Graph
from graphrec.metrics import pair_metrics
from graphrec.sampling import PairSplit, split_pairs

__all__ = ["paper_split_data", "score_pairs", "split_to_data"]


def split_to_data(graph: Graph, split: PairSplit, with_features: bool = True):
    """(train, val, test) PyG ``Data`` of ``split`` (see the module's documentation)."""
    from torch_geometric.data import Data

    positives = split.train_positives.t()
    message_passing = torch.cat([positives, positives.flip(0)], dim=1)
    x = None
    if with_features and graph.features is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a read-only map: nothing writes to x
            x = torch.from_numpy(np.asarray(graph.features))
    asins = [str(asin) for asin in graph.asins]
    parts = ((split.train_pairs, split.train_labels), (split.val_pairs, split.val_labels), (split.test_pairs, split.test_labels))
    return tuple(
        Data(x=x, edge_index=message_passing, edge_label_index=pairs.t().contiguous(), edge_label=labels.float(),
             num_nodes=graph.num_nodes, asin=asins, relation=split.relation)
        for pairs, labels in parts
    )


def paper_split_data(graph: Graph, relation: str = "also_bought", seed: int = 0, with_features: bool = True):
    """The paper's split of ``relation`` by ``seed`` (the one ``graphrec train --seed`` uses)
    as (train, val, test) PyG ``Data``."""
    return split_to_data(graph, split_pairs(graph, relation, seed), with_features)


def score_pairs(probs: Tensor, data: Any) -> dict[str, float]:
    """graphrec's metrics of ``probs`` (P(edge) of each pair of ``data.edge_label_index``, in
    order): accuracy at P > 0.5, ROC-AUC and log-loss as ``train`` reports them, with PR-AUC,
    average precision and F1 at the rank cut (as ``evaluate --pairs``)."""
    probs = torch.as_tensor(probs, dtype=torch.float64).detach().cpu().reshape(-1)
    labels = torch.as_tensor(data.edge_label).detach().cpu().reshape(-1)
    if len(probs) != len(labels):
        raise UsageError(f"{len(probs):,} probabilities for {len(labels):,} labelled pairs; score every pair of edge_label_index, in order.")
    if not bool(torch.isfinite(probs).all()) or bool((probs < 0).any() | (probs > 1).any()):
        raise UsageError("the probabilities must be finite numbers in [0, 1] (apply a sigmoid to logits).")
    ranked = pair_metrics(probs, labels)
    return {**binary_metrics(probs, labels), **{key: ranked[key] for key in ("pr_auc", "average_precision", "f1")}}
