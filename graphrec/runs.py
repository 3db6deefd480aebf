"""RUN_DIR: what ``graphrec train`` writes and ``evaluate`` / ``neighbours`` read.

Layout::

    config.json     every option ("decoder", "k", "relation", "seed", "epochs", ...),
                    "graph" (the GRAPH_DIR, relative to the RUN_DIR when they share a folder,
                    so that a project folder can be copied or moved; older runs hold an
                    absolute path), "graph_absolute" (its absolute path at training time,
                    tried second), "graph_checksum" (the graph's content
                    fingerprint, :func:`graphrec.graph.manifest_fingerprint`: unchanged by a
                    rebuild of the same inputs; runs of earlier versions hold the SHA-256 of
                    manifest.json, still accepted), "model" (the model's constructor arguments)
    model.pt        the model's state_dict; torch.load(..., weights_only=True)
    history.csv     one row per epoch: epoch, loss, train_accuracy, val_accuracy, val_auc, seconds
    metrics.json    {"decoder", "k", "relation", "train_seconds", "best_epoch",
                     "val": {...}, "test": {...}, ...}
    curve.png       the training curve, the kept epoch marked
    curves.png      ROC and precision-recall curves of the test pairs
    style_space.png metric decoders: the style space's two principal components, coloured by category

A run is written into ``.<name>.partial`` beside its final place and renamed into place
when complete, so an interrupted ``train`` never leaves a directory that looks finished.
While training, ``.<name>.partial/checkpoint.pt`` holds the latest epoch's model and
optimiser state (the hook a ``--resume`` option would start from); it is removed on commit.

>>> run = load_run("graphrec-sample/runs/mahalanobis-k10")
>>> run.model.predict_proba(run.inputs, torch.tensor([[0, 1]]))
"""

from __future__ import annotations

import csv
import functools
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from graphrec.errors import DataError, UsageError
from graphrec.fs import atomic_write, swap_into_place, write_json_atomic
from graphrec.graph import Graph, load_graph, manifest_checksum, manifest_fingerprint
from graphrec.inputs import node_inputs
from graphrec.models import LinkModel, NodeInputs, get_model

__all__ = [
    "CONFIG", "MODEL", "HISTORY", "METRICS", "CURVE", "CHECKPOINT",
    "Run", "RunWriter", "load_run", "load_model", "read_config", "graph_checksum", "graph_location", "partial_path", "run_graph_path",
]

CONFIG, MODEL, HISTORY, METRICS, CURVE, CHECKPOINT = "config.json", "model.pt", "history.csv", "metrics.json", "curve.png", "checkpoint.pt"


@dataclass
class Run:
    """A loaded RUN_DIR. ``model`` is in eval mode; ``graph`` is the graph it was trained on."""

    path: Path
    config: dict
    model: LinkModel
    graph: Graph
    metrics: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        """``Run('runs/mahalanobis-k10', mahalanobis/linear K=10 on also_bought, test accuracy 0.7743)``"""
        test = (self.metrics.get("test") or {}).get("accuracy")
        score = f", test accuracy {test:.4f}" if isinstance(test, float) else ""
        what = f"{self.config.get('decoder')}/{self.config.get('encoder') or 'linear'} K={self.config.get('k')}"
        return f"Run({str(self.path)!r}, {what} on {self.config.get('relation')}, {self.graph.num_nodes:,} products{score})"

    @functools.cached_property
    def inputs(self) -> NodeInputs:
        """The graph's model inputs (:func:`graphrec.inputs.node_inputs`), built once."""
        return node_inputs(self.graph)

    @property
    def history(self) -> list[dict[str, float]]:
        """Per-epoch rows of ``history.csv`` (empty when the run has none)."""
        file = self.path / HISTORY
        if not file.is_file():
            return []
        with file.open(newline="") as handle:
            return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def graph_checksum(graph: Graph) -> str | None:
    """The content fingerprint of a graph loaded from disk (None for an in-memory graph):
    what a run records to recognise its graph, whenever and wherever it was rebuilt."""
    if not (graph.path / "manifest.json").is_file():
        return None
    return manifest_fingerprint(graph.manifest)


