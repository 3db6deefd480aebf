"""The paper's decoder, the one place where pairs of style vectors become probabilities.

    d(i, j) = ||s_i - s_j||^2,   logit = c - d,   P(edge) = sigmoid(c - d)

with the shift ``c`` learned. Every metric model, every auxiliary relation head, training,
evaluation and recommendation ask a :class:`DistanceDecoder` instead of writing this again.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["DistanceDecoder", "INIT_SAMPLE"]

INIT_SAMPLE = 4_096  # training pairs used to calibrate the initial scale and shift


class DistanceDecoder(nn.Module):
    """P(edge) = sigmoid(c - ||s_i - s_j||^2) over rows of a style matrix.

    >>> decoder = DistanceDecoder(shift=2.0)
    >>> decoder.probability(torch.zeros(2, 3), torch.tensor([[0, 1]]))
    tensor([0.8808], grad_fn=<SigmoidBackward0>)
    """

    def __init__(self, shift: float = 1.0) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.tensor(float(shift)))

    @staticmethod
    def distances(style: Tensor, pairs: Tensor, transform: Tensor | None = None) -> Tensor:
        """||style[i] - style[j]||^2 for each row (i, j) of ``pairs`` (with ``transform``
        ``[K, K']``: ||(style[i] - style[j]) transform||^2), gathered in chunks small enough
        that the gathered rows stay around 32 MB even for 4096-d styles."""
        chunk = max(256, (1 << 23) // max(style.shape[1], 1))
        parts = []
        for start in range(0, len(pairs), chunk):
            part = pairs[start : start + chunk]
            diff = style[part[:, 0]] - style[part[:, 1]]
            if transform is not None:
                diff = diff @ transform
            parts.append((diff * diff).sum(-1))
        return torch.cat(parts) if parts else style.new_zeros(0)

    def logits_of(self, distances: Tensor) -> Tensor:
        """Pre-sigmoid scores ``c - d`` of given squared distances."""
        return self.shift - distances

    def probability_of(self, distances: Tensor) -> Tensor:
        """P(edge) = sigmoid(c - d) of given squared distances."""
        return torch.sigmoid(self.logits_of(distances))

    def logits(self, style: Tensor, pairs: Tensor, transform: Tensor | None = None) -> Tensor:
        """``c - ||s_i - s_j||^2`` for ``pairs`` ``[m, 2]`` indexing rows of ``style``
        (``transform``: see :meth:`distances`)."""
        return self.logits_of(self.distances(style, pairs, transform))

    def probability(self, style: Tensor, pairs: Tensor) -> Tensor:
        return self.probability_of(self.distances(style, pairs))

    @torch.no_grad()
    def shift_logits(self, offset: float) -> None:
        """Add ``offset`` to every logit: moves the P = 0.5 threshold."""
        self.shift.add_(offset)

    @torch.no_grad()
    def initialise(self, distances: Tensor, target: float = 2.0) -> float:
        """Set the shift from training pairs' squared distances: returns the factor by which
        distances must be multiplied so that their mean is ``target``, and sets the shift to
        the median of the rescaled distances (initial P(edge) ~ 0.5 for most pairs). A style
        map scaled by ``sqrt(factor)`` then matches this shift."""
        mean = distances.mean().item() if len(distances) else 0.0
        factor = target / mean if mean > 0 else 1.0
        self.shift.fill_((distances * factor).median().item() if len(distances) else target)
        return factor

    @staticmethod
    def sample_pairs(train_pairs: Tensor, seed: int = 0, count: int = INIT_SAMPLE) -> Tensor:
        """A fixed random subset of the training pairs for :meth:`initialise`."""
        pick = torch.randperm(len(train_pairs), generator=torch.Generator().manual_seed(seed))[:count]
        return train_pairs[pick]
