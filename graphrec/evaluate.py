"""Metrics for a trained link model: accuracy at P > 0.5, ROC-AUC, and ranking metrics
(hit@10, MRR, NDCG@10) over candidate sets of hard (nearest-neighbour) and random
negatives. :func:`evaluate_run` recomputes everything for a RUN_DIR.

Ranking: each test query's candidates are scored with the model's ``predict_proba``
and sorted; ties are broken by a seeded shuffle, so a model that gives every candidate
the same score ranks its partners at random rather than first.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from graphrec.errors import UsageError
from graphrec.fs import progress_bar
from graphrec.graph import Graph
from graphrec.inputs import node_inputs
from graphrec.models.base import LinkModel
from graphrec.models.inputs import NodeInputs
from graphrec.pairs import split_from_file
from graphrec.runs import Run, load_run
from graphrec.sampling import CandidateSets, PairSplit, knn_candidates, query_partners, random_candidates, split_pairs

__all__ = [
    "RANK_K",
    "require_finite_metrics",
    "binary_metrics",
    "roc_auc",
    "ranking_metrics",
    "rank_candidates",
    "evaluate_model",
    "warm_pairs",
    "evaluate_run",
    "run_split",
    "format_metrics",
    "confident_examples",
    "write_pictures",
]

RANK_K = 10


def roc_auc(scores: Tensor, labels: Tensor) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count one half); NaN with one class."""
    labels = labels.bool()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    values = scores.double().numpy()
    if np.isnan(values).any():
        return float("nan")
    ranks = torch.from_numpy(average_ranks(values))
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing the mean of their positions (``scipy.stats.rankdata``'s
    default, without importing scipy.stats: 0.6 s)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]] if len(values) else np.zeros(0, dtype=bool)
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = ((first + 1 + last) / 2.0)[np.cumsum(starts) - 1]
    return ranks


def binary_metrics(probs: Tensor, labels: Tensor) -> dict[str, float]:
    """Accuracy (edge predicted when P > 0.5), ROC-AUC and mean log-loss."""
    probs, labels = probs.double(), labels.double()
    accuracy = float(((probs > 0.5).double() == labels).double().mean()) if len(labels) else float("nan")
    clipped = probs.clamp(1e-7, 1 - 1e-7)
    loss = float(-(labels * clipped.log() + (1 - labels) * (1 - clipped).log()).mean()) if len(labels) else float("nan")
    return {"accuracy": accuracy, "auc": roc_auc(probs, labels), "log_loss": loss, "pairs": int(len(labels))}


def rank_candidates(scores: Tensor, mask: Tensor, seed: int = 0) -> Tensor:
    """Slot order ``[Q, L]`` by descending score (padding last, ties shuffled by ``seed``)."""
    generator = torch.Generator().manual_seed(seed)
    jitter = torch.rand(scores.shape, generator=generator)
    scores = torch.where(mask, scores.double(), torch.tensor(float("-inf"), dtype=torch.float64))
    order = torch.argsort(jitter, dim=1)  # random permutation per row, then a stable sort
    by_score = torch.argsort(torch.gather(scores, 1, order), dim=1, descending=True, stable=True)
    return torch.gather(order, 1, by_score)


def ranking_metrics(scores: Tensor, relevant: Tensor, mask: Tensor, k: int = RANK_K, seed: int = 0) -> dict[str, float]:
    """hit@k, MRR and NDCG@k for ``scores`` ``[Q, L]`` (higher = more likely a partner),
    ``relevant`` ``[Q, L]`` marking true partners and ``mask`` marking real slots, averaged
    over the queries that have a partner. The definitions (and float32 arithmetic) of PyG's
    ``LinkPredHitRatio``, ``LinkPredMRR`` (at the list length) and ``LinkPredNDCG``, which a
    test checks; written out because importing ``torch_geometric.metrics`` takes 1.5 s."""
    if scores.numel() == 0:
        return {f"hit@{k}": float("nan"), "mrr": float("nan"), f"ndcg@{k}": float("nan"), "queries": 0}
    order = rank_candidates(scores, mask, seed)
    dtype = torch.get_default_dtype()
    hits = (torch.gather(relevant, 1, order) & torch.gather(mask, 1, order)).to(dtype)  # relevance in rank order
    count = relevant.sum(1)
    ranks = torch.arange(1, hits.shape[1] + 1, dtype=dtype)
    discount = torch.arange(2, k + 2, dtype=dtype).log2()
    ideal = torch.cat([torch.zeros(1, dtype=dtype), torch.cumsum(1.0 / discount, 0)])[count.clamp(max=k)]
    ndcg = (hits[:, :k] / discount[: min(k, hits.shape[1])]).sum(1) / ideal
    ndcg[ndcg.isnan() | ndcg.isinf()] = 0.0
    per_query = {f"hit@{k}": hits[:, :k].amax(1), "mrr": (hits / ranks).amax(1), f"ndcg@{k}": ndcg}
    queries = max(int((count > 0).sum()), 1)
    out = {key: float(values.sum() / queries) for key, values in per_query.items()}
    out["queries"] = int(scores.shape[0])
    return out


