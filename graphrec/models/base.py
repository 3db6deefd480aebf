"""The interface every link-prediction model honours.

A :class:`LinkModel` scores product pairs: ``predict_proba(graph, pairs)`` is the
probability that each pair is an edge of the trained relation. How a model turns a
graph into per-node inputs is its own business (image features for the metric models,
metadata fields for FM and the category tree), split into two small steps so that
training can keep the inputs in memory and evaluation can stream them:

* ``node_inputs(graph, nodes)`` -> a tensor with one row per requested node;
* ``logits(inputs, pairs)`` -> pre-sigmoid scores, ``pairs`` indexing rows of ``inputs``.

Models are rebuilt from JSON-able constructor arguments (:meth:`LinkModel.hparams`) plus
a ``state_dict``; data-dependent set-up (preprocessing statistics, vocabularies) is done
by the classmethod :meth:`LinkModel.build`, which sees the training pairs only.

Metric models (:class:`MetricModel`) also expose ``embed(x)`` and ``shift`` with
``predict_proba == sigmoid(shift - ||embed(x_i) - embed(x_j)||^2)``. Their model inputs
are *prepared* feature rows: ``embed(x) == project(prepare(x))``, where ``prepare`` is the
fixed value-wise preprocessing (a no-op unless the model's preprocessing cannot be folded
into its map) and ``project`` the learnt map; training prepares every row once.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from graphrec.graph import Graph

__all__ = ["LinkModel", "MetricModel", "PreparedRows", "feature_rows", "pair_distances", "PAIR_CHUNK", "ROW_CHUNK"]

PAIR_CHUNK = 65_536  # pairs scored at once by predict_proba
ROW_CHUNK = 4_096  # feature rows converted to float32 at once


def feature_rows(graph: Graph, nodes: Tensor | np.ndarray | None = None, dtype: torch.dtype = torch.float32, what: str = "this model") -> Tensor:
    """Rows of ``graph.features`` (memory-mapped) as a torch tensor, read in chunks.

    ``nodes`` None means every node. ``dtype`` float16 halves the memory of a large
    training matrix; models convert chunks to float32 before multiplying.
    """
    features = graph.require_features(what)
    index = np.arange(features.shape[0]) if nodes is None else np.asarray(torch.as_tensor(nodes).cpu(), dtype=np.int64)
    out = torch.empty((len(index), features.shape[1]), dtype=dtype)
    for start in range(0, len(index), ROW_CHUNK):
        part = index[start : start + ROW_CHUNK]
        if nodes is None:
            block = np.array(features[start : start + len(part)])  # a writable copy of the memory-mapped rows
        else:  # sorted fancy indexing keeps a memory map's reads sequential
            order = np.argsort(part, kind="stable")
            block = np.empty((len(part), features.shape[1]), dtype=features.dtype)
            block[order] = features[part[order]]
        out[start : start + len(part)] = torch.from_numpy(block).to(dtype)
    return out


class LinkModel(nn.Module):
    """Base class: a model of P(edge | product i, product j) for one relation."""

    name: ClassVar[str] = "link-model"
    is_metric: ClassVar[bool] = False
    needs_features: ClassVar[bool] = False
    #: False for models fitted in closed form by :meth:`fit` (no gradient epochs).
    trainable: ClassVar[bool] = True
    #: True when other relations can be trained in its style space (``--aux-relations``).
    shares_style: ClassVar[bool] = False

    # -- construction ---------------------------------------------------------------
    def hparams(self) -> dict[str, Any]:
        """JSON-able constructor arguments: ``type(self)(**model.hparams())`` rebuilds it."""
        raise NotImplementedError

    @classmethod
    def build(cls, graph: Graph, train_pairs: Tensor, train_labels: Tensor, **options: Any) -> "LinkModel":
        """A fresh model whose data-dependent parts (preprocessing, vocabularies,
        initial shift) come from the training pairs only."""
        raise NotImplementedError

    def fit(self, graph: Graph, train_pairs: Tensor, train_labels: Tensor) -> None:
        """Closed-form fit for models with ``trainable = False``."""
        raise NotImplementedError(f"{self.name} is trained by gradient steps, not fit()")

    # -- scoring --------------------------------------------------------------------
    def node_inputs(self, graph: Graph, nodes: Tensor | None = None) -> Tensor:
        """One row of model input per node of ``graph`` (all nodes when ``nodes`` is None)."""
        raise NotImplementedError

    def logits(self, inputs: Tensor, pairs: Tensor) -> Tensor:
        """Pre-sigmoid edge scores ``[m]`` for ``pairs`` ``[m, 2]`` indexing rows of ``inputs``."""
        raise NotImplementedError

    @torch.no_grad()
    def shift_logits(self, offset: float) -> None:
        """Add ``offset`` to every logit (moves the P = 0.5 threshold); used to calibrate
        the decision threshold on training pairs. Models without a bias ignore it."""

    def decay_parameters(self) -> list[nn.Parameter]:
        """Parameters that get weight decay in training (all but ``shift`` by default)."""
        return [p for name, p in self.named_parameters() if name != "shift" and p.requires_grad]

    @torch.no_grad()
    def predict_proba(self, graph: Graph, pairs: Tensor) -> Tensor:
        """P(edge) for each row of ``pairs`` (LongTensor ``[m, 2]`` of node indices)."""
        pairs = torch.as_tensor(pairs, dtype=torch.long).reshape(-1, 2)
        out = torch.empty(len(pairs))
        for start in range(0, len(pairs), PAIR_CHUNK):
            chunk = pairs[start : start + PAIR_CHUNK]
            nodes, local = torch.unique(chunk, return_inverse=True)
            out[start : start + len(chunk)] = torch.sigmoid(self.logits(self.node_inputs(graph, nodes), local.reshape(-1, 2)))
        return out

    # -- loading --------------------------------------------------------------------
    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        """Like :meth:`torch.nn.Module.load_state_dict`, but buffers whose size depends
        on the training data (vocabularies, count tables) take the stored shape."""
        for name, buffer in list(self.named_buffers()):
            stored = state_dict.get(name)
            if stored is not None and buffer is not None and stored.shape != buffer.shape:
                module_name, _, attr = name.rpartition(".")
                module = self.get_submodule(module_name) if module_name else self
                module.register_buffer(attr, torch.empty_like(stored))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


class MetricModel(LinkModel):
    """P(edge) = sigmoid(shift - ||embed(x_i) - embed(x_j)||^2) on raw image features."""

    is_metric: ClassVar[bool] = True
    needs_features: ClassVar[bool] = True
    shift: Tensor

    @torch.no_grad()
    def shift_logits(self, offset: float) -> None:
        self.shift.add_(offset)

    def embed(self, x: Tensor) -> Tensor:
        """Raw feature rows ``[n, F]`` (float32 or float16) -> style space ``[n, K]``,
        applying the model's stored preprocessing."""
        raise NotImplementedError

    #: True when :meth:`prepare` does more than convert to float32 (training then prepares every row once).
    prepares = False

    def prepare(self, x: Tensor) -> Tensor:
        """Raw feature rows -> the model inputs its learnt map multiplies (float32)."""
        return x.float()

    def project(self, prepared: Tensor) -> Tensor:
        """Prepared rows -> style space: ``embed(x) == project(prepare(x))``."""
        return self.embed(prepared)

    def prepare_rows(self, rows: Tensor) -> Tensor:
        """Model inputs from a fresh tensor of raw rows ``[N, F]``, prepared in place a chunk
        at a time (keeping its dtype). A memory map is wrapped in :class:`PreparedRows` instead."""
        if not self.prepares:
            return rows
        for start in range(0, len(rows), ROW_CHUNK):
            rows[start : start + ROW_CHUNK] = self.prepare(rows[start : start + ROW_CHUNK]).to(rows.dtype)
        return rows

    def node_inputs(self, graph: Graph, nodes: Tensor | None = None) -> Tensor:
        return self.prepare_rows(feature_rows(graph, nodes, what=f"the {self.name} decoder"))

    def embed_chunked(self, x: Tensor, chunk: int = ROW_CHUNK) -> Tensor:
        """:meth:`embed` over raw rows ``x`` a chunk at a time (float16 rows become float32 per chunk)."""
        return torch.cat([self.embed(x[start : start + chunk]) for start in range(0, len(x), chunk)]) if len(x) else self.embed(x[:0])

    def project_chunked(self, x: "Tensor | PreparedRows", chunk: int = ROW_CHUNK) -> Tensor:
        """:meth:`project` over prepared rows ``x`` a chunk at a time."""
        return torch.cat([self.project(x[start : start + chunk]) for start in range(0, len(x), chunk)]) if len(x) else self.project(x[:0])

    @torch.no_grad()
    def embed_nodes(self, graph: Graph, nodes: Tensor | None = None) -> Tensor:
        """Style-space rows for ``nodes`` of ``graph`` (all nodes when None), streamed from the memory map."""
        index = torch.arange(graph.num_nodes) if nodes is None else torch.as_tensor(nodes, dtype=torch.long)
        parts = [self.embed(feature_rows(graph, index[s : s + ROW_CHUNK], what=f"the {self.name} decoder")) for s in range(0, len(index), ROW_CHUNK)]
        return torch.cat(parts) if parts else torch.empty((0, self.embed_dim))

    @property
    def embed_dim(self) -> int:
        raise NotImplementedError

    def pair_styles(self, inputs: Tensor, pairs: Tensor) -> tuple[Tensor, Tensor]:
        """(style rows, pairs re-indexed into them): S = embed(X) once for the rows the
        pairs touch (every row when most are), so pairs are never projected one by one."""
        nodes, local = torch.unique(pairs, return_inverse=True)
        if len(nodes) * 2 > len(inputs):  # most rows are touched: project them all
            return self.project_chunked(inputs), pairs
        return self.project_chunked(inputs[nodes]), local

    def logits(self, inputs: Tensor, pairs: Tensor) -> Tensor:
        style, local = self.pair_styles(inputs, pairs)
        return self.shift - pair_distances(style, local)

    @torch.no_grad()
    def predict_proba(self, graph: Graph, pairs: Tensor) -> Tensor:
        pairs = torch.as_tensor(pairs, dtype=torch.long).reshape(-1, 2)
        nodes, local = torch.unique(pairs, return_inverse=True)
        style = self.embed_nodes(graph, nodes)
        return torch.sigmoid(self.shift - pair_distances(style, local.reshape(-1, 2)))


class PreparedRows:
    """Rows of a raw feature tensor (a memory map at catalogue scale) passed through a
    model's ``prepare`` as they are read: training inputs too large to prepare in memory."""

    def __init__(self, rows: Tensor, prepare) -> None:
        self.rows, self.prepare = rows, prepare

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> torch.Size:
        return self.rows.shape

    def __getitem__(self, index) -> Tensor:
        return self.prepare(self.rows[index])


def pair_distances(style: Tensor, pairs: Tensor) -> Tensor:
    """||style[i] - style[j]||^2 for each row (i, j) of ``pairs``, in chunks small enough
    that the gathered rows stay around 32 MB even for 4096-d styles."""
    chunk = max(256, (1 << 23) // max(style.shape[1], 1))
    parts = []
    for start in range(0, len(pairs), chunk):
        part = pairs[start : start + chunk]
        diff = style[part[:, 0]] - style[part[:, 1]]
        parts.append((diff * diff).sum(-1))
    return torch.cat(parts) if parts else style.new_zeros(0)
