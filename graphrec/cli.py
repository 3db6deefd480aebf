"""The ``graphrec`` command line: a thin layer that parses options, calls one library
function per command and prints its result. No logic lives here.

Every command runs through :func:`_run`, which turns a :class:`GraphrecError` into one
clear sentence on stderr and a non-zero exit code (a traceback only with ``--debug``).
"""

from __future__ import annotations

import functools
import math
import warnings
from pathlib import Path
from typing import Callable, List, Optional

import typer
from rich.console import Console

from graphrec.errors import GraphrecError, GraphrecWarning
from graphrec.fs import os_error_message

app = typer.Typer(
    name="graphrec",
    help="Graph-based fashion recommendation from Amazon co-purchase lists and product images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)
_state = {"debug": False}


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors.")) -> None:
    """graphrec: build a product graph, learn a style space, recommend what goes together."""
    _state["debug"] = debug


_MOST = 2**31 - 1  # sizes and counts beyond this overflow the tensors they size
# The range of every numeric option, by parameter name, for every command (train, evaluate
# and sweep read the same line): (lowest, highest, lowest excluded, highest excluded).
# Values must also be finite. The library repeats its own checks (TrainConfig) for Python users.
LIMITS: dict[str, tuple[float, float, bool, bool]] = {
    "lr": (0, math.inf, True, True), "noise_floor": (0, 0.5, False, True), "aux_weight": (0, math.inf, True, True),
    "shrink": (0, math.inf, False, True), "weight_decay": (0, math.inf, False, True),
    "k": (1, 65536, False, False), "epochs": (1, _MOST, False, False), "batch_size": (1, _MOST, False, False),
    "patience": (0, _MOST, False, False), "negatives": (1, 1000, False, False), "layers": (1, 64, False, False),
    "candidates": (1, 100_000, False, False), "top": (1, 100_000, False, False), "workers": (0, 256, False, False),
    "feature_dim": (1, 1 << 20, False, False), "seed": (0, 2**32 - 1, False, False),
}


def _limit_text(low: float, high: float, low_open: bool, high_open: bool) -> str:
    """"at least 1 and at most 64" (integers), "a finite number above 0"."""
    if isinstance(high, int):
        return f"at least {low} and at most {high}"
    lower = f"a finite number {'above' if low_open else 'at least'} {low:g}"
    return lower if math.isinf(high) else f"{lower} and {'below' if high_open else 'at most'} {high:g}"


def check_limits(values: dict, flags: dict[str, str] | None = None) -> None:
    """A :class:`UsageError` (exit 2) naming the first option of ``values`` (parameter name
    -> number, or a list of numbers) that is not finite or outside its :data:`LIMITS`.
    ``flags`` maps names to the option as typed (default: read from the running command)."""
    from graphrec.errors import UsageError

    for name, value in values.items():
        if name not in LIMITS or value is None:
            continue
        for number in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                continue
            low, high, low_open, high_open = LIMITS[name]
            inside = math.isfinite(number) and (number > low if low_open else number >= low) and (number < high if high_open else number <= high)
            if not inside:
                flag = (flags or _flags()).get(name, "--" + name.replace("_", "-"))
                raise UsageError(f"{flag} must be {_limit_text(*LIMITS[name])} (got {number}).")


def _flags() -> dict[str, str]:
    """Parameter name -> its longest option name (``top`` -> ``--top``) in the running command."""
    import click

    ctx = click.get_current_context(silent=True)
    params = ctx.command.params if ctx is not None else []
    return {param.name: max(param.opts, key=len) for param in params if param.opts}


def _print_warning(others: Callable, message, category, *details) -> None:
    """``warnings.showwarning`` of the commands: a :class:`GraphrecWarning` is one
    ``warning:`` line on stderr; other warnings go to ``others`` (Python's own display)."""
    if not issubclass(category, GraphrecWarning):
        return others(message, category, *details)
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def _run(func: Callable) -> Callable:
    """Decorator for commands: user errors become one line on stderr and a non-zero exit.
    So does an operating-system error on a path (an output folder that cannot be written,
    a parent that is a file, ``--picture`` naming a directory): the sentence names the path
    and what to do (:func:`graphrec.fs.os_error_message`)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():  # graphrec's warnings (e.g. train's ScalingWarning): one line each, as they happen
                warnings.simplefilter("always", GraphrecWarning)
                warnings.showwarning = functools.partial(_print_warning, warnings.showwarning)
                check_limits(kwargs)
                return func(*args, **kwargs)
        except (GraphrecError, OSError) as error:
            if _state["debug"]:
                raise
            message = os_error_message(error) if isinstance(error, OSError) else error
            err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(getattr(error, "exit_code", 1)) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; finished work is kept and the same command resumes or restarts cleanly")
            raise typer.Exit(130) from None

    return wrapper


# --- build-graph, info (io -> graph) -------------------------------------------------


def _print_graph_summary(title: str, manifest: dict, stats: dict) -> None:
    from rich.table import Table

    from graphrec.stats import summary_rows

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in summary_rows(manifest, stats):
        table.add_row(label, value)
    console.print(table)


@app.command("build-graph")
@_run
def build_graph_command(
    meta: Optional[Path] = typer.Option(
        None, "--meta", help="Amazon metadata file, 2014 (Python literals) or 2018 (JSON lines) dump, plain or .gz. "
        "Default: the bundled sample (graphrec/datasets/sample/meta_sample.json.gz inside the package)."),
    features: Optional[Path] = typer.Option(
        None, "--features", help="McAuley .b image features (10-byte ASIN + float32 x dim per record). Default: none, "
        "except with the sample metadata, where graphrec-sample/image_features.b is used when it exists."),
    out: Optional[Path] = typer.Option(
        None, "-o", "--out", help="GRAPH_DIR to write (must not exist unless --force). Default: graphrec-sample/graph."),
    category: Optional[str] = typer.Option(
        None, "--category", help="Keep products with a category path starting with this '|'-separated prefix, "
        "e.g. 'Clothing, Shoes & Jewelry|Men'."),
    relations: Optional[str] = typer.Option(
        None, "--relations", help="Comma-separated relations to keep (also_bought, also_viewed, bought_together, "
        "buy_after_viewing). Default: every relation present in the metadata."),
    meta_format: str = typer.Option("auto", "--format", help="Metadata format: auto (detect from the first line), 2014 or 2018."),
    feature_dim: int = typer.Option(4096, "--feature-dim", help="Values per record in the .b file (4096 for AlexNet fc7)."),
    dtype: str = typer.Option("float16", "--dtype", help="Storage type of features.npy: float16 (half the disk) or float32."),
    images: Optional[Path] = typer.Option(
        None, "--images", help="Directory of product images named <ASIN>.jpg/.jpeg/.png/.webp, recorded as image_path. "
        "Default: the images_dir of the features' JSON sidecar, if any (the sample's images for the sample)."),
    no_features: bool = typer.Option(False, "--no-features", help="Build from the metadata only, even when sample features exist."),
    edges: Optional[Path] = typer.Option(None, "--edges", help="A plain edge list ('u v' or 'relation u v' per line, whitespace or commas, # comments) giving the relations instead of the metadata's related lists; its ids are the products (ASINs when combined with --meta/--features). See docs/collaborative.md."),
    relation_names: Optional[str] = typer.Option(None, "--relation-names", help="Rename the edge list's relation labels, e.g. 1=also_bought,2=also_viewed (the default when the labels are exactly GATNE's 1 and 2; other labels are kept as written)."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first malformed metadata line or bad feature record instead of skipping it."),
    keep_extreme: bool = typer.Option(False, "--keep-extreme", help="Keep feature records whose values are far beyond the rest (largest |value| above 1000 x the 90th percentile of the records' largest); by default they are dropped and counted like NaN records."),
    force: bool = typer.Option(False, "--force", help="Replace an existing GRAPH_DIR."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars and no summary table."),
) -> None:
    """Build a product graph (GRAPH_DIR) from Amazon metadata and optional image features.

    Nodes are the products of --meta (first record of a repeated ASIN) inside --category
    that have features when --features is given; one undirected edge set per relation.
    Prints a summary: nodes, edges, components, degrees and every dropped count.
    """
    from graphrec import sample
    from graphrec.errors import UsageError
    from graphrec.graph import build_graph
    from graphrec.io.edges import parse_relation_names

    if meta is None and edges is None:
        if not sample.SAMPLE_META.is_file():
            raise UsageError(f"the bundled sample {sample.SAMPLE_META} is missing from this installation; pass --meta FILE.")
        meta = sample.SAMPLE_META
        if features is None and sample.WORK_FEATURES.is_file():
            features = sample.WORK_FEATURES
        if images is None and sample.SAMPLE_IMAGES.is_dir():
            images = sample.SAMPLE_IMAGES
    if no_features:
        features = None
    result = build_graph(
        meta, out or sample.WORK_GRAPH, features, category=category,
        relations=relations.split(",") if relations else None, meta_format=meta_format,
        feature_dim=feature_dim, dtype=dtype, images=images, strict=strict, force=force, quiet=quiet,
        edges=edges, relation_names=parse_relation_names(relation_names), keep_extreme=keep_extreme,
    )
    for message in result.warnings:
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
    if not quiet:
        _print_graph_summary(f"graph written to {result.path}", result.manifest, result.manifest["stats"])
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)


@app.command("info")
@_run
def info_command(
    graph_dir: Optional[Path] = typer.Argument(None, help="GRAPH_DIR written by build-graph. Default: graphrec-sample/graph."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest and freshly computed statistics as JSON."),
) -> None:
    """Summarise an existing graph: nodes, edges per relation, components, degrees, drops."""
    import json

    from graphrec import sample
    from graphrec.graph import load_graph
    from graphrec.stats import graph_stats

    graph = load_graph(graph_dir or sample.WORK_GRAPH)
    stats = graph_stats(graph.num_nodes, graph.edges)
    if as_json:
        print(json.dumps({**graph.manifest, "stats": stats}, indent=2, ensure_ascii=False))
    else:
        _print_graph_summary(f"graph {graph.path}", graph.manifest, stats)


# --- extract-features (images -> features) -------------------------------------------


@app.command("extract-features")
@_run
def extract_features_command(
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of product images named <ASIN>.jpg/.jpeg/.png/.webp (any case). Default: the bundled sample's images."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="CSV with columns asin,path (paths relative to the CSV), instead of --images."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Features file to write (McAuley .b, plus OUTPUT.json naming the network). Default: graphrec-sample/image_features.b."),
    weights: str = typer.Option("auto", "--weights", help="imagenet (torchvision's weights; must be cached when offline), PATH to an alexnet state_dict, random (seeded untrained network: not ImageNet features), or auto (imagenet when cached, else random)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the network for --weights random."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per forward pass."),
    workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader processes decoding images (0 = in this process). Default: CPU cores - 1, at most 8."),
    device: str = typer.Option("cpu", "--device", help="cpu, or cuda when a GPU is available (under torchrun: each process uses the GPU of its LOCAL_RANK)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    distributed: Optional[bool] = typer.Option(
        None, "--distributed/--no-distributed", help="Share the images among torchrun's processes (each extracts "
        "its own block, rank 0 writes OUTPUT). Default: on when started by torchrun with several processes; "
        "--distributed fails outside torchrun."),
) -> None:
    """Compute AlexNet fc7 features (4096-d, after ReLU) for product images.

    Resumable: a killed run keeps finished chunks in OUTPUT.parts/ and the same command
    continues from there. Unreadable images are reported by path and skipped. Under
    torchrun (torchrun --nproc_per_node N -m graphrec.cli extract-features ...) the
    processes share the work and the output is the same as one process's.
    """
    import warnings

    from graphrec.distributed import is_main_process
    from graphrec.extract import MAX_REPORTED, extract_features
    from graphrec.vision import RandomWeightsWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RandomWeightsWarning)
        result = extract_features(images=images, out=output, manifest=manifest, weights=weights, seed=seed,
                                  batch_size=batch_size, workers=workers, device=device, quiet=quiet,
                                  distributed=distributed)
    if distributed is not False and not is_main_process():
        return  # rank 0 reports for every process
    for warning in caught:
        if issubclass(warning.category, RandomWeightsWarning):
            err_console.print(f"[bold yellow]warning:[/] {warning.message}", highlight=False, soft_wrap=True)
    for problem in result.problems[:MAX_REPORTED]:
        err_console.print(f"[yellow]skipped:[/] {problem}", highlight=False, soft_wrap=True)
    if len(result.problems) > MAX_REPORTED:
        err_console.print(f"... and {len(result.problems) - MAX_REPORTED} more skipped images", highlight=False)
    spec = result.spec
    network = {"random": f"random (seed {spec['seed']})", "imagenet": "imagenet", "file": f"file {spec['path']}"}[spec["weights"]]
    if result.up_to_date:
        console.print(f"{result.path} is up to date: {result.num_images} images, AlexNet fc7, weights {network}.", highlight=False, soft_wrap=True)
        return
    skipped = ", ".join(f"{n} {why}" for why, n in result.skipped.items()) or "none"
    console.print(
        f"wrote {result.path}: {result.num_images} images x 4096 fc7 features, weights {network}; "
        f"{result.extracted} extracted now ({result.images_per_second:.1f} images/s), {result.resumed} from an "
        f"earlier run; skipped: {skipped}. Network recorded in {result.sidecar_path}.",
        highlight=False, soft_wrap=True,
    )


# --- train, evaluate, sweep (graph -> models -> runs) ---------------------------------

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


def _print_metrics(title: str, metrics: dict) -> None:
    """The final table of a run: validation and test metrics, hard and random candidates."""
    from rich.table import Table

    from graphrec.evaluate import format_metrics

    table = Table(title=title, title_justify="left")
    for column in ("split", "metric", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    ranking = ("hit@10", "mrr", "ndcg@10")
    for section, name, value in format_metrics(metrics):
        label = section
        if section == "test_random_candidates":
            label = f"test, {metrics.get('candidates', 100)} random candidates"
        elif section in ("test_warm", "test_cold"):
            if name not in ("accuracy", "auc"):
                continue
            label = f"test, {section[5:]} pairs ({metrics[section].get('pairs', 0)})"
        elif section == "test" and name in ranking:
            label = f"test, {metrics.get('candidates', 100)} nearest candidates"
        table.add_row(label, name, value)
    console.print(table)
    if "train_seconds" in metrics:
        console.print(f"trained in {metrics['train_seconds']:.1f}s, best epoch {metrics.get('best_epoch')}", highlight=False)


def _encoder_label(config: dict) -> str:
    """" (lightgcn encoder)" for runs whose encoder is not the paper's linear one."""
    encoder = config.get("encoder")
    return f" ({encoder} encoder)" if encoder not in (None, "linear") else ""


def _print_pair_metrics(result: dict) -> None:
    """The table of ``evaluate --pairs`` and the counts behind it."""
    from rich.table import Table

    from graphrec.pairs import format_pair_metrics

    for message in result["messages"]:
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
    table = Table(title=f"{result['decoder']} on the {result['relation']} pairs of {result['pairs_file']}", title_justify="left")
    for column in ("pairs", "metric", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for row in format_pair_metrics(result):
        table.add_row(*row)
    console.print(table)
    removed = result["training_edges_removed"]
    console.print(f"{result['unknown_pairs']:,} pairs name products the run never saw ({result['unknown_ids']:,} ids); "
                  f"they are scored at P = {result['cold_score']}. Training edges removed in the second view: "
                  f"{removed['positives']:,} positives, {removed['negatives']:,} negatives. Bad lines: {result['bad_lines']:,}; "
                  f"other relations' pairs skipped: {result['other_relation_pairs'] or 'none'}.", highlight=False)


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
@_run
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
    _print_metrics(f"{decoder}{_encoder_label(run.config)} K={k} on {relation}", run.metrics)
    console.print(f"run written to {run.path}", highlight=False)


@app.command("evaluate")
@_run
def evaluate_command(
    run_dir: Optional[Path] = typer.Argument(None, help="RUN_DIR written by graphrec train (default: graphrec-sample/runs/mahalanobis-k10).", show_default=False),
    candidates: Optional[int] = typer.Option(None, "--candidates", help="Hard negatives per test query (default: the run's own setting).", show_default=False),
    pictures: Optional[Path] = typer.Option(None, "--pictures", help="Also write a PNG of the most confident true positives and the hardest negatives of the test split."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    run_option: Optional[Path] = typer.Option(None, "--run", "-r", help="RUN_DIR, instead of the argument.", show_default=False),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Score the labelled pairs of this file ('relation u v label', e.g. GATNE's test.txt) of the run's relation: accuracy, ROC-AUC, PR-AUC, F1 (GATNE's rank cut) and AP, on all pairs and without the run's training edges. Pairs with products the run never saw are scored at the prior and counted.", show_default=False),
    relation_names: Optional[str] = typer.Option(None, "--relation-names", help="Rename the relation labels of --pairs, e.g. 1=also_bought,2=also_viewed.", show_default=False),
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

        _, result = evaluate_run_pairs(run_dir, pairs, parse_relation_names(relation_names) or None)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        else:
            _print_pair_metrics(result)
        return
    run, metrics = evaluate_run(run_dir, candidates=candidates)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
    else:
        _print_metrics(f"{run.config['decoder']}{_encoder_label(run.config)} K={run.config.get('k')} on {run.config.get('relation')} ({run.path})", metrics)
    if pictures is not None:
        err_console.print(f"picture written to {write_pictures(run, pictures)}", highlight=False)


@app.command("sweep", context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
@_run
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


# --- neighbours (runs -> recommendations) ---------------------------------------------

from graphrec.sample import WORK_RUNS as _WORK_RUNS  # noqa: E402

_SAMPLE_RUN = _WORK_RUNS / "mahalanobis-k10"

@app.command("neighbours")
@_run
def neighbours(
    asins: Optional[List[str]] = typer.Argument(None, help="One or more query ASINs, answered in one batched search.", show_default=False),
    run: Path = typer.Option(_SAMPLE_RUN, "--run", "-r", help="RUN_DIR written by graphrec train."),
    top: int = typer.Option(10, "--top", "-k", help="How many products to return per query."),
    category: Optional[str] = typer.Option(None, "--category", "-c", help="Only recommend products with a category path starting with this '|'-separated prefix, e.g. 'Clothing, Shoes & Jewelry|Women'."),
    exclude_known: bool = typer.Option(False, "--exclude-known", help="Drop products already linked to the query in the run's training relation."),
    from_file: Optional[Path] = typer.Option(None, "--from-file", "-f", help="Also read query ASINs from this text file (one per line, '#' comments)."),
    image: Optional[Path] = typer.Option(None, "--image", help="Cold start: use this photo as the query (fc7 features from the network recorded for the graph, then the model's projection)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as a JSON list of records."),
    as_csv: bool = typer.Option(False, "--csv", help="Print the results as CSV."),
    picture: Optional[Path] = typer.Option(None, "--picture", help="Also write a PNG grid: the query image, then each recommendation captioned with ASIN, short title and probability."),
    approx: bool = typer.Option(False, "--approx", help="Use an approximate faiss index (IVF in low dimension, fast-scan PQ with exact re-ranking in high dimension) instead of the exact one; used anyway above 2M products."),
) -> None:
    """Recommend products that go with a product (or a new photo) from a trained run.

    Metric decoders (mahalanobis, wnn, euclidean): products nearest to the query in the
    learned style space, with distance d and the model's probability sigmoid(c - d); the
    index is built once and cached in RUN_DIR/index. The FM decoder has no metric space:
    every candidate is scored with the model instead (distance is empty, slower, and
    --image is not available).
    """
    from graphrec.errors import UsageError
    from graphrec.recommend import recommend, to_json

    if as_json and as_csv:
        raise UsageError("choose one of --json and --csv, not both.")
    table = recommend(
        run, asins or [], from_file=from_file, image=image, k=top, category=category,
        exclude_known=exclude_known, approx=approx or "auto", picture=picture, quiet=as_json or as_csv,
    )
    if as_json:
        typer.echo(to_json(table))
    elif as_csv:
        typer.echo(table.to_csv(index=False), nl=False)
    else:
        _print_neighbours(table)
    if picture is not None:
        err_console.print(f"picture written to {picture}", highlight=False)


def _cell(value) -> str:
    """A text cell: missing values (None, or NaN in pandas' string columns) are blank."""
    return "" if value is None or value != value else str(value)


def _print_neighbours(table) -> None:
    """One rich table per query."""
    from rich.table import Table

    for query, rows in table.groupby("query", sort=False):
        view = Table(title=f"neighbours of {query}", title_justify="left")
        for name, justify in [("rank", "right"), ("asin", "left"), ("title", "left"), ("brand", "left"), ("price", "right"), ("distance", "right"), ("probability", "right")]:
            view.add_column(name, justify=justify, overflow="ellipsis", max_width=48 if name == "title" else None)
        for row in rows.itertuples():
            view.add_row(
                str(row.rank), row.asin, _cell(row.title), _cell(row.brand),
                "" if row.price != row.price else f"{row.price:.2f}",
                "" if row.distance != row.distance else f"{row.distance:.4f}", f"{row.probability:.4f}",
            )
        console.print(view)


# --- serve (runs -> HTTP API and pages) -----------------------------------------------


@app.command("serve")
@_run
def serve_command(
    run: Path = typer.Option(_SAMPLE_RUN, "--run", "-r", help="RUN_DIR written by graphrec train."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 opens the service to other machines)."),
    port: int = typer.Option(8000, "--port", "-p", min=0, max=65535, help="Port to listen on (0: any free port, printed at start)."),
    approx: bool = typer.Option(False, "--approx", help="Use an approximate faiss index, as neighbours --approx."),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="Log one line per request."),
) -> None:
    """Serve a trained run over HTTP: a JSON API (documented at /docs) and pages to browse
    products and what goes with them. Loads the run once; Ctrl+C stops."""
    from graphrec.serve import serve

    def ready(url: str, catalogue) -> None:
        console.print(f"serving {run} ({catalogue.graph.num_nodes:,} products) on {url} ; API documentation at {url}/docs ; Ctrl+C stops",
                      highlight=False, soft_wrap=True)

    serve(run, host=host, port=port, approx=approx or "auto", access_log=access_log, ready=ready)


if __name__ == "__main__":  # pragma: no cover
    app()
