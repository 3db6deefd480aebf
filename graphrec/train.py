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

This module turns options into a :class:`~graphrec.training.config.TrainConfig` and a
built model, and writes the RUN_DIR; the loop itself is :mod:`graphrec.training`.
Per-model defaults live on the model classes (``get_model(name).defaults``).
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from graphrec import __version__
from graphrec.distributed import DistContext, init_distributed
from graphrec.errors import DataError, GraphrecWarning, UsageError
from graphrec.evaluate import evaluate_model, require_finite_metrics
from graphrec.graph import Graph, load_graph
from graphrec.graph.outliers import scaling_warning
from graphrec.inputs import node_inputs
from graphrec.metrics import pair_metrics, precision_recall_points, roc_points
from graphrec.models import LinearEncoder, LinkModel, get_model
from graphrec.models.inputs import NodeInputs
from graphrec.pairs import split_from_file
from graphrec.runs import Run, RunWriter, graph_checksum, graph_location
from graphrec.sample import WORK_GRAPH, WORK_RUNS
from graphrec.sampling import PairSplit, auxiliary_relation, message_edges, split_pairs
from graphrec.training import TrainConfig, best_offset, default_batch_size, fit_model, fit_over_decays, link_loss

__all__ = ["ScalingWarning", "TrainConfig", "train", "fit_model", "best_offset", "default_batch_size", "default_run_dir", "link_loss"]


def default_run_dir(decoder: str, k: int, encoder: str | None = None) -> Path:
    """``graphrec-sample/runs/<decoder>-k<k>`` (contract 1); ``<decoder>-<encoder>-k<k>`` for
    an encoder other than the paper's linear one."""
    return WORK_RUNS / (f"{decoder}-k{k}" if encoder in (None, "linear") else f"{decoder}-{encoder}-k{k}")


@dataclass
class _Request:
    """What one ``train()`` call asks for, besides the graph, model and optimisation."""

    decoder: str
    k: int
    relation: str
    seed: int
    out: Path
    candidates: int
    max_queries: int | None
    force: bool
    resume: bool
    quiet: bool
    batch_size_given: bool
    val_pairs: Path | None = None  # a labelled pair file replacing the 80/10/10 split
    relation_names: dict[str, str] | None = None


