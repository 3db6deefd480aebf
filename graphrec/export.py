"""Everything a run knows, as files other tools read: ``graphrec export``.

* :func:`export_vectors` — one row per product: ``asin`` and its K style coordinates
  ``s0 … s{K-1}`` (float32), the space ``neighbours`` searches.
* :func:`export_neighbours` — the top-N recommendations of every product: ``query``,
  ``rank``, ``asin``, ``distance``, ``probability`` (the rows of ``neighbours --json``
  without the product columns, which the graph already holds).

The format follows the file name: ``.parquet`` (pyarrow, written in row groups, so a
catalogue of millions never sits in memory as one table) or ``.csv`` / ``.csv.gz``. The
file appears only when complete (written beside it, then renamed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from graphrec.errors import UsageError, choose
from graphrec.fs import atomic_write, progress_bar
from graphrec.recommend import Recommender

__all__ = ["FORMATS", "WHAT", "export_vectors", "export_neighbours", "export_run"]

FORMATS = (".parquet", ".csv", ".csv.gz")
WHAT = ("vectors", "neighbours")
CHUNK = 4096  # queries per batched search and rows per Parquet row group
NEIGHBOUR_COLUMNS = ["query", "rank", "asin", "distance", "probability"]


def file_format(path: str | os.PathLike) -> str:
    """".parquet", ".csv" or ".csv.gz" from the name; a :class:`UsageError` otherwise."""
    name = Path(path).name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    raise UsageError(f"{path}: name the output file .parquet, .csv or .csv.gz (the format follows the name).")


def _write_chunks(path: Path, chunks: Iterator[pd.DataFrame]) -> Path:
    """Write the frames of ``chunks`` one after another into ``path`` (atomically)."""
    kind = file_format(path)

    def write(tmp: Path) -> None:
        if kind == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            writer = None
            try:
                for frame in chunks:
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    writer = writer or pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
            finally:
                if writer is not None:
                    writer.close()
            return
        with open(tmp, "wb") as raw:
            for number, frame in enumerate(chunks):
                frame.to_csv(raw, index=False, header=number == 0, compression="gzip" if kind == ".csv.gz" else None)

    return atomic_write(path, write)


def _vector_chunks(rec: Recommender, advance: Callable[[int], None]) -> Iterator[pd.DataFrame]:
    style, asins = rec.style, rec.graph.asins
    names = [f"s{j}" for j in range(style.shape[1])]
    for start in range(0, len(asins), CHUNK):
        block = np.asarray(style[start : start + CHUNK], dtype=np.float32)
        frame = pd.DataFrame(block, columns=names)
        frame.insert(0, "asin", np.asarray(asins[start : start + CHUNK], dtype=object))
        advance(len(block))
        yield frame


def _neighbour_chunks(rec: Recommender, top: int, advance: Callable[[int], None], exclude_known: bool) -> Iterator[pd.DataFrame]:
    asins = list(rec.graph.asins)
    for start in range(0, len(asins), CHUNK):
        queries = asins[start : start + CHUNK]
        table = rec.neighbours_batch(queries, top=top, exclude_known=exclude_known)
        advance(len(queries))
        yield table[NEIGHBOUR_COLUMNS].reset_index(drop=True)


def _with_progress(label: str, total: int, quiet: bool, chunks: Callable[[Callable[[int], None]], Iterator[pd.DataFrame]], out: Path) -> Path:
    with progress_bar(quiet=quiet, transient=False) as progress:
        task = progress.add_task(label, total=total)
        return _write_chunks(out, chunks(lambda n: progress.advance(task, n)))


def export_vectors(rec: Recommender, out: str | os.PathLike, quiet: bool = True) -> Path:
    """Write every product's style vector (``asin, s0 … s{K-1}``) to ``out``."""
    file_format(out)
    if not rec.model.is_metric:
        raise UsageError(f"the {rec.model.name} decoder has no style vectors to export (it scores pairs directly); "
                         "export its neighbours with --what neighbours.")
    return _with_progress("exporting style vectors", rec.graph.num_nodes, quiet, lambda advance: _vector_chunks(rec, advance), Path(out))


def export_neighbours(rec: Recommender, out: str | os.PathLike, top: int = 10, exclude_known: bool = False, quiet: bool = True) -> Path:
    """Write the ``top`` recommendations of every product (``query, rank, asin, distance,
    probability``, nearest first) to ``out``."""
    file_format(out)
    if top < 1:
        raise UsageError(f"--top must be at least 1 (got {top}).")
    return _with_progress(f"exporting top {top} of every product", rec.graph.num_nodes, quiet,
                          lambda advance: _neighbour_chunks(rec, top, advance, exclude_known), Path(out))


def export_run(run_dir: str | os.PathLike, what: str = "vectors", out: str | os.PathLike | None = None, top: int = 10,
               graph: str | os.PathLike | None = None, exclude_known: bool = False, quiet: bool = True) -> Path:
    """``graphrec export``: load the run and write ``what`` ("vectors" or "neighbours") to
    ``out`` (default: ``RUN_DIR/<what>.parquet``)."""
    what = choose(what, WHAT, "export")
    out = Path(out) if out is not None else Path(run_dir) / f"{what}.parquet"
    file_format(out)
    rec = Recommender.load(run_dir, graph=graph, quiet=quiet)
    if what == "vectors":
        return export_vectors(rec, out, quiet=quiet)
    return export_neighbours(rec, out, top=top, exclude_known=exclude_known, quiet=quiet)
