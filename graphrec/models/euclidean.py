"""Euclidean baseline (McAuley et al. 2015, table 2): plain distance on raw features.

P(edge) = sigmoid(c - a * ||x_i - x_j||^2) with x divided by the largest training
value (the authors' preprocessing). Only the slope ``a`` and threshold ``c`` are
fitted, by logistic regression on the training pairs' distances: the threshold is
where P crosses 0.5. Its encoder is ``s = sqrt(a) * x / max``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from graphrec.models.base import CLOSED_FORM, MetricModel, TrainDefaults
from graphrec.models.encoders import Encoder, chunked, feature_inputs, feature_scale
from graphrec.models.inputs import ROW_CHUNK, NodeInputs, PreparedRows
from graphrec.models.registry import register_model

__all__ = ["EuclideanModel", "ScaledEncoder", "fit_logistic_1d"]


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


class ScaledEncoder(Encoder):
    """s = x * scale * sqrt(a): raw features, one fitted slope."""

    name: ClassVar[str] = "scaled"
    needs_features: ClassVar[bool] = True
    embeds_photos: ClassVar[bool] = True

    def __init__(self, feature_dim: int) -> None:
        super().__init__()
        self.feature_dim = self.dim = int(feature_dim)
        self.register_buffer("scale", torch.ones(feature_dim))
        self.log_slope = nn.Parameter(torch.tensor(0.0))

    def hparams(self) -> dict[str, Any]:
        return {"feature_dim": self.feature_dim}

    def training_inputs(self, inputs: NodeInputs) -> Tensor | PreparedRows:
        return feature_inputs(inputs.require_features("the euclidean baseline"), lambda x: x.float(), False)

    def embed_features(self, features: Tensor) -> Tensor:
        return features.float() * (self.scale * (0.5 * self.log_slope).exp())

    def forward(self, x: Tensor | PreparedRows, nodes: Tensor | None = None) -> Tensor:
        return chunked(self.embed_features, x if nodes is None else x[nodes])

    @torch.no_grad()
    def styles(self, inputs: NodeInputs, nodes: Tensor | None = None) -> Tensor:
        features = inputs.require_features("the euclidean baseline")
        index = torch.arange(len(features)) if nodes is None else torch.as_tensor(nodes, dtype=torch.long)
        parts = [self.embed_features(features.rows(index[s : s + ROW_CHUNK])) for s in range(0, len(index), ROW_CHUNK)]
        return torch.cat(parts) if parts else torch.empty((0, self.dim))


@register_model
class EuclideanModel(MetricModel):
    """The Euclidean-distance baseline with a fitted threshold (no learned projection)."""

    name: ClassVar[str] = "euclidean"
    help: ClassVar[str] = "distance on raw features, fitted threshold"
    trainable: ClassVar[bool] = False
    defaults: ClassVar[TrainDefaults] = CLOSED_FORM

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> "EuclideanModel":
        return cls(ScaledEncoder(**hparams))

    def hparams(self) -> dict[str, Any]:
        return self.encoder.hparams()

    @classmethod
    def build(cls, inputs: NodeInputs, train_pairs: Tensor, train_labels: Tensor) -> "EuclideanModel":
        features = inputs.require_features("the euclidean baseline")
        model = cls(ScaledEncoder(feature_dim=features.shape[1]))
        model.encoder.scale.copy_(feature_scale(features, torch.unique(train_pairs), "max"))
        return model

    @torch.no_grad()
    def fit(self, inputs: NodeInputs, train_pairs: Tensor, train_labels: Tensor) -> None:
        nodes, local = torch.unique(train_pairs, return_inverse=True)
        x = inputs.require_features("the euclidean baseline").rows(nodes) * self.encoder.scale
        dist = self.decoder.distances(x, local)
        with torch.enable_grad():
            slope, shift = fit_logistic_1d(dist, train_labels.float())
        self.encoder.log_slope.fill_(float(torch.log(torch.tensor(max(slope, 1e-30)))))
        self.decoder.shift.fill_(shift)
