"""The training options that ``train`` and ``sweep`` share, declared once: each is a factory
of its typer option (``lr: Optional[float] = OPTIONS["lr"]()``), and :func:`train_settings`
turns the parsed values into keyword arguments of :func:`graphrec.train.train`."""

from __future__ import annotations

from typing import Any, Callable, Optional

import typer

from graphrec.cli.core import check_limits
from graphrec.cli.options import split_list

__all__ = ["LIST_NAMES", "LIST_NUMBERS", "OPTIONS", "names", "numbers", "train_settings"]

LIST_NUMBERS = ["--weight-decay"]  # list options, for cli.options.list_options
LIST_NAMES = ["--message-relations", "--aux-relations"]


def _defaults_help(field: str, fmt=str) -> str:
    """"30 mahalanobis, 20 wnn, 40 fm": a default of every gradient-trained model, from the registry."""
    from graphrec.models import get_model, list_models

    models = [get_model(name) for name in list_models() if get_model(name).trainable]
    return ", ".join(f"{fmt(getattr(cls.defaults, field))} {cls.name}" for cls in models)


def _decays(value) -> str:
    return ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else f"{value:g}"


def _encoders_help() -> str:
    from graphrec.models import get_encoder, list_encoders

    return ", ".join(f"{name} ({get_encoder(name).help})" for name in list_encoders())


OPTIONS: dict[str, Callable[[], Any]] = {
    "encoder": lambda: typer.Option(None, "--encoder", "-e", help="What makes the mahalanobis style vectors: " + _encoders_help() + ". Default: linear when the graph has features, lightgcn without.", show_default=False),
    "message_relations": lambda: typer.Option(None, "--message-relations", help="Other relations, space- or comma-separated (e.g. also_viewed), whose edges a message-passing encoder also propagates over; pairs that are validation or test pairs of --relation are left out (default: the training edges of --relation only).", show_default=False),
    "layers": lambda: typer.Option(None, "--layers", help="Message-passing layers of --encoder lightgcn (default 3) or sage (default 2).", show_default=False),
    "shrink": lambda: typer.Option(None, "--shrink", help="--encoder hybrid (or lightgcn/sage over it): L2 penalty on each product's own offset from its visual style xY (default 0: only the edges and early stopping hold it).", show_default=False),
    "epochs": lambda: typer.Option(None, "--epochs", help=f"Maximum epochs (default per decoder: {_defaults_help('epochs')}; closed-form baselines ignore it).", show_default=False),
    "lr": lambda: typer.Option(None, "--lr", help="Adam learning rate (default per decoder).", show_default=False),
    "batch_size": lambda: typer.Option(None, "--batch-size", help="Labelled pairs per gradient step (default 4096 x (1 + negatives) / 2, smaller on small graphs so that an epoch has at least 8 steps).", show_default=False),
    "weight_decay": lambda: typer.Option(None, "--weight-decay", help="L2 penalty on the projection / embeddings, added to the loss. Several values, space- or comma-separated (e.g. 1e-3 3e-2 1), train once per value and keep the best on validation (default per decoder: " + _defaults_help("weight_decay", _decays) + ").", show_default=False),
    "decay_search": lambda: typer.Option(None, "--decay-search", help="How several --weight-decay values are trained: joint (default: together, one pass over each mini-batch; linear encoder, one process, no --aux-relations) or sequential (one full fit per value). Both keep the best on validation.", show_default=False),
    "preprocessing": lambda: typer.Option(None, "--preprocessing", help="mahalanobis feature preprocessing: sqrt (divide by the largest training value, then signed square root), max (divide only) or std (per-dimension standard deviation); default sqrt.", show_default=False),
    "calibration": lambda: typer.Option(None, "--calibration", help="Which pairs re-choose the P > 0.5 threshold after each epoch: train (a fixed sample of training pairs; default for linear and hybrid) or val (the validation pairs; default for embedding, lightgcn and sage, whose per-product vectors memorise their training edges). Test pairs never.", show_default=False),
    "noise_floor": lambda: typer.Option(None, "--noise-floor", help="Training likelihood P(edge) = floor + (1 - floor) sigmoid(c - d): the share of edges assumed unrelated to style, so that they cannot drag the projection (default 0: the plain logistic loss; 0.1 helped on planted features and hurt on the bundled sample, see docs/train.md).", show_default=False),
    "negatives": lambda: typer.Option(None, "--negatives", help="Random non-edges drawn per training edge every epoch (default 1, the paper's balance; the threshold is still chosen on balanced training pairs). 8 raised K = 10 accuracy on planted 4k features and lowered it on the bundled sample, see docs/train.md.", show_default=False),
    "aux_relations": lambda: typer.Option(None, "--aux-relations", help="Other relations of the graph, space- or comma-separated (e.g. also_viewed bought_together), whose edges also train the style space, each through its own K x K map; their pairs that are validation or test pairs of --relation are left out (mahalanobis only; default none).", show_default=False),
    "aux_weight": lambda: typer.Option(None, "--aux-weight", help="Weight of each auxiliary relation's loss against the main relation's (default 1).", show_default=False),
    "patience": lambda: typer.Option(None, "--patience", help="Stop after this many epochs without a better validation accuracy (0 = never).", show_default=False),
    "candidates": lambda: typer.Option(100, "--candidates", help="Hard negatives per test query for hit@10/MRR/NDCG@10: its nearest neighbours in raw feature space that are not partners."),
}


def names(text: Optional[str]) -> list[str] | None:
    """``"a, b"`` or ``"a b"`` -> ["a", "b"]; None stays None."""
    return split_list(text) or None


def numbers(text: Optional[str], option: str) -> float | list[float] | None:
    """``"1e-3"`` -> 0.001; ``"1e-3,3e-2"`` (or with spaces) -> [0.001, 0.03]; a clear error otherwise."""
    from graphrec.errors import UsageError

    if text is None:
        return None
    try:
        values = [float(part) for part in split_list(text)]
    except ValueError:
        raise UsageError(f"{option} takes numbers separated by spaces or commas (got {text!r}).") from None
    if not values:
        raise UsageError(f"{option} takes numbers separated by spaces or commas (got {text!r}).")
    check_limits({option.lstrip("-").replace("-", "_"): values}, {option.lstrip("-").replace("-", "_"): option})
    return values if len(values) > 1 else values[0]


def train_settings(values: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of :func:`graphrec.train.train` from the parsed :data:`OPTIONS`
    of ``values`` (a command's locals): lists split, decays read as numbers."""
    settings = {key: values[key] for key in OPTIONS if key in values}
    for key in ("message_relations", "aux_relations"):
        if key in settings:
            settings[key] = names(settings[key])
    if "weight_decay" in settings:
        settings["weight_decay"] = numbers(settings["weight_decay"], "--weight-decay")
    return settings
