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

import json
import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from graphrec.graph import Graph
from graphrec.models.base import LinkModel

__all__ = ["FactorizationMachine", "fm_interaction", "product_tokens", "category_paths", "PRICE_EDGES"]

PRICE_EDGES = (5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 250, 500)  # dollars


def category_paths(row: pd.Series) -> list[list[str]]:
    """A product's category paths as lists of levels (``categories`` JSON, else ``category``)."""
    raw = row.get("categories")
    paths: list[str] = []
    if isinstance(raw, str) and raw:
        try:
            loaded = json.loads(raw)
            paths = [p for p in loaded if isinstance(p, str)] if isinstance(loaded, list) else []
        except json.JSONDecodeError:
            paths = []
    if not paths and isinstance(row.get("category"), str) and row.get("category"):
        paths = [row["category"]]
    return [[level for level in path.split("|") if level] for path in paths]


def _price_token(price: Any) -> str:
    try:
        value = float(price)
    except (TypeError, ValueError):
        return "price:?"
    if not math.isfinite(value) or value < 0:
        return "price:?"
    return f"price:{int(np.searchsorted(PRICE_EDGES, value, side='right'))}"


def product_tokens(products: pd.DataFrame, depth: int = 4) -> list[list[str]]:
    """The token bag of every product row: category prefixes, brand, price bucket."""
    out = []
    for _, row in products.iterrows():
        tokens: set[str] = set()
        for levels in category_paths(row):
            for d in range(min(depth, len(levels))):
                tokens.add(f"cat{d}:" + "|".join(levels[: d + 1]))
        brand = row.get("brand")
        tokens.add("brand:" + brand.strip().lower() if isinstance(brand, str) and brand.strip() else "brand:?")
        tokens.add(_price_token(row.get("price")))
        out.append(sorted(tokens))
    return out


def fm_interaction(v: Tensor) -> Tensor:
    """Sum over unordered pairs a < b of <v_a, v_b>, for ``v`` ``[m, n, k]`` -> ``[m]``,
    via 1/2 (||sum v||^2 - sum ||v||^2). Zero rows (padding) contribute nothing."""
    total = v.sum(1)
    return 0.5 * ((total * total).sum(-1) - (v * v).sum((1, 2)))


class FactorizationMachine(LinkModel):
    """Second-order FM over both products' metadata tokens (shared embeddings)."""

    name: ClassVar[str] = "fm"

    def __init__(self, vocab: list[str], k: int = 10, depth: int = 4, max_tokens: int = 32, seed: int = 0, **_: Any) -> None:
        super().__init__()
        self.vocab, self.k, self.depth, self.max_tokens, self.seed = list(vocab), int(k), int(depth), int(max_tokens), int(seed)
        self.index = {token: i + 1 for i, token in enumerate(self.vocab)}  # 0 = padding / unseen
        generator = torch.Generator().manual_seed(seed)
        self.embedding = nn.Parameter(torch.randn(len(vocab) + 1, k, generator=generator) * 0.01)
        self.bias = nn.Parameter(torch.zeros(len(vocab) + 1))
        self.global_bias = nn.Parameter(torch.zeros(()))
        self._cache: tuple[int, Tensor] | None = None

    def hparams(self) -> dict[str, Any]:
        return {"vocab": self.vocab, "k": self.k, "depth": self.depth, "max_tokens": self.max_tokens, "seed": self.seed}

    @classmethod
    def build(cls, graph: Graph, train_pairs: Tensor, train_labels: Tensor, k: int = 10, seed: int = 0, **_: Any) -> "FactorizationMachine":
        nodes = torch.unique(train_pairs).numpy()
        bags = product_tokens(graph.products.iloc[nodes])
        vocab = sorted({token for bag in bags for token in bag})
        return cls(vocab=vocab, k=k, seed=seed, max_tokens=max((len(b) for b in bags), default=1))

    @torch.no_grad()
    def shift_logits(self, offset: float) -> None:
        self.global_bias.add_(offset)

    def decay_parameters(self) -> list[nn.Parameter]:
        return [self.embedding, self.bias]

    def node_inputs(self, graph: Graph, nodes: Tensor | None = None) -> Tensor:
        """Token ids ``[n, max_tokens]`` (0 = padding) for ``nodes``; cached per graph."""
        if self._cache is None or self._cache[0] != id(graph):
            bags = product_tokens(graph.products)
            ids = torch.zeros((graph.num_nodes, self.max_tokens), dtype=torch.long)
            for row, bag in enumerate(bags):
                known = [self.index[t] for t in bag if t in self.index][: self.max_tokens]
                ids[row, : len(known)] = torch.as_tensor(known, dtype=torch.long)
            self._cache = (id(graph), ids)
        ids = self._cache[1]
        return ids if nodes is None else ids[torch.as_tensor(nodes, dtype=torch.long)]

    def logits(self, inputs: Tensor, pairs: Tensor) -> Tensor:
        tokens = torch.cat([inputs[pairs[:, 0]], inputs[pairs[:, 1]]], dim=1)  # [m, 2T]
        mask = (tokens > 0).unsqueeze(-1).float()
        v = self.embedding[tokens] * mask
        linear = (self.bias[tokens] * mask.squeeze(-1)).sum(1)
        return self.global_bias + linear + fm_interaction(v)
