"""The K sweep: train every decoder at every K on one graph and tabulate the results.

>>> from graphrec.sweep import sweep
>>> table = sweep("graph/", decoders=["mahalanobis", "fm"], ks=[1, 10, 100], out_dir="sweep/")

Writes ``sweep.csv``, ``sweep.md`` and ``accuracy_vs_k.png`` into ``out_dir`` and every
run under ``out_dir/runs/<decoder>-k<k>``. Decoders without a K (``has_k`` False in the
model registry: wnn, euclidean, category-tree) are trained once and shown with K "-".
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from graphrec.errors import UsageError, choose
from graphrec.fs import atomic_write
from graphrec.graph import Graph, load_graph
from graphrec.models import get_model, list_models
from graphrec.runs import partial_path
from graphrec.sample import WORK_DIR, WORK_GRAPH
from graphrec.train import train

__all__ = ["bayes_limit", "plot_sweep", "sweep", "sweep_row", "to_markdown"]

#: options of the mahalanobis model itself, not given to the other decoders
MODEL_OPTIONS = ("encoder", "layers", "shrink", "preprocessing", "message_relations")
COLUMNS = ["decoder", "k", "accuracy", "auc", "hit@10", "mrr", "ndcg@10", "hit@10 (random)", "train_seconds", "best_epoch"]


def sweep_row(metrics: dict[str, Any]) -> dict[str, Any]:
    """One table row from a run's ``metrics.json`` content."""
    test = metrics["test"]
    rand = metrics.get("test_random_candidates") or {}
    return {
        "decoder": metrics["decoder"] + (f" ({metrics['encoder']})" if metrics.get("encoder") not in (None, "linear") else ""),
        "k": metrics["k"] if get_model(metrics["decoder"]).has_k else None,
        "accuracy": test["accuracy"],
        "auc": test["auc"],
        "hit@10": test.get("hit@10"),
        "mrr": test.get("mrr"),
        "ndcg@10": test.get("ndcg@10"),
        "hit@10 (random)": rand.get("hit@10"),
        "train_seconds": metrics["train_seconds"],
        "best_epoch": metrics.get("best_epoch"),
    }


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub Markdown table (no extra dependency)."""
    def cell(value: Any) -> str:
        if value is None or pd.isna(value):
            return "-"
        if isinstance(value, float):
            return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
        return str(value)

    def seconds(value: Any) -> str:
        return "-" if value is None or pd.isna(value) else f"{value:.1f}"

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for row in table.astype(object).itertuples(index=False):
        lines.append("| " + " | ".join(seconds(v) if c == "train_seconds" else cell(v) for c, v in zip(table.columns, row)) + " |")
    return "\n".join(lines) + "\n"


def plot_sweep(table: pd.DataFrame, path: Path, title: str = "test accuracy against K", bayes: float | None = None):
    """Accuracy against K (log scale) per K decoder, each in its own colour and marker (with
    the spread over seeds as error bars); K-free baselines as horizontal lines; ``bayes``
    (the generated catalogue's Bayes limit) as a dotted line. Without any K decoder the
    plot is a bar per decoder, with no K axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = iter(zip(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3, "osD^vP*Xh" * 3))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    groups = list(table.groupby("decoder", sort=False))
    with_k = [(name, rows) for name, rows in groups if rows["k"].notna().all()]
    if with_k:
        for decoder, rows in groups:
            colour, marker = next(styles)
            if rows["k"].notna().all():
                rows = rows.sort_values("k")
                spread = rows["accuracy_std"].astype(float) if "accuracy_std" in rows else None
                ax.errorbar(rows["k"].astype(float), rows["accuracy"], yerr=spread, marker=marker, color=colour, capsize=3, label=decoder)
            else:
                ax.axhline(float(rows["accuracy"].iloc[0]), linestyle="--", linewidth=1, color=colour, label=decoder)
        ax.set_xscale("log")
        ks = sorted({int(k) for _, rows in with_k for k in rows["k"]})
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("K")
    else:
        colours = [next(styles)[0] for _ in groups]
        ax.bar([name for name, _ in groups], [float(rows["accuracy"].iloc[0]) for _, rows in groups], color=colours)
        ax.set_xlabel("decoder")
        title = title.replace("against K", "per decoder")
    if bayes is not None:
        ax.axhline(bayes, linestyle=":", color="black", linewidth=1.2, label=f"Bayes limit {bayes:.3f}")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    if with_k or bayes is not None:
        ax.legend(fontsize="small")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)
    return fig  # for inspection


