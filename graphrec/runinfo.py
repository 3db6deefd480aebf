"""What a RUN_DIR holds, told without loading its model or graph: ``graphrec info RUN_DIR``
and ``graphrec runs DIR``.

    run_summary("graphrec-sample/runs/mahalanobis-k10")["test"]["accuracy"]   # a float
    [row["run"] for row in find_runs("graphrec-sample")]   # best test accuracy first

Only ``config.json``, ``metrics.json``, ``history.csv`` and the graph's ``manifest.json``
are read, so listing a folder of many runs is quick.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from graphrec.errors import DataError, GraphrecError, UsageError
from graphrec.runs import CONFIG, HISTORY, METRICS, read_config, run_graph_path

__all__ = ["HEADLINE", "is_run_dir", "run_summary", "find_runs", "json_safe"]

#: the test metrics a summary shows, in order
HEADLINE = ("accuracy", "auc", "hit@10", "mrr", "ndcg@10")


def is_run_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a finished RUN_DIR (it holds config.json and metrics.json)."""
    path = Path(path)
    return (path / CONFIG).is_file() and (path / METRICS).is_file()


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None, so that it is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def _read_metrics(path: Path) -> dict:
    file = path / METRICS
    if not file.is_file():
        return {}
    try:
        metrics = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise DataError(f"{file} is not valid JSON; run graphrec evaluate {path} or train the run again.") from None
    return metrics if isinstance(metrics, dict) else {}


def _epochs_run(path: Path, metrics: dict) -> int | None:
    if isinstance(metrics.get("epochs_run"), int):
        return metrics["epochs_run"]
    try:
        with (path / HISTORY).open(encoding="utf-8") as handle:
            return max(sum(1 for line in handle if line.strip()) - 1, 0)
    except OSError:
        return None


def _graph(path: Path, config: dict) -> dict[str, Any]:
    """Where the run's graph is (normalised), whether it is there, and its product count."""
    from graphrec.graph.store import read_manifest

    try:
        found = run_graph_path(path, config)
    except UsageError:
        recorded = config.get("graph") or config.get("graph_absolute")
        where = os.path.normpath(path / recorded) if recorded and recorded != "<memory>" else recorded
        return {"graph": where, "graph_found": False, "products": None}
    try:
        products = read_manifest(found).get("num_nodes")
    except GraphrecError:
        products = None
    return {"graph": os.path.normpath(found), "graph_found": True, "products": products}


def run_summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    """One run in a flat dict: run, decoder, encoder, k, relation, seed, graph, graph_found,
    products, epochs (the most allowed), epochs_run, best_epoch, train_seconds,
    weight_decay, and ``val`` / ``test`` dicts of the headline metrics (None when absent)."""
    path = Path(run_dir)
    config, metrics = read_config(path), _read_metrics(path)
    test, val = metrics.get("test") or {}, metrics.get("val") or {}
    return json_safe({
        "run": str(path),
        "decoder": config.get("decoder"),
        "encoder": config.get("encoder") or metrics.get("encoder"),
        "k": config.get("k"),
        "relation": config.get("relation"),
        "seed": config.get("seed"),
        **_graph(path, config),
        "epochs": config.get("epochs"),
        "epochs_run": _epochs_run(path, metrics),
        "best_epoch": metrics.get("best_epoch"),
        "train_seconds": metrics.get("train_seconds"),
        "weight_decay": metrics.get("weight_decay", config.get("weight_decay")),
        "val": {name: val.get(name) for name in ("accuracy", "auc")},
        "test": {name: test.get(name) for name in HEADLINE},
    })


def _walk(root: Path):
    """Finished RUN_DIRs at or below ``root``; hidden folders (``.<name>.partial``, caches)
    are skipped and nothing below a RUN_DIR is searched."""
    for folder, names, _ in os.walk(root):
        if is_run_dir(folder):
            names.clear()
            yield Path(folder)
            continue
        names[:] = sorted(name for name in names if not name.startswith("."))


def find_runs(root: str | os.PathLike) -> list[dict[str, Any]]:
    """:func:`run_summary` of every RUN_DIR found at or below ``root``, best test accuracy
    first (runs without one last, then by path). A damaged run is listed with an ``error``."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory; give the folder holding your runs (e.g. graphrec-sample/runs).")
    rows = []
    for path in _walk(root):
        try:
            rows.append(run_summary(path))
        except GraphrecError as error:
            rows.append({"run": str(path), "error": str(error), "test": {}})

    def order(row: dict) -> tuple:
        accuracy = row["test"].get("accuracy")
        return (accuracy is None, -(accuracy or 0.0), row["run"])

    return sorted(rows, key=order)
