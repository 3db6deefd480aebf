"""Train a link model under the paper's protocol and write a RUN_DIR.

>>> from graphrec.train import train
>>> run = train("graphrec-sample/graph", decoder="mahalanobis", k=10, out_dir="runs/k10")
>>> run.metrics["test"]["accuracy"]

Gradient-trained decoders (mahalanobis, wnn, fm) use mini-batch Adam over labelled
pairs with an L2 penalty on the projection / embeddings (``weight_decay`` x sum of
squares, added to the loss), drawing fresh random non-edges every epoch (``negatives``
per training edge, default 1; never a validation/test pair). Other relations can train
the same style space (``aux_relations``, see :mod:`graphrec.models.heads`), each with its
own edges and negatives and a loss weighted by ``aux_weight``. Weights are averaged over
steps (an exponential moving average, ``ema``), which removes most of Adam's step noise
in a 4096 x K projection. After every epoch the decision threshold is re-chosen on the
training pairs (:func:`best_offset`); the epoch with the best validation accuracy is kept
and training stops after ``patience`` epochs without improvement. The euclidean and
category-tree baselines are fitted in closed form on the training pairs.
"""

from __future__ import annotations

import copy
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from graphrec import __version__
from graphrec.distributed import DistContext, init_distributed
from graphrec.errors import UsageError
from graphrec.evaluate import binary_metrics, evaluate_model
from graphrec.graph import Graph, load_graph
from graphrec.models import LinkModel, MetricModel, model_class
from graphrec.models.base import PreparedRows, feature_rows, pair_distances
from graphrec.models.heads import RelationHeads
from graphrec.pairs import split_from_file
from graphrec.runs import Run, RunWriter, graph_checksum
from graphrec.sample import WORK_GRAPH, WORK_RUNS
from graphrec.sampling import AuxiliaryRelation, PairSplit, auxiliary_relation, fresh_negatives, shuffled_pairs, split_pairs

__all__ = ["TrainOptions", "DEFAULTS", "train", "fit_model", "best_offset", "default_batch_size", "default_run_dir", "plot_history", "link_loss"]

FLOAT32_LIMIT = 2 << 30  # bytes: larger feature matrices are kept as float16 while training
IN_MEMORY_LIMIT = 4 << 30  # bytes: a larger stored matrix is read through its memory map while training
MIN_STEPS, MIN_BATCH = 8, 256  # default batch size: at least MIN_STEPS steps per epoch, never below MIN_BATCH
CALIBRATION_PAIRS = 50_000  # training pairs (a fixed random subset) used to re-choose the threshold


@dataclass
class TrainOptions:
    """Optimisation settings; ``None`` fields take the decoder's default from :data:`DEFAULTS`."""

    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    weight_decay: float | list[float] | None = None  # several: train once per value, keep the best on validation
    patience: int | None = None
    ema: float | None = None
    noise_floor: float | None = None
    negatives: int | None = None
    aux_relations: list[str] | None = None
    aux_weight: float | None = None
    fresh_negatives: bool = True
    calibrate: bool = True


#: Per-decoder defaults, chosen on the synthetic benchmark (benchmarks/bench_train.py). A
#: list of weight decays trains once per value and keeps the best on validation: with
#: square-rooted features the best mahalanobis penalty was 1e-3 on the bundled sample and
#: 0.3-1 on the planted 4k catalogue, too far apart for one default.
DEFAULTS: dict[str, dict[str, Any]] = {
    "mahalanobis": {"epochs": 30, "lr": 0.003, "batch_size": 4096, "weight_decay": [1e-3, 3e-2, 1.0], "patience": 6, "ema": 0.9, "noise_floor": 0.0, "negatives": 1},
    "wnn": {"epochs": 20, "lr": 0.01, "batch_size": 4096, "weight_decay": 0.0, "patience": 6, "ema": 0.9, "noise_floor": 0.0, "negatives": 1},
    "fm": {"epochs": 40, "lr": 0.02, "batch_size": 4096, "weight_decay": 1e-5, "patience": 6, "ema": 0.0, "noise_floor": 0.0, "negatives": 1},
    "euclidean": {"epochs": 1, "lr": 0.0, "batch_size": 0, "weight_decay": 0.0, "patience": 0, "ema": 0.0, "noise_floor": 0.0, "negatives": 1},
    "category-tree": {"epochs": 1, "lr": 0.0, "batch_size": 0, "weight_decay": 0.0, "patience": 0, "ema": 0.0, "noise_floor": 0.0, "negatives": 1},
}
#: Defaults shared by every decoder: no auxiliary relation; weight 1 when some are given.
AUX_DEFAULTS: dict[str, Any] = {"aux_relations": [], "aux_weight": 1.0}


