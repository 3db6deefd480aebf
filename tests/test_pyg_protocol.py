"""graphrec's protocol for one's own PyG model: the paper's split as RandomLinkSplit-shaped
Data (training edges only for message passing) and graphrec's metrics of its scores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import easy_graph, write_graph_dir

from graphrec.errors import UsageError
from graphrec.graph import load_graph
from graphrec.pyg import paper_split_data, score_pairs
from graphrec.sampling import pair_keys, split_pairs
from graphrec.train import train

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pyg")
    graph_dir = write_graph_dir(easy_graph(), root / "graph")
    run = train(graph_dir, decoder="mahalanobis", k=2, epochs=8, lr=0.02, batch_size=256, seed=3, out_dir=root / "run", quiet=True)
    return graph_dir, run


def test_the_parts_hold_the_papers_pairs_and_pass_messages_over_training_edges_only(trained):
    graph_dir, _ = trained
    graph = load_graph(graph_dir)
    parts = paper_split_data(graph, seed=3)
    split = split_pairs(graph, seed=3)
    expected = [(split.train_pairs, split.train_labels), (split.val_pairs, split.val_labels), (split.test_pairs, split.test_labels)]
    for data, (pairs, labels) in zip(parts, expected):
        assert torch.equal(data.edge_label_index, pairs.t()) and torch.equal(data.edge_label, labels.float())
        assert torch.equal(data.edge_index, parts[0].edge_index) and data.asin[5] == graph.asins[5]
    passed = pair_keys(parts[0].edge_index.t(), graph.num_nodes)
    for data in parts[1:]:
        held_out = data.edge_label_index.t()[data.edge_label > 0.5]
        both = torch.cat([held_out, held_out.flip(1)])
        assert not torch.isin(pair_keys(both, graph.num_nodes), passed).any()  # no validation or test edge is visible
    assert parts[0].edge_index.shape[1] == 2 * int((split.train_labels > 0.5).sum())
    assert np.shares_memory(parts[0].x.numpy(), np.asarray(graph.features))  # the memory map, not a copy


def test_scoring_a_graphrec_model_this_way_gives_its_own_test_metrics(trained):
    _, run = trained
    test = paper_split_data(run.graph, seed=3)[2]
    probs = run.model.predict_proba(run.inputs, test.edge_label_index.t())
    scored = score_pairs(probs, test)
    assert scored["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])
    assert scored["auc"] == pytest.approx(run.metrics["test"]["auc"])
    assert 0 < scored["pr_auc"] <= 1 and 0 < scored["f1"] <= 1


def test_scores_of_the_wrong_length_or_not_probabilities_are_refused(trained):
    _, run = trained
    test = paper_split_data(run.graph, seed=3)[2]
    with pytest.raises(UsageError, match="probabilities for"):
        score_pairs(torch.rand(3), test)
    with pytest.raises(UsageError, match="apply a sigmoid"):
        score_pairs(torch.randn(len(test.edge_label)) * 5, test)


def test_the_lightgcn_example_runs(trained):
    graph_dir, _ = trained
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "pyg_lightgcn.py"), str(graph_dir), "--epochs", "3", "--dim", "8"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "PyG LightGCN, 3 epochs" in result.stdout and "test accuracy 0." in result.stdout
