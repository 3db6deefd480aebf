"""graphrec sweep: every training option reaches every run, several seeds give a mean with
its spread, --resume keeps finished runs, and the picture fits the decoders it shows."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_train import easy_graph, write_graph_dir
from typer.testing import CliRunner

from graphrec.cli import app
from graphrec.sweep import plot_sweep

runner = CliRunner()


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory):
    return write_graph_dir(easy_graph(n=120), tmp_path_factory.mktemp("sweep") / "graph")


def _sweep(graph_dir, out, *extra):
    return runner.invoke(app, ["sweep", str(graph_dir), "--k", "2", "--decoder", "mahalanobis", "wnn", "--epochs", "2",
                               "-o", str(out), "--quiet", *extra])


def test_training_options_reach_every_run(graph_dir, tmp_path):
    result = _sweep(graph_dir, tmp_path / "s", "--weight-decay", "1e-3", "0.3", "--negatives", "2", "--lr", "0.02",
                    "--preprocessing", "max", "--candidates", "7", "--batch-size", "128")
    assert result.exit_code == 0, result.output
    maha = json.loads((tmp_path / "s" / "runs" / "mahalanobis-k2" / "config.json").read_text())
    assert maha["weight_decay"] == [1e-3, 0.3] and maha["negatives"] == 2 and maha["lr"] == 0.02
    assert maha["preprocessing"] == "max" and maha["candidates"] == 7 and maha["batch_size"] == 128
    wnn = json.loads((tmp_path / "s" / "runs" / "wnn" / "config.json").read_text())
    assert wnn["candidates"] == 7 and wnn["preprocessing"] != "max"  # the model's own options go to mahalanobis only


def test_seeds_report_the_mean_and_spread_of_their_runs(graph_dir, tmp_path):
    out = tmp_path / "s"
    result = runner.invoke(app, ["sweep", str(graph_dir), "--k", "2", "--decoder", "mahalanobis", "wnn", "--epochs", "2",
                                 "-o", str(out), "--seeds", "0", "1", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert "== [1/6] mahalanobis-k2-s0\n" in result.stderr and "== [6/6] wnn-s2, " in result.stderr  # progress with an estimate
    assert "s elapsed, about" in result.stderr and "== sweep of 6 runs done in" in result.stderr
    rows = {row["decoder"]: row for row in json.loads(result.stdout)}
    runs = pd.read_csv(out / "sweep_runs.csv")
    assert sorted(p.name for p in (out / "runs").iterdir()) == [f"{name}-s{s}" for name in ("mahalanobis-k2", "wnn") for s in range(3)]
    for decoder in ("mahalanobis", "wnn"):
        mine = runs[runs["decoder"] == decoder]
        assert sorted(mine["seed"]) == [0, 1, 2] and rows[decoder]["seeds"] == 3
        assert rows[decoder]["accuracy"] == pytest.approx(mine["accuracy"].mean())
        assert rows[decoder]["accuracy_std"] == pytest.approx(mine["accuracy"].std(ddof=1))
        assert rows[decoder]["auc_std"] == pytest.approx(mine["auc"].std(ddof=1))
    assert runs[runs["decoder"] == "mahalanobis"]["accuracy"].nunique() > 1  # the seeds really differ
    assert "accuracy_std" in (out / "sweep.md").read_text()


def test_an_earlier_sweep_stops_a_new_one_before_training_unless_resumed(graph_dir, tmp_path):
    out = tmp_path / "s"
    assert _sweep(graph_dir, out).exit_code == 0
    before = (out / "runs" / "wnn" / "metrics.json").read_bytes()
    again = _sweep(graph_dir, out, "--k", "2", "3")
    assert again.exit_code == 2 and "2 of the 3 runs of this sweep already exist" in again.output and "--resume" in again.output
    assert not (out / "runs" / "mahalanobis-k3").exists()
    resumed = runner.invoke(app, ["sweep", str(graph_dir), "--k", "2", "3", "--decoder", "mahalanobis", "wnn", "--epochs", "2",
                                  "-o", str(out), "--resume", "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert resumed.stderr.count("finished earlier, kept") == 2 and "== [2/3] mahalanobis-k3" in resumed.stderr
    assert (out / "runs" / "wnn" / "metrics.json").read_bytes() == before  # kept, not retrained
    assert [(row["decoder"], row["k"]) for row in json.loads(resumed.stdout)] == [("mahalanobis", 2), ("mahalanobis", 3), ("wnn", None)]


def test_resume_refuses_a_finished_run_of_other_settings_before_training(graph_dir, tmp_path):
    out = tmp_path / "s"
    assert _sweep(graph_dir, out).exit_code == 0
    other = _sweep(graph_dir, out, "--relation", "also_viewed", "--resume")
    assert other.exit_code == 2 and "holds a run of other settings (relation 'also_bought', not 'also_viewed')" in other.output
    assert _sweep(graph_dir, out, "--resume", "--force").exit_code == 2


def _styles(path, table, **kwargs):
    """(axes, line colours, line markers) of the plot that plot_sweep draws."""
    ax = plot_sweep(table, path, **kwargs).axes[0]
    return ax, [line.get_color() for line in ax.get_lines()], [line.get_marker() for line in ax.get_lines()]


def test_the_plot_gives_each_decoder_its_own_colour_and_marker_and_the_bayes_line(tmp_path):
    rows = [("mahalanobis", 1, 0.8), ("mahalanobis", 10, 0.9), ("fm", 1, 0.6), ("fm", 10, 0.62), ("wnn", None, 0.7)]
    table = pd.DataFrame(rows, columns=["decoder", "k", "accuracy"]).astype({"k": "Int64"})
    ax, colours, markers = _styles(tmp_path / "a.png", table, bayes=0.95)
    curves = [(c, m) for c, m in zip(colours, markers) if m not in ("None", None, "")]
    assert len(curves) == 2 and len(set(curves)) == 2 and curves[0][1] != curves[1][1]
    assert len(set(colours)) == 4  # two curves, the wnn line, the Bayes line
    assert any("Bayes limit 0.950" in text.get_text() for text in ax.get_legend().get_texts())
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["1", "10"]
    assert (tmp_path / "a.png").stat().st_size > 0


def test_the_plot_of_k_free_decoders_has_no_k_axis(tmp_path):
    table = pd.DataFrame([("wnn", None, 0.7), ("euclidean", None, 0.6)], columns=["decoder", "k", "accuracy"]).astype({"k": "Int64"})
    ax, _, _ = _styles(tmp_path / "b.png", table)
    assert ax.get_xlabel() == "decoder" and ax.get_xscale() == "linear" and "K" not in ax.get_title()
