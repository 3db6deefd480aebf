"""graphrec train / evaluate / sweep end to end on a tiny GRAPH_DIR."""

from __future__ import annotations

import json

from test_train import easy_graph, write_graph_dir
from typer.testing import CliRunner

from graphrec.cli import app

runner = CliRunner()


def test_train_evaluate_sweep_end_to_end(tmp_path):
    graph_dir = write_graph_dir(easy_graph(n=120), tmp_path / "graph")
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", "--graph", str(graph_dir), "--decoder", "mahalanobis", "--k", "2", "--epochs", "6",
                                 "--batch-size", "256", "--lr", "0.02", "--negatives", "2", "--weight-decay", "1e-3,0.3",
                                 "--preprocessing", "max", "-o", str(run_dir)])
    assert result.exit_code == 0, result.output
    config = json.loads((run_dir / "config.json").read_text())
    assert config["negatives"] == 2 and config["weight_decay"] == [1e-3, 0.3] and config["preprocessing"] == "max"
    assert "weight decays 0.001, 0.3, trained together" in result.output and "chose weight decay" in result.output
    assert "validation accuracy by weight decay: 0.001 " in result.output
    assert "epoch   1" in result.output and "hit@10" in result.output and "run written to" in result.output
    saved = json.loads((run_dir / "metrics.json").read_text())

    result = runner.invoke(app, ["evaluate", str(run_dir), "--json", "--pictures", str(tmp_path / "pairs.png")])
    assert result.exit_code == 0, result.output
    recomputed = json.loads(result.stdout)
    assert recomputed["test"]["accuracy"] == saved["test"]["accuracy"]
    assert recomputed["test"]["hit@10"] == saved["test"]["hit@10"]
    assert (tmp_path / "pairs.png").stat().st_size > 0

    out = tmp_path / "sweep"
    result = runner.invoke(app, ["sweep", "--graph", str(graph_dir), "--k", "1", "2", "--decoder", "mahalanobis", "euclidean",
                                 "--epochs", "3", "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    lines = (out / "sweep.csv").read_text().splitlines()
    assert lines[0].startswith("decoder,k,accuracy,auc,hit@10")
    assert [line.split(",")[:2] for line in lines[1:]] == [["mahalanobis", "1"], ["mahalanobis", "2"], ["euclidean", ""]]
    assert (out / "sweep.md").read_text().startswith("| decoder | k |")
    assert (out / "accuracy_vs_k.png").stat().st_size > 0


def test_bad_options_give_one_line_errors(tmp_path):
    graph_dir = write_graph_dir(easy_graph(n=60), tmp_path / "graph")
    result = runner.invoke(app, ["train", "--graph", str(graph_dir), "--decoder", "svm", "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "unknown decoder 'svm'" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["train", "--graph", str(graph_dir), "--k", "99", "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "larger than the feature dimension" in result.output
    result = runner.invoke(app, ["train", "--graph", str(tmp_path / "nowhere"), "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "not a graph directory" in result.output
    result = runner.invoke(app, ["train", "--graph", str(graph_dir), "--negatives", "0", "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--negatives must be at least 1" in result.output
    result = runner.invoke(app, ["train", "--graph", str(graph_dir), "--weight-decay", "1e-3,lots", "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--weight-decay takes numbers" in result.output
    result = runner.invoke(app, ["train", "--graph", str(graph_dir), "--preprocessing", "log", "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "unknown preprocessing 'log'" in result.output
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "not a run directory" in result.output
    result = runner.invoke(app, ["sweep", "--graph", str(graph_dir), "--k", "1", "banana"])
    assert result.exit_code == 2 and "neither a K nor a decoder" in result.output
