"""The interface every link-prediction model honours.

A :class:`LinkModel` scores product pairs: ``predict_proba(inputs, pairs)`` is the
probability that each pair is an edge of the trained relation, ``inputs`` being the
:class:`~graphrec.models.inputs.NodeInputs` built once from a graph. Training keeps a
model's per-node inputs in memory and scores mini-batches with two small steps:

* ``training_inputs(inputs)`` -> one row of model input per node;
* ``logits(x, pairs)`` -> pre-sigmoid scores, ``pairs`` indexing rows of ``x``.

Models are rebuilt from JSON-able hyper-parameters (:meth:`LinkModel.hparams`,
:meth:`LinkModel.from_hparams`) plus a ``state_dict``; data-dependent set-up
(preprocessing statistics, vocabularies, the initial shift) is done by the classmethod
:meth:`LinkModel.build`, which sees the training pairs only.

Each model class carries its facts for the registry (:mod:`graphrec.models.registry`):
``name``, ``help``, ``has_k`` and its training ``defaults`` (:class:`TrainDefaults`).

A :class:`MetricModel` is an encoder (:mod:`graphrec.models.encoders`) followed by the
paper's :class:`~graphrec.models.decoder.DistanceDecoder`:
``predict_proba == sigmoid(c - ||s_i - s_j||^2)`` with ``s = encoder(...)``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from graphrec.models.decoder import DistanceDecoder
from graphrec.models.encoders import Encoder, encoder_from_hparams
from graphrec.models.inputs import NodeInputs, PreparedRows

__all__ = ["PAIR_CHUNK", "CLOSED_FORM", "TrainDefaults", "LinkModel", "MetricModel", "NodeCache", "options_not_taken"]

PAIR_CHUNK = 65_536  # pairs scored at once by predict_proba
STYLE_CACHE_FLOATS = 50_000_000  # at most 200 MB of every node's styles kept between calls (MetricModel.styles)


@dataclass(frozen=True)
class TrainDefaults:
    """A model's training defaults (``graphrec train`` options it does not get)."""

    epochs: int = 30
    lr: float = 0.003
    batch_size: int = 4096
    weight_decay: float | tuple[float, ...] = 0.0  # several: train once per value, keep the best on validation
    patience: int = 6
    ema: float = 0.9
    noise_floor: float = 0.0
    negatives: int = 1
    #: which labelled pairs choose the decision threshold: "train" (a projection of features
    #: generalises, so its training pairs are representative) or "val" (per-product vectors
    #: memorise their training edges, whose distances then say little about new pairs)
    calibration: str = "train"


#: the defaults of models fitted in closed form (one "epoch", no optimiser)
CLOSED_FORM = TrainDefaults(epochs=1, lr=0.0, batch_size=0, weight_decay=0.0, patience=0, ema=0.0)


def options_not_taken(func, options: dict[str, Any], skip: int = 3) -> list[str]:
    """Names in ``options`` that ``func`` does not take as keywords (after ``skip`` positional
    arguments: inputs, pairs, labels); a function with ``**kwargs`` takes everything."""
    import inspect

    parameters = list(inspect.signature(func).parameters.values())[skip:]
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return []
    names = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return sorted(set(options) - names)


class NodeCache:
    """One tensor computed per :class:`NodeInputs` object (kept while that object lives)."""

    def __init__(self) -> None:
        self._source: weakref.ref | None = None
        self._value: Tensor | None = None

    def get(self, inputs: NodeInputs, compute) -> Tensor:
        if self._source is None or self._source() is not inputs:
            self._value, self._source = compute(inputs), weakref.ref(inputs)
        return self._value  # type: ignore[return-value]


