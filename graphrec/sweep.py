"""The K sweep: train every decoder at every K on one graph and tabulate the results.

>>> from graphrec.sweep import sweep
>>> table = sweep("graph/", decoders=["mahalanobis", "fm"], ks=[1, 10, 100], out_dir="sweep/")

Writes ``sweep.csv``, ``sweep.md`` and ``accuracy_vs_k.png`` into ``out_dir`` and every
run under ``out_dir/runs/<decoder>-k<k>``. Decoders without a K (``has_k`` False in the
model registry: wnn, euclidean, category-tree) are trained once and shown with K "-".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from graphrec.errors import UsageError
from graphrec.fs import atomic_write
from graphrec.graph import Graph, load_graph
from graphrec.models import get_model
from graphrec.sample import WORK_DIR, WORK_GRAPH
from graphrec.train import train

__all__ = ["sweep", "sweep_row", "to_markdown", "plot_sweep"]

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


def plot_sweep(table: pd.DataFrame, path: Path, title: str = "test accuracy against K") -> None:
    """Accuracy against K (log scale) per K decoder; K-free baselines as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for decoder, rows in table.groupby("decoder", sort=False):
        if rows["k"].notna().all() and len(rows) > 0:
            rows = rows.sort_values("k")
            ax.plot(rows["k"].astype(float), rows["accuracy"], marker="o", label=decoder)
        else:
            ax.axhline(float(rows["accuracy"].iloc[0]), linestyle="--", linewidth=1, label=decoder, color=None)
    ax.set_xscale("log")
    ax.set_xlabel("K")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)


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
    **train_options: Any,
) -> pd.DataFrame:
    """Train each decoder at each K (once for K-free decoders); returns the table."""
    for decoder in decoders:
        get_model(decoder)  # unknown names fail before any training
    if not ks:
        raise UsageError("give at least one K (e.g. --k 1 10 100).")
    graph = graph if isinstance(graph, Graph) else load_graph(graph if graph is not None else WORK_GRAPH)
    out = Path(out_dir) if out_dir is not None else WORK_DIR / "sweep"
    out.mkdir(parents=True, exist_ok=True)
    say = echo if echo is not None else (lambda line: None) if quiet else print
    rows = []
    for decoder in decoders:
        has_k = get_model(decoder).has_k
        encoder = train_options.get("encoder") if decoder == "mahalanobis" else None
        label = decoder if encoder in (None, "linear") else f"{decoder}-{encoder}"
        for k in (ks if has_k else ks[:1]):
            name = f"{label}-k{k}" if has_k else label
            say(f"== {name}")
            options = train_options if decoder == "mahalanobis" else {key: v for key, v in train_options.items() if key != "encoder"}
            run = train(graph, decoder=decoder, k=k, relation=relation, seed=seed, out_dir=out / "runs" / name,
                        quiet=quiet, force=force, echo=echo, **options)
            rows.append(sweep_row(run.metrics))
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["k"] = table["k"].astype("Int64")
    for name, writer in (("sweep.csv", lambda p: table.to_csv(p, index=False)), ("sweep.md", lambda p: p.write_text(to_markdown(table)))):
        target = out / name
        atomic_write(target, writer)
    plot_sweep(table, out / "accuracy_vs_k.png")
    return table