def bayes_limit(graph: Graph, relation: str) -> float | None:
    """The Bayes limit of ``relation`` that ``graphrec.datasets.synthetic`` recorded beside the
    graph's metadata (``generator.json``), or None for real data."""
    source = ((graph.manifest.get("sources") or {}).get("metadata") or {}).get("path")
    report = Path(source).parent / "generator.json" if source else None
    if report is None or not report.is_file():
        return None
    try:
        value = json.loads(report.read_text()).get("bayes_limit", {}).get(relation)
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def _check_ks(graph: Graph, decoders: Sequence[str], ks: Sequence[int], encoder: str | None) -> None:
    """Every K of the list checked before anything is trained: a K above the feature
    dimension of a decoder that projects features is a :class:`UsageError` now, not after
    the runs with smaller K."""
    if graph.features is None:
        return
    dim = graph.features.shape[1]
    for decoder in decoders:
        cls = get_model(decoder)
        options = cls.with_defaults({"encoder": encoder} if encoder and decoder == "mahalanobis" else {}, True)
        too_large = [k for k in ks if k > dim]
        if cls.has_k and cls.is_metric and cls.needs_features_for(options) and too_large:
            raise UsageError(f"K = {too_large[0]} is larger than the feature dimension {dim} of {graph.path} (needed by "
                             f"{decoder}); choose K values up to {dim}. Nothing was trained.")


def sweep(
    graph: str | Path | Graph | None = None,
    decoders: Sequence[str] = ("mahalanobis", "fm"),
    ks: Sequence[int] = (1, 10, 100),
    relation: str = "also_bought",
    seed: int = 0,
    out_dir: str | Path | None = None,
    quiet: bool = False,
    force: bool = False,
    echo: Callable[[str], None] | None = None,
    seeds: Sequence[int] | None = None,
    resume: bool = False,
    **train_options: Any,
) -> pd.DataFrame:
    """Train each decoder at each K (once for K-free decoders) and return the table.

    ``train_options`` go to every run (:func:`graphrec.train.train`); the model's own ones
    (``encoder``, ``layers``, ``shrink``, ``preprocessing``) to the mahalanobis runs only.
    ``seeds`` trains every run once per seed (``<name>-s<seed>``) and reports the mean with
    its spread (``accuracy_std``, ``auc_std``: the sample standard deviation). ``resume`` keeps
    the runs an earlier sweep finished and continues interrupted ones from their checkpoint.
    """
    decoders = [choose(decoder, list_models(), "decoder") for decoder in decoders]  # unknown names fail before any training
    if not ks:
        raise UsageError("give at least one K (e.g. --k 1 10 100).")
    if not decoders:
        raise UsageError("give at least one decoder (e.g. --decoder mahalanobis fm).")
    if resume and force:
        raise UsageError("--resume keeps finished runs and --force replaces them; choose one.")
    seeds = list(dict.fromkeys(seeds)) if seeds else [seed]
    graph = graph if isinstance(graph, Graph) else load_graph(graph if graph is not None else WORK_GRAPH)
    _check_ks(graph, decoders, ks, train_options.get("encoder"))
    out = Path(out_dir) if out_dir is not None else WORK_DIR / "sweep"
    out.mkdir(parents=True, exist_ok=True)
    say = echo if echo is not None else (lambda line: None) if quiet else print
    plan = _plan(decoders, ks, seeds, train_options)
    existing = [out / "runs" / name for name, *_ in plan if (out / "runs" / name).exists()]
    if existing and not (resume or force):
        raise UsageError(f"{len(existing)} of the {len(plan)} runs of this sweep already exist (e.g. {existing[0]}); pass --resume "
                         "to keep them and train the rest, or --force to replace them. Nothing was trained.")
    # every kept run is checked before anything trains: a run of other settings stops the sweep now
    done = {name: _finished(out / "runs" / name, decoder, k, run_seed, relation) for name, decoder, k, run_seed, _ in plan} if resume else {}
    rows, started, trained = [], time.perf_counter(), 0
    to_train = sum(1 for name, *_ in plan if done.get(name) is None)
    for number, (name, decoder, k, run_seed, options) in enumerate(plan, start=1):
        target = out / "runs" / name
        say(f"== [{number}/{len(plan)}] {name}{_eta(time.perf_counter() - started, trained, to_train)}")
        metrics = done.get(name)
        if metrics is not None:
            say(f"   finished earlier, kept: {target}")
        else:
            metrics = train(graph, decoder=decoder, k=k, relation=relation, seed=run_seed, out_dir=target, quiet=quiet,
                            force=force, resume=resume and partial_path(target).exists(), echo=echo, **options).metrics
            trained += 1
        rows.append({**sweep_row(metrics), "seed": run_seed})
    say(f"== sweep of {len(plan)} runs done in {time.perf_counter() - started:.1f} s")
    table = _summarise(pd.DataFrame(rows, columns=[*COLUMNS, "seed"]), several=len(seeds) > 1)
    _write_tables(table, out, pd.DataFrame(rows) if len(seeds) > 1 else None)
    plot_sweep(table, out / "accuracy_vs_k.png", bayes=bayes_limit(graph, relation))
    return table


