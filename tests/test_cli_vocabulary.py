"""One vocabulary for the command line and the Python API behind it: ``--top`` / ``top=``
for result counts, ``-o/--out`` for outputs, the main input positionally or as an option,
list options with spaces or commas, ``-h``/``--debug``/``--version`` anywhere, and
suggestions for misspelt choices and ASINs."""

from __future__ import annotations

import json
import warnings

import pytest
from test_cli_neighbours import write_catalogue, write_run
from typer.testing import CliRunner

from graphrec.cli import app
from graphrec.errors import UsageError
from graphrec.recommend import Recommender, recommend

runner = CliRunner()


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """A 24-product GRAPH_DIR with 16-d features and a hand-made mahalanobis K = 4 run on it."""
    root = tmp_path_factory.mktemp("vocab")
    asins, graph_dir = write_catalogue(root)
    return asins, graph_dir, write_run(root, graph_dir, 16)


# --- 1. result counts are top= / --top ------------------------------------------------------


def test_top_is_the_result_count_of_every_query_method(catalogue):
    asins, _, run = catalogue
    rec = Recommender.load(run)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the new spelling warns about nothing
        assert len(rec.neighbours(asins[3], top=4)) == 4
        assert len(rec.neighbours_batch(asins[:2], top=3)) == 6
        assert len(recommend(run, asins[:1], top=5)) == 5


def test_k_still_works_but_is_deprecated(catalogue):
    asins, _, run = catalogue
    rec = Recommender.load(run)
    with pytest.warns(DeprecationWarning, match="top="):
        old = rec.neighbours(asins[3], k=4)
    assert old.equals(rec.neighbours(asins[3], top=4))
    with pytest.warns(DeprecationWarning):
        assert len(rec.neighbours_batch(asins[:2], k=2)) == 4
    with pytest.warns(DeprecationWarning):
        assert len(recommend(run, asins[:1], k=3)) == 3
    with pytest.warns(DeprecationWarning), pytest.raises(UsageError, match="differ"):
        rec.neighbours(asins[3], top=4, k=5)


def test_neighbours_and_export_take_top(catalogue, tmp_path):
    asins, _, run = catalogue
    result = runner.invoke(app, ["neighbours", asins[3], "--run", str(run), "--top", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 3
    out = tmp_path / "n.csv"
    result = runner.invoke(app, ["export", str(run), "--what", "neighbours", "--top", "2", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 1 + 2 * len(asins)


# --- 2. one output option: -o/--out -----------------------------------------------------


def _command(name):
    import typer.main

    return typer.main.get_command(app).commands[name]


@pytest.mark.parametrize("name", ["build-graph", "extract-features", "train", "sweep", "export"])
def test_every_writing_command_writes_with_o_out(name):
    shown = [param for param in _command(name).params if not getattr(param, "hidden", False)]
    assert any({"-o", "--out"} <= set(param.opts) for param in shown)
    assert not any("--output" in param.opts for param in shown)  # the old spelling is not documented


def test_extract_features_takes_out_and_still_its_old_output(tmp_path):
    from test_cli_extract import _images

    images = _images(tmp_path / "imgs", n=2)
    common = ["extract-features", "--images", str(images), "--weights", "random", "--workers", "0", "--quiet"]
    result = runner.invoke(app, [*common, "--out", str(tmp_path / "a.b")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a.b").stat().st_size == 2 * (10 + 4 * 4096)
    result = runner.invoke(app, [*common, "--output", str(tmp_path / "a.b")])  # hidden alias: the same file, up to date
    assert result.exit_code == 0 and "up to date" in result.output
    assert "--output" not in runner.invoke(app, ["extract-features", "--help"]).output
    clash = runner.invoke(app, [*common, "-o", str(tmp_path / "a.b"), "--output", str(tmp_path / "b.b")])
    assert clash.exit_code == 2 and "--out and --output" in clash.output and not (tmp_path / "b.b").exists()


# --- 3. the main input positionally or as an option ----------------------------------------


def test_train_and_sweep_take_graph_dir_positionally_or_with_graph(catalogue, tmp_path):
    _, graph_dir, _ = catalogue
    for i, where in enumerate([[str(graph_dir)], ["--graph", str(graph_dir)], [str(graph_dir), "-g", f"{graph_dir}/"]]):
        result = runner.invoke(app, ["train", *where, "--k", "2", "--epochs", "1", "-o", str(tmp_path / f"run{i}"), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["run"] == str(tmp_path / f"run{i}")
    # the GRAPH_DIR after a space-separated --k is still the GRAPH_DIR, not a K
    result = runner.invoke(app, ["sweep", "--k", "2", "3", str(graph_dir), "--decoder", "mahalanobis", "--epochs", "1",
                                 "-o", str(tmp_path / "sweep"), "--json"])
    assert result.exit_code == 0, result.output
    assert [(row["decoder"], row["k"]) for row in json.loads(result.stdout)] == [("mahalanobis", 2), ("mahalanobis", 3)]


@pytest.mark.parametrize("args, names", [
    (["train", "G1", "--graph", "G2"], "GRAPH_DIR and --graph"),
    (["sweep", "G1", "-g", "G2"], "GRAPH_DIR and --graph"),
    (["evaluate", "R1", "--run", "R2"], "RUN_DIR and --run"),
    (["export", "R1", "-r", "R2"], "RUN_DIR and --run"),
])
def test_the_main_input_given_twice_differently_is_one_line(args, names, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and names in result.output and "give it once" in result.output
