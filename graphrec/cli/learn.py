"""Commands that learn and measure: train, evaluate, sweep (graph -> models -> runs)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from graphrec.cli.core import app, check_limits, console, err_console, one_line_errors
from graphrec.cli.output import encoder_label, print_metrics, print_pair_metrics


def _defaults_help(field: str, fmt=str) -> str:
    """"30 mahalanobis, 20 wnn, 40 fm": a default of every gradient-trained model, from the registry."""
    from graphrec.models import get_model, list_models

    models = [get_model(name) for name in list_models() if get_model(name).trainable]
    return ", ".join(f"{fmt(getattr(cls.defaults, field))} {cls.name}" for cls in models)


def _decays(value) -> str:
    return ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else f"{value:g}"


def _decoders_help() -> str:
    from graphrec.models import models_help

    return models_help()


def _encoders_help() -> str:
    from graphrec.models import get_encoder, list_encoders

    return ", ".join(f"{name} ({get_encoder(name).help})" for name in list_encoders())


def _names(text: Optional[str]) -> list[str] | None:
    """``"a, b"`` -> ["a", "b"]; None stays None."""
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def _numbers(text: Optional[str], option: str) -> float | list[float] | None:
    """``"1e-3"`` -> 0.001; ``"1e-3,3e-2"`` -> [0.001, 0.03]; a clear error otherwise."""
    from graphrec.errors import UsageError

    if text is None:
        return None
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{option} takes numbers separated by commas (got {text!r}).") from None
    if not values:
        raise UsageError(f"{option} takes numbers separated by commas (got {text!r}).")
    check_limits({option.lstrip("-").replace("-", "_"): values}, {option.lstrip("-").replace("-", "_"): option})
    return values if len(values) > 1 else values[0]


@app.command("train")
@one_line_errors
def train_command(
    graph: Optional[Path] = typer.Option(None, "--graph", "-g", help="GRAPH_DIR written by build-graph (default: graphrec-sample/graph).", show_default=False),
    decoder: str = typer.Option("mahalanobis", "--decoder", "-d", help="Model to train: " + _decoders_help()),
    k: int = typer.Option(10, "--k", help="Style-space dimension K (mahalanobis) or factor size (fm); must not exceed the feature dimension with a linear or hybrid encoder."),
    encoder: Optional[str] = typer.Option(None, "--encoder", "-e", help="What makes the mahalanobis style vectors: " + _encoders_help() + ". Default: linear when the graph has features, lightgcn without.", show_default=False),
    message_relations: Optional[str] = typer.Option(None, "--message-relations", help="Comma-separated other relations (e.g. also_viewed) whose edges a message-passing encoder also propagates over; pairs that are validation or test pairs of --relation are left out (default: the training edges of --relation only).", show_default=False),
    layers: Optional[int] = typer.Option(None, "--layers", help="Message-passing layers of --encoder lightgcn (default 3) or sage (default 2).", show_default=False),
    shrink: Optional[float] = typer.Option(None, "--shrink", help="--encoder hybrid (or lightgcn/sage over it): L2 penalty on each product's own offset from its visual style xY (default 0: only the edges and early stopping hold it).", show_default=False),
    relation: str = typer.Option("also_bought", "--relation", help="Which co-purchase relation to learn (also_bought, also_viewed, bought_together, buy_after_viewing)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help=f"Maximum epochs (default per decoder: {_defaults_help('epochs')}; closed-form baselines ignore it).", show_default=False),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate (default per decoder).", show_default=False),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Labelled pairs per gradient step (default 4096 x (1 + negatives) / 2, smaller on small graphs so that an epoch has at least 8 steps).", show_default=False),
    weight_decay: Optional[str] = typer.Option(None, "--weight-decay", help="L2 penalty on the projection / embeddings, added to the loss. Several comma-separated values (e.g. 1e-3,3e-2,1) train once per value and keep the best on validation (default per decoder: " + _defaults_help("weight_decay", _decays) + ").", show_default=False),
    decay_search: Optional[str] = typer.Option(None, "--decay-search", help="How several --weight-decay values are trained: joint (default: together, one pass over each mini-batch; linear encoder, one process, no --aux-relations) or sequential (one full fit per value). Both keep the best on validation.", show_default=False),
    preprocessing: Optional[str] = typer.Option(None, "--preprocessing", help="mahalanobis feature preprocessing: sqrt (divide by the largest training value, then signed square root), max (divide only) or std (per-dimension standard deviation); default sqrt.", show_default=False),
    noise_floor: Optional[float] = typer.Option(None, "--noise-floor", help="Training likelihood P(edge) = floor + (1 - floor) sigmoid(c - d): the share of edges assumed unrelated to style, so that they cannot drag the projection (default 0: the plain logistic loss; 0.1 helped on planted features and hurt on the bundled sample, see docs/train.md).", show_default=False),
    negatives: Optional[int] = typer.Option(None, "--negatives", help="Random non-edges drawn per training edge every epoch (default 1, the paper's balance; the threshold is still chosen on balanced training pairs). 8 raised K = 10 accuracy on planted 4k features and lowered it on the bundled sample, see docs/train.md.", show_default=False),
    aux_relations: Optional[str] = typer.Option(None, "--aux-relations", help="Comma-separated other relations of the graph (e.g. also_viewed,bought_together) whose edges also train the style space, each through its own K x K map; their pairs that are validation or test pairs of --relation are left out (mahalanobis only; default none).", show_default=False),
    aux_weight: Optional[float] = typer.Option(None, "--aux-weight", help="Weight of each auxiliary relation's loss against the main relation's (default 1).", show_default=False),
    patience: Optional[int] = typer.Option(None, "--patience", help="Stop after this many epochs without a better validation accuracy (0 = never).", show_default=False),
    seed: int = typer.Option(0, "--seed", help="Fixes the negatives, the 80/10/10 split (hence the test pairs) and the initialisation."),
    candidates: int = typer.Option(100, "--candidates", help="Hard negatives per test query for hit@10/MRR/NDCG@10: its nearest neighbours in raw feature space that are not partners."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="RUN_DIR to write (default: graphrec-sample/runs/<decoder>-k<k>).", show_default=False),
    val_pairs: Optional[Path] = typer.Option(None, "--val-pairs", help="Labelled pairs ('relation u v label', e.g. GATNE's valid.txt): train on every edge of --relation and early-stop on this file's pairs of it, instead of the 80/10/10 split; then score a test file with evaluate --pairs.", show_default=False),
    relation_names: Optional[str] = typer.Option(None, "--relation-names", help="Rename the relation labels of --val-pairs, e.g. 1=also_bought,2=also_viewed (the default for GATNE's labels 1 and 2).", show_default=False),
    force: bool = typer.Option(False, "--force", help="Replace an existing RUN_DIR."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-epoch lines, only the final table."),
    resume: bool = typer.Option(False, "--resume", help="Continue a killed run of this same command from its last per-epoch checkpoint (kept in the hidden .<RUN_DIR>.partial folder); ends with the same metrics as an uninterrupted run. Starts from epoch 1 when there is nothing to resume."),
    distributed: Optional[bool] = typer.Option(
        None, "--distributed/--no-distributed", help="DistributedDataParallel over torchrun's processes: each "
        "computes its share of every mini-batch, rank 0 evaluates and writes RUN_DIR. Default: on when started by "
        "torchrun with several processes; --distributed fails outside torchrun."),
) -> None:
    """Train a decoder on one relation under the paper's protocol and write a RUN_DIR.

    Positives are the relation's edges, negatives as many random non-edges; pairs are
    split 80/10/10 by --seed. The epoch with the best validation accuracy is kept. The
    RUN_DIR holds config.json, model.pt, history.csv, metrics.json and curve.png.
    """
    from graphrec.distributed import is_main_process
    from graphrec.io.edges import parse_relation_names
    from graphrec.train import train

    run = train(
        graph, decoder=decoder, k=k, relation=relation, epochs=epochs, lr=lr, seed=seed, out_dir=out, quiet=quiet,
        encoder=encoder, message_relations=_names(message_relations), layers=layers, shrink=shrink,
        batch_size=batch_size, weight_decay=_numbers(weight_decay, "--weight-decay"), preprocessing=preprocessing,
        noise_floor=noise_floor, negatives=negatives, patience=patience,
        aux_relations=_names(aux_relations),
        aux_weight=aux_weight, decay_search=decay_search, candidates=candidates, force=force,
        echo=None if quiet else (lambda line: console.print(line, highlight=False)), resume=resume,
        distributed=distributed, val_pairs=val_pairs, relation_names=parse_relation_names(relation_names) or None,
    )
    if distributed is not False and not is_main_process():
        return  # rank 0 reports for every process
    print_metrics(f"{decoder}{encoder_label(run.config)} K={k} on {relation}", run.metrics)
    console.print(f"run written to {run.path}", highlight=False)


@app.command("evaluate")
@one_line_errors
def evaluate_command(
    run_dir: Optional[Path] = typer.Argument(None, help="RUN_DIR written by graphrec train (default: graphrec-sample/runs/mahalanobis-k10).", show_default=False),
    candidates: Optional[int] = typer.Option(None, "--candidates", help="Hard negatives per test query (default: the run's own setting).", show_default=False),
    pictures: Optional[Path] = typer.Option(None, "--pictures", help="Also write a PNG of the most confident true positives and the hardest negatives of the test split."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    run_option: Optional[Path] = typer.Option(None, "--run", "-r", help="RUN_DIR, instead of the argument.", show_default=False),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Score the labelled pairs of this file ('relation u v label', e.g. GATNE's test.txt) of the run's relation: accuracy, ROC-AUC, PR-AUC, F1 (GATNE's rank cut) and AP, on all pairs and without the run's training edges. Pairs with products the run never saw are scored at the prior and counted.", show_default=False),
    relation_names: Optional[str] = typer.Option(None, "--relation-names", help="Rename the relation labels of --pairs, e.g. 1=also_bought,2=also_viewed.", show_default=False),
    graph: Optional[Path] = typer.Option(None, "--graph", "-g", help="GRAPH_DIR to use instead of the one the run recorded (moved or copied elsewhere); it must hold the same content.", show_default=False),
) -> None:
    """Reload a run, rebuild its test split from its seed and recompute every metric
    (or, with --pairs, score a labelled pair file)."""
    import json

    from graphrec.evaluate import evaluate_run, write_pictures
    from graphrec.sample import WORK_RUNS

    run_dir = run_dir or run_option or WORK_RUNS / "mahalanobis-k10"
    if pairs is not None:
        from graphrec.io.edges import parse_relation_names
        from graphrec.pairs import evaluate_run_pairs
        from graphrec.runs import load_run

        _, result = evaluate_run_pairs(load_run(run_dir, graph), pairs, parse_relation_names(relation_names) or None)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        else:
            print_pair_metrics(result)
        return
    run, metrics = evaluate_run(run_dir, graph, candidates=candidates)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
    else:
        print_metrics(f"{run.config['decoder']}{encoder_label(run.config)} K={run.config.get('k')} on {run.config.get('relation')} ({run.path})", metrics)
    if pictures is not None:
        err_console.print(f"picture written to {write_pictures(run, pictures)}", highlight=False)


@app.command("sweep", context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
@one_line_errors
def sweep_command(
    ctx: typer.Context,
    graph: Optional[Path] = typer.Option(None, "--graph", "-g", help="GRAPH_DIR written by build-graph (default: graphrec-sample/graph).", show_default=False),
    k: List[str] = typer.Option(["1", "10", "100"], "--k", help="Values of K, space- or comma-separated: --k 1 10 100."),
    decoder: List[str] = typer.Option(["mahalanobis", "fm"], "--decoder", "-d", help="Decoders, space- or comma-separated: --decoder mahalanobis fm wnn euclidean category-tree."),
    relation: str = typer.Option("also_bought", "--relation", help="Which co-purchase relation to learn."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Maximum epochs per run (default per decoder).", show_default=False),
    encoder: Optional[str] = typer.Option(None, "--encoder", "-e", help="Encoder of the mahalanobis runs (default: linear with features, lightgcn without).", show_default=False),
    seed: int = typer.Option(0, "--seed", help="Seed of the split and initialisation (the same test pairs for every run)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for sweep.csv, sweep.md, accuracy_vs_k.png and runs/ (default: graphrec-sample/sweep).", show_default=False),
    force: bool = typer.Option(False, "--force", help="Replace runs left by an earlier sweep in the same folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-epoch lines."),
) -> None:
    """Train every decoder at every K and print the table (decoder x K -> accuracy, AUC, hit@10, time).

    Also saves it as CSV and Markdown and plots test accuracy against K.
    """
    import pandas as pd

    from graphrec.errors import UsageError
    from graphrec.models import list_models
    from graphrec.sweep import sweep

    ks, decoders = [], []
    for value in [*k, *decoder, *ctx.args]:  # "--k 1 10 100": click leaves 10 and 100 as extra arguments
        for part in value.replace(",", " ").split():
            if part.lstrip("-").isdigit():
                check_limits({"k": int(part)})
                ks.append(int(part))
            elif part in list_models():
                decoders.append(part)
            else:
                raise UsageError(f"{part!r} is neither a K nor a decoder ({', '.join(list_models())}).")
    table = sweep(
        graph, decoders=list(dict.fromkeys(decoders)), ks=list(dict.fromkeys(ks)), relation=relation, seed=seed,
        out_dir=out, quiet=quiet, force=force, epochs=epochs, encoder=encoder,
        echo=None if quiet else (lambda line: console.print(line, highlight=False)),
    )
    from rich.table import Table

    shown = Table(title=f"sweep on {relation}", title_justify="left")
    for column in table.columns:
        shown.add_column(column, justify="left" if column == "decoder" else "right")
    for row in table.astype(object).itertuples(index=False):
        shown.add_row(*[
            "-" if pd.isna(v) else f"{v:.1f}" if column == "train_seconds" else f"{v:.4f}" if isinstance(v, float) else str(v)
            for column, v in zip(table.columns, row)
        ])
    console.print(shown)


