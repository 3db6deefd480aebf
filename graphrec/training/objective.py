"""What training optimises and how it picks the decision threshold."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from graphrec.models.base import MetricModel
from graphrec.models.heads import RelationHeads

__all__ = ["link_loss", "best_offset", "shared_style_logits"]


def link_loss(logits: Tensor, target: Tensor, floor: float = 0.0) -> Tensor:
    """Summed negative log-likelihood of the pair labels under P(edge) = floor + (1 - floor) sigmoid(logits).

    ``floor`` 0 is the plain logistic loss. A positive floor says that a fraction of
    edges have nothing to do with the model (co-purchases driven by popularity, gifts,
    bundles): an edge between two products far apart in style space then costs at most
    -log(floor) instead of a loss that grows with their distance, so a few such edges can
    no longer drag the projection around. The loss of a non-edge is unchanged up to the
    constant -log(1 - floor). Only training uses the floor; the model still predicts
    sigmoid(logits), whose P > 0.5 threshold is re-chosen on training pairs anyway.
    """
    if floor <= 0.0:
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum")
    log_keep = math.log1p(-floor)
    log_edge = torch.logaddexp(torch.full_like(logits, math.log(floor)), log_keep + torch.nn.functional.logsigmoid(logits))
    log_non_edge = log_keep + torch.nn.functional.logsigmoid(-logits)
    return -(target * log_edge + (1 - target) * log_non_edge).sum()


def best_offset(logits: Tensor, labels: Tensor) -> tuple[float, float]:
    """(offset, accuracy): the offset added to ``logits`` that maximises the accuracy of
    ``logits + offset > 0`` on these (training) pairs, and that accuracy.

    A logistic fit's P = 0.5 point is not the accuracy-optimal threshold when the link is
    misspecified (e.g. co-purchases that have nothing to do with style), so the decision
    threshold is re-chosen on training pairs; validation and test pairs are never used.
    """
    if len(logits) == 0:
        return 0.0, float("nan")
    values, order = torch.sort(logits.double())
    ordered = labels.double()[order]
    # predicting "edge" for positions >= i: correct = negatives below i + positives from i on
    negatives_below = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(1 - ordered, 0)])
    positives_from = ordered.sum() - torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(ordered, 0)])
    correct = negatives_below + positives_from
    # only cut between distinct values
    distinct = torch.cat([torch.tensor([True]), values[1:] > values[:-1], torch.tensor([True])])
    correct = torch.where(distinct, correct, torch.tensor(-1.0, dtype=torch.float64))
    cut = int(torch.argmax(correct))
    if cut == 0:
        threshold = float(values[0]) - 1.0
    elif cut == len(values):
        threshold = float(values[-1]) + 1.0
    else:
        threshold = 0.5 * float(values[cut - 1] + values[cut])
    return -threshold, float(correct[cut] / len(values))


def shared_style_logits(model: MetricModel, heads: RelationHeads, x, part: Tensor,
                        aux_parts: list[tuple[Tensor, Tensor]], floor: float) -> tuple[Tensor, Tensor]:
    """The main relation's logits for ``part`` and the auxiliary relations' summed mean
    losses on their ``(pairs, labels)`` batches, from one encoding of the rows they touch."""
    sizes = [len(part)] + [len(pairs) for pairs, _ in aux_parts]
    style, local = model.pair_styles(x, torch.cat([part] + [pairs for pairs, _ in aux_parts]))
    chunks = local.split(sizes)
    logits = model.decoder.logits(style, chunks[0])
    aux_loss = logits.new_zeros(())
    for index, (chunk, (_, target)) in enumerate(zip(chunks[1:], aux_parts)):
        if len(chunk):
            aux_loss = aux_loss + link_loss(heads.logits(style, chunk, index), target, floor) / len(chunk)
    return logits, aux_loss
