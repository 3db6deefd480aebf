"""What the commands print: rich tables of a graph's summary, a run's metrics, pair-file
metrics and neighbours (kept apart so that each command module stays a list of commands)."""

from __future__ import annotations

from graphrec.cli.core import console, err_console

__all__ = ["print_graph_summary", "print_run_summary", "print_runs", "print_metrics", "encoder_label", "print_pair_metrics", "print_neighbours"]


def print_graph_summary(title: str, manifest: dict, stats: dict) -> None:
    from rich.table import Table

    from graphrec.stats import summary_rows

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in summary_rows(manifest, stats):
        table.add_row(label, value)
    console.print(table)


def print_metrics(title: str, metrics: dict) -> None:
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


def encoder_label(config: dict) -> str:
    """" (lightgcn encoder)" for runs whose encoder is not the paper's linear one."""
    encoder = config.get("encoder")
    return f" ({encoder} encoder)" if encoder not in (None, "linear") else ""


def print_pair_metrics(result: dict) -> None:
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


def _cell(value) -> str:
    """A text cell: missing values (None, or NaN in pandas' string columns) are blank."""
    return "" if value is None or value != value else str(value)


def print_neighbours(table) -> None:
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




def _number(value, digits: int = 4) -> str:
    """A metric cell: 0.7743, or "-" when the run has none."""
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def print_run_summary(summary: dict) -> None:
    """``graphrec info RUN_DIR``: what the run is, where its graph is, and its metrics."""
    from rich.table import Table

    table = Table(title=f"run {summary['run']}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    graph = summary["graph"] if summary["graph_found"] else f"{summary['graph']} (not found: pass --graph to its commands)"
    rows = [("decoder", summary["decoder"]), ("encoder", summary["encoder"]), ("K", summary["k"]),
            ("relation", summary["relation"]), ("seed", summary["seed"]), ("graph", graph),
            ("products", f"{summary['products']:,}" if summary["products"] is not None else None),
            ("epochs run", summary["epochs_run"]), ("best epoch", summary["best_epoch"]),
            ("weight decay", summary["weight_decay"]),
            ("train seconds", _number(summary["train_seconds"], 1) if summary["train_seconds"] is not None else None)]
    rows += [(f"val {name}", _number(value)) for name, value in summary["val"].items()]
    rows += [(f"test {name}", _number(value)) for name, value in summary["test"].items()]
    for label, value in rows:
        if value is not None:
            table.add_row(label, str(value))
    console.print(table)


def print_runs(root: str, rows: list[dict]) -> None:
    """``graphrec runs DIR``: one line per run, best test accuracy first."""
    from rich.table import Table

    from graphrec.runinfo import HEADLINE

    table = Table(title=f"{len(rows)} run{'' if len(rows) == 1 else 's'} under {root}", title_justify="left")
    for column in ("run", "decoder", "encoder", "K", "relation", *HEADLINE, "seconds"):
        table.add_column(column, justify="left" if column in ("run", "decoder", "encoder", "relation") else "right")
    for row in rows:
        if "error" in row:
            table.add_row(row["run"], f"[red]{row['error']}[/]", *[""] * (len(HEADLINE) + 4))
            continue
        seconds = row["train_seconds"]
        table.add_row(row["run"], row["decoder"] or "", row["encoder"] or "", _number(row["k"]), row["relation"] or "",
                      *[_number(row["test"].get(name)) for name in HEADLINE], "-" if seconds is None else f"{seconds:.1f}")
    console.print(table)
