"""The pictures a RUN_DIR holds beside its numbers: the training curve (``curve.png``, the
kept epoch marked), the ROC and precision-recall curves of the test pairs (``curves.png``)
and a 2-D projection of the style space coloured by category (``style_space.png``).

Plain functions of arrays (:mod:`graphrec.train` gathers what they draw); each writes its PNG
atomically and returns the matplotlib figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from graphrec.fs import atomic_write

__all__ = ["category_labels", "plot_curves", "plot_history", "plot_projection", "project_2d"]

MAX_POINTS = 20_000  # products drawn in the projection (a seeded sample beyond that)
MAX_COLOURS = 9  # categories coloured; the rest are grey "other"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path):
    """Write ``fig`` as a PNG atomically and release it from pyplot; returned for inspection."""
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    _pyplot().close(fig)
    return fig


def plot_history(history: list[dict[str, float]], path: Path, title: str, best_epoch: int | None = None):
    """Training loss and train/validation accuracy per epoch; ``best_epoch`` (the one the
    run kept) as a vertical line and a ring on its validation accuracy."""
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, [row["loss"] for row in history], marker="o")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss")
    right.plot(epochs, [row["train_accuracy"] for row in history], marker="o", label="train")
    right.plot(epochs, [row["val_accuracy"] for row in history], marker="o", label="validation")
    kept = [row for row in history if row["epoch"] == best_epoch]
    if kept:
        for ax in (left, right):
            ax.axvline(best_epoch, color="grey", linestyle=":", linewidth=1)
        right.scatter([best_epoch], [kept[0]["val_accuracy"]], s=140, facecolors="none", edgecolors="black", zorder=3,
                      label=f"kept: epoch {best_epoch}")
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy")
    right.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_curves(roc: tuple[np.ndarray, np.ndarray], pr: tuple[np.ndarray, np.ndarray], path: Path, title: str,
                auc: float | None = None, pr_auc: float | None = None):
    """ROC (false against true positive rate) and precision-recall curves side by side."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    left.plot(*roc, label="model" if auc is None else f"model, AUC {auc:.4f}")
    left.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    left.set_xlabel("false positive rate")
    left.set_ylabel("true positive rate")
    left.set_title("ROC")
    right.plot(*pr, label="model" if pr_auc is None else f"model, area {pr_auc:.4f}")
    right.set_xlabel("recall")
    right.set_ylabel("precision")
    right.set_title("precision-recall")
    for ax in (left, right):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize="small", loc="lower right" if ax is left else "lower left")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def project_2d(vectors: np.ndarray) -> np.ndarray:
    """``[n, K]`` -> ``[n, 2]``: the two principal components (K = 1 gets a zero second axis)."""
    centred = np.asarray(vectors, dtype=np.float64) - np.mean(vectors, axis=0)
    if centred.shape[1] == 1:
        return np.c_[centred, np.zeros(len(centred))]
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    return centred @ components[:2].T


def category_labels(paths: Sequence[str | None]) -> tuple[list[str], int]:
    """Per product, its category at the first level where the products differ (all the
    sample's products are "Clothing, Shoes & Jewelry", so that level is Men / Women), and
    that level (0 = top). Products without a category are "(none)"."""
    split = [str(path).split("|") if isinstance(path, str) and path else [] for path in paths]
    depth = 0
    while True:
        names = {parts[depth] for parts in split if len(parts) > depth}
        if len(names) != 1 or all(len(parts) <= depth + 1 for parts in split if parts):
            break
        depth += 1
    return [parts[depth] if len(parts) > depth else "(none)" for parts in split], depth


def plot_projection(points: np.ndarray, labels: Sequence[str], path: Path, title: str):
    """The 2-D ``points`` as a scatter, one colour per label (the most common ones; the rest grey)."""
    plt = _pyplot()
    names, counts = np.unique(np.asarray(labels, dtype=object).astype(str), return_counts=True)
    shown = [name for _, name in sorted(zip(-counts, names))][:MAX_COLOURS]
    fig, ax = plt.subplots(figsize=(6.5, 5))
    labels = np.asarray(labels, dtype=object).astype(str)
    rest = ~np.isin(labels, shown)
    if rest.any():
        ax.scatter(points[rest, 0], points[rest, 1], s=4, color="lightgrey", label="other")
    for name in shown:
        mask = labels == name
        ax.scatter(points[mask, 0], points[mask, 1], s=4, alpha=0.7, label=f"{name} ({mask.sum():,})")
    ax.set_xlabel("first principal component")
    ax.set_ylabel("second principal component")
    ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small", markerscale=3)
    fig.tight_layout()
    return _save(fig, path)
