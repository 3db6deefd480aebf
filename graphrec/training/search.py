"""Several weight decays, the best kept on validation: trained together in one pass per
mini-batch where the model allows it (:mod:`graphrec.training.joint`, the default
``decay_search="joint"``), otherwise one fit each from the same initialisation."""

from __future__ import annotations

import copy
from typing import Any, Callable

from graphrec.distributed import DistContext
from graphrec.models.base import LinkModel
from graphrec.models.inputs import NodeInputs
from graphrec.sampling import AuxiliaryRelation, PairSplit
from graphrec.training import joint, loop, staged
from graphrec.training.config import TrainConfig

__all__ = ["fit_over_decays"]


def _summary(decay: float, history: list[dict[str, float]], best_epoch: int) -> tuple[dict[str, Any], tuple[float, float]]:
    row = history[best_epoch - 1]
    score = (row["val_accuracy"], row["val_auc"] if row["val_auc"] == row["val_auc"] else 0.0)
    done = {"weight_decay": decay, "val_accuracy": row["val_accuracy"], "val_auc": row["val_auc"],
            "best_epoch": best_epoch, "epochs_run": len(history)}
    return done, score


def fit_over_decays(
    model: LinkModel,
    build: Callable[[], LinkModel],
    inputs: NodeInputs,
    split: PairSplit,
    config: TrainConfig,
    *,
    seed: int,
    quiet: bool,
    say: Callable[[str], None],
    on_epoch: Callable[[dict[str, float], dict[str, Any]], None] | None,
    resume: dict[str, Any] | None,
    ctx: DistContext,
    auxiliary: list[AuxiliaryRelation],
) -> tuple[list[dict[str, float]], int, dict[str, Any]]:
    """:func:`~graphrec.training.loop.fit_model` once per value of ``config.decays``, each
    from the same initialisation (``model``, then fresh ``build()`` ones); ``model`` ends
    with the weights of the best validation accuracy (then AUC) over all of them. Returns
    that fit's history and best epoch, and the search: ``{"chosen": decay, "done": [one row
    per decay]}``. Checkpoints carry the finished decays, so ``resume`` skips them and
    continues the interrupted one. A staged encoder (the hybrid) runs this search on its
    base, then trains the rest (:mod:`graphrec.training.staged`)."""
    if staged.applies(model):  # the hybrid: its x Y searched as linear, then its offsets
        def fit_base(base: LinkModel, base_resume: dict[str, Any] | None) -> tuple[list[dict[str, float]], int, dict[str, Any]]:
            return fit_over_decays(base, lambda: staged.base_model(build()), inputs, split, config, seed=seed, quiet=quiet,
                                   say=say, on_epoch=on_epoch, resume=base_resume, ctx=ctx, auxiliary=auxiliary)

        return staged.fit_staged(model, fit_base, inputs, split, config, seed=seed, quiet=quiet, say=say, on_epoch=on_epoch, resume=resume)
    decays = config.decays
    if config.decay_search == "joint" and joint.joint_search_applies(model, decays, auxiliary, ctx.world_size):
        return _fit_jointly(model, inputs, split, config, seed=seed, quiet=quiet, say=say, on_epoch=on_epoch, resume=resume)
    state = (resume or {}).get("search") or {"done": [], "best": None}
    # every fit starts from the same build, so the same preprocessing: read and prepare the rows once
    x = model.training_inputs(inputs) if model.trainable and len(decays) > len(state["done"]) else None
    done, best = list(state["done"]), state["best"]
    for index, decay in enumerate(decays):
        if index < len(done):
            continue  # finished before the interruption
        if len(decays) > 1:
            say(f"weight decay {decay:g} ({index + 1} of {len(decays)})")
        candidate = model if index == 0 else build()

        def save(row: dict[str, float], checkpoint: dict[str, Any], done=done, best=best) -> None:
            on_epoch(row, {**checkpoint, "search": {"done": done, "best": best}})

        history, best_epoch = loop.fit_model(
            candidate, inputs, split, config.with_decay(decay), seed=seed, quiet=quiet,
            on_epoch=save if on_epoch is not None else None, resume=resume if index == len(state["done"]) else None,
            ctx=ctx, x=x, auxiliary=auxiliary)
        row, score = _summary(decay, history, best_epoch)
        done.append(row)
        if best is None or score > tuple(best["score"]):
            best = {"weight_decay": decay, "score": list(score), "state": copy.deepcopy(candidate.state_dict()),
                    "history": history, "best_epoch": best_epoch}
    if len(decays) > 1:
        say(f"chose weight decay {best['weight_decay']:g} (best validation accuracy {best['score'][0]:.4f})")
    model.load_state_dict(best["state"])
    model.eval()
    return best["history"], best["best_epoch"], {"chosen": best["weight_decay"], "done": done}


def _fit_jointly(model: LinkModel, inputs: NodeInputs, split: PairSplit, config: TrainConfig, *, seed: int, quiet: bool,
                 say: Callable[[str], None], on_epoch: Callable[[dict[str, float], dict[str, Any]], None] | None,
                 resume: dict[str, Any] | None) -> tuple[list[dict[str, float]], int, dict[str, Any]]:
    """The same search with every decay trained together (:mod:`graphrec.training.joint`);
    every candidate starts as a copy of ``model`` (a fresh build would be the same)."""
    decays = config.decays
    candidates = [model] + [copy.deepcopy(model) for _ in decays[1:]]
    say(f"weight decays {', '.join(f'{decay:g}' for decay in decays)}, trained together")
    fits = joint.fit_jointly(candidates, decays, model.training_inputs(inputs), split, config, seed=seed,
                             on_epoch=on_epoch, quiet=quiet, say=say, resume=resume)
    summaries = [_summary(decay, history, best_epoch) for decay, (history, best_epoch) in zip(decays, fits)]
    best = max(range(len(decays)), key=lambda index: (summaries[index][1], -index))  # the first on ties, as one by one
    say(f"chose weight decay {decays[best]:g} (best validation accuracy {summaries[best][1][0]:.4f})")
    if best:
        model.load_state_dict(candidates[best].state_dict())
    model.eval()
    history, best_epoch = fits[best]
    return history, best_epoch, {"chosen": decays[best], "done": [row for row, _ in summaries]}
