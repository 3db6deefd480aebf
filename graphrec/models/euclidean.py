"""Euclidean baseline (McAuley et al. 2015, table 2): plain distance on raw features.

P(edge) = sigmoid(c - a * ||x_i - x_j||^2) with x divided by the largest training
value (the authors' preprocessing). Only the slope ``a`` and threshold ``c`` are
fitted, by logistic regression on the training pairs' distances: the threshold is
where P crosses 0.5. As a metric model, ``embed(x) = sqrt(a) * x / max``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from graphrec.graph import Graph
from graphrec.models.base import MetricModel, feature_rows
from graphrec.models.mahalanobis import feature_scale

__all__ = ["EuclideanModel", "fit_logistic_1d"]


def fit_logistic_1d(dist: Tensor, labels: Tensor, steps: int = 200) -> tuple[float, float]:
    """(slope a >= 0, shift c) maximising the likelihood of sigmoid(c - a * dist)."""
    spread = dist.std().clamp_min(1e-12)
    log_a = torch.tensor(float(-torch.log(spread)), requires_grad=True)
    c = torch.tensor(float(dist.median() / spread), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_a, c], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(c - log_a.exp() * dist, labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_a.detach().exp()), float(c.detach())


class EuclideanModel(MetricModel):
    """The Euclidean-distance baseline with a fitted threshold (no learned projection)."""

    name: ClassVar[str] = "euclidean"
    trainable: ClassVar[bool] = False

    def __init__(self, feature_dim: int, **_: Any) -> None:
        super().__init__()
        self.feature_dim = int(feature_dim)
        self.register_buffer("scale", torch.ones(feature_dim))
        self.log_slope = nn.Parameter(torch.tensor(0.0))
        self.shift = nn.Parameter(torch.tensor(1.0))

    def hparams(self) -> dict[str, Any]:
        return {"feature_dim": self.feature_dim}

    @property
    def embed_dim(self) -> int:
        return self.feature_dim

    @classmethod
    def build(cls, graph: Graph, train_pairs: Tensor, train_labels: Tensor, **_: Any) -> "EuclideanModel":
        features = graph.require_features("the euclidean baseline")
        model = cls(feature_dim=features.shape[1])
        model.scale.copy_(feature_scale(graph, torch.unique(train_pairs), "max"))
        return model

    def embed(self, x: Tensor) -> Tensor:
        return x.float() * (self.scale * (0.5 * self.log_slope).exp())

    @torch.no_grad()
    def fit(self, graph: Graph, train_pairs: Tensor, train_labels: Tensor) -> None:
        nodes, local = torch.unique(train_pairs, return_inverse=True)
        x = feature_rows(graph, nodes) * self.scale
        dist = torch.empty(len(train_pairs))
        for start in range(0, len(local), 65_536):
            part = local[start : start + 65_536]
            diff = x[part[:, 0]] - x[part[:, 1]]
            dist[start : start + len(part)] = (diff * diff).sum(-1)
        with torch.enable_grad():
            slope, shift = fit_logistic_1d(dist, train_labels.float())
        self.log_slope.fill_(float(torch.log(torch.tensor(max(slope, 1e-30)))))
        self.shift.fill_(shift)
