"""Weighted nearest neighbour baseline (McAuley et al. 2015, table 2).

d(i, j) = sum_f w_f (x_if - x_jf)^2 with a learned non-negative weight per feature
dimension (``w = softplus(raw)``), P(edge) = sigmoid(c - d) (the distance decoder).
Features are divided by their per-dimension standard deviation over the training nodes.
Its encoder is ``s = sqrt(w) * x * scale``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from graphrec.errors import UsageError
from graphrec.models.base import MetricModel, TrainDefaults
from graphrec.models.encoders import SCALES, Encoder, chunked, feature_inputs, feature_scale
from graphrec.models.inputs import ROW_CHUNK, NodeInputs, PreparedRows
from graphrec.models.registry import register_model

__all__ = ["WeightedNeighbourModel", "DiagonalEncoder"]


class DiagonalEncoder(Encoder):
    """s = x * scale * sqrt(w): one learned non-negative weight per feature dimension."""

    name: ClassVar[str] = "diagonal"
    needs_features: ClassVar[bool] = True
    embeds_photos: ClassVar[bool] = True

    def __init__(self, feature_dim: int, preprocessing: str = "std") -> None:
        super().__init__()
        if preprocessing not in SCALES:
            raise UsageError(f"the wnn baseline takes preprocessing {' or '.join(SCALES)} (got {preprocessing!r}).")
        self.feature_dim, self.preprocessing = int(feature_dim), preprocessing
        self.dim = self.feature_dim
        self.register_buffer("scale", torch.ones(feature_dim))
        self.raw_weight = nn.Parameter(torch.zeros(feature_dim))

    def hparams(self) -> dict[str, Any]:
        return {"feature_dim": self.feature_dim, "preprocessing": self.preprocessing}

    def weights(self) -> Tensor:
        """The non-negative per-dimension weights w ``[F]``."""
        return nn.functional.softplus(self.raw_weight)

    def training_inputs(self, inputs: NodeInputs) -> Tensor | PreparedRows:
        return feature_inputs(inputs.require_features("the wnn baseline"), lambda x: x.float(), False)

    def embed_features(self, features: Tensor) -> Tensor:
        return features.float() * (self.scale * self.weights().sqrt())

    def forward(self, x: Tensor | PreparedRows, nodes: Tensor | None = None) -> Tensor:
        return chunked(self.embed_features, x if nodes is None else x[nodes])

    @torch.no_grad()
    def styles(self, inputs: NodeInputs, nodes: Tensor | None = None) -> Tensor:
        features = inputs.require_features("the wnn baseline")
        index = torch.arange(len(features)) if nodes is None else torch.as_tensor(nodes, dtype=torch.long)
        parts = [self.embed_features(features.rows(index[s : s + ROW_CHUNK])) for s in range(0, len(index), ROW_CHUNK)]
        return torch.cat(parts) if parts else torch.empty((0, self.dim))

    def decay_parameters(self) -> list[nn.Parameter]:
        return []


@register_model
class WeightedNeighbourModel(MetricModel):
    """A diagonal metric: one learned non-negative weight per feature dimension."""

    name: ClassVar[str] = "wnn"
    help: ClassVar[str] = "weighted nearest neighbour"
    defaults: ClassVar[TrainDefaults] = TrainDefaults(epochs=20, lr=0.01, weight_decay=0.0)

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> "WeightedNeighbourModel":
        return cls(DiagonalEncoder(**hparams))

    def hparams(self) -> dict[str, Any]:
        return self.encoder.hparams()

    def logits(self, x: Tensor | PreparedRows, pairs: Tensor) -> Tensor:
        """d = ((x_i - x_j)^2 * scale^2) @ w: the squared differences do not depend on the
        parameters, so they are computed without autograd and the step is one matrix-vector
        product (F x fewer saved activations than going through the encoder)."""
        encoder = self.encoder
        weights = encoder.weights() * encoder.scale * encoder.scale
        chunk = max(256, (1 << 23) // encoder.feature_dim)
        parts = []
        for start in range(0, len(pairs), chunk):
            part = pairs[start : start + chunk]
            with torch.no_grad():
                diff = x[part[:, 0]].float() - x[part[:, 1]].float()
                diff.mul_(diff)
            parts.append(diff @ weights)
        return self.decoder.logits_of(torch.cat(parts) if parts else weights.new_zeros(0))

    @classmethod
    def build(cls, inputs: NodeInputs, train_pairs: Tensor, train_labels: Tensor, preprocessing: str = "std",
              seed: int = 0) -> "WeightedNeighbourModel":
        features = inputs.require_features("the wnn baseline")
        model = cls(DiagonalEncoder(feature_dim=features.shape[1], preprocessing=preprocessing))
        encoder = model.encoder
        encoder.scale.copy_(feature_scale(features, torch.unique(train_pairs), preprocessing))
        with torch.no_grad():  # equal weights giving a mean training distance of 2
            nodes, local = torch.unique(model.decoder.sample_pairs(train_pairs, seed), return_inverse=True)
            dist = model.decoder.distances(features.rows(nodes) * encoder.scale, local)
            w = model.decoder.initialise(dist)
            encoder.raw_weight.fill_(float(torch.log(torch.expm1(torch.tensor(w)))) if w < 20 else w)
        return model