class LinkModel(nn.Module):
    """Base class: a model of P(edge | product i, product j) for one relation."""

    name: ClassVar[str] = "link-model"
    help: ClassVar[str] = ""
    #: True when ``--k`` sets its size (the sweep trains it at every K).
    has_k: ClassVar[bool] = False
    defaults: ClassVar[TrainDefaults] = TrainDefaults()
    is_metric: ClassVar[bool] = False
    needs_features: ClassVar[bool] = False
    #: False for models fitted in closed form by :meth:`fit` (no gradient epochs).
    trainable: ClassVar[bool] = True
    #: True when other relations can be trained in its style space (``--aux-relations``).
    shares_style: ClassVar[bool] = False

    # -- construction ---------------------------------------------------------------
    def hparams(self) -> dict[str, Any]:
        """JSON-able constructor arguments: ``type(self).from_hparams(model.hparams())`` rebuilds it."""
        raise NotImplementedError

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> "LinkModel":
        return cls(**hparams)

    @classmethod
    def build(cls, inputs: NodeInputs, train_pairs: Tensor, train_labels: Tensor, **options: Any) -> "LinkModel":
        """A fresh model whose data-dependent parts come from the training pairs only;
        each model names the options it takes (an unknown one is a TypeError)."""
        raise NotImplementedError

    @classmethod
    def unknown_options(cls, options: dict[str, Any]) -> list[str]:
        """The names in ``options`` that :meth:`build` does not take (a misspelt option)."""
        return options_not_taken(cls.build, options)

    @classmethod
    def needs_features_for(cls, options: dict[str, Any]) -> bool:
        """True when the model built with ``options`` reads image features."""
        return cls.needs_features

    def fit(self, inputs: NodeInputs, train_pairs: Tensor, train_labels: Tensor) -> None:
        """Closed-form fit for models with ``trainable = False``."""
        raise NotImplementedError(f"{self.name} is trained by gradient steps, not fit()")

    # -- scoring --------------------------------------------------------------------
    def training_inputs(self, inputs: NodeInputs) -> Tensor | PreparedRows:
        """One row of model input per node, held for the epochs."""
        return self.node_inputs(inputs)

    def node_inputs(self, inputs: NodeInputs, nodes: Tensor | None = None) -> Tensor:
        """Rows of model input for ``nodes`` (all when None)."""
        raise NotImplementedError

    def logits(self, x: Tensor | PreparedRows, pairs: Tensor) -> Tensor:
        """Pre-sigmoid edge scores ``[m]`` for ``pairs`` ``[m, 2]`` indexing rows of ``x``."""
        raise NotImplementedError

    @torch.no_grad()
    def all_logits(self, x: Tensor | PreparedRows, pairs: Tensor, chunk: int = PAIR_CHUNK) -> Tensor:
        """:meth:`logits` of many pairs without gradients, a chunk of pairs at a time."""
        parts = [self.logits(x, pairs[start : start + chunk]) for start in range(0, len(pairs), chunk)]
        return torch.cat(parts) if parts else torch.empty(0)

    @staticmethod
    def probability(logits: Tensor) -> Tensor:
        """P(edge) from pre-sigmoid scores."""
        return torch.sigmoid(logits)

    @torch.no_grad()
    def shift_logits(self, offset: float) -> None:
        """Add ``offset`` to every logit (moves the P = 0.5 threshold); used to calibrate
        the decision threshold on training pairs. Models without a bias ignore it."""

    def decay_parameters(self) -> list[nn.Parameter]:
        """Parameters that get weight decay in training."""
        return [p for p in self.parameters() if p.requires_grad]

    def penalty(self) -> Tensor | None:
        """A training penalty besides weight decay (None: none)."""
        return None

    @classmethod
    def defaults_for(cls, options: dict[str, Any]) -> TrainDefaults:
        """The training defaults of the model built with ``options``."""
        return cls.defaults

    @classmethod
    def with_defaults(cls, options: dict[str, Any], has_features: bool) -> dict[str, Any]:
        """``options`` completed with choices that depend on the graph (e.g. the encoder)."""
        return options

    @classmethod
    def needs_edges_for(cls, options: dict[str, Any]) -> bool:
        """True when the model built with ``options`` takes a message-passing ``edge_index``."""
        return False

    @torch.no_grad()
    def predict_proba(self, inputs: NodeInputs, pairs: Tensor) -> Tensor:
        """P(edge) for each row of ``pairs`` (LongTensor ``[m, 2]`` of node indices)."""
        pairs = torch.as_tensor(pairs, dtype=torch.long).reshape(-1, 2)
        out = torch.empty(len(pairs))
        for start in range(0, len(pairs), PAIR_CHUNK):
            chunk = pairs[start : start + PAIR_CHUNK]
            nodes, local = torch.unique(chunk, return_inverse=True)
            out[start : start + len(chunk)] = self.probability(self.logits(self.node_inputs(inputs, nodes), local.reshape(-1, 2)))
        return out

    # -- loading --------------------------------------------------------------------
    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        """Like :meth:`torch.nn.Module.load_state_dict`, but buffers whose size depends
        on the training data (vocabularies, count tables, edge lists) take the stored shape."""
        state_dict = self.upgrade_state(dict(state_dict))
        for name, buffer in list(self.named_buffers()):
            stored = state_dict.get(name)
            if stored is not None and buffer is not None and stored.shape != buffer.shape:
                module_name, _, attr = name.rpartition(".")
                module = self.get_submodule(module_name) if module_name else self
                module.register_buffer(attr, torch.empty_like(stored))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def upgrade_state(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """A state_dict saved by an older graphrec, renamed to today's keys."""
        return state


class MetricModel(LinkModel):
    """An encoder followed by the distance decoder: P(edge) = sigmoid(c - ||s_i - s_j||^2)."""

    is_metric: ClassVar[bool] = True
    needs_features: ClassVar[bool] = True

    def __init__(self, encoder: Encoder, decoder: DistanceDecoder | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder if decoder is not None else DistanceDecoder()
        self._style_cache: tuple | None = None  # (inputs weakref, weight versions, styles of every node)

    def hparams(self) -> dict[str, Any]:
        return {"encoder": self.encoder.name, **self.encoder.hparams()}

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> "MetricModel":
        return cls(encoder_from_hparams(hparams))

    @property
    def embed_dim(self) -> int:
        return self.encoder.dim

    @torch.no_grad()
    def initialise(self, inputs: NodeInputs, train_pairs: Tensor, seed: int = 0) -> None:
        """Scale the encoder so that the mean training-pair distance is its ``init_distance``
        (2 for a projection of features) and set the shift to the median distance (the
        decoder's initialisation from training pairs)."""
        sample = self.decoder.sample_pairs(train_pairs, seed)
        nodes, local = torch.unique(sample, return_inverse=True)
        distances = self.decoder.distances(self.encoder.styles(inputs, nodes), local)
        factor = self.decoder.initialise(distances, target=self.encoder.init_distance)
        self.encoder.rescale(factor**0.5)

    # -- scoring ----------------------------------------------------------------------
    def training_inputs(self, inputs: NodeInputs) -> Tensor | PreparedRows:
        return self.encoder.training_inputs(inputs)

    def pair_styles(self, x: Tensor | PreparedRows, pairs: Tensor) -> tuple[Tensor, Tensor]:
        """(style rows, pairs re-indexed into them): the styles of the rows the pairs touch
        (every row when most are, or when the encoder propagates), computed once, so pairs
        are never encoded one by one."""
        nodes, local = torch.unique(pairs, return_inverse=True)
        if self.encoder.propagates or len(nodes) * 2 > len(x):
            return self.encoder(x), pairs
        return self.encoder(x, nodes), local

    def logits(self, x: Tensor | PreparedRows, pairs: Tensor) -> Tensor:
        style, local = self.pair_styles(x, pairs)
        return self.decoder.logits(style, local)

    @torch.no_grad()
    def all_logits(self, x: Tensor | PreparedRows, pairs: Tensor, chunk: int = PAIR_CHUNK) -> Tensor:
        if len(pairs) > chunk and (self.encoder.propagates or 2 * len(pairs) > len(x)):
            # every chunk would touch most rows: encode every row once, then gather
            return self.decoder.logits(self.encoder(x), pairs)
        return super().all_logits(x, pairs, chunk)

    def styles(self, inputs: NodeInputs, nodes: Tensor | None = None) -> Tensor:
        """Style vectors of ``nodes`` (all when None), streamed, without gradients.

        Asking for all nodes, or for more than half of them, encodes every node and keeps
        the result while the weights and ``inputs`` stay the same (every parameter's and
        buffer's version counter unchanged), so evaluation and a run's pictures encode the
        catalogue once, not once per call. Callers must not modify what they get."""
        cached = self._style_cache
        key = tuple(t._version for t in (*self.parameters(), *self.buffers()))
        if cached is not None and cached[0]() is inputs and cached[1] == key:
            return cached[2] if nodes is None else cached[2][torch.as_tensor(nodes, dtype=torch.long)]
        wanted = None if nodes is None else torch.as_tensor(nodes, dtype=torch.long)
        if wanted is not None and 2 * len(wanted) <= inputs.num_nodes:
            return self.encoder.styles(inputs, wanted)
        every = self.encoder.styles(inputs, None)
        if inputs.num_nodes * self.embed_dim <= STYLE_CACHE_FLOATS:
            self._style_cache = (weakref.ref(inputs), key, every)
        return every if wanted is None else every[wanted]

    def embed_features(self, features: Tensor) -> Tensor:
        """Style vectors of raw feature rows that need not be in the graph (a new photo)."""
        return self.encoder.embed_features(features)

    @torch.no_grad()
    def predict_proba(self, inputs: NodeInputs, pairs: Tensor) -> Tensor:
        pairs = torch.as_tensor(pairs, dtype=torch.long).reshape(-1, 2)
        nodes, local = torch.unique(pairs, return_inverse=True)
        return self.decoder.probability(self.styles(inputs, nodes), local.reshape(-1, 2))

    @torch.no_grad()
    def shift_logits(self, offset: float) -> None:
        self.decoder.shift_logits(offset)

    def decay_parameters(self) -> list[nn.Parameter]:
        return self.encoder.decay_parameters()

    def penalty(self) -> Tensor | None:
        return self.encoder.penalty()

    def upgrade_state(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Runs before the encoder/decoder split stored ``shift`` and the encoder's tensors
        at the top level (``Y``, ``scale``, ...): move them under ``decoder.`` / ``encoder.``."""
        if "shift" not in state:
            return state
        return {("decoder.shift" if key == "shift" else f"encoder.{key}"): value for key, value in state.items()}