def _model_options(model: type[LinkModel], k: int, seed: int, given: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``model.build``: K and the seed where it takes them, and
    the options in ``given`` that are not None (one it does not take is a UsageError)."""
    options = {key: value for key, value in given.items() if value is not None}
    unknown = model.unknown_options(options)
    if unknown:
        raise UsageError(f"the {model.name} decoder takes no --{unknown[0].replace('_', '-')} option.")
    if model.has_k:
        options["k"] = k
    if not model.unknown_options({"seed": seed}):
        options["seed"] = seed
    return options


def _check_graph(graph: Graph, model: type[LinkModel], options: dict[str, Any], k: int, relation: str, config: TrainConfig) -> None:
    """Clear errors before any work: missing features, K above the feature dimension, unknown relations."""
    if model.needs_features_for(options):
        features = graph.require_features(f"the {model.name} decoder")
        _require_finite_rows(graph, features)
        if model.has_k and model.is_metric and k > features.shape[1]:
            dim = features.shape[1]
            raise UsageError(f"K = {k} is larger than the feature dimension {dim} of {graph.path}; choose --k {dim} or less.")
    if k < 1:
        raise UsageError(f"--k must be at least 1 (got {k}).")
    if config.message_relations and not model.needs_edges_for(options):
        raise UsageError("--message-relations needs a message-passing encoder (--encoder lightgcn or sage).")
    for name in [relation, *config.aux_relations, *config.message_relations]:
        graph.edge_index(name)  # clear error for an unknown relation
    if relation in config.aux_relations:
        raise UsageError(f"--aux-relations names {relation!r}, the relation being learnt; choose other relations.")


def _require_finite_rows(graph: Graph, features: np.ndarray, chunk: int = 65536) -> None:
    """A :class:`DataError` naming the first feature row holding NaN or infinity (one
    streaming pass over the memory map, ``chunk`` rows at a time). build-graph drops such
    rows, so this catches a ``features.npy`` edited or damaged afterwards."""
    for start in range(0, features.shape[0], chunk):
        bad = np.flatnonzero(~np.isfinite(features[start : start + chunk]).all(axis=1))
        if len(bad):
            row = start + int(bad[0])
            total = sum(int((~np.isfinite(features[i : i + chunk]).all(axis=1)).sum()) for i in range(start, features.shape[0], chunk))
            raise DataError(f"{graph.path / 'features.npy'} row {row} (ASIN {graph.asins[row]}) holds NaN or infinite "
                            f"values ({total} such rows); rebuild the graph with graphrec build-graph --force, which drops them.")


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



def _run_config(request: _Request, graph: Graph, config: TrainConfig, model: LinkModel, split: PairSplit, ctx: DistContext) -> dict[str, Any]:
    """``config.json``: every option, the graph and its checksum, the split sizes, the model."""
    hparams = model.hparams()
    return {
        "decoder": request.decoder, "k": request.k, "relation": request.relation, "seed": request.seed, **config.to_dict(),
        "preprocessing": hparams.get("preprocessing"), **({"encoder": hparams["encoder"]} if "encoder" in hparams else {}),
        "candidates": request.candidates, "max_queries": request.max_queries,
        **(graph_location(graph.path, request.out) if graph.path.exists() else {"graph": str(graph.path)}),
        "graph_checksum": graph_checksum(graph), "split": split.sizes(), "model": hparams,
        "graphrec_version": __version__, "world_size": ctx.world_size,
    }


def _split(request: _Request, graph: Graph) -> tuple[PairSplit, dict[str, Any]]:
    """The paper's split, or with ``val_pairs`` every edge for training and the file's pairs
    for validation; and what ``config.json`` records about the latter."""
    if request.val_pairs is None:
        return split_pairs(graph, request.relation, request.seed), {}
    split, counts = split_from_file(graph, request.relation, request.val_pairs, request.seed, request.relation_names)
    return split, {"val_pairs": str(request.val_pairs.resolve()), "val_pairs_counts": counts,
                   "relation_names": request.relation_names}


def _echo_epoch(say: Callable[[str], None], row: dict[str, float]) -> None:
    say(f"epoch {int(row['epoch']):3d}  loss {row['loss']:.4f}  train acc {row['train_accuracy']:.4f}  "
        f"val acc {row['val_accuracy']:.4f}  val auc {row['val_auc']:.4f}  elapsed {row['seconds']:.1f}s")


def _finish(writer: RunWriter, request: _Request, model: LinkModel, graph: Graph, inputs: NodeInputs, split: PairSplit,
            fitted: tuple[list[dict[str, float]], int, dict[str, Any]], train_seconds: float) -> tuple[Path, dict[str, Any]]:
    """Evaluate the fitted model and write the RUN_DIR (rank 0 only under torchrun)."""
    history, best_epoch, search = fitted
    evaluation = evaluate_model(model, graph, split, candidates=request.candidates, max_queries=request.max_queries,
                                seed=request.seed, inputs=inputs)
    require_finite_metrics(evaluation, f"the fitted {request.decoder} model", "train again with a smaller --lr. No RUN_DIR was written")
    encoder = model.hparams().get("encoder")
    metrics = {"decoder": request.decoder, **({"encoder": encoder} if encoder else {}), "k": request.k, "relation": request.relation,
               "train_seconds": train_seconds,
               "best_epoch": best_epoch, "epochs_run": len(history), "weight_decay": search["chosen"],
               **({"weight_decay_search": search["done"]} if len(search["done"]) > 1 else {}),
               **({"offsets": search["offsets"]} if "offsets" in search else {}), **evaluation}
    writer.write_model(model)
    writer.write_history(history)
    writer.write_metrics(metrics)
    write_plots(writer, model, graph, split, inputs, history, best_epoch, f"{request.decoder} K={request.k} on {request.relation}")
    return writer.commit(), metrics


def write_plots(writer: RunWriter, model: LinkModel, graph: Graph, split: PairSplit, inputs: NodeInputs,
                history: list[dict[str, float]], best_epoch: int, title: str) -> None:
    """The RUN_DIR's pictures (:mod:`graphrec.plots`): curve.png, curves.png (ROC and
    precision-recall of the test pairs) and, for a style space, style_space.png (at most
    :data:`~graphrec.plots.MAX_POINTS` products, a seeded sample)."""
    import torch

    from graphrec.plots import MAX_POINTS, category_labels, plot_curves, plot_history, plot_projection, project_2d

    plot_history(history, writer.file("curve.png"), title, best_epoch=best_epoch)
    if len(split.test_labels):
        probs = model.predict_proba(inputs, split.test_pairs)
        metrics = pair_metrics(probs, split.test_labels)
        plot_curves(roc_points(probs, split.test_labels), precision_recall_points(probs, split.test_labels), writer.file("curves.png"),
                    f"{title}: {len(probs):,} test pairs", auc=metrics["roc_auc"], pr_auc=metrics["pr_auc"])
    if model.is_metric and graph.num_nodes >= 3:
        generator = np.random.default_rng(0)
        nodes = np.sort(generator.choice(graph.num_nodes, MAX_POINTS, replace=False)) if graph.num_nodes > MAX_POINTS else np.arange(graph.num_nodes)
        styles = model.styles(inputs, torch.from_numpy(nodes)).double().numpy()
        paths = graph.products["category"].iloc[nodes] if "category" in graph.products else [None] * len(nodes)
        labels, depth = category_labels(list(paths))
        plot_projection(project_2d(styles), labels, writer.file("style_space.png"),
                        f"{title}\nstyle space of {len(nodes):,} products, coloured by category level {depth + 1}")


class ScalingWarning(GraphrecWarning):
    """The feature scaling training chose is dominated by a few extreme rows."""


def _warn_if_scaling_dominated(model: LinkModel, graph: Graph) -> None:
    """A :class:`ScalingWarning` with :func:`graphrec.graph.outliers.scaling_warning`'s sentence
    when the largest training value (the scale of the linear encoder's "max"/"sqrt"
    preprocessing) is far beyond the typical row's."""
    for module in model.modules():
        if isinstance(module, LinearEncoder) and module.preprocessing in ("max", "sqrt") and graph.features is not None:
            message = scaling_warning(graph.features, 1.0 / float(module.scale[0]))
            if message is not None:
                warnings.warn(message, ScalingWarning, stacklevel=2)
            return


