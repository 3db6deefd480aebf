"""Two-stage training for encoders with ``staged = True`` (``--encoder hybrid``).

1. The base encoder (the hybrid's ``x Y``) is fitted exactly as ``--encoder linear`` would
   be, with the same decoder and the same weight-decay search.
2. With ``Y`` fixed, the per-product offsets are trained from zero over the fixed styles
   ``x Y`` (:class:`~graphrec.models.collaborative.FixedBaseOffsets`), with early stopping
   whose epoch 0 is the linear fit: an epoch is kept only when it beats the linear fit's
   validation accuracy (then AUC), so the hybrid is never below linear on validation, and
   a new photo or a product without training edges gets the linear fit's style exactly.
   The kept epoch must also win clearly: more validation pairs that it gets right and the
   linear fit wrong than the reverse, by :data:`SIGNIFICANCE` standard errors (a paired
   sign test); otherwise the linear fit stays. On the bundled sample a plain "better on
   validation" kept offsets whose 0.002 validation gain was noise (test 0.774 -> 0.768).

Jointly from scratch, the offsets memorised training edges before ``Y`` had found the
style: on the planted 4k catalogue the hybrid fell 0.008 below linear at K = 10.

A checkpoint of the second stage carries the first stage's result (``"base"``), so an
interrupted run resumes in the stage where it stopped.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Callable

import torch
from torch import Tensor

from graphrec.evaluate import binary_metrics
from graphrec.models.base import MetricModel
from graphrec.models.inputs import NodeInputs
from graphrec.sampling import PairSplit
from graphrec.training import loop
from graphrec.training.config import TrainConfig
from graphrec.training.objective import best_offset

__all__ = ["OFFSET_LR", "SIGNIFICANCE", "applies", "base_model", "clearly_better", "fit_staged"]

#: the second stage's step: per-product vectors move from zero (as ``--encoder embedding``'s 0.05)
OFFSET_LR = 0.05
#: the offsets are kept when they win this many standard errors more validation pairs than
#: they lose against the linear fit (a paired sign test); a smaller win is noise
SIGNIFICANCE = 2.0

Fitted = tuple[list[dict[str, float]], int, dict[str, Any]]


def applies(model: Any) -> bool:
    """True when ``model`` trains in two stages (its encoder is ``staged``)."""
    return isinstance(model, MetricModel) and model.encoder.staged


def base_model(model: MetricModel) -> MetricModel:
    """A model of the same class over ``model``'s base encoder and decoder (shared modules:
    fitting it fits them)."""
    return type(model)(model.encoder.base_encoder(), model.decoder)


def fit_staged(model: MetricModel, fit_base: Callable[[MetricModel, dict | None], Fitted], inputs: NodeInputs,
               split: PairSplit, config: TrainConfig, *, seed: int, quiet: bool, say: Callable[[str], None],
               on_epoch: Callable[[dict[str, float], dict[str, Any]], None] | None, resume: dict[str, Any] | None) -> Fitted:
    """Fit ``model`` in place in two stages; ``fit_base(base, resume)`` runs the first (the
    weight-decay search). Returns the history of both stages (the second's epochs numbered
    after the first's), the kept epoch and the search, with ``"offsets"`` saying what the
    second stage kept."""
    if _in_second_stage(resume):
        base = resume["base"]
        model.load_state_dict(base["model"])
        history, best_epoch, search = base["history"], base["best_epoch"], base["search"]
    else:
        history, best_epoch, search = fit_base(base_model(model), resume)
        base = {"model": copy.deepcopy(model.state_dict()), "history": history, "best_epoch": best_epoch, "search": search}
    stage = type(model)(model.encoder.offset_encoder(inputs), model.decoder)
    linear_right, baseline = _linear_on_validation(stage, split)
    say(f"per-product offsets on top of the linear fit (Y fixed), kept only when clearly above its validation accuracy "
        f"{baseline[0]:.4f}")
    first, elapsed = len(history), history[-1]["seconds"]

    def save(row: dict[str, float], checkpoint: dict[str, Any]) -> None:
        on_epoch(_renumbered(row, first, elapsed), {**checkpoint, "stage": "offsets", "base": base})

    offset_history, offset_epoch = loop.fit_model(
        stage, inputs, split, replace(config, weight_decay=0.0, lr=OFFSET_LR, calibration="val"), seed=seed, quiet=quiet,
        on_epoch=save if on_epoch else None, resume=resume if _in_second_stage(resume) else None, baseline=baseline)
    kept = offset_epoch > 0 and clearly_better(_right(stage, split), linear_right)
    if not kept:
        model.load_state_dict(base["model"])
    model.eval()
    say(f"kept the offsets of their epoch {offset_epoch}" if kept else
        f"kept the linear fit: no epoch of offsets beat it on validation by more than {SIGNIFICANCE:g} SE (paired)")
    search = {**search, "offsets": {"kept": kept, "epochs_run": len(offset_history), "best_epoch": offset_epoch}}
    return ([*history, *(_renumbered(r, first, elapsed) for r in offset_history)],
            first + offset_epoch if kept else best_epoch, search)


def _in_second_stage(resume: dict[str, Any] | None) -> bool:
    return resume is not None and resume.get("stage") == "offsets"


def _linear_on_validation(stage: MetricModel, split: PairSplit) -> tuple[Tensor, tuple[float, float]]:
    """Which validation pairs the linear fit (``stage`` with zero offsets) gets right, and
    its validation (accuracy, AUC), with the threshold chosen on the validation pairs as
    the second stage chooses its own (a per-product vector memorises its training pairs, so
    a threshold chosen on those says little): the comparison is like for like."""
    logits = stage.all_logits(stage.encoder.base, split.val_pairs)
    offset, accuracy = best_offset(logits, split.val_labels)
    auc = binary_metrics(torch.sigmoid(logits), split.val_labels)["auc"]
    return ((logits + offset) > 0).float() == split.val_labels, (accuracy, auc if auc == auc else 0.0)


def _renumbered(row: dict[str, float], first: int, elapsed: float) -> dict[str, float]:
    """A second-stage history row numbered and timed after the first stage's ``first`` epochs."""
    return {**row, "epoch": row["epoch"] + first, "seconds": row["seconds"] + elapsed}


def _right(stage: MetricModel, split: PairSplit) -> Tensor:
    """Which validation pairs ``stage`` classifies correctly (its threshold is in its shift)."""
    return (stage.all_logits(stage.encoder.base, split.val_pairs) > 0).float() == split.val_labels


def clearly_better(right: Tensor, baseline_right: Tensor, significance: float = SIGNIFICANCE) -> bool:
    """True when ``right`` wins more pairs from ``baseline_right`` than it loses by more than
    ``significance`` standard errors of that difference (under "no difference", each pair
    where they disagree is a coin toss: the difference has SE ``sqrt(disagreements)``).

    >>> import torch
    >>> clearly_better(torch.tensor([True] * 30 + [False] * 70), torch.tensor([False] * 100))
    True
    >>> clearly_better(torch.tensor([True, True, False]), torch.tensor([False, False, True]))
    False
    """
    wins = int((right & ~baseline_right).sum())
    losses = int((~right & baseline_right).sum())
    return wins - losses > significance * (wins + losses) ** 0.5
