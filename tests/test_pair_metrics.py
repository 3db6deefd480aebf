"""Pair metrics against hand-computed values, the F1 tie rule, and the --val-pairs split / pair evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graphrec.errors import DataError
from graphrec.graph import Graph
from graphrec.io.pairs import read_pairs
from graphrec.metrics import pair_metrics, precision_recall_points, rank_cut
from graphrec.pairs import evaluate_pairs, format_pair_metrics, split_from_pairs
from graphrec.sampling import fresh_negatives, pair_keys


def test_metrics_match_hand_computed_values():
    # positives 0.9, 0.7; negatives 0.8, 0.6
    m = pair_metrics(torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([1, 0, 1, 0]), threshold=0.65)
    assert m["roc_auc"] == pytest.approx(3 / 4)  # 3 of the 4 (positive, negative) pairs ordered right
    # PR points (0,1) (.5,1) (.5,.5) (1,2/3) (1,.5): area .5 + 0 + .5 * (.5 + 2/3) / 2 + 0
    assert m["pr_auc"] == pytest.approx(0.5 + 0.25 * (0.5 + 2 / 3))
    assert m["average_precision"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert m["f1"] == pytest.approx(0.5)  # top 2 = 0.9 (edge), 0.8 (non-edge)
    assert m["accuracy"] == pytest.approx(3 / 4)  # > 0.65: 0.9, 0.8, 0.7 called edges
    assert (m["pairs"], m["positives"], m["threshold_ties"]) == (4, 2, 1)


def test_curve_has_one_point_per_distinct_score_and_starts_at_recall_zero():
    recall, precision = precision_recall_points(torch.tensor([3.0, 3.0, 1.0]), torch.tensor([1, 0, 1]))
    assert recall.tolist() == [0.0, 0.5, 1.0]
    assert precision.tolist() == pytest.approx([1.0, 0.5, 2 / 3])


def test_ties_count_one_half_in_roc_auc_and_form_one_pr_step():
    m = pair_metrics(torch.tensor([1.0, 1.0, 1.0, 0.0]), torch.tensor([1, 1, 0, 0]))
    assert m["roc_auc"] == pytest.approx(3 / 4)
    assert m["pr_auc"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["average_precision"] == pytest.approx(2 / 3)


def test_f1_calls_exactly_n_pairs_edges_ties_broken_by_seed_not_position():
    scores = torch.ones(10)  # every pair tied, positives first as in GATNE's files
    labels = torch.tensor([1] * 5 + [0] * 5)
    m = pair_metrics(scores, labels)
    assert m["threshold_ties"] == 10
    assert m["f1_ties_positive"] == pytest.approx(2 * 5 / (10 + 5))  # GATNE's literal rule: all 10 called edges
    assert m["f1"] < 1.0  # ties are not resolved in favour of the file's order
    assert pair_metrics(scores, labels)["f1"] == m["f1"]  # deterministic
    cut = rank_cut(scores, 5)
    assert int(cut.sum()) == 5 and torch.equal(cut, rank_cut(scores, 5))
    strict = pair_metrics(torch.tensor([0.9, 0.8, 0.7, 0.1]), torch.tensor([1, 1, 0, 0]))
    assert (strict["f1"], strict["f1_ties_positive"], strict["threshold_ties"]) == (1.0, 1.0, 1)


def test_one_class_and_empty_inputs_give_nan_not_errors():
    m = pair_metrics(torch.tensor([0.2, 0.4]), torch.tensor([1, 1]))
    assert math.isnan(m["roc_auc"]) and m["f1"] == 1.0
    assert pair_metrics(torch.empty(0), torch.empty(0))["pairs"] == 0


# --------------------------------------------------------------------------- splits and pair files


def ring_graph(n: int = 40) -> Graph:
    """Products p0..p{n-1}; also_bought edges i - i+1 and i - i+2 (mod n)."""
    src = np.r_[np.arange(n), np.arange(n)]
    dst = np.r_[(np.arange(n) + 1) % n, (np.arange(n) + 2) % n]
    return Graph.from_arrays([f"p{i}" for i in range(n)], {"also_bought": np.stack([src, dst])})


def pair_file(tmp_path, lines):
    path = tmp_path / "pairs.txt"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_val_pairs_split_trains_on_every_edge_and_keeps_validation_out_of_negatives(tmp_path):
    graph = ring_graph()
    lines = [f"1 p{i} p{(i + 3) % 40} 1" for i in range(0, 40, 2)] + [f"1 p{i} p{(i + 7) % 40} 0" for i in range(40)]
    lines += ["1 p1 p2 1", "1 p1 zz 1", "2 p1 p9 1"]  # a training edge, an unknown product, another relation
    split, counts = split_from_pairs(graph, "also_bought", read_pairs(pair_file(tmp_path, lines), "also_bought"), seed=3)
    edges = pair_keys(graph.edge_index("also_bought").t(), 40)
    train = pair_keys(split.train_positives, 40)
    assert set(train.tolist()) == set(edges.tolist())  # every edge, nothing else
    val_keys = set(pair_keys(split.val_pairs, 40).tolist())
    negatives = pair_keys(split.train_pairs[split.train_labels < 0.5], 40)
    assert not val_keys & set(negatives.tolist())
    for seed in range(5):  # per-epoch fresh negatives avoid them too
        fresh = fresh_negatives(split, 80, torch.Generator().manual_seed(seed))
        assert not val_keys & set(pair_keys(fresh, 40).tolist())
    assert counts == {"val_pairs": 61, "val_unknown_pairs": 1, "val_self_pairs": 0, "val_training_edges": 1}
    assert len(split.test_pairs) == 0


def test_val_pairs_split_refuses_a_file_with_no_usable_pairs(tmp_path):
    with pytest.raises(DataError, match="no validation pairs"):
        split_from_pairs(ring_graph(), "also_bought", read_pairs(pair_file(tmp_path, ["1 x y 1", "1 p1 q 0"]), "also_bought"))


class DistanceModel:
    """P(edge) = 1 / (1 + ring distance): a stand-in for a trained run."""

    def predict_proba(self, inputs, pairs):
        gap = (pairs[:, 0] - pairs[:, 1]).abs()
        gap = torch.minimum(gap, inputs.num_nodes - gap)
        return 1.0 / (1.0 + gap.float())


def test_evaluate_pairs_scores_unknown_products_counts_them_and_removes_training_edges(tmp_path):
    graph = ring_graph()
    lines = ["1 p0 p1 1", "1 p5 p3 1", "1 p0 p3 1", "1 p0 new 1", "1 p0 p20 0", "1 p4 p30 0", "1 new p9 0"]
    result = evaluate_pairs(DistanceModel(), graph, pair_file(tmp_path, lines), "also_bought", graph.edge_index("also_bought"))
    assert (result["unknown_pairs"], result["unknown_ids"]) == (2, 1)
    assert result["all"]["pairs"] == 7  # unknown pairs are scored (at the prior), not dropped
    assert result["training_edges_removed"] == {"positives": 2, "negatives": 0}  # p0-p1 and p3-p5 (listed reversed)
    assert result["without_training_edges"]["pairs"] == 5 and result["without_training_edges"]["positives"] == 2
    # left: positives p0p3 (1/4) and p0-new (prior 1/2); negatives p0p20 (1/21), p4p30 (1/15), new-p9 (1/2)
    assert result["without_training_edges"]["roc_auc"] == pytest.approx((2 + 2.5) / 6)
    assert result["all"]["accuracy"] == pytest.approx(3 / 7)  # no pair has P > 0.5: the 3 non-edges are right
    views = {view for view, _, _ in format_pair_metrics(result)}
    assert views == {"all pairs", "training edges removed"}
