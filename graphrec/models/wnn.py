"""Weighted nearest neighbour baseline (McAuley et al. 2015, table 2).

d(i, j) = sum_f w_f (x_if - x_jf)^2 with a learned non-negative weight per feature
dimension (``w = softplus(raw)``), P(edge) = sigmoid(c - d). Features are divided by
their per-dimension standard deviation over the training nodes. As a metric model,
``embed(x) = sqrt(w) * x * scale``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from graphrec.errors import UsageError
from graphrec.graph import Graph
from graphrec.models.base import MetricModel, feature_rows
from graphrec.models.mahalanobis import INIT_SAMPLE, SCALES, feature_scale

__all__ = ["WeightedNeighbourModel"]


class WeightedNeighbourModel(MetricModel):
    """A diagonal metric: one learned non-negative weight per feature dimension."""

    name: ClassVar[str] = "wnn"

    def __init__(self, feature_dim: int, preprocessing: str = "std", **_: Any) -> None:
        super().__init__()
        if preprocessing not in SCALES:
            raise UsageError(f"the wnn baseline takes preprocessing {' or '.join(SCALES)} (got {preprocessing!r}).")
        self.feature_dim, self.preprocessing = int(feature_dim), preprocessing
        self.register_buffer("scale", torch.ones(feature_dim))
        self.raw_weight = nn.Parameter(torch.zeros(feature_dim))
        self.shift = nn.Parameter(torch.tensor(1.0))

    def hparams(self) -> dict[str, Any]:
        return {"feature_dim": self.feature_dim, "preprocessing": self.preprocessing}

    @property
    def embed_dim(self) -> int:
        return self.feature_dim

    def weights(self) -> Tensor:
        """The non-negative per-dimension weights w ``[F]``."""
        return nn.functional.softplus(self.raw_weight)

    def embed(self, x: Tensor) -> Tensor:
        return x.float() * (self.scale * self.weights().sqrt())

    def logits(self, inputs: Tensor, pairs: Tensor) -> Tensor:
        """d = ((x_i - x_j)^2 * scale^2) @ w: the squared differences do not depend on the
        parameters, so they are computed without autograd and the step is one matrix-vector
        product (F x fewer saved activations than going through :meth:`embed`)."""
        weights = self.weights() * self.scale * self.scale
        chunk = max(256, (1 << 23) // self.feature_dim)
        parts = []
        for start in range(0, len(pairs), chunk):
            part = pairs[start : start + chunk]
            with torch.no_grad():
                diff = inputs[part[:, 0]].float() - inputs[part[:, 1]].float()
                diff.mul_(diff)
            parts.append(diff @ weights)
        dist = torch.cat(parts) if parts else weights.new_zeros(0)
        return self.shift - dist

    def decay_parameters(self) -> list[nn.Parameter]:
        return []

    @classmethod
    def build(cls, graph: Graph, train_pairs: Tensor, train_labels: Tensor, preprocessing: str = "std", seed: int = 0, **_: Any) -> "WeightedNeighbourModel":
        features = graph.require_features("the wnn baseline")
        model = cls(feature_dim=features.shape[1], preprocessing=preprocessing)
        model.scale.copy_(feature_scale(graph, torch.unique(train_pairs), preprocessing))
        with torch.no_grad():  # equal weights giving a mean training distance of 2
            pick = torch.randperm(len(train_pairs), generator=torch.Generator().manual_seed(seed))[:INIT_SAMPLE]
            nodes, local = torch.unique(train_pairs[pick], return_inverse=True)
            x = feature_rows(graph, nodes) * model.scale
            dist = ((x[local[:, 0]] - x[local[:, 1]]) ** 2).sum(-1)
            w = 2.0 / max(dist.mean().item(), 1e-12)
            model.raw_weight.fill_(float(torch.log(torch.expm1(torch.tensor(w)))) if w < 20 else w)
            model.shift.fill_(float((dist * w).median()))
        return model
