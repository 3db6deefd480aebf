"""The typed training configuration: a model's defaults (on its class) overridden by the
options given, validated once."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from graphrec.errors import UsageError, choose
from graphrec.models.base import LinkModel, TrainDefaults

__all__ = ["TrainConfig", "default_batch_size", "MIN_STEPS", "MIN_BATCH", "CALIBRATIONS", "DECAY_SEARCHES"]

CALIBRATIONS = ("train", "val")  # the pairs that choose the decision threshold
DECAY_SEARCHES = ("joint", "sequential")  # how several weight decays are trained (graphrec.training.joint)
MIN_STEPS, MIN_BATCH = 8, 256  # default batch size: at least MIN_STEPS steps per epoch, never below MIN_BATCH


def default_batch_size(batch_size: int, train_pairs: int, negatives: int = 1) -> int:
    """The batch size an epoch of ``train_pairs`` labelled pairs gets by default: ``batch_size``
    grown with the epoch when ``negatives`` non-edges are drawn per edge (an epoch then has
    as many steps as with one), and cut on a small graph so that it still has ~MIN_STEPS."""
    pairs_per_epoch = train_pairs * (1 + negatives) // 2
    return min(batch_size * (1 + negatives) // 2, max(MIN_BATCH, pairs_per_epoch // MIN_STEPS))


@dataclass
class TrainConfig:
    """Optimisation settings of one run (``config.json`` stores them flat, in this order)."""

    epochs: int
    lr: float
    batch_size: int
    weight_decay: float | list[float]  # several: train once per value, keep the best on validation
    patience: int
    ema: float
    noise_floor: float
    negatives: int
    aux_relations: list[str] = field(default_factory=list)
    aux_weight: float = 1.0
    fresh_negatives: bool = True
    calibrate: bool = True
    calibration: str = "train"  # the pairs that choose the threshold: "train" or "val" (never test)
    message_relations: list[str] = field(default_factory=list)  # other relations a message-passing encoder propagates over
    decay_search: str = "joint"  # several weight decays: "joint" (one pass per batch) or "sequential" (one fit each)

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @classmethod
    def resolve(cls, model: type[LinkModel], defaults: TrainDefaults | None = None, **given: Any) -> "TrainConfig":
        """``defaults`` (default ``model.defaults``) with the options in ``given`` that are
        not None; a :class:`UsageError` for a value out of range or an unknown option."""
        unknown = sorted(set(given) - cls.names())
        if unknown:
            raise UsageError(f"unknown training option {unknown[0]!r}; choose from {', '.join(sorted(cls.names()))}.")
        values: dict[str, Any] = {**asdict(defaults or model.defaults), "aux_relations": [], "aux_weight": 1.0}
        values.update({key: value for key, value in given.items() if value is not None})
        values["aux_relations"] = list(values["aux_relations"])
        values["message_relations"] = list(values.get("message_relations") or [])
        decay = values["weight_decay"]
        decays = [float(value) for value in decay] if isinstance(decay, (list, tuple)) else [float(decay)]
        if not decays or any(not value >= 0 for value in decays):
            raise UsageError(f"--weight-decay needs one or more values >= 0 (got {decay}).")
        values["weight_decay"] = decays if len(decays) > 1 else decays[0]
        for key, allowed in (("calibration", CALIBRATIONS), ("decay_search", DECAY_SEARCHES)):
            if key in values:  # names as registered: "Val" is val
                values[key] = choose(values[key], allowed, "--" + key.replace("_", "-"))
        config = cls(**values)
        config.check(model)
        return config

    def check(self, model: type[LinkModel]) -> None:
        aux = self.aux_relations
        if aux and not model.shares_style:
            raise UsageError(f"--aux-relations needs a decoder with a learnt style space (mahalanobis); {model.name} has none.")
        if len(set(aux)) != len(aux):
            raise UsageError(f"--aux-relations names a relation twice ({', '.join(aux)}).")
        if not 0 < self.aux_weight < math.inf:
            raise UsageError(f"--aux-weight must be a finite positive number (got {self.aux_weight}).")
        for key in ("epochs", "batch_size", "patience"):
            if getattr(self, key) < 0:
                raise UsageError(f"--{key.replace('_', '-')} must not be negative (got {getattr(self, key)}).")
        if self.negatives < 1:
            raise UsageError(f"--negatives must be at least 1 (got {self.negatives}).")
        if self.negatives > 1 and not self.fresh_negatives:
            raise UsageError("--negatives above 1 draws fresh non-edges every epoch; it cannot be combined with fixed negatives.")
        if not 0.0 <= self.noise_floor < 0.5:
            raise UsageError(f"--noise-floor must be in [0, 0.5) (got {self.noise_floor}).")
        choose(self.calibration, CALIBRATIONS, "--calibration")  # resolve() has spelt them as listed
        choose(self.decay_search, DECAY_SEARCHES, "--decay-search")
        if model.trainable and (self.epochs < 1 or self.batch_size < 1 or not 0 < self.lr < math.inf):
            raise UsageError("--epochs and --batch-size must be at least 1 and --lr a finite positive number.")

    @property
    def decays(self) -> list[float]:
        """The weight decays to try, in order (one unless a search was asked for)."""
        return list(self.weight_decay) if isinstance(self.weight_decay, list) else [self.weight_decay]

    def with_decay(self, decay: float) -> "TrainConfig":
        return replace(self, weight_decay=decay)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