def default_batch_size(batch_size: int, train_pairs: int, negatives: int = 1) -> int:
    """The batch size an epoch of ``train_pairs`` labelled pairs gets by default: ``batch_size``
    grown with the epoch when ``negatives`` non-edges are drawn per edge (an epoch then has
    as many steps as with one), and cut on a small graph so that it still has ~MIN_STEPS."""
    pairs_per_epoch = train_pairs * (1 + negatives) // 2
    return min(batch_size * (1 + negatives) // 2, max(MIN_BATCH, pairs_per_epoch // MIN_STEPS))


def default_run_dir(decoder: str, k: int) -> Path:
    """``graphrec-sample/runs/<decoder>-k<k>`` (contract 1)."""
    return WORK_RUNS / f"{decoder}-k{k}"


def _resolve(decoder: str, options: TrainOptions) -> dict[str, Any]:
    resolved = {**DEFAULTS[decoder], **AUX_DEFAULTS}
    for key, value in asdict(options).items():
        if value is not None:
            resolved[key] = value
    resolved["aux_relations"] = list(resolved["aux_relations"])
    decay = resolved["weight_decay"]
    decays = [float(value) for value in decay] if isinstance(decay, (list, tuple)) else [float(decay)]
    if not decays or any(not value >= 0 for value in decays):
        raise UsageError(f"--weight-decay needs one or more values >= 0 (got {decay}).")
    resolved["weight_decay"] = decays if len(decays) > 1 else decays[0]
    aux = resolved["aux_relations"]
    if aux and not model_class(decoder).shares_style:
        raise UsageError(f"--aux-relations needs a decoder with a learnt style space (mahalanobis); {decoder} has none.")
    if len(set(aux)) != len(aux):
        raise UsageError(f"--aux-relations names a relation twice ({', '.join(aux)}).")
    if not resolved["aux_weight"] > 0:
        raise UsageError(f"--aux-weight must be positive (got {resolved['aux_weight']}).")
    for key in ("epochs", "batch_size", "patience"):
        if resolved[key] < 0:
            raise UsageError(f"--{key.replace('_', '-')} must not be negative (got {resolved[key]}).")
    if resolved["negatives"] < 1:
        raise UsageError(f"--negatives must be at least 1 (got {resolved['negatives']}).")
    if resolved["negatives"] > 1 and not resolved["fresh_negatives"]:
        raise UsageError("--negatives above 1 draws fresh non-edges every epoch; it cannot be combined with fixed negatives.")
    if not 0.0 <= resolved["noise_floor"] < 0.5:
        raise UsageError(f"--noise-floor must be in [0, 0.5) (got {resolved['noise_floor']}).")
    if model_class(decoder).trainable and (resolved["epochs"] < 1 or resolved["batch_size"] < 1 or resolved["lr"] <= 0):
        raise UsageError("--epochs and --batch-size must be at least 1 and --lr positive.")
    return resolved


def _training_inputs(model: LinkModel, graph: Graph) -> Tensor:
    """Every node's model input held in memory for the epochs (float16 features when large)."""
    if isinstance(model, MetricModel):
        features = graph.require_features(f"the {model.name} decoder")
        if isinstance(features, np.memmap) and features.nbytes > IN_MEMORY_LIMIT:
            # catalogue scale (1.5M x 4096 float16 = 12 GB): no copy; each mini-batch reads
            # the rows it needs from the page cache, which the kernel may drop under pressure
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # read-only map: training never writes to it
                rows = torch.from_numpy(features)
            return PreparedRows(rows, model.prepare) if model.prepares else rows
        dtype = torch.float32 if features.shape[0] * features.shape[1] * 4 <= FLOAT32_LIMIT else torch.float16
        return model.prepare_rows(feature_rows(graph, None, dtype=dtype))  # preprocessing applied once, not per step
    return model.node_inputs(graph)


def _progress(quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        disable=quiet or not sys.stderr.isatty(), transient=True,
    )


def fit_model(
    model: LinkModel,
    graph: Graph,
    split: PairSplit,
    settings: dict[str, Any],
    seed: int = 0,
    on_epoch: Callable[[dict[str, float], dict[str, Any]], None] | None = None,
    quiet: bool = True,
    resume: dict[str, Any] | None = None,
    ctx: DistContext | None = None,
    inputs: Any = None,
) -> tuple[list[dict[str, float]], int]:
    """Train ``model`` in place; returns (history rows, best epoch). The best epoch's
    weights (by validation accuracy, then AUC) are loaded back at the end.

    ``inputs`` are the model inputs of every node (default: read and prepared here); pass
    them to share one copy between fits of identically built models.
    ``on_epoch(row, checkpoint)`` is called after every epoch with the history row and a
    checkpoint dict (model/optimiser/best state, RNG state); passing the last one as
    ``resume`` continues after its epoch exactly as if training had never stopped.
    """
    # Under torchrun (a distributed ``ctx``) every rank draws the same pairs and order from
    # the seed and computes its strided share of each mini-batch under
    # DistributedDataParallel; the loss is scaled so that the averaged gradient is the whole
    # mini-batch's gradient: the same steps as one process, up to float rounding. Training
    # loss and accuracy are summed over ranks; rank 0's epoch row (hence early stopping) is
    # shared so that all ranks stop together.
    ctx = ctx or DistContext()
    started = time.perf_counter()
    if not model.trainable:
        model.fit(graph, split.train_pairs, split.train_labels)
        probs = model.predict_proba(graph, split.train_pairs)
        train = binary_metrics(probs, split.train_labels)
        val = binary_metrics(model.predict_proba(graph, split.val_pairs), split.val_labels)
        row = {"epoch": 1, "loss": train["log_loss"], "train_accuracy": train["accuracy"], "val_accuracy": val["accuracy"],
               "val_auc": val["auc"], "seconds": time.perf_counter() - started}
        if on_epoch:
            on_epoch(row, {"epoch": 1, "model": model.state_dict()})
        return [row], 1

    generator = torch.Generator().manual_seed(seed + 1)
    inputs = _training_inputs(model, graph) if inputs is None else inputs
    decayed = model.decay_parameters()
    params = [p for p in model.parameters() if p.requires_grad]
    auxiliary: list[AuxiliaryRelation] = []
    heads: RelationHeads | None = None
    if settings.get("aux_relations"):
        if ctx.world_size > 1:
            raise UsageError("--aux-relations is not supported under torchrun yet; train it in one process.")
        auxiliary = [auxiliary_relation(graph, split, name) for name in settings["aux_relations"]]
        heads = RelationHeads(settings["aux_relations"], model.embed_dim, shift=float(model.shift.detach()))
        params += list(heads.parameters())
    aux_weight = float(settings.get("aux_weight") or 1.0)
    optimizer = torch.optim.Adam(params, lr=settings["lr"])
    forward = ctx.wrap_logits(model)  # model.logits, or DistributedDataParallel over it
    ema = float(settings.get("ema") or 0.0)
    average = [p.detach().clone() for p in params] if ema > 0 else None
    positives = split.train_positives
    pick = torch.randperm(len(split.train_pairs), generator=torch.Generator().manual_seed(seed))[:CALIBRATION_PAIRS]
    calibration_pairs, calibration_labels = split.train_pairs[pick], split.train_labels[pick]
    fixed_negatives = split.train_pairs[split.train_labels < 0.5]
    history: list[dict[str, float]] = []
    best: tuple[float, float] = (-1.0, -1.0)
    best_state, best_epoch, stale = copy.deepcopy(model.state_dict()), 0, 0
    batch, floor = settings["batch_size"], float(settings.get("noise_floor") or 0.0)
    ratio = int(settings.get("negatives") or 1)
    first = 1
    if resume is not None:  # continue after the checkpoint's epoch, in the same state
        model.load_state_dict(resume["model"])
        if heads is not None:
            heads.load_state_dict(resume["heads"])
        optimizer.load_state_dict(resume["optimizer"])
        if average is not None:
            for mean, saved in zip(average, resume["average"]):
                mean.copy_(saved)
        generator.set_state(resume["rng"])
        history, best_state, best_epoch = list(resume["history"]), resume["best_state"], resume["best_epoch"]
        best, stale = tuple(resume["best"]), resume["stale"]
        first = resume["epoch"] + 1
        if settings["patience"] and stale >= settings["patience"]:
            first = settings["epochs"] + 1  # it had already stopped early
    with _progress(quiet) as progress:
        task = progress.add_task(f"training {model.name}", total=settings["epochs"], completed=first - 1)
        for epoch in range(first, settings["epochs"] + 1):
            model.train()
            if not settings["fresh_negatives"] or (epoch == 1 and ratio == 1):
                negatives = fixed_negatives
            elif epoch == 1:  # the split's own negatives, topped up with fresh ones
                negatives = torch.cat([fixed_negatives, fresh_negatives(split, (ratio - 1) * len(fixed_negatives), generator)])
            else:
                negatives = fresh_negatives(split, ratio * len(fixed_negatives), generator)
            pairs, labels = shuffled_pairs(positives, negatives, generator)
            # each auxiliary relation's epoch is cut into as many steps as the main one
            aux_epoch = [relation.epoch_pairs(ratio, generator) for relation in auxiliary]
            steps = max(1, math.ceil(len(pairs) / batch))
            aux_batch = [math.ceil(len(aux_pairs) / steps) for aux_pairs, _ in aux_epoch]
            total_loss, correct = 0.0, 0
            for step, start in enumerate(range(0, len(pairs), batch)):
                part, target = pairs[start : start + batch], labels[start : start + batch]
                mine = ctx.batch_shard(len(part))  # the whole batch in one process
                part, target, share = part[mine], target[mine], len(part) / ctx.world_size
                if heads is None:
                    logits = forward(inputs, part)
                else:
                    aux_parts = [(p[step * size : (step + 1) * size], t[step * size : (step + 1) * size])
                                 for (p, t), size in zip(aux_epoch, aux_batch)]
                    logits, aux_loss = _shared_style_logits(model, heads, inputs, part, aux_parts, floor)
                loss = link_loss(logits, target, floor) / share
                if settings["weight_decay"] and decayed:
                    loss = loss + settings["weight_decay"] * sum((p * p).sum() for p in decayed)
                total_loss += loss.detach().item() * share  # the main relation's loss: history reads the same with or without heads
                if heads is not None:
                    loss = loss + aux_weight * aux_loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if average is not None:
                    with torch.no_grad():
                        for mean, p in zip(average, params):
                            mean.mul_(ema).add_(p.detach(), alpha=1 - ema)
                correct += int(((logits.detach() > 0).float() == target).sum())
            total_loss, correct = ctx.all_reduce_sum(total_loss, correct)
            model.eval()
            if average is not None:  # evaluate (and keep) the averaged weights
                _swap(params, average)
            offset, train_accuracy = 0.0, correct / max(len(pairs), 1)
            if settings["calibrate"]:
                offset, train_accuracy = best_offset(_chunked_logits(model, inputs, calibration_pairs), calibration_labels)
            val = binary_metrics(torch.sigmoid(_chunked_logits(model, inputs, split.val_pairs) + offset), split.val_labels)
            row = {"epoch": epoch, "loss": total_loss / max(len(pairs), 1), "train_accuracy": train_accuracy,
                   "val_accuracy": val["accuracy"], "val_auc": val["auc"], "seconds": time.perf_counter() - started}
            row = ctx.broadcast_object(row)  # every rank takes rank 0's early-stopping decision
            history.append(row)
            score = (val["accuracy"], val["auc"] if val["auc"] == val["auc"] else 0.0)
            if score > best:
                model.shift_logits(offset)  # keep the calibrated threshold with the best weights
                best, best_state, best_epoch, stale = score, copy.deepcopy(model.state_dict()), epoch, 0
                model.shift_logits(-offset)
            else:
                stale += 1
            if average is not None:
                _swap(params, average)
            if on_epoch:
                on_epoch(row, {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               **({"heads": heads.state_dict()} if heads is not None else {}),
                               "best_state": best_state, "best_epoch": best_epoch, "history": history,
                               "rng": generator.get_state(), "average": average, "best": best, "stale": stale})
            progress.advance(task)
            if settings["patience"] and stale >= settings["patience"]:
                break
    model.load_state_dict(best_state)
    model.eval()
    return history, best_epoch


def _shared_style_logits(model: MetricModel, heads: RelationHeads, inputs: Tensor, part: Tensor,
                         aux_parts: list[tuple[Tensor, Tensor]], floor: float) -> tuple[Tensor, Tensor]:
    """The main relation's logits for ``part`` and the auxiliary relations' summed mean
    losses on their ``(pairs, labels)`` batches, from one projection of the rows they touch."""
    sizes = [len(part)] + [len(pairs) for pairs, _ in aux_parts]
    style, local = model.pair_styles(inputs, torch.cat([part] + [pairs for pairs, _ in aux_parts]))
    chunks = local.split(sizes)
    logits = model.shift - pair_distances(style, chunks[0])
    aux_loss = logits.new_zeros(())
    for index, (chunk, (_, target)) in enumerate(zip(chunks[1:], aux_parts)):
        if len(chunk):
            aux_loss = aux_loss + link_loss(heads.logits(style, chunk, index), target, floor) / len(chunk)
    return logits, aux_loss


def _fit_over_decays(
    model: LinkModel,
    build: Callable[[], LinkModel],
    graph: Graph,
    split: PairSplit,
    settings: dict[str, Any],
    seed: int,
    quiet: bool,
    say: Callable[[str], None],
    on_epoch: Callable[[dict[str, float], dict[str, Any]], None] | None,
    resume: dict[str, Any] | None,
    ctx: DistContext,
) -> tuple[list[dict[str, float]], int, dict[str, Any]]:
    """:func:`fit_model` once per weight decay in ``settings["weight_decay"]`` (a number or
    a list), each from the same initialisation (``model``, then fresh ``build()`` ones);
    ``model`` ends with the weights of the best validation accuracy (then AUC) over all of
    them. Returns that fit's history and best epoch, and the search: ``{"chosen": decay,
    "done": [one row per decay]}``. Checkpoints carry the finished decays, so ``resume``
    skips them and continues the interrupted one."""
    decays = settings["weight_decay"] if isinstance(settings["weight_decay"], list) else [settings["weight_decay"]]
    state = (resume or {}).get("search") or {"done": [], "best": None}
    # every fit starts from the same build, so the same preprocessing: read and prepare the rows once
    inputs = _training_inputs(model, graph) if model.trainable and len(decays) > len(state["done"]) else None
    done, best = list(state["done"]), state["best"]
    for index, decay in enumerate(decays):
        if index < len(done):
            continue  # finished before the interruption
        if len(decays) > 1:
            say(f"weight decay {decay:g} ({index + 1} of {len(decays)})")
        candidate = model if index == 0 else build()

        def save(row: dict[str, float], checkpoint: dict[str, Any]) -> None:
            on_epoch(row, {**checkpoint, "search": {"done": done, "best": best}})

        history, best_epoch = fit_model(candidate, graph, split, {**settings, "weight_decay": decay}, seed=seed, quiet=quiet,
                                        on_epoch=save if on_epoch is not None else None,
                                        resume=resume if index == len(state["done"]) else None, ctx=ctx, inputs=inputs)
        row = history[best_epoch - 1]
        score = (row["val_accuracy"], row["val_auc"] if row["val_auc"] == row["val_auc"] else 0.0)
        done.append({"weight_decay": decay, "val_accuracy": row["val_accuracy"], "val_auc": row["val_auc"],
                     "best_epoch": best_epoch, "epochs_run": len(history)})
        if best is None or score > tuple(best["score"]):
            best = {"weight_decay": decay, "score": list(score), "state": copy.deepcopy(candidate.state_dict()),
                    "history": history, "best_epoch": best_epoch}
    if len(decays) > 1:
        say(f"chose weight decay {best['weight_decay']:g} (best validation accuracy {best['score'][0]:.4f})")
    model.load_state_dict(best["state"])
    model.eval()
    return best["history"], best["best_epoch"], {"chosen": best["weight_decay"], "done": done}


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


@torch.no_grad()
def _swap(params: list[torch.nn.Parameter], others: list[Tensor]) -> None:
    """Exchange the values of ``params`` and ``others`` in place."""
    for p, other in zip(params, others):
        held = p.detach().clone()
        p.copy_(other)
        other.copy_(held)


@torch.no_grad()
def _chunked_logits(model: LinkModel, inputs: Tensor, pairs: Tensor, chunk: int = 65_536) -> Tensor:
    if isinstance(model, MetricModel) and len(pairs) > chunk and 2 * len(pairs) > len(inputs):
        # every chunk would touch most rows: project all rows once (S = XY, a row chunk at a time), then gather
        return model.shift - pair_distances(model.project_chunked(inputs), pairs)
    parts = [model.logits(inputs, pairs[start : start + chunk]) for start in range(0, len(pairs), chunk)]
    return torch.cat(parts) if parts else torch.empty(0)


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


def plot_history(history: list[dict[str, float]], path: Path, title: str) -> None:
    """Training curve: loss and train/validation accuracy per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, [row["loss"] for row in history], marker="o")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss")
    right.plot(epochs, [row["train_accuracy"] for row in history], marker="o", label="train")
    right.plot(epochs, [row["val_accuracy"] for row in history], marker="o", label="validation")
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy")
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _checkpoint_to_resume(writer: RunWriter, say: Callable[[str], None], resume: bool, **options: Any) -> dict | None:
    """The checkpoint ``--resume`` continues from (None: start at epoch 1), after checking
    that the interrupted run had the same options."""
    if not resume:
        return None
    checkpoint = writer.load_checkpoint()
    if checkpoint is None:
        say(f"nothing to resume in {writer.tmp}; training from the start.")
        return None
    before = writer.read_config()
    changed = [f"{key} {before.get(key)!r} -> {value!r}" for key, value in options.items() if before.get(key) != value]
    if changed:
        raise UsageError(f"the interrupted run in {writer.tmp} was started with other options ({'; '.join(changed)}); "
                         "resume with the same options, or drop --resume to start again.")
    say(f"resuming from the checkpoint of epoch {checkpoint['epoch']} in {writer.tmp}")
    return checkpoint


def train(
    graph: str | Path | Graph | None = None,
    decoder: str = "mahalanobis",
    k: int = 10,
    relation: str = "also_bought",
    epochs: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    quiet: bool = False,
    *,
    batch_size: int | None = None,
    weight_decay: float | Sequence[float] | None = None,
    patience: int | None = None,
    ema: float | None = None,
    noise_floor: float | None = None,
    negatives: int | None = None,
    aux_relations: Sequence[str] | None = None,
    aux_weight: float | None = None,
    preprocessing: str | None = None,
    candidates: int = 100,
    max_queries: int | None = 1000,
    force: bool = False,
    echo: Callable[[str], None] | None = None,
    resume: bool = False,
    distributed: bool | None = None,
    val_pairs: str | Path | None = None,
    relation_names: dict[str, str] | None = None,
) -> Run:
    """Train ``decoder`` on ``relation`` of ``graph`` and write RUN_DIR ``out_dir``.

    ``graph`` is a GRAPH_DIR path or a :class:`Graph` (default: the sample's graph);
    ``out_dir`` defaults to ``graphrec-sample/runs/<decoder>-k<k>``. ``echo`` receives a
    line per epoch (default: print unless ``quiet``). Returns the loaded :class:`Run`
    (its ``metrics`` as in ``metrics.json``). ``resume`` continues an interrupted run of
    the same options from its last per-epoch checkpoint (``.<out>.partial/checkpoint.pt``)
    and ends with the same metrics as an uninterrupted run. ``aux_relations`` (e.g.
    ``["also_viewed", "bought_together"]``) also trains on those relations' edges in the
    same style space, each loss weighted by ``aux_weight`` (mahalanobis only). ``val_pairs``
    (a labelled pair file, ``relation u v label``) replaces the 80/10/10 split: training
    uses every edge of ``relation`` and early-stops on the file's pairs of it
    (:func:`graphrec.pairs.split_from_file`; score a test file with ``evaluate --pairs``).
    """
    cls = model_class(decoder)
    if candidates < 1:
        raise UsageError(f"--candidates must be at least 1 (got {candidates}).")
    settings = _resolve(decoder, TrainOptions(epochs, lr, batch_size, weight_decay, patience, ema, noise_floor, negatives,
                                              list(aux_relations) if aux_relations is not None else None, aux_weight))
    graph = load_graph(graph if graph is not None else WORK_GRAPH) if not isinstance(graph, Graph) else graph
    if cls.needs_features:
        features = graph.require_features(f"the {decoder} decoder")
        if decoder == "mahalanobis" and k > features.shape[1]:
            raise UsageError(f"K = {k} is larger than the feature dimension {features.shape[1]} of {graph.path}; choose --k {features.shape[1]} or less.")
    if k < 1:
        raise UsageError(f"--k must be at least 1 (got {k}).")
    for name in [relation, *settings["aux_relations"]]:
        graph.edge_index(name)  # clear error for an unknown relation
    if relation in settings["aux_relations"]:
        raise UsageError(f"--aux-relations names {relation!r}, the relation being learnt; choose other relations.")
    out = Path(out_dir) if out_dir is not None else default_run_dir(decoder, k)
    say = echo if echo is not None else (lambda line: None) if quiet else print

    # torchrun (``distributed`` None detects it, True requires it): the ranks share every
    # mini-batch (see fit_model); rank 0 alone prints, evaluates and writes the RUN_DIR
    # (same layout), and every rank returns the same Run.
    ctx = init_distributed(distributed)
    if not ctx.is_main:
        say = lambda line: None  # noqa: E731
    if val_pairs is not None:
        split, val_counts = split_from_file(graph, relation, val_pairs, seed, relation_names)
    else:
        split, val_counts = split_pairs(graph, relation, seed), None
    if batch_size is None and settings["batch_size"]:
        settings["batch_size"] = default_batch_size(settings["batch_size"], len(split.train_pairs), settings["negatives"])
    writer = ctx.on_main(RunWriter, out, force=force, resume=resume, share=False)  # None on other ranks
    checkpoint = ctx.on_main(_checkpoint_to_resume, writer, say, resume, decoder=decoder, k=k, relation=relation, seed=seed,
                                       graph_checksum=graph_checksum(graph), **settings,
                                       **({"preprocessing": preprocessing} if preprocessing is not None else {}))
    try:
        build_options: dict[str, Any] = {"k": k, "seed": seed}
        if preprocessing is not None:
            build_options["preprocessing"] = preprocessing
        model = cls.build(graph, split.train_pairs, split.train_labels, **build_options)
        config = {
            "decoder": decoder, "k": k, "relation": relation, "seed": seed, **settings,
            "preprocessing": model.hparams().get("preprocessing"), "candidates": candidates, "max_queries": max_queries,
            "graph": str(graph.path.resolve()) if graph.path.exists() else str(graph.path),
            "graph_checksum": graph_checksum(graph), "split": split.sizes(), "model": model.hparams(),
            "graphrec_version": __version__, "world_size": ctx.world_size,
            **({"val_pairs": str(Path(val_pairs).resolve()), "val_pairs_counts": val_counts,
                "relation_names": relation_names} if val_pairs is not None else {}),
        }
        if writer is not None:
            writer.write_config(config)
        started = time.perf_counter()

        def on_epoch(row: dict[str, float], checkpoint: dict[str, Any]) -> None:
            writer.save_checkpoint(checkpoint)
            say(f"epoch {int(row['epoch']):3d}  loss {row['loss']:.4f}  train acc {row['train_accuracy']:.4f}  "
                f"val acc {row['val_accuracy']:.4f}  val auc {row['val_auc']:.4f}  ({row['seconds']:.1f}s)")

        def build() -> LinkModel:
            return cls.build(graph, split.train_pairs, split.train_labels, **build_options)

        history, best_epoch, search = _fit_over_decays(
            model, build, graph, split, settings, seed=seed, quiet=quiet or not ctx.is_main, say=say,
            on_epoch=on_epoch if writer is not None else None, resume=checkpoint if cls.trainable else None, ctx=ctx)
        train_seconds = time.perf_counter() - started

        def finish() -> tuple[Path, dict[str, Any]]:  # rank 0 only under torchrun
            evaluation = evaluate_model(model, graph, split, candidates=candidates, max_queries=max_queries, seed=seed)
            metrics = {"decoder": decoder, "k": k, "relation": relation, "train_seconds": train_seconds,
                       "best_epoch": best_epoch, "epochs_run": len(history), "weight_decay": search["chosen"],
                       **({"weight_decay_search": search["done"]} if len(search["done"]) > 1 else {}), **evaluation}
            writer.write_model(model)
            writer.write_history(history)
            writer.write_metrics(metrics)
            plot_history(history, writer.file("curve.png"), f"{decoder} K={k} on {relation}")
            return writer.commit(), metrics

        path, metrics = ctx.on_main(finish)
    except BaseException:
        # keep the partial directory (with its checkpoint) on interruption; drop it on errors
        if writer is not None and not isinstance(sys.exc_info()[1], KeyboardInterrupt):
            writer.discard()
        raise
    return Run(path=path, config=config, model=model, graph=graph, metrics=metrics)
