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


# --- 4. list options: spaces or commas -------------------------------------------------------


def test_list_values_after_an_option_are_joined_until_the_next_option_or_path(tmp_path, monkeypatch):
    from graphrec.cli.options import join_list_values

    monkeypatch.chdir(tmp_path)
    (tmp_path / "graph").mkdir()
    numbers, names = ["--weight-decay"], ["--aux-relations"]
    assert join_list_values(["--weight-decay", "1e-3", "3e-2", "graph"], numbers, names) == ["--weight-decay", "1e-3,3e-2", "graph"]
    assert join_list_values(["--weight-decay=1e-3", "1", "-q"], numbers, names) == ["--weight-decay", "1e-3,1", "-q"]
    assert join_list_values(["--aux-relations", "a", "b,c", "graph", "--k", "3", "4"], numbers, names) == \
        ["--aux-relations", "a,b,c", "graph", "--k", "3", "4"]
    assert join_list_values(["--aux-relations", "a", "--", "b"], numbers, names) == ["--aux-relations", "a", "--", "b"]
    assert join_list_values(["--weight-decay"], numbers, names) == ["--weight-decay"]  # click reports the missing value


@pytest.mark.parametrize("words", [
    ["--weight-decay", "1e-3", "3e-2", "--aux-relations", "also_viewed", "bought_together", "--message-relations", "also_viewed"],
    ["--weight-decay", "1e-3,3e-2", "--aux-relations", "also_viewed,bought_together", "--message-relations", "also_viewed"],
    ["--weight-decay", "1e-3, 3e-2", "--aux-relations=also_viewed", "bought_together", "--message-relations=also_viewed"],
])
def test_train_lists_take_spaces_or_commas(words, tmp_path, monkeypatch):
    from types import SimpleNamespace

    import graphrec.train

    seen = {}
    monkeypatch.setattr(graphrec.train, "train", lambda graph, **kw: seen.update(graph=graph, **kw) or SimpleNamespace(path=tmp_path, metrics={}))
    (tmp_path / "g").mkdir()
    result = runner.invoke(app, ["train", *words, str(tmp_path / "g"), "--json"])
    assert result.exit_code == 0, result.output
    assert seen["graph"] == tmp_path / "g" and seen["weight_decay"] == [1e-3, 3e-2]
    assert seen["aux_relations"] == ["also_viewed", "bought_together"] and seen["message_relations"] == ["also_viewed"]


@pytest.mark.parametrize("words", [["also_bought", "also_viewed"], ["also_bought,also_viewed"]])
def test_build_graph_relations_take_spaces_or_commas(words, tmp_path, monkeypatch):
    from types import SimpleNamespace

    import graphrec.graph

    seen = {}
    monkeypatch.setattr(graphrec.graph, "build_graph", lambda *a, **kw: seen.update(kw) or SimpleNamespace(warnings=[], notes=[]))
    result = runner.invoke(app, ["build-graph", "--relations", *words, "-o", str(tmp_path / "g"), "-q"])
    assert result.exit_code == 0, result.output
    assert seen["relations"] == ["also_bought", "also_viewed"]


