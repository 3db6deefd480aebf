"""Category-tree baseline (McAuley et al. 2015, table 2).

Two products are related when their categories co-occur often in training edges.
For each level of the category tree (the main path's first level, first two levels,
..., the leaf) we count, over the training pairs, how often a pair of category
prefixes appears as an edge and as a non-edge. A pair is scored at the deepest level
where its prefixes were seen together at least ``min_count`` times:

    P(edge) = (edges + 1) / (edges + non-edges + 2)

(0.5 when never seen). Fitted by counting; it needs no image features.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from graphrec.models.base import CLOSED_FORM, LinkModel, NodeCache, TrainDefaults
from graphrec.models.inputs import NodeInputs
from graphrec.models.registry import register_model

__all__ = ["CategoryTreeModel"]


@register_model
class CategoryTreeModel(LinkModel):
    """Edge frequency of category-prefix pairs, backing off from the leaf to the root."""

    name: ClassVar[str] = "category-tree"
    help: ClassVar[str] = "edge frequency of category pairs"
    trainable: ClassVar[bool] = False
    defaults: ClassVar[TrainDefaults] = CLOSED_FORM

    def __init__(self, vocab: list[str], levels: int = 4, min_count: int = 3) -> None:
        super().__init__()
        self.vocab, self.levels, self.min_count = list(vocab), int(levels), int(min_count)
        self.index = {token: i + 1 for i, token in enumerate(self.vocab)}  # 0 = unseen
        for level in range(self.levels):
            self.register_buffer(f"keys{level}", torch.zeros(0, dtype=torch.long))
            self.register_buffer(f"edges{level}", torch.zeros(0))
            self.register_buffer(f"non_edges{level}", torch.zeros(0))
        self.dummy = nn.Parameter(torch.zeros(()), requires_grad=False)  # keeps .parameters() non-empty
        self._ids = NodeCache()

    def hparams(self) -> dict[str, Any]:
        return {"vocab": self.vocab, "levels": self.levels, "min_count": self.min_count}

    @classmethod
    def build(cls, inputs: NodeInputs, train_pairs: Tensor, train_labels: Tensor, levels: int = 4) -> "CategoryTreeModel":
        nodes = torch.unique(train_pairs)
        prefixes = inputs.fields.prefixes(levels)
        vocab = sorted({p for node in nodes.tolist() for p in prefixes[node]})
        return cls(vocab=vocab, levels=levels)

    def node_inputs(self, inputs: NodeInputs, nodes: Tensor | None = None) -> Tensor:
        """Prefix ids ``[n, levels]`` (0 = unseen in training); computed once per inputs."""
        ids = self._ids.get(inputs, self._prefix_ids)
        return ids if nodes is None else ids[torch.as_tensor(nodes, dtype=torch.long)]

    def _prefix_ids(self, inputs: NodeInputs) -> Tensor:
        rows = [[self.index.get(p, 0) for p in row] for row in inputs.fields.prefixes(self.levels)]
        return torch.tensor(rows, dtype=torch.long).reshape(inputs.num_nodes, self.levels)

    def _pair_keys(self, inputs: Tensor, pairs: Tensor, level: int) -> Tensor:
        a, b = inputs[pairs[:, 0], level], inputs[pairs[:, 1], level]
        size = len(self.vocab) + 1
        return torch.minimum(a, b) * size + torch.maximum(a, b)

    @torch.no_grad()
    def fit(self, inputs: NodeInputs, train_pairs: Tensor, train_labels: Tensor) -> None:
        ids = self.node_inputs(inputs)
        for level in range(self.levels):
            keys = self._pair_keys(ids, train_pairs, level)
            uniq, inverse = torch.unique(keys, return_inverse=True)
            edges = torch.zeros(len(uniq)).index_add_(0, inverse, train_labels.float())
            total = torch.zeros(len(uniq)).index_add_(0, inverse, torch.ones(len(keys)))
            setattr(self, f"keys{level}", uniq)
            setattr(self, f"edges{level}", edges)
            setattr(self, f"non_edges{level}", total - edges)

    def logits(self, inputs: Tensor, pairs: Tensor) -> Tensor:
        prob = torch.full((len(pairs),), 0.5)
        decided = torch.zeros(len(pairs), dtype=torch.bool)
        for level in reversed(range(self.levels)):
            table = getattr(self, f"keys{level}")
            if len(table) == 0:
                continue
            keys = self._pair_keys(inputs, pairs, level)
            pos = torch.searchsorted(table, keys).clamp(max=len(table) - 1)
            found = table[pos] == keys
            edges = torch.where(found, getattr(self, f"edges{level}")[pos], torch.zeros(()))
            non_edges = torch.where(found, getattr(self, f"non_edges{level}")[pos], torch.zeros(()))
            use = ~decided & found & (edges + non_edges >= self.min_count)
            prob = torch.where(use, (edges + 1) / (edges + non_edges + 2), prob)
            decided |= use
        return torch.logit(prob)
