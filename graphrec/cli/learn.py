"""Commands that learn and measure: train, evaluate, sweep (graph -> models -> runs)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from graphrec.cli.core import app, check_limits, console, err_console, one_line_errors, threads_option
from graphrec.cli.fitting import LIST_NAMES, LIST_NUMBERS, OPTIONS, train_settings
from graphrec.cli.options import list_options, one_of, split_list
from graphrec.cli.output import encoder_label, print_metrics, print_pair_metrics, print_runs

_GRAPH_ARGUMENT_HELP = "GRAPH_DIR written by build-graph, or give it with --graph (default: graphrec-sample/graph)."


def _decoders_help() -> str:
    from graphrec.models import models_help

    return models_help()


def _seed_numbers(text: str) -> list[int]:
    """``"0 1 2"`` or ``"0,1,2"`` -> [0, 1, 2]; a one-line error for anything but integers >= 0."""
    from graphrec.errors import UsageError

    parts = split_list(text)
    if not parts or not all(part.isdigit() for part in parts):
        raise UsageError(f"--seeds takes integers >= 0 separated by spaces or commas (got {text!r}).")
    return [int(part) for part in parts]


@app.command("train", cls=list_options(numbers=LIST_NUMBERS, names=LIST_NAMES))
@one_line_errors
def train_command(
    graph_dir: Optional[Path] = typer.Argument(None, metavar="GRAPH_DIR", help=_GRAPH_ARGUMENT_HELP, show_default=False),
    graph: Optional[Path] = typer.Option(None, "--graph", "-g", help="GRAPH_DIR, instead of the argument.", show_default=False),
    decoder: str = typer.Option("mahalanobis", "--decoder", "-d", help="Model to train: " + _decoders_help()),
    k: int = typer.Option(10, "--k", help="Style-space dimension K (mahalanobis) or factor size (fm); must not exceed the feature dimension with a linear or hybrid encoder."),
    encoder: Optional[str] = OPTIONS["encoder"](),
    message_relations: Optional[str] = OPTIONS["message_relations"](),
    layers: Optional[int] = OPTIONS["layers"](),
    shrink: Optional[float] = OPTIONS["shrink"](),
    relation: str = typer.Option("also_bought", "--relation", help="Which co-purchase relation to learn (also_bought, also_viewed, bought_together, buy_after_viewing)."),
    epochs: Optional[int] = OPTIONS["epochs"](),
    lr: Optional[float] = OPTIONS["lr"](),
    batch_size: Optional[int] = OPTIONS["batch_size"](),
    weight_decay: Optional[str] = OPTIONS["weight_decay"](),
    decay_search: Optional[str] = OPTIONS["decay_search"](),
    preprocessing: Optional[str] = OPTIONS["preprocessing"](),
    calibration: Optional[str] = OPTIONS["calibration"](),
    noise_floor: Optional[float] = OPTIONS["noise_floor"](),
    negatives: Optional[int] = OPTIONS["negatives"](),
    aux_relations: Optional[str] = OPTIONS["aux_relations"](),
    aux_weight: Optional[float] = OPTIONS["aux_weight"](),
    patience: Optional[int] = OPTIONS["patience"](),
    seed: int = typer.Option(0, "--seed", help="Fixes the negatives, the 80/10/10 split (hence the test pairs) and the initialisation."),
    candidates: int = OPTIONS["candidates"](),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="RUN_DIR to write (default: graphrec-sample/runs/<decoder>-k<k>).", show_default=False),
    val_pairs: Optional[Path] = typer.Option(None, "--val-pairs", help="Labelled pairs ('relation u v label', e.g. GATNE's valid.txt): train on every edge of --relation and early-stop on this file's pairs of it, instead of the 80/10/10 split; then score a test file with evaluate --pairs.", show_default=False),
    relation_names: Optional[str] = typer.Option(None, "--relation-names", help="Rename the relation labels of --val-pairs, e.g. 1=also_bought,2=also_viewed (the default for GATNE's labels 1 and 2).", show_default=False),
    force: bool = typer.Option(False, "--force", help="Replace an existing RUN_DIR."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-epoch lines, only the final table."),
    as_json: bool = typer.Option(False, "--json", help="Print the final metrics (and the RUN_DIR) as JSON on stdout; per-epoch lines go to stderr."),
    resume: bool = typer.Option(False, "--resume", help="Continue a killed run of this same command from its last per-epoch checkpoint (kept in the hidden .<RUN_DIR>.partial folder); ends with the same metrics as an uninterrupted run. Starts from epoch 1 when there is nothing to resume."),
    distributed: Optional[bool] = typer.Option(
        None, "--distributed/--no-distributed", help="DistributedDataParallel over torchrun's processes: each "
        "computes its share of every mini-batch, rank 0 evaluates and writes RUN_DIR. Default: on when started by "
        "torchrun with several processes; --distributed fails outside torchrun."),
    threads: Optional[int] = threads_option(),
) -> None:
    """Train a decoder on one relation under the paper's protocol and write a RUN_DIR.

    Positives are the relation's edges, negatives as many random non-edges; pairs are
    split 80/10/10 by --seed. The epoch with the best validation accuracy is kept. The
    RUN_DIR holds config.json, model.pt, history.csv, metrics.json and pictures:
    curve.png (the kept epoch marked), curves.png (test ROC and precision-recall) and,
    for a style space, style_space.png (a 2-D projection coloured by category).
    """
    import json

    from graphrec.distributed import is_main_process
    from graphrec.io.edges import parse_relation_names
    from graphrec.train import train

    run = train(
        one_of(graph_dir, graph, "GRAPH_DIR and --graph"), decoder=decoder, k=k, relation=relation, seed=seed, out_dir=out, quiet=quiet,
        **train_settings(locals()), force=force, resume=resume,
        echo=None if quiet else (lambda line: (err_console if as_json else console).print(line, highlight=False)),
        distributed=distributed, val_pairs=val_pairs, relation_names=parse_relation_names(relation_names) or None,
    )
    if distributed is not False and not is_main_process():
        return  # rank 0 reports for every process
    if as_json:
        from graphrec.runinfo import json_safe

        typer.echo(json.dumps(json_safe({"run": str(run.path), **run.metrics}), indent=2))
        return
    print_metrics(f"{decoder}{encoder_label(run.config)} K={k} on {relation}", run.metrics)
    console.print(f"run written to {run.path}", highlight=False)


@app.command("evaluate")
@one_line_errors
def evaluate_command(
    run_dir: Optional[Path] = typer.Argument(None, metavar="RUN_DIR", help="RUN_DIR written by graphrec train (default: graphrec-sample/runs/mahalanobis-k10).", show_default=False),
    candidates: Optional[int] = typer.Option(None, "--candidates", help="Hard negatives per test query (default: the run's own setting).", show_default=False),
    pictures: Optional[Path] = typer.Option(None, "--pictures", help="Also write a PNG of the most confident true positives and the hardest negatives of the test split."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    run_option: Optional[Path] = typer.Option(None, "--run", "-r", help="RUN_DIR, instead of the argument.", show_default=False),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Score the labelled pairs of this file ('relation u v label', e.g. GATNE's test.txt) of the run's relation: accuracy, ROC-AUC, PR-AUC, F1 (GATNE's rank cut) and AP, on all pairs and without the run's training edges. Pairs with products the run never saw are scored at the prior and counted.", show_default=False),
    relation_names: Optional[str] = typer.Option(None, "--relation-names", help="Rename the relation labels of --pairs, e.g. 1=also_bought,2=also_viewed.", show_default=False),
    graph: Optional[Path] = typer.Option(None, "--graph", "-g", help="GRAPH_DIR to use instead of the one the run recorded (moved or copied elsewhere); it must hold the same content.", show_default=False),
    threads: Optional[int] = threads_option(),
) -> None:
    """Reload a run, rebuild its test split from its seed and recompute every metric
    (or, with --pairs, score a labelled pair file)."""
    import json

    from graphrec.evaluate import evaluate_run, write_pictures
    from graphrec.sample import WORK_RUNS

    run_dir = one_of(run_dir, run_option, "RUN_DIR and --run") or WORK_RUNS / "mahalanobis-k10"
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
    run, metrics = evaluate_run(run_dir, graph, candidates=candidates, quiet=False)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
    else:
        print_metrics(f"{run.config['decoder']}{encoder_label(run.config)} K={run.config.get('k')} on {run.config.get('relation')} ({run.path})", metrics)
    if pictures is not None:
        err_console.print(f"picture written to {write_pictures(run, pictures)}", highlight=False)


@app.command("sweep", cls=list_options(numbers=[*LIST_NUMBERS, "--seeds"], names=["--k", "--decoder", "-d", *LIST_NAMES]))
@one_line_errors
def sweep_command(
    graph_dir: Optional[Path] = typer.Argument(None, metavar="GRAPH_DIR", help=_GRAPH_ARGUMENT_HELP, show_default=False),
    graph: Optional[Path] = typer.Option(None, "--graph", "-g", help="GRAPH_DIR, instead of the argument.", show_default=False),
    k: List[str] = typer.Option(["1", "10", "100"], "--k", help="Values of K, space- or comma-separated: --k 1 10 100."),
    decoder: List[str] = typer.Option(["mahalanobis", "fm"], "--decoder", "-d", help="Decoders, space- or comma-separated: --decoder mahalanobis fm wnn euclidean category-tree."),
    relation: str = typer.Option("also_bought", "--relation", help="Which co-purchase relation to learn."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split and initialisation (the same test pairs for every run)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Train every run once per seed, space- or comma-separated (--seeds 0 1 2: runs <name>-s0, -s1, -s2), and report the mean with its spread (accuracy_std, auc_std: standard deviation over seeds; every run in sweep_runs.csv). Replaces --seed.", show_default=False),
    encoder: Optional[str] = OPTIONS["encoder"](),
    message_relations: Optional[str] = OPTIONS["message_relations"](),
    layers: Optional[int] = OPTIONS["layers"](),
    shrink: Optional[float] = OPTIONS["shrink"](),
    epochs: Optional[int] = OPTIONS["epochs"](),
    lr: Optional[float] = OPTIONS["lr"](),
    batch_size: Optional[int] = OPTIONS["batch_size"](),
    weight_decay: Optional[str] = OPTIONS["weight_decay"](),
    decay_search: Optional[str] = OPTIONS["decay_search"](),
    preprocessing: Optional[str] = OPTIONS["preprocessing"](),
    calibration: Optional[str] = OPTIONS["calibration"](),
    noise_floor: Optional[float] = OPTIONS["noise_floor"](),
    negatives: Optional[int] = OPTIONS["negatives"](),
    aux_relations: Optional[str] = OPTIONS["aux_relations"](),
    aux_weight: Optional[float] = OPTIONS["aux_weight"](),
    patience: Optional[int] = OPTIONS["patience"](),
    candidates: int = OPTIONS["candidates"](),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for sweep.csv, sweep.md, accuracy_vs_k.png and runs/ (default: graphrec-sample/sweep).", show_default=False),
    resume: bool = typer.Option(False, "--resume", help="Keep the runs an earlier sweep into the same folder finished (a run of other settings there is an error), continue interrupted ones from their checkpoint, and train the rest."),
    force: bool = typer.Option(False, "--force", help="Replace runs left by an earlier sweep in the same folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-epoch lines."),
    as_json: bool = typer.Option(False, "--json", help="Print the table as JSON (one object per run) on stdout; progress lines go to stderr."),
    threads: Optional[int] = threads_option(),
) -> None:
    """Train every decoder at every K and print the table (decoder x K -> accuracy, AUC, hit@10, time).

    Every training option of graphrec train applies to every run (the model's own, such as
    --encoder, --layers and --preprocessing, to the mahalanobis runs). Also saves the table
    as CSV and Markdown and plots test accuracy against K. Progress: one '== [i/n] name'
    line per run.
    """
    import pandas as pd

    from graphrec.errors import UsageError
    from graphrec.models import list_models
    from graphrec.sweep import sweep

    ks, decoders = [], []
    for value in [*k, *decoder]:  # "--k 1 10 100" reaches here as "1,10,100" (list_options)
        for part in split_list(value):
            if part.lstrip("-").isdigit():
                check_limits({"k": int(part)})
                ks.append(int(part))
            elif part in list_models():
                decoders.append(part)
            else:
                raise UsageError(f"{part!r} is neither a K nor a decoder ({', '.join(list_models())}) nor an existing GRAPH_DIR.")
    seed_list = _seed_numbers(seeds) if seeds is not None else None
    table = sweep(
        one_of(graph_dir, graph, "GRAPH_DIR and --graph"), decoders=list(dict.fromkeys(decoders)), ks=list(dict.fromkeys(ks)), relation=relation, seed=seed,
        seeds=seed_list, out_dir=out, quiet=quiet, force=force, resume=resume, **train_settings(locals()),
        echo=None if quiet else (lambda line: (err_console if as_json else console).print(line, highlight=False)),
    )
    if as_json:
        typer.echo(table.to_json(orient="records", indent=2))
        return
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


@app.command("runs")
@one_line_errors
def runs_command(
    folder: Optional[Path] = typer.Argument(None, help="Folder searched for RUN_DIRs, at any depth (default: graphrec-sample).", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON (one object per run, as graphrec info RUN_DIR --json)."),
) -> None:
    """List the trained runs under a folder with their headline test metrics, best accuracy first.

    Reads only each run's config.json and metrics.json, so it is quick on many runs.
    """
    import json

    from graphrec.runinfo import find_runs
    from graphrec.sample import WORK_DIR

    root = folder or WORK_DIR
    rows = find_runs(root)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        print_runs(str(root), rows)

