"""The training loop, apart from RUN_DIR handling (:mod:`graphrec.train`).

* :mod:`graphrec.training.config`: the typed :class:`TrainConfig`, resolved from a model's
  defaults and the options given;
* :mod:`graphrec.training.objective`: the pair loss, the threshold choice, the shared-style
  logits of auxiliary relations;
* :mod:`graphrec.training.state`: :class:`TrainingState` (model, optimiser, averaged
  weights, RNG, history, early stopping) with ``state_dict()`` / ``load_state_dict()``;
* :mod:`graphrec.training.loop`: one epoch, one validation step, :func:`fit_model`;
* :mod:`graphrec.training.search`: one fit per weight decay, the best kept;
* :mod:`graphrec.training.staged`: the hybrid's two stages (``x Y`` as linear, then its
  per-product offsets, kept only when they clearly win on validation).
"""

from __future__ import annotations

from graphrec.training.config import TrainConfig, default_batch_size
from graphrec.training.loop import fit_model
from graphrec.training.objective import best_offset, link_loss
from graphrec.training.search import fit_over_decays
from graphrec.training.state import EarlyStopping, TrainingState

__all__ = ["TrainConfig", "default_batch_size", "fit_model", "best_offset", "link_loss", "fit_over_decays",
           "EarlyStopping", "TrainingState"]
