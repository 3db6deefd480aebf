"""What a recommender user reaches for around a trained run: output files that follow the
umask, ``graphrec info RUN_DIR``, ``graphrec runs DIR``, ``graphrec export``, ``--json`` of
train and evaluate, and one-line ``repr()`` of Graph, Run and Recommender."""

from __future__ import annotations

import os
import stat

import pytest
from test_cli_neighbours import write_catalogue
from typer.testing import CliRunner

from graphrec.fs import default_mode, write_text_atomic
from graphrec.graph.builddir import staging

runner = CliRunner()


@pytest.fixture
def umask():
    """``umask(value)`` sets the process umask for the test; the old one comes back after."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny GRAPH_DIR (24 products, 16-d features) and a mahalanobis K = 4 run trained on it."""
    from graphrec.train import train

    root = tmp_path_factory.mktemp("tools")
    _, graph_dir = write_catalogue(root)
    run = train(graph_dir, decoder="mahalanobis", k=4, epochs=3, out_dir=root / "runs" / "k4", quiet=True)
    return root, graph_dir, run


# --- 1. outputs follow the umask ---------------------------------------------------------


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_get_the_mode_of_an_ordinary_open(umask, tmp_path, mask, expected):
    umask(mask)
    assert default_mode() == expected
    assert _mode(write_text_atomic(tmp_path / "a.txt", "x")) == expected


def test_a_writer_that_makes_a_private_file_still_gives_the_umask_mode(umask, tmp_path):
    from graphrec.fs import atomic_write

    umask(0o022)

    def private(tmp):
        tmp.write_text("secret?")
        os.chmod(tmp, 0o600)  # what tempfile.mkstemp gives

    assert _mode(atomic_write(tmp_path / "b.txt", private)) == 0o644


def test_a_picture_is_0644_under_umask_022(umask, tmp_path):
    from graphrec.picture import Tile, render_grid

    umask(0o022)
    out = render_grid([Tile(None, "A000000001", "a title", label="query")], tmp_path / "grid.png")
    assert _mode(out) == 0o644


@pytest.mark.parametrize("mask, expected", [(0o022, 0o755), (0o027, 0o750)])
def test_a_built_directory_follows_the_umask(umask, tmp_path, mask, expected):
    umask(mask)
    with staging(tmp_path / "graph", force=False) as tmp:
        (tmp / "manifest.json").write_text("{}")
    assert _mode(tmp_path / "graph") == expected


# --- 2. info RUN_DIR and runs DIR ----------------------------------------------------------


