"""Everything a fit carries from one epoch to the next, saved and restored as one dict.

A checkpoint (``TrainingState.state_dict()``) holds the model, the auxiliary heads, the
optimiser, the averaged weights, the RNG, the history and the early-stopping state; a
state loaded from it continues exactly as if training had never stopped (the tests
compare resumed and uninterrupted runs bit for bit).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from graphrec.models.base import LinkModel
from graphrec.models.heads import RelationHeads
from graphrec.training.adam import Adam

__all__ = ["AveragedWeights", "EarlyStopping", "TrainingState"]


class EarlyStopping:
    """The best validation score so far (accuracy, then AUC), and epochs since it improved."""

    def __init__(self, patience: int) -> None:
        self.patience = int(patience)
        self.best: tuple[float, float] = (-1.0, -1.0)
        self.stale = 0

    def improves(self, score: tuple[float, float]) -> bool:
        """Record ``score``; True when it is the best so far."""
        if score > self.best:
            self.best, self.stale = score, 0
            return True
        self.stale += 1
        return False

    @property
    def stopped(self) -> bool:
        return bool(self.patience) and self.stale >= self.patience


class AveragedWeights:
    """An exponential moving average of ``self.params`` kept in ``self.average`` (None when
    ``self.ema`` is 0), swapped in for evaluation: shared by :class:`TrainingState` and the
    joint weight-decay search's state."""

    params: list[nn.Parameter]
    average: list[Tensor] | None
    ema: float

    @torch.no_grad()
    def update_average(self) -> None:
        """One exponential-moving-average step of the weights (after an optimiser step)."""
        if self.average is not None:
            for mean, p in zip(self.average, self.params):
                mean.mul_(self.ema).add_(p.detach(), alpha=1 - self.ema)

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """The averaged weights in place of the current ones for the block (evaluation)."""
        self._swap()
        try:
            yield
        finally:
            self._swap()

    @torch.no_grad()
    def _swap(self) -> None:
        for p, other in zip(self.params, self.average or []):
            held = p.detach().clone()
            p.copy_(other)
            other.copy_(held)


class TrainingState(AveragedWeights):
    """Model, optimiser and bookkeeping of one gradient fit."""

    def __init__(self, model: LinkModel, heads: RelationHeads | None, lr: float, ema: float, patience: int, seed: int) -> None:
        self.model, self.heads = model, heads
        self.params: list[nn.Parameter] = [p for p in model.parameters() if p.requires_grad]
        if heads is not None:
            self.params += list(heads.parameters())
        self.optimizer = Adam(self.params, lr=lr)
        self.ema = float(ema or 0.0)
        self.average: list[Tensor] | None = [p.detach().clone() for p in self.params] if self.ema > 0 else None
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.stopping = EarlyStopping(patience)
        self.history: list[dict[str, float]] = []
        self.best_state: dict[str, Tensor] = copy.deepcopy(model.state_dict())
        self.best_epoch = 0
        self.epoch = 0  # the last finished epoch

    def keep_best(self, offset: float) -> None:
        """Remember the current weights as the best, with the calibrated threshold moved in."""
        self.model.shift_logits(offset)
        self.best_state, self.best_epoch = copy.deepcopy(self.model.state_dict()), self.epoch
        self.model.shift_logits(-offset)

    def state_dict(self) -> dict[str, Any]:
        """A checkpoint of tensors and plain values (``torch.load(weights_only=True)`` reads it)."""
        return {"epoch": self.epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                **({"heads": self.heads.state_dict()} if self.heads is not None else {}),
                "best_state": self.best_state, "best_epoch": self.best_epoch, "history": self.history,
                "rng": self.generator.get_state(), "average": self.average,
                "best": self.stopping.best, "stale": self.stopping.stale}

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["model"])
        if self.heads is not None:
            self.heads.load_state_dict(checkpoint["heads"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.average is not None:
            for mean, saved in zip(self.average, checkpoint["average"]):
                mean.copy_(saved)
        self.generator.set_state(checkpoint["rng"])
        self.history = list(checkpoint["history"])
        self.best_state = self.model.upgrade_state(dict(checkpoint["best_state"]))
        self.best_epoch, self.epoch = checkpoint["best_epoch"], checkpoint["epoch"]
        self.stopping.best, self.stopping.stale = tuple(checkpoint["best"]), checkpoint["stale"]
