"""The gradient loop: epochs of mini-batch Adam over labelled pairs, a validation step
after each, early stopping on validation accuracy.

Under torchrun (a distributed ``ctx``) every rank draws the same pairs and order from the
seed and computes its strided share of each mini-batch under DistributedDataParallel; the
loss is scaled so that the averaged gradient is the whole mini-batch's gradient: the same
steps as one process, up to float rounding. Training loss and accuracy are summed over
ranks; rank 0's epoch row (hence early stopping) is shared so that all ranks stop together.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from graphrec.distributed import DistContext
from graphrec.errors import UsageError
from graphrec.evaluate import binary_metrics
from graphrec.fs import progress_bar
from graphrec.models.base import LinkModel
from graphrec.models.heads import RelationHeads
from graphrec.models.inputs import NodeInputs
from graphrec.sampling import AuxiliaryRelation, PairSplit, fresh_negatives, shuffled_pairs
from graphrec.training.config import TrainConfig
from graphrec.training.objective import best_offset, link_loss, shared_style_logits
from graphrec.training.state import TrainingState

__all__ = ["CALIBRATION_PAIRS", "calibration_pairs", "check_finite", "require_finite_training", "fit_model", "run_epoch", "validate", "fit_closed_form"]

CALIBRATION_PAIRS = 50_000  # training pairs (a fixed random subset) used to re-choose the threshold
EpochHook = Callable[[dict[str, float], dict[str, Any]], None]


@dataclass
class EpochData:
    """What every epoch reads: the model inputs, the split, auxiliary relations."""

    x: Any
    split: PairSplit
    auxiliary: list[AuxiliaryRelation]
    calibration: tuple[Tensor, Tensor]


def calibration_pairs(split: PairSplit, config: TrainConfig, seed: int) -> tuple[Tensor, Tensor]:
    """The labelled pairs that re-choose the decision threshold after each epoch: a fixed
    random subset of the training pairs, or with ``config.calibration == "val"`` the
    validation pairs (for per-product vectors, whose training pairs are memorised: on a
    planted 20k-edge list the training threshold cost lightgcn 5 points of test accuracy).
    Test pairs are never used."""
    if config.calibration == "val":
        return split.val_pairs, split.val_labels
    pick = torch.randperm(len(split.train_pairs), generator=torch.Generator().manual_seed(seed))[:CALIBRATION_PAIRS]
    return split.train_pairs[pick], split.train_labels[pick]


def _epoch_negatives(data: EpochData, config: TrainConfig, epoch: int, generator: torch.Generator) -> Tensor:
    split, ratio = data.split, config.negatives
    fixed = split.train_pairs[split.train_labels < 0.5]
    if not config.fresh_negatives or (epoch == 1 and ratio == 1):
        return fixed
    if epoch == 1:  # the split's own negatives, topped up with fresh ones
        return torch.cat([fixed, fresh_negatives(split, (ratio - 1) * len(fixed), generator)])
    return fresh_negatives(split, ratio * len(fixed), generator)


def run_epoch(state: TrainingState, data: EpochData, config: TrainConfig, epoch: int, forward, ctx: DistContext) -> tuple[float, int, int]:
    """One pass over the epoch's shuffled pairs; returns (summed loss, correct, pairs)."""
    model, heads, generator = state.model, state.heads, state.generator
    model.train()
    pairs, labels = shuffled_pairs(data.split.train_positives, _epoch_negatives(data, config, epoch, generator), generator)
    # each auxiliary relation's epoch is cut into as many steps as the main one
    aux_epoch = [relation.epoch_pairs(config.negatives, generator) for relation in data.auxiliary]
    batch, floor, decayed = config.batch_size, float(config.noise_floor or 0.0), model.decay_parameters()
    steps = max(1, math.ceil(len(pairs) / batch))
    aux_batch = [math.ceil(len(aux_pairs) / steps) for aux_pairs, _ in aux_epoch]
    total_loss, correct = 0.0, 0
    for step, start in enumerate(range(0, len(pairs), batch)):
        part, target = pairs[start : start + batch], labels[start : start + batch]
        mine = ctx.batch_shard(len(part))  # the whole batch in one process
        part, target, share = part[mine], target[mine], len(part) / ctx.world_size
        if heads is None:
            logits = forward(data.x, part)
        else:
            aux_parts = [(p[step * size : (step + 1) * size], t[step * size : (step + 1) * size]) for (p, t), size in zip(aux_epoch, aux_batch)]
            logits, aux_loss = shared_style_logits(model, heads, data.x, part, aux_parts, floor)
        loss = link_loss(logits, target, floor) / share
        if config.weight_decay and decayed:
            loss = loss + config.weight_decay * sum((p * p).sum() for p in decayed)
        penalty = model.penalty()
        if penalty is not None:
            loss = loss + penalty
        total_loss += loss.detach().item() * share  # the main relation's loss: history reads the same with or without heads
        if heads is not None:
            loss = loss + config.aux_weight * aux_loss
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        state.update_average()
        correct += int(((logits.detach() > 0).float() == target).sum())
    total_loss, correct = ctx.all_reduce_sum(total_loss, correct)
    return total_loss, int(correct), len(pairs)


