"""Several weight decays of a linear-encoder model trained together, in one pass over each mini-batch.

The candidates of a weight-decay search differ only in their penalty: they start from the
same build, read the same epochs of pairs (one generator, seeded as each sequential fit's
own), and are calibrated and validated on the same pairs. So their projections are stacked
side by side, ``W = [Y_1 | ... | Y_C]`` (``[F, C*K]``), and one product ``X W`` per step
encodes every candidate: the read of the feature rows, which is most of a step at small K,
is shared. Each candidate keeps its own shift, its own penalty in the loss, its own history
and early stopping. Adam and the weight average act elementwise, so one optimiser over the
stacked tensors is C separate optimisers; a candidate that stops early loses its columns
(and their optimiser state) so that the others' steps get cheaper.

From epoch :data:`PRUNE_AFTER` on, a candidate whose best validation accuracy is more than
two standard errors (at least :data:`PRUNE_MARGIN`) below the leader's, and whose recent
gains would not close that gap within ``patience`` epochs, is dropped as hopeless: on the
planted 4k catalogue the weakest decay ran 18 epochs to lose by 2 points. (Without the pace
test, K = 1 lost the decay that was behind at epoch 3 and chosen at epoch 19.)

The chosen candidate is the sequential search's (:func:`graphrec.training.search.fit_over_decays`
with ``decay_search="sequential"``) up to float rounding: a stacked matrix product does not
round exactly like C separate ones, so a validation accuracy tied to the last digit could
break the other way. Dropped candidates record fewer epochs than a sequential fit of theirs.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from graphrec.evaluate import binary_metrics
from graphrec.fs import progress_bar
from graphrec.models.base import PAIR_CHUNK, MetricModel
from graphrec.models.encoders import LinearEncoder, chunked, stacked_product
from graphrec.sampling import PairSplit, shuffled_pairs
from graphrec.training.adam import Adam
from graphrec.training.config import TrainConfig
from graphrec.training.loop import EpochData, _epoch_negatives, calibration_pairs, require_finite_training
from graphrec.training.objective import best_offset, link_loss
from graphrec.training.state import AveragedWeights, EarlyStopping

__all__ = ["JointState", "fit_jointly", "joint_search_applies", "prune_margin", "stacked_product"]  # stacked_product: re-exported

PRUNE_AFTER = 3  # the first epoch after which a hopeless candidate is dropped
PRUNE_MARGIN = 0.01  # the least accuracy gap to the leader that drops a candidate
PACE_EPOCHS = 2  # the recent epochs whose gain says whether a candidate is catching up


def joint_search_applies(model: Any, decays: list[float], auxiliary: list, world_size: int) -> bool:
    """True when copies of ``model`` can train ``decays`` together: several decays, a
    linear-encoder metric model, no auxiliary relation heads, one process (otherwise the
    search fits them one by one)."""
    return (len(decays) > 1 and not auxiliary and world_size == 1
            and isinstance(model, MetricModel) and type(model.encoder) is LinearEncoder)


class JointState(AveragedWeights):
    """Stacked weights, optimiser, averaged weights, RNG and per-candidate bookkeeping of a
    joint fit, saved and restored as one dict (a resumed fit continues exactly)."""

    def __init__(self, models: list[MetricModel], decays: list[float], config: TrainConfig, seed: int) -> None:
        self.models, self.decays, self.lr, self.ema = models, list(decays), config.lr, float(config.ema or 0.0)
        self.k = models[0].encoder.k
        self.active = list(range(len(models)))  # the candidates whose columns are stacked, in order
        self._set(torch.cat([m.encoder.Y.detach() for m in models], 1), torch.stack([m.decoder.shift.detach() for m in models]))
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.stopping = [EarlyStopping(config.patience) for _ in models]
        self.history: list[list[dict[str, float]]] = [[] for _ in models]
        self.best_state = [copy.deepcopy(m.state_dict()) for m in models]
        self.best_epoch = [0] * len(models)
        self.epoch = 0

    def _set(self, weight: Tensor, shift: Tensor, optimizer: dict | None = None, average: list[Tensor] | None = None) -> None:
        self.weight, self.shift = nn.Parameter(weight.clone()), nn.Parameter(shift.clone())
        self.params = [self.weight, self.shift]
        self.optimizer = Adam(self.params, lr=self.lr)
        if optimizer is not None:
            self.optimizer.load_state_dict(optimizer)
        self.average = None if self.ema <= 0 else [t.detach().clone() for t in (average or self.params)]

    def projection(self) -> Tensor:
        """The stacked map applied to prepared rows (a per-dimension scale folded in, as
        :meth:`LinearEncoder.projection` does; every candidate has the same scale)."""
        encoder = self.models[0].encoder
        return self.weight if encoder.preprocessing == "sqrt" else encoder.scale.unsqueeze(1) * self.weight

    def penalties(self) -> Tensor:
        """Each active candidate's sum of squared weights ``[A]``."""
        return (self.weight.view(self.weight.shape[0], len(self.active), self.k) ** 2).sum((0, 2))

    @torch.no_grad()
    def keep_best(self, position: int, offset: float) -> None:
        """Remember the current weights of the candidate at ``position`` as its best, with
        the calibrated threshold moved into its shift."""
        candidate = self.active[position]
        shift = self.shift[position].clone()
        shift.add_(offset)
        state = dict(self.best_state[candidate])
        state["encoder.Y"] = self.weight[:, position * self.k : (position + 1) * self.k].clone()
        state["decoder.shift"] = shift
        self.best_state[candidate], self.best_epoch[candidate] = state, self.epoch

    @torch.no_grad()
    def drop_stopped(self) -> None:
        """Remove the columns, shift and optimiser state of every candidate that has stopped."""
        keep = [pos for pos, c in enumerate(self.active) if not self.stopping[c].stopped]
        if len(keep) == len(self.active):
            return
        columns = torch.tensor([pos * self.k + j for pos in keep for j in range(self.k)], dtype=torch.long)
        rows = torch.tensor(keep, dtype=torch.long)
        optimizer = self.optimizer.state_dict()
        for index, pick in ((0, (slice(None), columns)), (1, (rows,))):
            for key, value in optimizer["state"].get(index, {}).items():
                if key != "step":
                    optimizer["state"][index][key] = value[pick].clone()
        average = None if self.average is None else [self.average[0][:, columns], self.average[1][rows]]
        self.active = [self.active[pos] for pos in keep]
        self._set(self.weight.detach()[:, columns], self.shift.detach()[rows], optimizer, average)

    def state_dict(self) -> dict[str, Any]:
        """A checkpoint of tensors and plain values (``torch.load(weights_only=True)`` reads it)."""
        return {"epoch": self.epoch, "active": list(self.active), "weight": self.weight.detach(), "shift": self.shift.detach(),
                "optimizer": self.optimizer.state_dict(), "average": self.average, "rng": self.generator.get_state(),
                "history": self.history, "best_state": self.best_state, "best_epoch": list(self.best_epoch),
                "best": [list(s.best) for s in self.stopping], "stale": [s.stale for s in self.stopping]}

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        self.active = list(checkpoint["active"])
        self._set(checkpoint["weight"], checkpoint["shift"], checkpoint["optimizer"], checkpoint["average"])
        self.generator.set_state(checkpoint["rng"])
        self.history = [list(rows) for rows in checkpoint["history"]]
        self.best_state = [dict(state) for state in checkpoint["best_state"]]
        self.best_epoch, self.epoch = list(checkpoint["best_epoch"]), checkpoint["epoch"]
        for stopping, best, stale in zip(self.stopping, checkpoint["best"], checkpoint["stale"]):
            stopping.best, stopping.stale = tuple(best), stale