def _eta(elapsed: float, trained: int, to_train: int) -> str:
    """", 12.3 s elapsed, about 40 s left" once a run has been trained (the mean so far times
    the runs still to train; runs of different K take different times, so it is rough)."""
    if not trained:
        return ""
    left = elapsed / trained * (to_train - trained)
    return f", {elapsed:.1f} s elapsed, about {left:.0f} s left"


def _plan(decoders: Sequence[str], ks: Sequence[int], seeds: Sequence[int], train_options: dict[str, Any]) -> list[tuple]:
    """(run name, decoder, K, seed, its training options) of every run, in order."""
    plan = []
    for decoder in decoders:
        has_k = get_model(decoder).has_k
        options = train_options if decoder == "mahalanobis" else {key: v for key, v in train_options.items() if key not in MODEL_OPTIONS}
        encoder = options.get("encoder")
        label = decoder if encoder in (None, "linear") else f"{decoder}-{encoder}"
        for k in (ks if has_k else ks[:1]):
            for run_seed in seeds:
                name = (f"{label}-k{k}" if has_k else label) + (f"-s{run_seed}" if len(seeds) > 1 else "")
                plan.append((name, decoder, k, run_seed, options))
    return plan


def _finished(target: Path, decoder: str, k: int, seed: int, relation: str) -> dict[str, Any] | None:
    """The metrics of a complete run at ``target`` trained as asked (None when there is none
    or it is unfinished); a complete run of other settings is a UsageError."""
    config_file, metrics_file = target / "config.json", target / "metrics.json"
    if not (config_file.is_file() and metrics_file.is_file()):
        return None
    config = json.loads(config_file.read_text())
    wanted = {"decoder": decoder, "seed": seed, "relation": relation, **({"k": k} if get_model(decoder).has_k else {})}
    changed = [f"{key} {config.get(key)!r}, not {value!r}" for key, value in wanted.items() if config.get(key) != value]
    if changed:
        raise UsageError(f"{target} holds a run of other settings ({'; '.join(changed)}); pass --force to replace it or choose another -o.")
    return json.loads(metrics_file.read_text())


def _summarise(runs: pd.DataFrame, several: bool) -> pd.DataFrame:
    """One row per decoder and K: the run itself, or with several seeds the mean of every
    metric, ``accuracy_std`` and ``auc_std`` (sample standard deviation) and the seed count."""
    runs["k"] = runs["k"].astype("Int64")
    if not several:
        return runs.drop(columns="seed")
    keys = ["decoder", "k"]
    grouped = runs.groupby(keys, sort=False, dropna=False)
    table = grouped[[c for c in COLUMNS if c not in keys]].mean().reset_index()
    for column in ("accuracy", "auc"):
        table.insert(table.columns.get_loc(column) + 1, f"{column}_std", grouped[column].std(ddof=1).to_numpy())
    table["seeds"] = grouped.size().to_numpy()
    return table


def _write_tables(table: pd.DataFrame, out: Path, runs: pd.DataFrame | None) -> None:
    """sweep.csv and sweep.md (and with several seeds every run in sweep_runs.csv)."""
    files = {"sweep.csv": lambda p: table.to_csv(p, index=False), "sweep.md": lambda p: p.write_text(to_markdown(table))}
    if runs is not None:
        files["sweep_runs.csv"] = lambda p: runs.to_csv(p, index=False)
    for name, writer in files.items():
        atomic_write(out / name, writer)