def validate(model: LinkModel, data: EpochData, calibrate: bool, train_accuracy: float) -> tuple[float, float, dict[str, float]]:
    """(threshold offset, training accuracy, validation metrics): the threshold re-chosen
    on the calibration pairs (when ``calibrate``), then validation scored with it."""
    model.eval()
    offset = 0.0
    if calibrate:
        pairs, labels = data.calibration
        offset, train_accuracy = best_offset(model.all_logits(data.x, pairs), labels)
    split = data.split
    val = binary_metrics(model.probability(model.all_logits(data.x, split.val_pairs) + offset), split.val_labels)
    return offset, train_accuracy, val


def check_finite(model: LinkModel, loss: float, epoch: int, lr: float) -> None:
    """A :class:`UsageError` when the epoch's loss or any weight is NaN or infinite: the
    run diverged (almost always a learning rate too large), and nothing it computes is usable."""
    require_finite_training([loss], list(model.parameters()), epoch, lr)


def require_finite_training(losses: list[float], weights: list[torch.Tensor], epoch: int, lr: float) -> None:
    """:func:`check_finite` for any fit: the epoch's losses (one per candidate of a joint
    weight-decay search) and the tensors it trains."""
    bad = next((loss for loss in losses if not math.isfinite(loss)), None)
    if bad is not None or not all(bool(torch.isfinite(w).all()) for w in weights):
        what = f"the loss is {bad}" if bad is not None else "its weights are no longer finite numbers"
        raise UsageError(f"training diverged in epoch {epoch} ({what}); train again with a smaller --lr "
                         f"(this run used {lr:g}). No RUN_DIR was written.")


def _score(val: dict[str, float]) -> tuple[float, float]:
    return val["accuracy"], val["auc"] if val["auc"] == val["auc"] else 0.0


def fit_closed_form(model: LinkModel, inputs: NodeInputs, split: PairSplit, on_epoch: EpochHook | None) -> tuple[list[dict[str, float]], int]:
    """Models with ``trainable = False``: one closed-form fit, reported as epoch 1."""
    started = time.perf_counter()
    model.fit(inputs, split.train_pairs, split.train_labels)
    train = binary_metrics(model.predict_proba(inputs, split.train_pairs), split.train_labels)
    val = binary_metrics(model.predict_proba(inputs, split.val_pairs), split.val_labels)
    row = {"epoch": 1, "loss": train["log_loss"], "train_accuracy": train["accuracy"], "val_accuracy": val["accuracy"],
           "val_auc": val["auc"], "seconds": time.perf_counter() - started}
    if on_epoch:
        on_epoch(row, {"epoch": 1, "model": model.state_dict()})
    return [row], 1