def _styles(state: JointState, x, pairs: Tensor) -> tuple[Tensor, Tensor]:
    """(stacked styles ``[n, A, K]`` of the rows ``pairs`` touch, or of every row when most
    are touched, as :meth:`MetricModel.pair_styles` chooses; pairs re-indexed into them)."""
    nodes, local = torch.unique(pairs, return_inverse=True)
    weight = state.projection()
    if len(nodes) * 2 > len(x):
        rows, local = x, pairs
    else:
        rows = x[nodes]
    style = chunked(lambda part: stacked_product(part, weight), rows)
    return style.view(len(style), len(state.active), state.k), local


def _logits(state: JointState, x, pairs: Tensor) -> Tensor:
    """``c_a - ||s_i - s_j||^2`` of every active candidate ``a``: ``[m, A]``."""
    style, local = _styles(state, x, pairs)
    diff = style[local[:, 0]] - style[local[:, 1]]
    return state.shift - (diff * diff).sum(-1)


@torch.no_grad()
def _all_logits(state: JointState, x, pairs: Tensor) -> Tensor:
    parts = [_logits(state, x, pairs[start : start + PAIR_CHUNK]) for start in range(0, len(pairs), PAIR_CHUNK)]
    return torch.cat(parts) if parts else torch.empty((0, len(state.active)))


