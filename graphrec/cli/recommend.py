"""Commands that answer: neighbours and serve (runs -> recommendations)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from graphrec.cli.core import app, console, err_console, one_line_errors, threads_option
from graphrec.cli.options import one_of
from graphrec.cli.output import print_neighbours
from graphrec.sample import WORK_RUNS

_SAMPLE_RUN = WORK_RUNS / "mahalanobis-k10"

@app.command("neighbours")
@one_line_errors
def neighbours(
    asins: Optional[List[str]] = typer.Argument(None, help="One or more query ASINs, answered in one batched search.", show_default=False),
    run: Path = typer.Option(_SAMPLE_RUN, "--run", "-r", help="RUN_DIR written by graphrec train."),
    top: int = typer.Option(10, "--top", "-k", help="How many products to return per query."),
    category: Optional[str] = typer.Option(None, "--category", "-c", help="Only recommend products with a category path starting with this '|'-separated prefix, e.g. 'Clothing, Shoes & Jewelry|Women'."),
    exclude_known: bool = typer.Option(False, "--exclude-known", help="Drop products already linked to the query in the run's training relation."),
    from_file: Optional[Path] = typer.Option(None, "--from-file", "-f", help="Also read query ASINs from this text file (one per line, '#' comments); an ASIN the graph lacks is reported with its line and skipped."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first ASIN of --from-file that the graph lacks instead of skipping it."),
    image: Optional[Path] = typer.Option(None, "--image", help="Cold start: use this photo as the query (fc7 features from the network recorded for the graph, then the model's projection)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as a JSON list of records."),
    as_csv: bool = typer.Option(False, "--csv", help="Print the results as CSV."),
    picture: Optional[Path] = typer.Option(None, "--picture", help="Also write a PNG grid: the query image, then each recommendation captioned with ASIN, short title and probability."),
    graph: Optional[Path] = typer.Option(None, "--graph", "-g", help="GRAPH_DIR to use instead of the one the run recorded (moved or copied elsewhere); it must hold the same content.", show_default=False),
    approx: bool = typer.Option(False, "--approx", help="Use an approximate faiss index (IVF in low dimension, fast-scan PQ with exact re-ranking in high dimension) instead of the exact one; used anyway above 2M products."),
    threads: Optional[int] = threads_option(),
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
        run, asins or [], from_file=from_file, image=image, top=top, category=category,
        exclude_known=exclude_known, approx=approx or "auto", picture=picture, quiet=as_json or as_csv, graph=graph, strict=strict,
    )
    if as_json:
        typer.echo(to_json(table))
    elif as_csv:
        typer.echo(table.to_csv(index=False), nl=False)
    else:
        print_neighbours(table)
    if picture is not None:
        err_console.print(f"picture written to {picture}", highlight=False)




app.command("neighbors", hidden=True)(neighbours)  # the American spelling, not listed


@app.command("serve")
@one_line_errors
def serve_command(
    run: Path = typer.Option(_SAMPLE_RUN, "--run", "-r", help="RUN_DIR written by graphrec train."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 opens the service to other machines)."),
    port: int = typer.Option(8000, "--port", "-p", min=0, max=65535, help="Port to listen on (0: any free port, printed at start)."),
    approx: bool = typer.Option(False, "--approx", help="Use an approximate faiss index, as neighbours --approx."),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="Log one line per request."),
    graph: Optional[Path] = typer.Option(None, "--graph", "-g", help="GRAPH_DIR to use instead of the one the run recorded (moved or copied elsewhere); it must hold the same content.", show_default=False),
    cache: int = typer.Option(4096, "--cache", min=0, help="Distinct /api/neighbours answers kept in memory (a loaded run never changes; about 2 KB each at k = 10); 0 keeps none."),
    threads: Optional[int] = threads_option(),
) -> None:
    """Serve a trained run over HTTP: a JSON API (documented at /docs) and pages to browse
    products and what goes with them. Loads the run once; Ctrl+C stops."""
    from graphrec.serve import serve

    def ready(url: str, catalogue) -> None:
        console.print(f"serving {run} ({catalogue.graph.num_nodes:,} products) on {url} ; API documentation at {url}/docs ; Ctrl+C stops",
                      highlight=False, soft_wrap=True)

    serve(run, host=host, port=port, approx=approx or "auto", access_log=access_log, ready=ready, graph=graph, cache=cache)




@app.command("export")
@one_line_errors
def export_command(
    run_dir: Optional[Path] = typer.Argument(None, metavar="RUN_DIR", help="RUN_DIR written by graphrec train (default: graphrec-sample/runs/mahalanobis-k10).", show_default=False),
    run_option: Optional[Path] = typer.Option(None, "--run", "-r", help="RUN_DIR, instead of the argument.", show_default=False),
    what: str = typer.Option("vectors", "--what", help="vectors: every product's ASIN and style vector s0..s{K-1}; neighbours: every product's top --top recommendations (query, rank, asin, distance, probability)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="File to write; .parquet, .csv or .csv.gz picks the format (default: RUN_DIR/<what>.parquet).", show_default=False),
    top: int = typer.Option(10, "--top", help="Recommendations per product with --what neighbours."),
    exclude_known: bool = typer.Option(False, "--exclude-known", help="With --what neighbours, drop products already linked to the query in the run's training relation."),
    graph: Optional[Path] = typer.Option(None, "--graph", "-g", help="GRAPH_DIR to use instead of the one the run recorded.", show_default=False),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    threads: Optional[int] = threads_option(),
) -> None:
    """Write every product's style vector, or its top-N recommendations, to Parquet or CSV
    for a database, a search engine or a notebook."""
    from graphrec.export import export_run

    path = export_run(one_of(run_dir, run_option, "RUN_DIR and --run") or _SAMPLE_RUN, what=what, out=out, top=top, graph=graph,
                      exclude_known=exclude_known, quiet=quiet)
    console.print(f"{what} written to {path}", highlight=False)