def test_info_summarises_a_run_from_its_files(trained):
    from graphrec.cli import app

    root, graph_dir, run = trained
    result = runner.invoke(app, ["info", str(run.path), "--json"])
    assert result.exit_code == 0, result.output
    summary = __import__("json").loads(result.output)
    assert summary["decoder"] == "mahalanobis" and summary["k"] == 4 and summary["graph_found"] is True
    assert summary["products"] == 24 and summary["epochs_run"] == 3
    assert summary["test"]["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])
    text = runner.invoke(app, ["info", str(run.path)])
    assert text.exit_code == 0 and "test accuracy" in text.output and "mahalanobis" in text.output


def test_info_of_a_graph_dir_still_describes_the_graph(trained):
    from graphrec.cli import app

    _, graph_dir, _ = trained
    result = runner.invoke(app, ["info", str(graph_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert __import__("json").loads(result.output)["num_nodes"] == 24


def test_runs_lists_every_run_best_first_and_reports_a_damaged_one(trained, tmp_path):
    import shutil

    from graphrec.cli import app

    root, _, run = trained
    folder = tmp_path / "many"
    shutil.copytree(run.path, folder / "a" / "k4")
    shutil.copytree(run.path, folder / "b")
    metrics = __import__("json").loads((folder / "b" / "metrics.json").read_text())
    metrics["test"]["accuracy"] = 0.999
    (folder / "b" / "metrics.json").write_text(__import__("json").dumps(metrics))
    shutil.copytree(run.path, folder / "broken")
    (folder / "broken" / "config.json").write_text("{not json")
    (folder / ".hidden.partial").mkdir()
    rows = __import__("json").loads(runner.invoke(app, ["runs", str(folder), "--json"]).output)
    assert [row["run"] for row in rows[:2]] == [str(folder / "b"), str(folder / "a" / "k4")]
    assert "error" in rows[2] and rows[2]["run"] == str(folder / "broken")
    table = runner.invoke(app, ["runs", str(folder)])
    assert table.exit_code == 0 and "3 runs under" in table.output and "0.9990" in table.output


def test_runs_of_a_missing_folder_is_a_one_line_error(tmp_path):
    from graphrec.cli import app

    result = runner.invoke(app, ["runs", str(tmp_path / "nope")])
    assert result.exit_code != 0 and "is not a directory" in result.output


# --- 3. output that reads in logs ------------------------------------------------------------


def test_tables_are_never_cut_when_stdout_is_not_a_terminal(trained, tmp_path):
    """A pipe (as in nohup, CI or `| tee`) gets every long path and metric in full."""
    import shutil
    import subprocess
    import sys

    root, _, run = trained
    deep = tmp_path / ("a-folder-with-a-long-name-" * 4) / "run-with-a-long-name"
    shutil.copytree(run.path, deep)
    env = {**os.environ, "PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[1])}
    env.pop("COLUMNS", None)
    out = subprocess.run([sys.executable, "-m", "graphrec", "runs", str(tmp_path)], capture_output=True, text=True, env=env, check=True).stdout
    assert str(deep) in out and "…" not in out and "mahalanobis" in out


# --- 4. --json of train and sweep -------------------------------------------------------------


def test_train_json_prints_only_json_on_stdout(trained, tmp_path):
    import json

    from graphrec.cli import app

    _, graph_dir, _ = trained
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "-g", str(graph_dir), "--k", "4", "--epochs", "2", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["run"] == str(out) and 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert "epoch   1" in result.stderr and "elapsed" in result.stderr


def test_sweep_json_gives_one_object_per_run(trained, tmp_path):
    import json

    from graphrec.cli import app

    _, graph_dir, _ = trained
    result = runner.invoke(app, ["sweep", "-g", str(graph_dir), "--k", "2", "4", "--decoder", "mahalanobis",
                                 "--epochs", "1", "-o", str(tmp_path / "sweep"), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(row["decoder"], row["k"]) for row in rows] == [("mahalanobis", 2), ("mahalanobis", 4)]


# --- 5. export ---------------------------------------------------------------------------------


def test_export_vectors_writes_the_style_space_of_every_product(trained, tmp_path):
    import numpy as np
    import pandas as pd

    from graphrec.cli import app
    from graphrec.recommend import Recommender

    _, _, run = trained
    for name in ("v.parquet", "v.csv"):
        result = runner.invoke(app, ["export", str(run.path), "-o", str(tmp_path / name), "-q"])
        assert result.exit_code == 0, result.output
        table = pd.read_parquet(tmp_path / name) if name.endswith("parquet") else pd.read_csv(tmp_path / name)
        rec = Recommender.load(run.path)
        assert list(table.columns) == ["asin", "s0", "s1", "s2", "s3"]
        assert table["asin"].tolist() == list(rec.graph.asins)
        np.testing.assert_allclose(table[["s0", "s1", "s2", "s3"]].to_numpy(), rec.style, rtol=1e-6, atol=1e-6)


def test_export_neighbours_gives_the_same_rows_as_neighbours(trained, tmp_path, monkeypatch):
    import pandas as pd

    import graphrec.export as export
    from graphrec.cli import app
    from graphrec.recommend import Recommender

    _, _, run = trained
    monkeypatch.setattr(export, "CHUNK", 5)  # several row groups / CSV members
    for name in ("n.parquet", "n.csv.gz"):
        out = tmp_path / name
        result = runner.invoke(app, ["export", "--run", str(run.path), "--what", "neighbours", "--top", "3", "-o", str(out), "-q"])
        assert result.exit_code == 0, result.output
        table = pd.read_parquet(out) if name.endswith("parquet") else pd.read_csv(out)
        assert len(table) == 24 * 3 and table["query"].nunique() == 24
        one = Recommender.load(run.path).neighbours("A000000007", top=3)
        mine = table[table["query"] == "A000000007"]
        assert mine["asin"].tolist() == one["asin"].tolist() and mine["rank"].tolist() == [1, 2, 3]


@pytest.mark.parametrize("args, message", [
    (["-o", "out.txt"], "name the output file .parquet, .csv or .csv.gz"),
    (["--what", "pictures"], "unknown export 'pictures'"),
])
def test_export_refuses_what_it_cannot_write(trained, tmp_path, args, message):
    from graphrec.cli import app

    _, _, run = trained
    result = runner.invoke(app, ["export", str(run.path), *[str(tmp_path / a) if a.endswith(".txt") else a for a in args]])
    assert result.exit_code != 0 and message in result.output
    assert not (tmp_path / "out.txt").exists()


# --- 6. notebook reprs ----------------------------------------------------------------------------


def test_graph_run_and_recommender_have_one_line_reprs(trained):
    from graphrec.recommend import Recommender

    _, _, run = trained
    rec = Recommender.load(run.path)
    for text in (repr(rec.graph), repr(rec.run), repr(rec)):
        assert "\n" not in text and len(text) < 400
    assert repr(rec.graph).startswith("Graph(") and "24 products" in repr(rec.graph) and "24x16" in repr(rec.graph)
    assert "mahalanobis/linear K=4 on also_bought" in repr(rec.run) and "test accuracy" in repr(rec.run)
    assert repr(rec).startswith("Recommender(Run(") and "index flat" in repr(rec)
