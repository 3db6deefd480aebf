"""Other relations learnt in a metric model's style space (``--aux-relations``).

The paper fits one projection per relation. Relations of one catalogue describe the same
products, so their signals can share one style space: for an auxiliary relation ``r``

    P_r(edge) = sigmoid(c_r - ||(s_i - s_j) A_r||^2),   s = the main model's styles

with a K x K map ``A_r`` (starting at the identity) and a distance decoder (shift ``c_r``)
of its own. ``A_r`` lets a relation weigh style directions its own way (co-views care
about the silhouette, bought-together about colour) while every relation's edges train the
shared encoder. The heads exist only while training: the saved model is the main
relation's, unchanged.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from graphrec.models.decoder import DistanceDecoder

__all__ = ["RelationHeads"]


class RelationHeads(nn.Module):
    """One ``(A_r, decoder_r)`` per auxiliary relation, scoring pairs of rows of a style matrix.

    >>> heads = RelationHeads(["also_viewed"], k=4, shift=2.0)
    >>> heads.logits(torch.zeros(3, 4), torch.tensor([[0, 1], [1, 2]]), 0)
    tensor([2., 2.], grad_fn=<SubBackward0>)
    """

    def __init__(self, relations: Sequence[str], k: int, shift: float = 1.0) -> None:
        super().__init__()
        self.relations = list(relations)
        self.maps = nn.ParameterList([nn.Parameter(torch.eye(k)) for _ in self.relations])
        self.decoders = nn.ModuleList([DistanceDecoder(shift) for _ in self.relations])

    def logits(self, style: Tensor, pairs: Tensor, index: int) -> Tensor:
        """Pre-sigmoid scores of relation ``index`` for ``pairs`` ``[m, 2]`` indexing rows of ``style``."""
        return self.decoders[index].logits(style, pairs, transform=self.maps[index])
