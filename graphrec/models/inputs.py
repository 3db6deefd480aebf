"""What models read: per-node inputs as plain arrays and tensors, never a graph.

* :class:`NodeFeatures` wraps a feature matrix (a numpy array or memory map, float16 at
  catalogue scale) and reads rows in chunks as float tensors;
* :class:`ProductFields` holds each product's non-visual fields already parsed (category
  paths as lists of levels, brand, price bucket) for the metadata models;
* :class:`NodeInputs` bundles both with the node count.

They are built once from a graph by :func:`graphrec.inputs.node_inputs`; a test builds
them from literal arrays (``NodeInputs.from_arrays(x)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from graphrec.errors import UsageError

__all__ = ["ROW_CHUNK", "NodeFeatures", "ProductFields", "NodeInputs", "PreparedRows"]

ROW_CHUNK = 4_096  # feature rows converted to float32 at once


class NodeFeatures:
    """Rows of a feature matrix ``[N, F]`` (kept as given: a memory map stays one).

    >>> NodeFeatures(np.ones((3, 2), np.float16)).rows(torch.tensor([2, 0])).dtype
    torch.float32
    """

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = matrix

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.matrix.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return self.matrix.dtype

    @property
    def nbytes(self) -> int:
        return int(self.matrix.nbytes)

    @property
    def is_memory_map(self) -> bool:
        return isinstance(self.matrix, np.memmap)

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def rows(self, nodes: Tensor | np.ndarray | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
        """Rows ``nodes`` (every row when None) as a fresh tensor of ``dtype``, read a chunk at
        a time (sorted reads keep a memory map's access sequential)."""
        matrix = self.matrix
        index = np.arange(matrix.shape[0]) if nodes is None else np.asarray(torch.as_tensor(nodes).cpu(), dtype=np.int64)
        out = torch.empty((len(index), matrix.shape[1]), dtype=dtype)
        for start in range(0, len(index), ROW_CHUNK):
            part = index[start : start + ROW_CHUNK]
            if nodes is None:
                block = np.array(matrix[start : start + len(part)])  # a writable copy of the mapped rows
            else:
                order = np.argsort(part, kind="stable")
                block = np.empty((len(part), matrix.shape[1]), dtype=matrix.dtype)
                block[order] = matrix[part[order]]
            out[start : start + len(part)] = torch.from_numpy(block).to(dtype)
        return out

    def as_tensor(self) -> Tensor:
        """The whole matrix as a tensor sharing its memory (no copy; read-only use only)."""
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a read-only map: training never writes to it
            return torch.from_numpy(self.matrix)


@dataclass(frozen=True)
class ProductFields:
    """Parsed non-visual fields, one entry per node: ``paths[i]`` is a list of category
    paths, each a list of levels; ``brands[i]`` a lower-case brand or None;
    ``price_buckets[i]`` an int bucket or None (unknown price)."""

    paths: Sequence[list[list[str]]]
    brands: Sequence[str | None]
    price_buckets: Sequence[int | None]

    def __len__(self) -> int:
        return len(self.paths)

    def tokens(self, depth: int = 4) -> list[list[str]]:
        """Each product's token bag, sorted: category prefixes up to ``depth`` levels of every
        path, its brand and its price bucket (``?`` when unknown)."""
        out = []
        for paths, brand, bucket in zip(self.paths, self.brands, self.price_buckets):
            bag = {f"cat{d}:" + "|".join(levels[: d + 1]) for levels in paths for d in range(min(depth, len(levels)))}
            bag.add(f"brand:{brand}" if brand else "brand:?")
            bag.add(f"price:{bucket}" if bucket is not None else "price:?")
            out.append(sorted(bag))
        return out

    def prefixes(self, levels: int) -> list[list[str]]:
        """Each product's main category path cut at depth 1..levels (a short path repeats
        its leaf; no category gives "?")."""
        out = []
        for paths in self.paths:
            path = paths[0] if paths else ["?"]
            out.append(["|".join(path[: min(d + 1, len(path))]) for d in range(levels)])
        return out


class NodeInputs:
    """Everything a model may read about the nodes. ``fields`` may be given as a function
    that parses them on first use (a catalogue's metadata is only parsed by the models that
    read it). ``source`` names where the inputs came from (a GRAPH_DIR) in error messages."""

    def __init__(self, num_nodes: int, features: NodeFeatures | None = None,
                 fields: ProductFields | Callable[[], ProductFields] | None = None, source: str = "the graph") -> None:
        self.num_nodes, self.features, self.source = int(num_nodes), features, source
        self._fields = fields

    @classmethod
    def from_arrays(cls, features: np.ndarray | Tensor | None = None, fields: ProductFields | None = None,
                    num_nodes: int | None = None) -> "NodeInputs":
        """Inputs from literal arrays (tests, notebooks)."""
        matrix = features.numpy() if isinstance(features, Tensor) else features
        count = num_nodes if num_nodes is not None else len(matrix) if matrix is not None else len(fields or ())
        return cls(count, NodeFeatures(matrix) if matrix is not None else None, fields, "the given arrays")

    @property
    def fields(self) -> ProductFields:
        """The products' parsed fields (all unknown when the inputs carry no metadata)."""
        if callable(self._fields):
            self._fields = self._fields()
        if self._fields is None:
            n = self.num_nodes
            self._fields = ProductFields([[] for _ in range(n)], [None] * n, [None] * n)
        return self._fields

    def require_features(self, what: str = "this model") -> NodeFeatures:
        if self.features is None:
            raise UsageError(
                f"{what} needs image features, but {self.source} was built without them; "
                "rebuild it with build-graph --features FILE.b (or extract them with extract-features)."
            )
        return self.features


class PreparedRows:
    """Rows of a raw feature tensor (a memory map at catalogue scale) passed through a
    ``prepare`` function as they are read: training inputs too large to prepare in memory."""

    def __init__(self, rows: Tensor, prepare: Callable[[Tensor], Tensor]) -> None:
        self.rows, self.prepare = rows, prepare

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> torch.Size:
        return self.rows.shape

    def __getitem__(self, index) -> Tensor:
        return self.prepare(self.rows[index])
