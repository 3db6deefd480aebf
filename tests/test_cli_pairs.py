"""`train --val-pairs` and `evaluate --pairs` end to end on a small generated graph."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_train import easy_graph, write_graph_dir
from typer.testing import CliRunner

from graphrec.cli import app
from graphrec.graph import Graph, load_graph
from graphrec.pairs import evaluate_run_pairs

runner = CliRunner()


@pytest.fixture(scope="module")
def gatne_style(tmp_path_factory):
    """A graph missing 60 of its edges, which become the positives of valid.txt / test.txt
    (with as many random non-edges), as in GATNE's files."""
    root = tmp_path_factory.mktemp("pairs")
    full = easy_graph(n=160, dim=16)
    edges = full.edge_index("also_bought").numpy()
    rng = np.random.default_rng(0)
    held = rng.permutation(edges.shape[1])[:60]
    kept = np.delete(edges, held, axis=1)
    asins = list(full.asins)
    graph = Graph.from_arrays(asins, {"also_bought": kept}, features=full.features, products=full.products)
    graph_dir = write_graph_dir(graph, root / "graph")
    linked = {tuple(e) for e in edges.T.tolist()}
    negatives = [(u, v) for u, v in rng.integers(0, 160, size=(400, 2)).tolist() if u < v and (u, v) not in linked][:60]
    files = {}
    for name, part in (("valid", slice(0, 30)), ("test", slice(30, 60))):
        lines = [f"1 {asins[u]} {asins[v]} 1" for u, v in edges[:, held[part]].T.tolist()]
        lines += [f"1 {asins[u]} {asins[v]} 0" for u, v in negatives[part]]
        files[name] = root / f"{name}.txt"
        files[name].write_text("\n".join(lines) + "\n")
    with open(files["test"], "a") as handle:  # a never-seen product, a training edge listed the other way round
        handle.write(f"1 {asins[0]} NEW0000001 1\n1 {asins[kept[1, 0]]} {asins[kept[0, 0]]} 1\n")
    run_dir = root / "run"
    result = runner.invoke(app, ["train", "--graph", str(graph_dir), "--k", "2", "--epochs", "6", "--weight-decay", "1e-3",
                                 "--val-pairs", str(files["valid"]), "-o", str(run_dir), "-q"])
    assert result.exit_code == 0, result.output
    return run_dir, files


def test_val_pairs_run_records_its_file_and_trains_on_every_edge(gatne_style):
    run_dir, files = gatne_style
    config = json.loads((run_dir / "config.json").read_text())
    assert config["val_pairs"] == str(files["valid"].resolve())
    assert config["val_pairs_counts"]["val_pairs"] == 60 and config["val_pairs_counts"]["val_unknown_pairs"] == 0
    assert config["split"]["val"] == 60 and config["split"]["test"] == 0
    edges = load_graph(run_dir.parent / "graph").edge_index("also_bought").shape[1]
    assert config["split"]["train"] == 2 * edges  # every edge of the graph, and as many non-edges


def test_evaluate_pairs_scores_every_pair_and_counts_the_unknown_ones(gatne_style):
    run_dir, files = gatne_style
    result = runner.invoke(app, ["evaluate", "--run", str(run_dir), "--pairs", str(files["test"]), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["all"]["pairs"] == 62 and report["unknown_pairs"] == 1 and report["unknown_ids"] == 1
    assert report["training_edges_removed"] == {"positives": 1, "negatives": 0}
    assert report["without_training_edges"]["pairs"] == 61
    assert report["all"]["roc_auc"] > 0.7  # the held-out edges join products of similar style
    table = runner.invoke(app, ["evaluate", str(run_dir), "--pairs", str(files["test"])])
    assert table.exit_code == 0 and "1 pairs name products the run never saw" in table.output


def test_a_val_pairs_run_reevaluates_on_its_own_split(gatne_style):
    run_dir, files = gatne_style
    result = runner.invoke(app, ["evaluate", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["val"]["pairs"] == 60
    run, report = evaluate_run_pairs(run_dir, files["valid"])
    assert report["all"]["pairs"] == 60 and report["training_edges_removed"]["positives"] == 0
