"""Metrics on hand-made cases."""

from __future__ import annotations

import math

import pytest
import torch

from graphrec.evaluate import binary_metrics, rank_candidates, ranking_metrics, roc_auc
from graphrec.train import best_offset


def test_roc_auc_hand_cases():
    labels = torch.tensor([1, 1, 0, 0])
    assert roc_auc(torch.tensor([0.9, 0.8, 0.2, 0.1]), labels) == 1.0
    assert roc_auc(torch.tensor([0.1, 0.2, 0.8, 0.9]), labels) == 0.0
    assert roc_auc(torch.tensor([0.5, 0.5, 0.5, 0.5]), labels) == 0.5
    assert roc_auc(torch.tensor([0.9, 0.3, 0.5, 0.1]), labels) == 0.75
    assert math.isnan(roc_auc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1])))


def test_accuracy_predicts_an_edge_above_one_half():
    metrics = binary_metrics(torch.tensor([0.9, 0.5, 0.51, 0.2]), torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert metrics["accuracy"] == 0.5  # 0.5 is not an edge (wrong here), 0.51 is (wrong too)
    assert metrics["pairs"] == 4


def test_ranking_metrics_hand_cases():
    mask = torch.ones(3, 12, dtype=torch.bool)
    scores = torch.linspace(1, 0, 12).repeat(3, 1)  # slot s ranks s + 1
    relevant = torch.zeros(3, 12, dtype=torch.bool)
    relevant[0, 0] = True  # rank 1
    relevant[1, 2] = True  # rank 3
    relevant[2, 10] = True  # rank 11
    per_query = [ranking_metrics(scores[q : q + 1], relevant[q : q + 1], mask[q : q + 1]) for q in range(3)]
    assert [m["hit@10"] for m in per_query] == [1.0, 1.0, 0.0]
    assert [m["mrr"] for m in per_query] == pytest.approx([1.0, 1 / 3, 1 / 11])
    assert [m["ndcg@10"] for m in per_query] == pytest.approx([1.0, 0.5, 0.0])
    both = ranking_metrics(scores, relevant, mask)
    assert both["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 11) / 3) and both["queries"] == 3


def test_two_partners_ndcg_and_padding_never_count():
    scores = torch.tensor([[0.9, 0.1, 0.8, 0.0]])
    relevant = torch.tensor([[True, False, True, False]])
    mask = torch.tensor([[True, True, True, False]])
    metrics = ranking_metrics(scores, relevant, mask)
    assert metrics["ndcg@10"] == pytest.approx(1.0) and metrics["mrr"] == 1.0
    order = rank_candidates(scores, mask)
    assert order[0, -1].item() == 3  # the padding slot sorts last


def test_ties_do_not_favour_partners():
    scores = torch.zeros(200, 11)
    relevant = torch.zeros(200, 11, dtype=torch.bool)
    relevant[:, 0] = True  # the partner is always the first slot
    metrics = ranking_metrics(scores, relevant, torch.ones_like(relevant))
    assert 0.2 < metrics["mrr"] < 0.4  # random rank among 11, not 1.0


def test_best_offset_chooses_the_accuracy_optimal_threshold():
    logits = torch.tensor([-3.0, -2.0, -1.0, -0.5, 0.5, 1.0])
    labels = torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    offset, accuracy = best_offset(logits, labels)
    assert accuracy == 1.0
    assert ((logits + offset > 0).float() == labels).all()
    assert -2.0 < -offset < -1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranking_metrics_are_pygs_link_prediction_metrics(seed):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch_geometric.metrics import LinkPredHitRatio, LinkPredMRR, LinkPredNDCG
    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand(60, 25, generator=generator).double()
    scores[:, ::6] = 0.5  # ties, ordered by the seeded shuffle
    mask = torch.rand(60, 25, generator=generator) < 0.9
    relevant = (torch.rand(60, 25, generator=generator) < 0.12) & mask
    relevant[4] = False  # a query without a partner does not count
    ours = ranking_metrics(scores, relevant, mask, k=10, seed=seed)
    order = rank_candidates(scores, mask, seed)
    ranked = torch.where(torch.gather(mask, 1, order), order, torch.full_like(order, 25))
    labels = torch.stack(relevant.nonzero(as_tuple=True))
    for key, metric in (("hit@10", LinkPredHitRatio(10)), ("mrr", LinkPredMRR(25)), ("ndcg@10", LinkPredNDCG(10))):
        metric.update(ranked, labels)
        assert ours[key] == pytest.approx(float(metric.compute()), abs=1e-7), key


def test_average_ranks_are_scipys_rankdata():
    import numpy as np
    from scipy.stats import rankdata

    from graphrec.evaluate import average_ranks

    rng = np.random.default_rng(0)
    for size in (0, 1, 2, 7, 50, 301):
        values = rng.integers(0, 9, size=size).astype(float)  # many ties
        assert np.array_equal(average_ranks(values), rankdata(values))
    assert math.isnan(roc_auc(torch.tensor([0.1, float("nan")]), torch.tensor([0, 1])))