def test_a_real_train_searches_the_space_separated_decays(catalogue, tmp_path):
    _, graph_dir, _ = catalogue
    result = runner.invoke(app, ["train", str(graph_dir), "--k", "2", "--epochs", "1", "--weight-decay", "1e-3", "3e-2",
                                 "-o", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    assert [row["weight_decay"] for row in json.loads(result.stdout)["weight_decay_search"]] == [1e-3, 3e-2]


# --- 5. --debug, --version and -h anywhere; the neighbors alias -------------------------------


@pytest.mark.parametrize("args", [["--version"], ["train", "--version"], ["neighbours", "A1", "--version"]])
def test_version_works_before_or_after_the_command(args):
    import graphrec

    result = runner.invoke(app, args)
    assert result.exit_code == 0 and result.output == f"graphrec {graphrec.__version__}\n"


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_works_before_or_after_the_command(where, tmp_path):
    from graphrec.errors import GraphrecError

    args = ["evaluate", str(tmp_path / "nothing")]
    result = runner.invoke(app, ["--debug", *args] if where == "before" else [*args, "--debug"])
    assert isinstance(result.exception, GraphrecError)  # a traceback, not the one-line error
    plain = runner.invoke(app, args)
    assert plain.exit_code == 2 and plain.output.startswith("error:") and not isinstance(plain.exception, GraphrecError)


@pytest.mark.parametrize("name", [None, "build-graph", "info", "extract-features", "train", "evaluate", "sweep", "runs",
                                  "neighbours", "serve", "export"])
def test_h_is_help_for_the_app_and_every_command(name):
    args = [] if name is None else [name]
    short, long = runner.invoke(app, [*args, "-h"]), runner.invoke(app, [*args, "--help"])
    assert short.exit_code == 0 and "Usage: graphrec" in short.output and short.output == long.output


def test_neighbors_is_a_hidden_alias_of_neighbours(catalogue):
    asins, _, run = catalogue
    british = runner.invoke(app, ["neighbours", asins[2], "--run", str(run), "--top", "3", "--json"])
    american = runner.invoke(app, ["neighbors", asins[2], "--run", str(run), "--top", "3", "--json"])
    assert american.exit_code == 0 and american.stdout == british.stdout
    listing = runner.invoke(app, ["--help"]).output
    assert "neighbours" in listing and "neighbors" not in listing


# --- 6. suggestions: choices, ASINs, categories; a batch file survives one bad ASIN -----------


@pytest.mark.parametrize("args, message", [
    (["train", "--decoder", "mahalonobis"], "unknown decoder 'mahalonobis' (did you mean mahalanobis?)"),
    (["train", "--encoder", "lightgnc"], "unknown encoder 'lightgnc' (did you mean lightgcn?)"),
    (["train", "--calibration", "vall"], "unknown --calibration 'vall' (did you mean val?)"),
    (["export", "--what", "vector"], "unknown export 'vector' (did you mean vectors?)"),
    (["build-graph", "--meta", "m.json", "--relations", "also_bougth", "-o", "g"], "unknown relation 'also_bougth' (did you mean also_bought?)"),
])
def test_a_misspelt_choice_suggests_the_closest(args, message, catalogue, tmp_path, monkeypatch):
    _, graph_dir, run = catalogue
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.json").write_text('{"asin": "A1"}\n')
    extra = {"train": ["--graph", str(graph_dir), "-o", "r"], "export": ["--run", str(run)]}.get(args[0], [])
    result = runner.invoke(app, [*args, *extra])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output


def test_choices_are_matched_case_insensitively(catalogue, tmp_path):
    _, graph_dir, _ = catalogue
    result = runner.invoke(app, ["train", str(graph_dir), "--decoder", "Mahalanobis", "--encoder", "Linear", "--calibration", "VAL",
                                 "--k", "2", "--epochs", "1", "--weight-decay", "0", "-o", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["decoder"] == "mahalanobis" and config["model"]["encoder"] == "linear" and config["calibration"] == "val"


def test_asin_suggestions_ignore_case(catalogue):
    asins, _, run = catalogue
    result = runner.invoke(app, ["neighbours", asins[5].lower(), "--run", str(run)])
    assert result.exit_code == 2 and f"Did you mean {asins[5]}" in result.output


def test_asin_suggestions_are_quick_and_right_on_a_million_ids():
    import numpy as np

    from graphrec.graph.suggest import IdSuggester

    rng = np.random.default_rng(0)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    ids = ["B0" + "".join(row) for row in letters[rng.integers(0, 36, size=(1_000_000, 8))]]
    suggest, target = IdSuggester(ids), ids[4321]
    typos = [target.lower(), target[:4] + "#" + target[5:], target[:-1], target[:3] + target[4] + target[3] + target[5:], target + "Q"]
    for typo in typos:
        assert suggest(typo)[0] == target, typo
    assert len(suggest.candidates(target[:4] + "#" + target[5:])) < 100  # difflib ranks a handful, not a million
    assert suggest("nothing like it") == []


def test_category_is_case_insensitive_and_a_miss_lists_what_exists(catalogue):
    asins, _, run = catalogue
    rec = Recommender.load(run)
    assert rec.neighbours(asins[0], top=3, category="clothing, shoes & jewelry|WOMEN").equals(
        rec.neighbours(asins[0], top=3, category="Clothing, Shoes & Jewelry|Women"))
    with pytest.raises(UsageError, match=r"under 'Clothing, Shoes & Jewelry' there are \w+, \w+; did you mean 'Clothing, Shoes & Jewelry\|Women'"):
        rec.neighbours(asins[0], category="clothing, shoes & jewelry|womn")
    with pytest.raises(UsageError, match="at the top level there are Clothing, Shoes & Jewelry"):
        rec.neighbours(asins[0], category="Toys")


def test_an_unknown_asin_in_from_file_is_reported_and_skipped_or_with_strict_fatal(catalogue, tmp_path):
    asins, _, run = catalogue
    queries = tmp_path / "queries.txt"
    queries.write_text(f"{asins[1]}\n# a comment\nNOT_AN_ASIN\n{asins[2]}\n")
    result = runner.invoke(app, ["neighbours", "--from-file", str(queries), "--run", str(run), "--top", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert {row["query"] for row in json.loads(result.stdout)} == {asins[1], asins[2]}
    assert f"{queries}, line 3: ASIN NOT_AN_ASIN is not in the graph" in result.stderr and "Skipped" in result.stderr
    strict = runner.invoke(app, ["neighbours", "--from-file", str(queries), "--run", str(run), "--strict"])
    assert strict.exit_code == 2 and f"{queries}, line 3: ASIN NOT_AN_ASIN" in strict.output
    queries.write_text("NOPE\n")
    result = runner.invoke(app, ["neighbours", "--from-file", str(queries), "--run", str(run)])
    assert result.exit_code == 2 and "none of the ASINs in --from-file" in result.output
