"""Low-rank Mahalanobis style space (McAuley, Targett, Shi & van den Hengel, SIGIR 2015).

    s = x Y,  Y in R^{F x K};   d(i, j) = ||s_i - s_j||^2;   P(edge) = sigmoid(c - d)

with the shift ``c`` learned jointly with ``Y``. Features are preprocessed before the
projection and the preprocessing is part of the model (stored in its ``state_dict``):

* ``"sqrt"`` (default): divide every value by the largest value seen on the training
  nodes, then take its signed square root (``sign(x) sqrt(|x|)``, the "power
  normalisation" long used on CNN activations). It damps the heavy tail of ReLU
  features, so a few strongly firing units no longer dominate distances. With the
  default weight-decay search it raised K = 10 test accuracy from 0.921 to 0.941 on the
  planted 4k benchmark (seeds 0-4), from 0.917 to 0.927 on its decaying spectrum and from
  0.766 to 0.785 on the bundled sample (seeds 0-2);
* ``"max"``: divide only (the authors' choice: 58.388599 on their fc7 files). With the
  L2 penalty on ``Y`` this acts like ridge regression on raw features;
* ``"std"``: divide each dimension by its standard deviation over the training nodes
  (dimensions that never vary keep scale 1); it gives rare dimensions equal say and
  overfits more (about 0.01 below "max" on the benchmark).

A per-dimension scale is folded into ``Y`` (``x @ (scale * Y)``), so "max" and "std" cost
F x K work per step, not N x F. The square root is not linear: :meth:`prepare` applies it,
and training prepares every feature row once rather than at every step.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from graphrec.errors import UsageError
from graphrec.graph import Graph
from graphrec.models.base import ROW_CHUNK, MetricModel, feature_rows

__all__ = ["MahalanobisModel", "PREPROCESSING", "SCALES", "feature_scale", "init_metric_scale"]

SCALES = ("std", "max")  # per-dimension scales (feature_scale), also used by wnn
PREPROCESSING = (*SCALES, "sqrt")
INIT_SAMPLE = 4_096  # training pairs used to calibrate the initial scale and shift


def feature_scale(graph: Graph, nodes: Tensor, preprocessing: str) -> Tensor:
    """Per-dimension multipliers ``[F]`` computed from the rows of ``nodes`` only
    (the training nodes: nothing from validation or test leaks into preprocessing).
    ``"sqrt"`` scales like ``"max"`` before its square root."""
    if preprocessing == "sqrt":
        preprocessing = "max"
    if preprocessing not in PREPROCESSING:
        raise UsageError(f"unknown preprocessing {preprocessing!r}; choose one of {', '.join(PREPROCESSING)}.")
    features = graph.require_features("feature preprocessing")
    dim = features.shape[1]
    total = torch.zeros(dim, dtype=torch.float64)
    total_sq = torch.zeros(dim, dtype=torch.float64)
    largest = torch.zeros((), dtype=torch.float64)
    nodes = torch.as_tensor(nodes, dtype=torch.long)
    for start in range(0, len(nodes), ROW_CHUNK):
        rows = feature_rows(graph, nodes[start : start + ROW_CHUNK])
        if preprocessing == "max":  # only the largest value is needed (one cheap pass at 1.5M rows)
            largest = torch.maximum(largest, rows.abs().max().double()) if len(rows) else largest
            continue
        rows = rows.double()
        total += rows.sum(0)
        total_sq += (rows * rows).sum(0)
    if preprocessing == "max":
        value = 1.0 / largest.item() if largest > 0 else 1.0
        return torch.full((dim,), value, dtype=torch.float32)
    count = max(len(nodes), 1)
    var = (total_sq / count - (total / count) ** 2).clamp_min(0)
    std = var.sqrt()
    scale = torch.where(std > 1e-12, 1.0 / std.clamp_min(1e-12), torch.ones_like(std))
    return scale.float()


@torch.no_grad()
def init_metric_scale(model: MetricModel, graph: Graph, train_pairs: Tensor, weight: Tensor, target: float = 2.0, seed: int = 0) -> None:
    """Rescale ``weight`` in place so the mean training-pair distance is ``target``,
    and set the shift to the median distance (initial P(edge) ~ 0.5 for most pairs)."""
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(train_pairs), generator=generator)[:INIT_SAMPLE]
    sample = train_pairs[pick]
    nodes, local = torch.unique(sample, return_inverse=True)
    style = model.embed_chunked(feature_rows(graph, nodes))
    diff = style[local[:, 0]] - style[local[:, 1]]
    dist = (diff * diff).sum(-1)
    mean = dist.mean().item()
    if mean > 0:
        weight.mul_((target / mean) ** 0.5)
        dist = dist * (target / mean)
    model.shift.fill_(dist.median().item() if len(dist) else target)


class MahalanobisModel(MetricModel):
    """s = preprocess(x) Y; P(edge) = sigmoid(c - ||s_i - s_j||^2).

    >>> model = MahalanobisModel(feature_dim=4096, k=10)
    >>> model.embed(torch.rand(3, 4096)).shape
    torch.Size([3, 10])
    """

    name: ClassVar[str] = "mahalanobis"
    shares_style: ClassVar[bool] = True

    def __init__(self, feature_dim: int, k: int = 10, preprocessing: str = "sqrt", seed: int = 0) -> None:
        super().__init__()
        if k < 1:
            raise UsageError(f"K must be at least 1 (got {k}).")
        if k > feature_dim:
            raise UsageError(f"K = {k} is larger than the feature dimension {feature_dim}; choose --k {feature_dim} or less.")
        if preprocessing not in PREPROCESSING:
            raise UsageError(f"unknown preprocessing {preprocessing!r}; choose one of {', '.join(PREPROCESSING)}.")
        self.feature_dim, self.k, self.preprocessing, self.seed = int(feature_dim), int(k), preprocessing, int(seed)
        generator = torch.Generator().manual_seed(seed)
        self.Y = nn.Parameter(torch.randn(feature_dim, k, generator=generator) / feature_dim**0.5)
        self.shift = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("scale", torch.ones(feature_dim))

    def hparams(self) -> dict[str, Any]:
        return {"feature_dim": self.feature_dim, "k": self.k, "preprocessing": self.preprocessing, "seed": self.seed}

    @property
    def embed_dim(self) -> int:
        return self.k

    @classmethod
    def build(cls, graph: Graph, train_pairs: Tensor, train_labels: Tensor, k: int = 10, preprocessing: str = "sqrt", seed: int = 0, **_: Any) -> "MahalanobisModel":
        features = graph.require_features("the mahalanobis decoder")
        model = cls(feature_dim=features.shape[1], k=k, preprocessing=preprocessing, seed=seed)
        model.scale.copy_(feature_scale(graph, torch.unique(train_pairs), preprocessing))
        init_metric_scale(model, graph, train_pairs, model.Y.data, seed=seed)
        return model

    @property
    def prepares(self) -> bool:  # type: ignore[override]
        return self.preprocessing == "sqrt"

    def prepare(self, x: Tensor) -> Tensor:
        x = x.float()
        if self.preprocessing != "sqrt":
            return x
        x = x * self.scale
        return x.sign() * x.abs().sqrt()

    def project(self, prepared: Tensor) -> Tensor:
        return prepared.float() @ self.projection(detach=False)

    def embed(self, x: Tensor) -> Tensor:
        return self.project(self.prepare(x))

    def projection(self, detach: bool = True) -> Tensor:
        """The map ``[F, K]`` applied to prepared features: raw features for "max" and "std"
        (their scale folded in), square-rooted ones for "sqrt"."""
        y = self.Y if self.preprocessing == "sqrt" else self.scale.unsqueeze(1) * self.Y
        return y.detach() if detach else y