def _fit_and_write(request: _Request, graph: Graph, cls: type[LinkModel], options: dict[str, Any], config: TrainConfig,
                   ctx: DistContext, say: Callable[[str], None]) -> Run:
    """Split, build, fit (resuming when asked), evaluate and write the RUN_DIR."""
    inputs = node_inputs(graph)
    split, split_config = _split(request, graph)
    if not request.batch_size_given and config.batch_size:
        config.batch_size = default_batch_size(config.batch_size, len(split.train_pairs), config.negatives)
    writer = ctx.on_main(RunWriter, request.out, force=request.force, resume=request.resume, share=False)  # None on other ranks
    checkpoint = ctx.on_main(_checkpoint_to_resume, writer, say, request.resume, decoder=request.decoder, k=request.k,
                             relation=request.relation, seed=request.seed, graph_checksum=graph_checksum(graph),
                             **config.to_dict(), **{key: value for key, value in options.items() if key not in ("k", "seed")})
    if cls.needs_edges_for(options):  # built here, after the split: only training positives and other relations' edges
        options = {**options, "edge_index": message_edges(graph, split, config.message_relations)}
    try:
        model = cls.build(inputs, split.train_pairs, split.train_labels, **options)
        _warn_if_scaling_dominated(model, graph)
        run_config = {**_run_config(request, graph, config, model, split, ctx), **split_config}
        if writer is not None:
            writer.write_config(run_config)
        auxiliary = [auxiliary_relation(graph, split, name) for name in config.aux_relations]
        started = time.perf_counter()

        def on_epoch(row: dict[str, float], state: dict[str, Any]) -> None:
            writer.save_checkpoint(state)
            _echo_epoch(say, row)

        fitted = fit_over_decays(
            model, lambda: cls.build(inputs, split.train_pairs, split.train_labels, **options), inputs, split, config,
            seed=request.seed, quiet=request.quiet or not ctx.is_main, say=say, on_epoch=on_epoch if writer is not None else None,
            resume=checkpoint if cls.trainable else None, ctx=ctx, auxiliary=auxiliary)
        train_seconds = time.perf_counter() - started
        path, metrics = ctx.on_main(_finish, writer, request, model, graph, inputs, split, fitted, train_seconds)
    except BaseException:
        # keep the partial directory (with its checkpoint) on interruption; drop it on errors
        if writer is not None and not isinstance(sys.exc_info()[1], KeyboardInterrupt):
            writer.discard()
        raise
    return Run(path=path, config=run_config, model=model, graph=graph, metrics=metrics)


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
    candidates: int = 100,
    max_queries: int | None = 1000,
    force: bool = False,
    echo: Callable[[str], None] | None = None,
    resume: bool = False,
    distributed: bool | None = None,
    val_pairs: str | Path | None = None,
    relation_names: dict[str, str] | None = None,
    **options: Any,
) -> Run:
    """Train ``decoder`` on ``relation`` of ``graph`` and write RUN_DIR ``out_dir``.

    ``graph`` is a GRAPH_DIR path or a :class:`Graph` (default: the sample's graph);
    ``out_dir`` defaults to ``graphrec-sample/runs/<decoder>-k<k>`` (``<decoder>-<encoder>-k<k>``
    for an encoder other than linear). ``echo`` receives a line per epoch (default: print
    unless ``quiet``). Returns the loaded :class:`Run` (its ``metrics`` as in ``metrics.json``).
    ``resume`` continues an interrupted run of the same options from its last per-epoch
    checkpoint (``.<out>.partial/checkpoint.pt``) and ends with the same metrics as an
    uninterrupted run.

    ``options`` are the training settings of :class:`~graphrec.training.config.TrainConfig`
    (``batch_size``, ``weight_decay`` (one value or several to search), ``patience``, ``ema``,
    ``noise_floor``, ``negatives``, ``aux_relations`` with ``aux_weight``, ``message_relations``,
    ``decay_search``: several weight decays trained together in one pass per mini-batch,
    "joint", the default where the model allows it, or one fit after another, "sequential")
    and the model's own options (mahalanobis: ``encoder`` (linear, embedding, hybrid, lightgcn,
    sage), ``preprocessing``, ``shrink``, ``layers``, ``base``). None takes the default
    (``get_model(decoder).defaults``, adjusted by the encoder); an option the model does not
    take is a :class:`UsageError`.
    ``val_pairs`` (a labelled pair file, ``relation u v label``) replaces the 80/10/10 split:
    training uses every edge of ``relation`` and early-stops on the file's pairs of it
    (:func:`graphrec.pairs.split_from_file`; score a test file with ``evaluate --pairs``).

    Under torchrun (``distributed`` None detects it, True requires it) the ranks share every
    mini-batch (see :mod:`graphrec.training.loop`); rank 0 alone prints, evaluates and
    writes the RUN_DIR (same layout), and every rank returns the same Run.
    """
    cls = get_model(decoder)
    decoder = cls.name  # as registered: "FM" is fm
    if candidates < 1:
        raise UsageError(f"--candidates must be at least 1 (got {candidates}).")
    settings = {key: options.pop(key) for key in list(options) if key in TrainConfig.names()}
    model_options = _model_options(cls, k, seed, options)
    graph = load_graph(graph if graph is not None else WORK_GRAPH) if not isinstance(graph, Graph) else graph
    model_options = cls.with_defaults(model_options, graph.features is not None)
    for key in ("aux_relations", "message_relations"):
        settings[key] = list(settings[key]) if settings.get(key) is not None else None
    config = TrainConfig.resolve(cls, cls.defaults_for(model_options), epochs=epochs, lr=lr, **settings)
    _check_graph(graph, cls, model_options, k, relation, config)
    say = echo if echo is not None else (lambda line: None) if quiet else print
    ctx = init_distributed(distributed)
    if not ctx.is_main:
        say = lambda line: None  # noqa: E731
    out = Path(out_dir) if out_dir is not None else default_run_dir(decoder, k, model_options.get("encoder"))
    request = _Request(decoder, k, relation, seed, out, candidates, max_queries, force, resume, quiet, settings.get("batch_size") is not None,
                       Path(val_pairs) if val_pairs is not None else None, relation_names)
    return _fit_and_write(request, graph, cls, model_options, config, ctx, say)