def _training_state(model: LinkModel, config: TrainConfig, auxiliary: list[AuxiliaryRelation], seed: int, ctx: DistContext) -> TrainingState:
    heads = None
    if auxiliary:
        if ctx.world_size > 1:
            raise UsageError("--aux-relations is not supported under torchrun yet; train it in one process.")
        heads = RelationHeads([relation.relation for relation in auxiliary], model.embed_dim, shift=float(model.decoder.shift.detach()))
    return TrainingState(model, heads, config.lr, config.ema, config.patience, seed)


def fit_model(
    model: LinkModel,
    inputs: NodeInputs,
    split: PairSplit,
    config: TrainConfig,
    seed: int = 0,
    on_epoch: EpochHook | None = None,
    quiet: bool = True,
    resume: dict[str, Any] | None = None,
    ctx: DistContext | None = None,
    x: Any = None,
    auxiliary: list[AuxiliaryRelation] | None = None,
    baseline: tuple[float, float] | None = None,
) -> tuple[list[dict[str, float]], int]:
    """Train ``model`` in place; returns (history rows, best epoch). The best epoch's
    weights (by validation accuracy, then AUC) are loaded back at the end. With
    ``baseline`` (the validation score of ``model`` as given) an epoch is kept only when it
    beats that score; best epoch 0 means the weights as given.

    ``x`` are the model's training inputs of every node (default: read and prepared here
    from ``inputs``); pass them to share one copy between fits of identically built models.
    ``auxiliary`` relations train the same style space through their own heads.
    ``on_epoch(row, checkpoint)`` is called after every epoch with the history row and a
    checkpoint (:meth:`TrainingState.state_dict`); passing the last one as ``resume``
    continues after its epoch exactly as if training had never stopped.
    """
    ctx = ctx or DistContext()
    if len(config.decays) > 1:
        raise ValueError("fit_model trains with one weight decay; fit_over_decays tries several.")
    if not model.trainable:
        return fit_closed_form(model, inputs, split, on_epoch)
    started = time.perf_counter()
    state = _training_state(model, config, auxiliary or [], seed, ctx)
    x = model.training_inputs(inputs) if x is None else x
    data = EpochData(x, split, auxiliary or [], calibration_pairs(split, config, seed))
    forward = ctx.wrap_logits(model)  # model.logits, or DistributedDataParallel over it
    if resume is not None:  # continue after the checkpoint's epoch, in the same state
        state.load_state_dict(resume)
    elif baseline is not None:
        state.stopping.best = tuple(baseline)
    first = config.epochs + 1 if state.stopping.stopped else state.epoch + 1  # a resumed run may have stopped already
    with progress_bar(quiet=quiet) as progress:
        task = progress.add_task(f"training {model.name}", total=config.epochs, completed=first - 1)
        for epoch in range(first, config.epochs + 1):
            loss, correct, count = run_epoch(state, data, config, epoch, forward, ctx)
            check_finite(model, loss, epoch, config.lr)
            state.epoch = epoch
            with state.averaged():  # evaluate (and keep) the averaged weights
                offset, train_accuracy, val = validate(model, data, config.calibrate, correct / max(count, 1))
                row = {"epoch": epoch, "loss": loss / max(count, 1), "train_accuracy": train_accuracy,
                       "val_accuracy": val["accuracy"], "val_auc": val["auc"], "seconds": time.perf_counter() - started}
                row = ctx.broadcast_object(row)  # every rank takes rank 0's early-stopping decision
                state.history.append(row)
                if state.stopping.improves(_score(val)):
                    state.keep_best(offset)
            if on_epoch:
                on_epoch(row, state.state_dict())
            progress.advance(task)
            if state.stopping.stopped:
                break
    model.load_state_dict(state.best_state)
    model.eval()
    return state.history, state.best_epoch
