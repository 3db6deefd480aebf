"""Factorization-machine baseline over non-visual product fields.

Each product becomes a bag of tokens: every prefix (up to ``depth`` levels) of each
of its category paths, its brand and its price bucket. A pair (i, j) is the union of
both bags, scored by a second-order FM with embeddings shared by both sides:

    logit = w0 + sum_t w_t + 1/2 (||sum_t v_t||^2 - sum_t ||v_t||^2)

computed with the O(k n) sum-of-squares identity (:func:`fm_interaction`). The
vocabulary comes from the training nodes only and is stored in the model's
hyper-parameters; unseen tokens are ignored. It needs no image features.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from graphrec.models.base import LinkModel, NodeCache, TrainDefaults
from graphrec.models.inputs import NodeInputs
from graphrec.models.registry import register_model

__all__ = ["FactorizationMachine", "fm_interaction"]


def fm_interaction(v: Tensor) -> Tensor:
    """Sum over unordered pairs a < b of <v_a, v_b>, for ``v`` ``[m, n, k]`` -> ``[m]``,
    via 1/2 (||sum v||^2 - sum ||v||^2). Zero rows (padding) contribute nothing."""
    total = v.sum(1)
    return 0.5 * ((total * total).sum(-1) - (v * v).sum((1, 2)))


@register_model
class FactorizationMachine(LinkModel):
    """Second-order FM over both products' metadata tokens (shared embeddings)."""

    name: ClassVar[str] = "fm"
    help: ClassVar[str] = "factorization machine on metadata"
    has_k: ClassVar[bool] = True
    defaults: ClassVar[TrainDefaults] = TrainDefaults(epochs=40, lr=0.02, weight_decay=1e-5, ema=0.0)

    def __init__(self, vocab: list[str], k: int = 10, depth: int = 4, max_tokens: int = 32, seed: int = 0) -> None:
        super().__init__()
        self.vocab, self.k, self.depth, self.max_tokens, self.seed = list(vocab), int(k), int(depth), int(max_tokens), int(seed)
        self.index = {token: i + 1 for i, token in enumerate(self.vocab)}  # 0 = padding / unseen
        generator = torch.Generator().manual_seed(seed)
        self.embedding = nn.Parameter(torch.randn(len(vocab) + 1, k, generator=generator) * 0.01)
        self.bias = nn.Parameter(torch.zeros(len(vocab) + 1))
        self.global_bias = nn.Parameter(torch.zeros(()))
        self._ids = NodeCache()

    def hparams(self) -> dict[str, Any]:
        return {"vocab": self.vocab, "k": self.k, "depth": self.depth, "max_tokens": self.max_tokens, "seed": self.seed}

    @classmethod
    def build(cls, inputs: NodeInputs, train_pairs: Tensor, train_labels: Tensor, k: int = 10, seed: int = 0) -> "FactorizationMachine":
        every = inputs.fields.tokens(depth=4)
        bags = [every[node] for node in torch.unique(train_pairs).tolist()]
        vocab = sorted({token for bag in bags for token in bag})
        return cls(vocab=vocab, k=k, seed=seed, max_tokens=max((len(b) for b in bags), default=1))

    @torch.no_grad()
    def shift_logits(self, offset: float) -> None:
        self.global_bias.add_(offset)

    def decay_parameters(self) -> list[nn.Parameter]:
        return [self.embedding, self.bias]

    def node_inputs(self, inputs: NodeInputs, nodes: Tensor | None = None) -> Tensor:
        """Token ids ``[n, max_tokens]`` (0 = padding / unseen) for ``nodes``; computed once per inputs."""
        ids = self._ids.get(inputs, self._token_ids)
        return ids if nodes is None else ids[torch.as_tensor(nodes, dtype=torch.long)]

    def _token_ids(self, inputs: NodeInputs) -> Tensor:
        ids = torch.zeros((inputs.num_nodes, self.max_tokens), dtype=torch.long)
        for row, bag in enumerate(inputs.fields.tokens(self.depth)):
            known = [self.index[t] for t in bag if t in self.index][: self.max_tokens]
            ids[row, : len(known)] = torch.as_tensor(known, dtype=torch.long)
        return ids

    def logits(self, inputs: Tensor, pairs: Tensor) -> Tensor:
        tokens = torch.cat([inputs[pairs[:, 0]], inputs[pairs[:, 1]]], dim=1)  # [m, 2T]
        mask = (tokens > 0).unsqueeze(-1).float()
        v = self.embedding[tokens] * mask
        linear = (self.bias[tokens] * mask.squeeze(-1)).sum(1)
        return self.global_bias + linear + fm_interaction(v)