def _run_epoch(state: JointState, data: EpochData, config: TrainConfig, epoch: int) -> tuple[list[float], list[int], int]:
    """One pass over the epoch's shuffled pairs for every active candidate; returns
    (summed loss per candidate, correct per candidate, pairs)."""
    pairs, labels = shuffled_pairs(data.split.train_positives, _epoch_negatives(data, config, epoch, state.generator), state.generator)
    decays = torch.tensor([state.decays[c] for c in state.active])
    batch, floor, count = config.batch_size, float(config.noise_floor or 0.0), len(state.active)
    total, correct = torch.zeros(count, dtype=torch.float64), torch.zeros(count, dtype=torch.long)
    for start in range(0, len(pairs), batch):
        part, target = pairs[start : start + batch], labels[start : start + batch]
        logits = _logits(state, data.x, part)
        losses = torch.stack([link_loss(logits[:, a], target, floor) for a in range(count)]) / len(part)
        losses = losses + decays * state.penalties()  # each candidate's loss, its own penalty
        total += losses.detach().double() * len(part)
        state.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # the candidates share no weight: each gets its own loss's gradient
        state.optimizer.step()
        state.update_average()
        correct += ((logits.detach() > 0).float() == target[:, None]).sum(0)
    return total.tolist(), correct.tolist(), len(pairs)


def _validate(state: JointState, data: EpochData, config: TrainConfig, losses: list[float], correct: list[int], count: int,
              seconds: float) -> None:
    """Calibrate, validate and record the epoch of every active candidate (averaged weights)."""
    with state.averaged():
        calibration = _all_logits(state, data.x, data.calibration[0]) if config.calibrate else None
        val_logits = _all_logits(state, data.x, data.split.val_pairs)
        for pos, candidate in enumerate(list(state.active)):
            offset, train_accuracy = 0.0, correct[pos] / max(count, 1)
            if calibration is not None:
                offset, train_accuracy = best_offset(calibration[:, pos], data.calibration[1])
            val = binary_metrics(torch.sigmoid(val_logits[:, pos] + offset), data.split.val_labels)
            state.history[candidate].append({
                "epoch": state.epoch, "loss": losses[pos] / max(count, 1), "train_accuracy": train_accuracy,
                "val_accuracy": val["accuracy"], "val_auc": val["auc"], "seconds": seconds})
            if state.stopping[candidate].improves((val["accuracy"], val["auc"] if val["auc"] == val["auc"] else 0.0)):
                state.keep_best(pos, offset)


def prune_margin(accuracy: float, pairs: int) -> float:
    """How far below the leader's best validation accuracy a candidate must be to be dropped:
    two standard errors of an accuracy measured on ``pairs`` validation pairs, at least
    :data:`PRUNE_MARGIN`."""
    return max(PRUNE_MARGIN, 2.0 * math.sqrt(max(accuracy * (1.0 - accuracy), 0.0) / max(pairs, 1)))


def _catching_up(history: list[dict[str, float]], gap: float, horizon: int) -> bool:
    """Whether a candidate's best validation accuracy rose fast enough over its last
    :data:`PACE_EPOCHS` epochs to close ``gap`` within ``horizon`` more epochs at that pace."""
    if len(history) <= PACE_EPOCHS:
        return True
    now = max(row["val_accuracy"] for row in history)
    before = max(row["val_accuracy"] for row in history[:-PACE_EPOCHS])
    return (now - before) / PACE_EPOCHS * horizon >= gap


