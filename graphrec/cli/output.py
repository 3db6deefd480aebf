"""What the commands print: rich tables of a graph's summary, a run's metrics, pair-file
metrics and neighbours (kept apart so that each command module stays a list of commands)."""

from __future__ import annotations

from graphrec.cli.core import console, err_console

__all__ = ["print_graph_summary", "print_metrics", "encoder_label", "print_pair_metrics", "print_neighbours"]


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