def _same_graph(expected: str | None, graph: Graph) -> bool:
    """Whether a run's recorded ``graph_checksum`` names ``graph``: its content fingerprint,
    or (runs of earlier versions) the SHA-256 of its manifest.json file."""
    actual = graph_checksum(graph)
    if not expected or actual is None or expected == actual:
        return True
    try:
        return expected == manifest_checksum(graph.path)
    except OSError:
        return False


def load_model(run_dir: str | Path, config: dict | None = None) -> LinkModel:
    """Rebuild the model of a RUN_DIR from ``config.json`` + ``model.pt`` (eval mode)."""
    path = Path(run_dir)
    config = config if config is not None else _read_config(path)
    cls = get_model(config["decoder"])
    try:
        model = cls.from_hparams(config.get("model", {}))
    except (TypeError, ValueError) as error:
        raise DataError(f"{path / CONFIG} does not describe a valid {config['decoder']} model ({error}); train the run again.") from None
    try:
        state = torch.load(path / MODEL, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise DataError(f"{path / MODEL} is missing; the run is incomplete, train it again.") from None
    except Exception as error:  # a corrupt or foreign file
        raise DataError(f"{path / MODEL} cannot be read as a model state_dict ({error}); train the run again.") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise DataError(f"{path / MODEL} does not match the {config['decoder']} model described in {path / CONFIG}: {error}") from None
    return model.eval()


def read_config(run_dir: str | Path) -> dict:
    """``config.json`` of a RUN_DIR; a :class:`UsageError` when it is not one, a
    :class:`DataError` when the file is damaged."""
    return _read_config(Path(run_dir))


def _read_config(path: Path) -> dict:
    file = path / CONFIG
    if not file.is_file():
        hint = " (training is still running or was interrupted)" if (path.parent / f".{path.name}.partial").exists() else ""
        raise UsageError(f"{path} is not a run directory (no {CONFIG}){hint}; create one with graphrec train.")
    try:
        config = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{file} is not valid JSON (line {error.lineno}); train the run again.") from None
    if "decoder" not in config:
        raise DataError(f"{file} names no decoder; train the run again.")
    return config


def graph_location(graph_dir: str | Path, run_dir: str | Path) -> dict[str, str]:
    """What ``config.json`` records of where the graph is: ``graph``, relative to ``run_dir``
    when the two share a folder below the filesystem root (else absolute), and ``graph_absolute``."""
    absolute = Path(graph_dir).resolve()
    run = Path(run_dir).resolve()
    try:
        shared = Path(os.path.commonpath([absolute, run]))
        relative = os.path.relpath(absolute, run) if shared != Path(shared.anchor) else None
    except ValueError:  # another drive (Windows)
        relative = None
    return {"graph": relative or str(absolute), "graph_absolute": str(absolute)}


def run_graph_path(run_dir: str | Path, config: dict) -> Path:
    """The GRAPH_DIR a run was trained on: ``config["graph"]`` (relative to the RUN_DIR, or an
    absolute path), else ``config["graph_absolute"]``; a :class:`UsageError` naming both and
    the ``--graph`` option when neither holds a graph."""
    path = Path(run_dir)
    source = config.get("graph")
    if not source or source == "<memory>":
        raise UsageError(f"the run {path} was trained on an in-memory graph; pass --graph GRAPH_DIR (graph= to load_run).")
    # an absolute source stays itself; "runs/k10/../../graph" reads as "graph" unless a
    # symbolic link makes the two differ
    tried = [Path(os.path.normpath(path / source)), path / source]
    if config.get("graph_absolute"):
        tried.append(Path(config["graph_absolute"]))
    for candidate in tried:
        if (candidate / "manifest.json").is_file():
            return candidate
    where = " or ".join(str(c) for c in dict.fromkeys(tried))
    raise UsageError(f"the graph of the run {path} is not at {where} (moved or deleted?); "
                     "pass --graph GRAPH_DIR naming where it is now, or rebuild it there with graphrec build-graph.")


def load_run(run_dir: str | Path, graph: Graph | str | os.PathLike | None = None) -> Run:
    """Load a RUN_DIR: its config, model (eval mode), metrics and the graph it was trained on.

    ``graph`` (a :class:`Graph` or a GRAPH_DIR) replaces the recorded graph; None loads the
    recorded one (:func:`run_graph_path`). A graph whose content differs from the one trained
    on is refused (node indices would no longer mean the same products); a graph rebuilt
    from the same inputs with the same options, anywhere, is the same graph.
    """
    path = Path(run_dir)
    config = _read_config(path)
    if not isinstance(graph, Graph):
        graph = load_graph(graph if graph is not None else run_graph_path(path, config))
    if not _same_graph(config.get("graph_checksum"), graph):
        raise DataError(
            f"the graph {graph.path} changed since the run {path} was trained (its inputs, build options or "
            "counts differ); train the run again on the current graph, or rebuild the graph from the run's inputs."
        )
    metrics_file = path / METRICS
    try:
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    except (ValueError, UnicodeDecodeError):
        raise DataError(f"{metrics_file} is not valid JSON; run graphrec evaluate {path} or train the run again.") from None
    return Run(path=path, config=config, model=load_model(path, config), graph=graph, metrics=metrics)


def partial_path(run_dir: str | Path) -> Path:
    """Where a run being written to ``run_dir`` lives until it is complete (its checkpoints
    included): the hidden ``.<name>.partial`` folder beside it."""
    final = Path(run_dir)
    return final.parent / f".{final.name}.partial"


class RunWriter:
    """Builds a RUN_DIR in ``.<name>.partial`` and renames it into place on :meth:`commit`.

    >>> writer = RunWriter("runs/k10", force=True)
    >>> writer.save_checkpoint({"epoch": 3, "model": model.state_dict()})
    >>> writer.write_config(config); writer.write_model(model); ...
    >>> writer.commit()           # runs/k10 now exists, complete
    """

    def __init__(self, out_dir: str | Path, force: bool = False, resume: bool = False) -> None:
        self.final = Path(out_dir)
        if self.final.exists() and not force:
            raise UsageError(f"{self.final} already exists; pass --force to replace it or choose another -o directory.")
        if self.final.exists() and not self.final.is_dir():
            raise UsageError(f"{self.final} exists and is not a directory; choose another -o directory.")
        self.force = force
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = partial_path(self.final)
        #: True when ``resume`` found an interrupted run's checkpoint to continue from
        self.resumed = bool(resume) and (self.tmp / CHECKPOINT).is_file()
        if self.tmp.exists() and not self.resumed:  # a stale interrupted run: start over
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(exist_ok=self.resumed)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The interrupted run's last checkpoint (``weights_only=True``: tensors and plain
        values only, never code), or None when there is nothing to resume."""
        if not self.resumed:
            return None
        file = self.tmp / CHECKPOINT
        try:
            state = torch.load(file, weights_only=True, map_location="cpu")
        except Exception as error:  # damaged, or a pickle that is more than tensors
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
            raise DataError(f"{file} cannot be read as a training checkpoint ({first}); delete {self.tmp} "
                            "or train without --resume.") from None
        if not isinstance(state, dict) or not isinstance(state.get("epoch"), int) or "model" not in state:
            raise DataError(f"{file} is not a training checkpoint; delete {self.tmp} or train without --resume.")
        return state

    def read_config(self) -> dict[str, Any]:
        """``config.json`` of the interrupted run (empty when it has none)."""
        try:
            config = json.loads((self.tmp / CONFIG).read_text())
        except (OSError, ValueError):
            return {}
        return config if isinstance(config, dict) else {}

    def file(self, name: str) -> Path:
        return self.tmp / name

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Atomically replace ``checkpoint.pt`` (tensors and plain Python values only)."""
        atomic_write(self.tmp / CHECKPOINT, lambda tmp: torch.save(state, tmp))

    def write_config(self, config: dict) -> None:
        write_json_atomic(self.tmp / CONFIG, config)

    def write_metrics(self, metrics: dict) -> None:
        write_json_atomic(self.tmp / METRICS, metrics)

    def write_model(self, model: LinkModel) -> None:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        atomic_write(self.tmp / MODEL, lambda tmp: torch.save(state, tmp))

    def write_history(self, rows: list[dict[str, float]]) -> None:
        names = list(rows[0]) if rows else ["epoch"]
        with (self.tmp / HISTORY).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=names)
            writer.writeheader()
            writer.writerows(rows)

    def commit(self) -> Path:
        """Drop the checkpoint and rename the finished run into place."""
        (self.tmp / CHECKPOINT).unlink(missing_ok=True)
        return swap_into_place(self.tmp, self.final)

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
