"""Metrics of scored labelled pairs, on plain tensors: ROC-AUC, PR-AUC, average precision,
F1 at a rank cut and accuracy (the GATNE link-prediction protocol).

* **ROC-AUC**: area under the ROC curve; tied scores form one step (a tie counts one half).
* **PR-AUC**: the trapezoid area under the precision-recall curve, as GATNE computes it
  (``sklearn.metrics.auc(recall, precision)`` over ``precision_recall_curve``, whose curve
  starts at recall 0, precision 1); one point per distinct score.
* **average precision**: sum over distinct scores of (recall step) x precision.
* **F1** (GATNE): the ``n`` top-scored pairs are called edges, ``n`` = the number of true
  edges. Pairs tied with the ``n``-th score are ordered by a fixed seeded shuffle (not by
  their position, which in GATNE's files puts every positive first), so exactly ``n`` pairs
  are called edges; ``threshold_ties`` says how many pairs share the ``n``-th score, and
  ``f1_ties_positive`` is GATNE's literal rule (every pair scoring at least the ``n``-th
  score is an edge), which with many ties calls most pairs edges.
* **accuracy**: ``score > threshold`` when a threshold is given (0.5 for probabilities),
  else at the F1 rank cut.

>>> pair_metrics(torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([1, 0, 1, 0]))["roc_auc"]
0.75
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["pair_metrics", "precision_recall_points", "rank_cut", "roc_points"]


def _sorted(scores: Tensor, labels: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative (true positives, false positives) at each distinct score, highest first,
    and the distinct scores' last positions."""
    s = torch.as_tensor(scores).double().numpy()
    y = torch.as_tensor(labels).double().numpy() > 0.5
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tps = np.cumsum(y)[ends].astype(np.float64)
    fps = (ends + 1) - tps
    return tps, fps, s, y


def roc_points(scores: Tensor, labels: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at each distinct score threshold, from (0, 0) to (1, 1)."""
    tps, fps, _, _ = _sorted(scores, labels)
    positives, negatives = (tps[-1], fps[-1]) if len(tps) else (0.0, 0.0)
    tpr = tps / positives if positives else np.zeros_like(tps)
    fpr = fps / negatives if negatives else np.zeros_like(fps)
    return np.r_[0.0, fpr], np.r_[0.0, tpr]


def precision_recall_points(scores: Tensor, labels: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) of each distinct score threshold, recall increasing, starting at (0, 1)."""
    tps, fps, _, _ = _sorted(scores, labels)
    positives = tps[-1] if len(tps) else 0.0
    recall = tps / positives if positives else np.ones_like(tps)
    precision = tps / np.maximum(tps + fps, 1.0)
    return np.r_[0.0, recall], np.r_[1.0, precision]


def rank_cut(scores: Tensor, count: int, seed: int = 0) -> Tensor:
    """Boolean mask of the ``count`` top-scored entries; ties ordered by a ``seed``-fixed shuffle."""
    s = torch.as_tensor(scores).double()
    mask = torch.zeros(len(s), dtype=torch.bool)
    if count <= 0:
        return mask
    shuffle = torch.randperm(len(s), generator=torch.Generator().manual_seed(seed))
    order = torch.argsort(s[shuffle], descending=True, stable=True)
    mask[shuffle[order[:count]]] = True
    return mask


def _f1(predicted: np.ndarray, truth: np.ndarray) -> float:
    tp = float((predicted & truth).sum())
    denominator = float(predicted.sum() + truth.sum())
    return 2 * tp / denominator if denominator else float("nan")


def pair_metrics(scores: Tensor, labels: Tensor, threshold: float | None = None, seed: int = 0) -> dict[str, float | int]:
    """Metrics of ``scores`` (higher = more likely an edge) against 0/1 ``labels`` (see the
    module docstring). NaN for the curve metrics when only one class is present."""
    scores, labels = torch.as_tensor(scores).double().reshape(-1), torch.as_tensor(labels).double().reshape(-1)
    truth = labels.numpy() > 0.5
    n, positives = len(truth), int(truth.sum())
    out: dict[str, float | int] = {"pairs": n, "positives": positives}
    nan = float("nan")
    if n == 0:
        return {**out, "accuracy": nan, "roc_auc": nan, "pr_auc": nan, "average_precision": nan, "f1": nan,
                "f1_ties_positive": nan, "threshold_ties": 0}
    tps, fps, _, _ = _sorted(scores, labels)
    negatives = n - positives
    if positives and negatives:
        tpr, fpr = np.r_[0.0, tps / positives], np.r_[0.0, fps / negatives]
        out["roc_auc"] = float(np.trapezoid(tpr, fpr))
        recall, precision = precision_recall_points(scores, labels)
        out["pr_auc"] = float(np.trapezoid(precision, recall))
        out["average_precision"] = float(np.sum(np.diff(recall) * precision[1:]))
    else:
        out.update(roc_auc=nan, pr_auc=nan, average_precision=nan)
    cut = rank_cut(scores, positives, seed).numpy()
    values = scores.numpy()
    level = values[cut].min() if positives else np.inf
    out["f1"] = _f1(cut, truth)
    out["f1_ties_positive"] = _f1(values >= level, truth)
    out["threshold_ties"] = int((values == level).sum()) if positives else 0
    predicted = cut if threshold is None else values > threshold
    out["accuracy"] = float((predicted == truth).mean())
    return out
