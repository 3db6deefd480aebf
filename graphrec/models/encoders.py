"""Encoders: what turns the nodes into style vectors for the :class:`DistanceDecoder`.

An encoder is a small module in the PyG GAE sense:

* ``build(inputs, train_pairs, train_labels, k=..., seed=..., **its options)`` -> a fresh
  encoder whose data-dependent parts (preprocessing statistics, which products have edges)
  come from the training pairs only; a message-passing encoder (``needs_edges``) also takes
  ``edge_index``, the training graph it propagates over;
* ``training_inputs(inputs)`` -> the rows its ``forward`` reads, one per node (prepared
  feature rows; a zero-width tensor for encoders without features), built once per fit;
* ``forward(x, nodes=None)`` -> style vectors ``[len(nodes), K]`` of ``nodes`` (every node
  when None) from those rows; a message-passing encoder (``propagates``) computes every
  node and then picks ``nodes``;
* ``styles(inputs, nodes=None)`` -> the same without gradients, streamed from the
  (memory-mapped) features for evaluation and the faiss index;
* ``embed_features(features)`` -> styles of raw feature rows that need not be products
  of the graph (a new photo: cold start);
* ``decay_parameters()`` and ``penalty()`` -> what training regularises;
  ``rescale(factor)`` -> the decoder's initial calibration of the style scale.

Encoders are registered by name (:func:`get_encoder`, :func:`list_encoders`) and rebuilt
from :meth:`Encoder.hparams` (JSON) plus a state_dict.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from graphrec.errors import UsageError, choose
from graphrec.models.inputs import ROW_CHUNK, NodeFeatures, NodeInputs, PreparedRows

__all__ = [
    "PREPROCESSING", "SCALES", "FLOAT32_LIMIT", "IN_MEMORY_LIMIT",
    "Encoder", "LinearEncoder", "feature_scale", "feature_inputs", "chunked",
    "register_encoder", "get_encoder", "list_encoders", "encoder_from_hparams",
]

SCALES = ("std", "max")  # per-dimension scales (feature_scale), also used by wnn
PREPROCESSING = (*SCALES, "sqrt")
FLOAT32_LIMIT = 2 << 30  # bytes: larger feature matrices are kept as float16 while training
IN_MEMORY_LIMIT = 4 << 30  # bytes: a larger stored matrix is read through its memory map while training

_ENCODERS: dict[str, type["Encoder"]] = {}


def register_encoder(cls: type["Encoder"]) -> type["Encoder"]:
    """Class decorator: make ``cls`` available as ``--encoder cls.name``."""
    _ENCODERS[cls.name] = cls
    return cls


def list_encoders() -> list[str]:
    """Registered encoder names, in registration order."""
    return list(_ENCODERS)


def get_encoder(name: str) -> type["Encoder"]:
    """The encoder class registered as ``name`` (a :class:`UsageError` listing the choices otherwise)."""
    return _ENCODERS[choose(name, _ENCODERS, "encoder")]


def encoder_from_hparams(hparams: dict[str, Any]) -> "Encoder":
    """Rebuild an encoder from ``{"encoder": name, **its hparams}`` (name default "linear")."""
    options = dict(hparams)
    return get_encoder(options.pop("encoder", "linear")).from_hparams(options)


class _StackedProduct(torch.autograd.Function):
    """``rows @ weight`` whose weight gradient is computed as ``(grad^T rows)^T``: for a thin
    ``grad`` (K = 10 columns) MKL's ``rows^T grad`` is several times slower on 2 cores."""

    @staticmethod
    def forward(ctx, rows: Tensor, weight: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(rows, weight)
        return rows @ weight

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:  # type: ignore[override]
        rows, weight = ctx.saved_tensors
        rows_grad = grad @ weight.t() if ctx.needs_input_grad[0] else None
        weight_grad = (grad.t() @ rows).t() if ctx.needs_input_grad[1] else None
        return rows_grad, weight_grad


def stacked_product(rows: Tensor, weight: Tensor) -> Tensor:
    """``rows @ weight`` in the weight's dtype (float16 rows are converted), with a fast
    weight gradient (see :class:`_StackedProduct`): the linear encoder's projection, and the
    joint weight-decay search's stacked one."""
    return _StackedProduct.apply(rows.to(weight.dtype), weight)


def feature_scale(features: NodeFeatures, nodes: Tensor, preprocessing: str) -> Tensor:
    """Per-dimension multipliers ``[F]`` computed from the rows of ``nodes`` only (the
    training nodes: nothing from validation or test leaks into preprocessing). ``"sqrt"``
    scales like ``"max"`` before its square root."""
    preprocessing = choose(preprocessing, PREPROCESSING, "preprocessing")
    if preprocessing == "sqrt":
        preprocessing = "max"
    dim = features.shape[1]
    total = torch.zeros(dim, dtype=torch.float64)
    total_sq = torch.zeros(dim, dtype=torch.float64)
    largest = torch.zeros((), dtype=torch.float64)
    nodes = torch.as_tensor(nodes, dtype=torch.long)
    for start in range(0, len(nodes), ROW_CHUNK):
        rows = features.rows(nodes[start : start + ROW_CHUNK])
        if preprocessing == "max":  # only the largest value is needed (one cheap pass at 1.5M rows)
            largest = torch.maximum(largest, rows.abs().max().double()) if len(rows) else largest
            continue
        rows = rows.double()
        total += rows.sum(0)
        total_sq += (rows * rows).sum(0)
    if preprocessing == "max":
        return torch.full((dim,), 1.0 / largest.item() if largest > 0 else 1.0, dtype=torch.float32)
    count = max(len(nodes), 1)
    std = (total_sq / count - (total / count) ** 2).clamp_min(0).sqrt()
    return torch.where(std > 1e-12, 1.0 / std.clamp_min(1e-12), torch.ones_like(std)).float()


def feature_inputs(features: NodeFeatures, prepare, prepares: bool) -> Tensor | PreparedRows:
    """Every node's feature row held for training: a float32 copy (float16 when large),
    prepared once; above :data:`IN_MEMORY_LIMIT` the memory map itself (no copy: each
    mini-batch reads its rows from the page cache), prepared as rows are read."""
    if features.is_memory_map and features.nbytes > IN_MEMORY_LIMIT:
        rows = features.as_tensor()
        return PreparedRows(rows, prepare) if prepares else rows
    dtype = torch.float32 if features.shape[0] * features.shape[1] * 4 <= FLOAT32_LIMIT else torch.float16
    rows = features.rows(None, dtype=dtype)
    if prepares:  # in place, a chunk at a time, keeping the dtype
        for start in range(0, len(rows), ROW_CHUNK):
            rows[start : start + ROW_CHUNK] = prepare(rows[start : start + ROW_CHUNK]).to(rows.dtype)
    return rows


def chunked(func, rows: Tensor | PreparedRows, chunk: int = ROW_CHUNK) -> Tensor:
    """``func`` over ``rows`` a chunk of rows at a time, concatenated."""
    if not len(rows):
        return func(rows[:0])
    return torch.cat([func(rows[start : start + chunk]) for start in range(0, len(rows), chunk)])


class Encoder(nn.Module):
    """Base class: nodes -> style vectors ``[n, dim]``."""

    name: ClassVar[str] = "encoder"
    help: ClassVar[str] = ""
    #: True when it reads image features (a graph without them cannot use it).
    needs_features: ClassVar[bool] = False
    #: True when a node's style depends on other nodes (message passing): forward computes all.
    propagates: ClassVar[bool] = False
    #: True when a new photo can be embedded (:meth:`embed_features`).
    embeds_photos: ClassVar[bool] = False
    #: True when :meth:`build` takes the message-passing graph (``edge_index``).
    needs_edges: ClassVar[bool] = False
    #: True when training fits ``base_encoder()`` first and then ``offset_encoder(inputs)``
    #: (:mod:`graphrec.training.staged`)
    staged: ClassVar[bool] = False
    #: training options this encoder changes from its model's defaults (e.g. a larger lr)
    train_defaults: ClassVar[dict[str, Any]] = {}
    #: mean squared distance of training pairs that :meth:`rescale` sets before training
    #: (see :meth:`graphrec.models.base.MetricModel.initialise`)
    init_distance: ClassVar[float] = 2.0
    dim: int

    def hparams(self) -> dict[str, Any]:
        """JSON-able constructor arguments."""
        raise NotImplementedError

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> "Encoder":
        return cls(**hparams)

    def training_inputs(self, inputs: NodeInputs) -> Tensor | PreparedRows:
        """The rows :meth:`forward` reads, one per node (zero-width without features)."""
        return torch.empty((inputs.num_nodes, 0))

    def forward(self, x: Tensor | PreparedRows, nodes: Tensor | None = None) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def styles(self, inputs: NodeInputs, nodes: Tensor | None = None) -> Tensor:
        """Style vectors of ``nodes`` (all when None), without gradients."""
        return self(self.training_inputs(inputs), None if nodes is None else torch.as_tensor(nodes, dtype=torch.long)).detach()

    def embed_features(self, features: Tensor) -> Tensor:
        """Styles of raw feature rows ``[n, F]`` (a new photo)."""
        raise UsageError(f"the {self.name} encoder does not read image features, so it cannot embed a new photo; "
                         "train with --encoder linear or hybrid for --image.")

    @torch.no_grad()
    def rescale(self, factor: float) -> None:
        """Multiply every style vector by ``factor`` (initial calibration)."""
        raise NotImplementedError

    def decay_parameters(self) -> list[nn.Parameter]:
        """Parameters that get weight decay in training."""
        return [p for p in self.parameters() if p.requires_grad]

    def penalty(self) -> Tensor | None:
        """An extra training penalty of the encoder's own (None: none)."""
        return None


@register_encoder
class LinearEncoder(Encoder):
    """The paper's s = prepare(x) Y, Y in R^{F x K} (see :mod:`graphrec.models.mahalanobis`
    for the preprocessing choices). A per-dimension scale ("max", "std") is folded into Y,
    so it costs F x K work per step; the square root ("sqrt") is applied by :meth:`prepare`,
    once per training row.

    >>> LinearEncoder(feature_dim=4096, k=10).embed_features(torch.rand(3, 4096)).shape
    torch.Size([3, 10])
    """

    name: ClassVar[str] = "linear"
    help: ClassVar[str] = "s = xY, the paper's projection of image features (default with features)"
    needs_features: ClassVar[bool] = True
    embeds_photos: ClassVar[bool] = True

    def __init__(self, feature_dim: int, k: int = 10, preprocessing: str = "sqrt", seed: int = 0) -> None:
        super().__init__()
        if k < 1:
            raise UsageError(f"K must be at least 1 (got {k}).")
        if k > feature_dim:
            raise UsageError(f"K = {k} is larger than the feature dimension {feature_dim}; choose --k {feature_dim} or less.")
        preprocessing = choose(preprocessing, PREPROCESSING, "preprocessing")
        self.feature_dim, self.k, self.preprocessing, self.seed = int(feature_dim), int(k), preprocessing, int(seed)
        self.dim = self.k
        generator = torch.Generator().manual_seed(seed)
        self.Y = nn.Parameter(torch.randn(feature_dim, k, generator=generator) / feature_dim**0.5)
        self.register_buffer("scale", torch.ones(feature_dim))

    def hparams(self) -> dict[str, Any]:
        return {"feature_dim": self.feature_dim, "k": self.k, "preprocessing": self.preprocessing, "seed": self.seed}

    @classmethod
    def build(cls, inputs: NodeInputs, train_pairs: Tensor, train_labels: Tensor, k: int = 10, preprocessing: str = "sqrt",
              seed: int = 0) -> "LinearEncoder":
        features = inputs.require_features("the linear encoder")
        encoder = cls(feature_dim=features.shape[1], k=k, preprocessing=preprocessing, seed=seed)
        encoder.scale.copy_(feature_scale(features, torch.unique(train_pairs), preprocessing))
        return encoder

    @property
    def prepares(self) -> bool:
        """True when :meth:`prepare` does more than convert to float32."""
        return self.preprocessing == "sqrt"

    def prepare(self, x: Tensor) -> Tensor:
        """Raw feature rows -> the rows Y multiplies (float32)."""
        x = x.float()
        if self.preprocessing != "sqrt":
            return x
        x = x * self.scale
        return x.sign() * x.abs().sqrt()

    def projection(self, detach: bool = True) -> Tensor:
        """The map ``[F, K]`` applied to prepared rows: raw features for "max" and "std"
        (their scale folded in), square-rooted ones for "sqrt"."""
        y = self.Y if self.preprocessing == "sqrt" else self.scale.unsqueeze(1) * self.Y
        return y.detach() if detach else y

    def project(self, prepared: Tensor) -> Tensor:
        return stacked_product(prepared, self.projection(detach=False))

    def training_inputs(self, inputs: NodeInputs) -> Tensor | PreparedRows:
        return feature_inputs(inputs.require_features("the linear encoder"), self.prepare, self.prepares)

    def forward(self, x: Tensor | PreparedRows, nodes: Tensor | None = None) -> Tensor:
        return chunked(self.project, x if nodes is None else x[nodes])

    def embed_features(self, features: Tensor) -> Tensor:
        return self.project(self.prepare(features))

    @torch.no_grad()
    def styles(self, inputs: NodeInputs, nodes: Tensor | None = None) -> Tensor:
        """Streamed from the memory map, :data:`ROW_CHUNK` rows at a time."""
        features = inputs.require_features("the linear encoder")
        index = torch.arange(len(features)) if nodes is None else torch.as_tensor(nodes, dtype=torch.long)
        parts = [self.embed_features(features.rows(index[s : s + ROW_CHUNK])) for s in range(0, len(index), ROW_CHUNK)]
        return torch.cat(parts) if parts else torch.empty((0, self.dim))

    @torch.no_grad()
    def rescale(self, factor: float) -> None:
        self.Y.mul_(factor)