def _score_sets(model: LinkModel, inputs: NodeInputs, sets: CandidateSets) -> tuple[Tensor, Tensor]:
    pairs, mask = sets.pairs()
    scores = torch.zeros(sets.candidates.shape, dtype=torch.float64)
    if len(pairs):
        scores[mask] = model.predict_proba(inputs, pairs).double()
    return scores, mask


def evaluate_model(
    model: LinkModel,
    graph: Graph,
    split: PairSplit,
    candidates: int = 100,
    max_queries: int | None = 1000,
    seed: int = 0,
    inputs: NodeInputs | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Validation and test metrics of ``model`` under ``split`` (``inputs``: the graph's
    model inputs when already built); a progress bar of its four stages unless ``quiet``.

    Returns ``{"val": {...}, "test": {accuracy, auc, log_loss, hit@10, mrr, ndcg@10},
    "test_random_candidates": {hit@10, mrr, ndcg@10}, "test_warm": {...}, "test_cold": {...}}``
    (warm: test pairs whose two products have training edges, :func:`warm_pairs`); the KNN
    (hard-negative) ranking metrics are None when the graph has no features.
    """
    model.eval()
    inputs = inputs if inputs is not None else node_inputs(graph)
    with progress_bar(quiet=quiet) as progress:
        task = progress.add_task("evaluating: validation and test pairs", total=4)

        def step(next_stage: str) -> None:
            progress.update(task, advance=1, description=f"evaluating: {next_stage}")

        val = binary_metrics(model.predict_proba(inputs, split.val_pairs), split.val_labels)
        test_probs = model.predict_proba(inputs, split.test_pairs)
        test = binary_metrics(test_probs, split.test_labels)
        warm = warm_pairs(split, split.test_pairs)
        by_warmth = {"test_warm": binary_metrics(test_probs[warm], split.test_labels[warm]),
                     "test_cold": binary_metrics(test_probs[~warm], split.test_labels[~warm])}
        step("hard candidates (nearest neighbours in feature space)")
        queries, partners = query_partners(split, max_queries, seed)
        if graph.features is not None and len(queries):
            knn_sets = knn_candidates(graph, split, queries, partners, candidates)
            step("ranking the hard candidates")
            scores, mask = _score_sets(model, inputs, knn_sets)
            test.update(ranking_metrics(scores, knn_sets.relevant, mask, seed=seed))
        else:
            step("ranking")
            test.update({f"hit@{RANK_K}": None, "mrr": None, f"ndcg@{RANK_K}": None, "queries": 0})
        step("random candidates")
        random_sets = random_candidates(split, queries, partners, candidates, seed)
        scores, mask = _score_sets(model, inputs, random_sets)
        random_metrics = ranking_metrics(scores, random_sets.relevant, mask, seed=seed)
        step("done")
    return {"val": val, "test": test, "test_random_candidates": random_metrics, **by_warmth, "candidates": candidates}


def warm_pairs(split: PairSplit, pairs: Tensor) -> Tensor:
    """Bool ``[m]``: pairs whose two products both have a training edge of the split's
    relation ("warm"); the others are "cold" (at least one product never seen in an edge)."""
    seen = torch.zeros(split.num_nodes, dtype=torch.bool)
    seen[split.train_positives.reshape(-1)] = True
    return seen[pairs[:, 0]] & seen[pairs[:, 1]]


def evaluate_run(run_dir: str | Path, graph: Graph | str | Path | None = None, candidates: int | None = None,
                 max_queries: int | None = 1000, quiet: bool = True) -> tuple[Run, dict[str, Any]]:
    """Reload a RUN_DIR, rebuild its split (same relation and seed) and recompute its metrics
    (a progress bar on a terminal unless ``quiet``)."""
    if candidates is not None and candidates < 1:  # the same limit as train's
        raise UsageError(f"--candidates must be at least 1 (got {candidates}).")
    run = load_run(run_dir, graph)
    config = run.config
    split = run_split(run)
    metrics = evaluate_model(run.model, run.graph, split, candidates or int(config.get("candidates", 100)), max_queries,
                             int(config.get("seed", 0)), inputs=run.inputs, quiet=quiet)
    require_finite_metrics(metrics, f"the {config['decoder']} model of {run.path}", "its graph's features or its weights "
                           "are not finite numbers; rebuild the graph with graphrec build-graph --force and train the run again")
    metrics = {"decoder": config["decoder"], "k": config.get("k"), "relation": config.get("relation"), **metrics}
    return run, metrics


def require_finite_metrics(metrics: dict[str, Any], model: str, advice: str) -> None:
    """A :class:`UsageError` when a scored split's accuracy or log-loss is NaN or infinite:
    the model's predictions are not numbers, and such metrics are never reported or written."""
    for section, values in metrics.items():
        if isinstance(values, dict) and values.get("pairs") and not all(
                math.isfinite(values.get(key, 0.0)) for key in ("accuracy", "log_loss")):
            raise UsageError(f"{model} predicts NaN or infinite probabilities on the {section} pairs; {advice}.")


def run_split(run: Run) -> PairSplit:
    """The split a run was trained on: its paper split (relation and seed), or the
    ``--val-pairs`` split of its validation file."""
    relation, seed = run.config.get("relation", "also_bought"), int(run.config.get("seed", 0))
    if run.config.get("val_pairs"):
        return split_from_file(run.graph, relation, run.config["val_pairs"], seed, run.config.get("relation_names"))[0]
    return split_pairs(run.graph, relation, seed)


def confident_examples(run: Run, count: int = 6) -> dict[str, list[tuple[int, int, float]]]:
    """The test pairs the model is most sure are edges and truly are ("true_positives"),
    and the non-edges it scores highest ("hardest_negatives"): (i, j, P) triples."""
    split = split_pairs(run.graph, run.config.get("relation", "also_bought"), int(run.config.get("seed", 0)))
    probs = run.model.predict_proba(run.inputs, split.test_pairs)
    out = {}
    for key, label in (("true_positives", 1.0), ("hardest_negatives", 0.0)):
        pick = (split.test_labels == label).nonzero().squeeze(1)
        top = pick[torch.argsort(probs[pick], descending=True)[:count]]
        out[key] = [(int(split.test_pairs[t, 0]), int(split.test_pairs[t, 1]), float(probs[t])) for t in top]
    return out


def format_metrics(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(split, metric, value) rows for printing."""
    rows = []
    for section in ("val", "test", "test_random_candidates", "test_warm", "test_cold"):
        for key, value in (metrics.get(section) or {}).items():
            if key in ("pairs", "queries"):
                continue
            rows.append((section, key, "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.4f}"))
    return rows


def write_pictures(run: Run, out: str | Path, count: int = 6) -> Path:
    """A PNG of test pairs, two products a row: under the heading "edges", the most
    confident true positives; under "non-edges", the hardest negatives (the highest-scored
    random non-edges). Product images where the graph records them."""
    from graphrec.picture import Tile, render_grid

    products = run.graph.products

    def tile(node: int, prob: float | None, label: str | None) -> Tile:
        row = products.iloc[node]
        title = row.get("title") if "title" in products.columns else None
        image = row.get("image_path") if "image_path" in products.columns else None
        return Tile(image_path=image, asin=str(row["asin"]), title=title, probability=prob, label=label, framed=False)

    tiles, headings = [], {}
    examples = confident_examples(run, count)
    sections = (("true_positives", "edges, most confident"), ("hardest_negatives", "non-edges, highest scored"))
    for key, heading in sections:
        if examples[key]:
            headings[len(tiles) // 2] = heading
        for i, j, prob in examples[key]:
            tiles += [tile(i, prob, f"p = {prob:.3f}"), tile(j, None, "")]
    if not tiles:
        from graphrec.errors import DataError

        raise DataError(f"the run {run.path} has no test pairs to draw.")
    return render_grid(tiles, out, images_dir=run.graph.images_dir, columns=2, headings=headings)