def _prune_hopeless(state: JointState, pairs: int) -> list[tuple[int, float, float]]:
    """From epoch :data:`PRUNE_AFTER` on, stop every active candidate whose best validation
    accuracy is more than :func:`prune_margin` below the leader's and that is not catching
    up (at its recent pace it would not close the gap within ``patience`` epochs); only when
    early stopping is on. It is not going to be chosen, and its columns would slow every
    remaining step. Returns (candidate, its best, the leader's best) of each one stopped."""
    patience = state.stopping[state.active[0]].patience if state.active else 0
    if state.epoch < PRUNE_AFTER or len(state.active) < 2 or not patience:
        return []
    leader = _leader(state, state.active)
    best = state.stopping[leader].best[0]
    margin = prune_margin(best, pairs)
    dropped = []
    for candidate in state.active:
        mine = state.stopping[candidate]
        gap = best - mine.best[0]
        if candidate != leader and not mine.stopped and gap > margin and not _catching_up(state.history[candidate], gap, patience):
            mine.stale = mine.patience  # stopped: drop_stopped removes its columns
            dropped.append((candidate, mine.best[0], best))
    return dropped


def _leader(state: JointState, candidates: list[int]) -> int:
    """The one of ``candidates`` with the best validation score so far (the first on ties)."""
    return max(candidates, key=lambda c: (state.stopping[c].best, -c))


def fit_jointly(
    models: list[MetricModel],
    decays: list[float],
    x: Any,
    split: PairSplit,
    config: TrainConfig,
    seed: int = 0,
    on_epoch: Callable[[dict[str, float], dict[str, Any]], None] | None = None,
    quiet: bool = True,
    say: Callable[[str], None] = lambda line: None,
    resume: dict[str, Any] | None = None,
) -> list[tuple[list[dict[str, float]], int]]:
    """Train ``models[c]`` with weight decay ``decays[c]``, all in one pass per mini-batch;
    each model ends with its best epoch's weights. Returns (history, best epoch) per model.

    ``x`` are the prepared training rows of every node (the same for every candidate).
    After every epoch ``say`` gets a line with each candidate's validation accuracy and
    ``on_epoch(row, checkpoint)`` the leading candidate's history row and a checkpoint
    (``{"epoch": e, "model": its best weights, "joint": ...}``); passing the last checkpoint as ``resume`` continues
    after its epoch exactly as if training had never stopped.
    """
    started = time.perf_counter()
    state = JointState(models, decays, config, seed)
    if resume is not None:
        state.load_state_dict(resume["joint"])
    data = EpochData(x, split, [], calibration_pairs(split, config, seed))
    with progress_bar(quiet=quiet) as progress:
        task = progress.add_task(f"training {len(models)} weight decays", total=config.epochs, completed=state.epoch)
        for epoch in range(state.epoch + 1, config.epochs + 1):
            if not state.active:
                break
            losses, correct, count = _run_epoch(state, data, config, epoch)
            require_finite_training([loss / max(count, 1) for loss in losses], state.params, epoch, config.lr)
            state.epoch = epoch
            _validate(state, data, config, losses, correct, count, time.perf_counter() - started)
            trained = list(state.active)
            say("  validation accuracy by weight decay: " + ", ".join(f"{decays[c]:g} {state.history[c][-1]['val_accuracy']:.4f}" for c in trained))
            for candidate, mine, best in _prune_hopeless(state, len(split.val_labels)):
                say(f"  weight decay {decays[candidate]:g} dropped: its best validation accuracy {mine:.4f} is too far below {best:.4f}")
            state.drop_stopped()
            if on_epoch:  # "model": the leader's best weights so far, as a single fit's checkpoint has them
                leader = _leader(state, trained)
                on_epoch(state.history[leader][-1], {"epoch": epoch, "model": state.best_state[leader], "joint": state.state_dict()})
            progress.advance(task)
    for model, best in zip(models, state.best_state):
        model.load_state_dict(best)
        model.eval()
    return [(history, best_epoch) for history, best_epoch in zip(state.history, state.best_epoch)]
