"""Issue 18, classes 3 and 4: nothing non-finite is written as a result, and every numeric
option is checked (finite, in range) at the CLI boundary with exit 2 naming it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_train import easy_graph, write_graph_dir
from typer.testing import CliRunner

from graphrec.cli import LIMITS, app
from graphrec.recommend import read_asin_file

runner = CliRunner()


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory):
    return write_graph_dir(easy_graph(n=60), tmp_path_factory.mktemp("nonfinite") / "graph")


def _train(graph, out, *extra):
    return runner.invoke(app, ["train", "--graph", str(graph), "--k", "2", "--epochs", "2", "--batch-size", "64", "-q",
                               "-o", str(out), *extra])


def _one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_a_diverging_learning_rate_stops_with_one_sentence_and_writes_no_run(graph_dir, tmp_path):
    result = _train(graph_dir, tmp_path / "run", "--lr", "1e30")
    assert result.exit_code == 2
    message = _one_line_error(result)
    assert "training diverged" in message and "smaller --lr" in message and "1e+30" in message
    assert list(tmp_path.iterdir()) == []  # neither the RUN_DIR nor its .partial folder


def test_non_finite_feature_rows_are_refused_at_train_time_by_row_and_asin(graph_dir, tmp_path):
    bad = write_graph_dir(easy_graph(n=60), tmp_path / "graph")
    features = np.load(bad / "features.npy")
    features[17] = np.nan
    features[40, 3] = np.inf
    np.save(bad / "features.npy", features)
    result = _train(bad, tmp_path / "run")
    assert result.exit_code == 1
    message = _one_line_error(result)
    assert "row 17 (ASIN B000000017)" in message and "2 such rows" in message
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.partial").exists()


def test_neighbours_and_evaluate_refuse_non_finite_results_of_features_edited_after_training(tmp_path):
    graph = write_graph_dir(easy_graph(n=60), tmp_path / "graph")
    assert _train(graph, tmp_path / "run").exit_code == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert all(math.isfinite(metrics["test"][key]) for key in ("accuracy", "auc", "log_loss"))
    features = np.load(graph / "features.npy")
    features[17] = np.nan  # edited after training
    np.save(graph / "features.npy", features)
    result = runner.invoke(app, ["neighbours", "B000000017", "--run", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "style vector of ASIN B000000017" in _one_line_error(result)
    result = runner.invoke(app, ["evaluate", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 2 and "NaN" not in result.stdout
    assert "predicts NaN or infinite probabilities" in _one_line_error(result)


def test_a_scaling_dominated_by_one_row_is_a_warning(graph_dir, tmp_path):
    graph = write_graph_dir(easy_graph(n=60), tmp_path / "graph")
    features = np.load(graph / "features.npy").astype(np.float32)
    features[5] = 6e4
    np.save(graph / "features.npy", features)
    result = _train(graph, tmp_path / "run", "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert "warning: the feature scaling divides by 6e+04" in result.stderr
    clean = _train(graph_dir, tmp_path / "run2", "--epochs", "1")
    assert clean.exit_code == 0 and "feature scaling" not in clean.stderr


@pytest.mark.parametrize("command, option, value", [
    ("train", "--lr", "nan"), ("train", "--lr", "inf"), ("train", "--lr", "-1"), ("train", "--epochs", "-1"),
    ("train", "--k", "0"), ("train", "--batch-size", "0"), ("train", "--patience", "-1"),
    ("train", "--noise-floor", "0.7"), ("train", "--noise-floor", "nan"), ("train", "--aux-weight", "0"),
    ("train", "--candidates", "-5"), ("train", "--seed", "-1"), ("train", "--weight-decay", "1e-3,inf"),
    ("evaluate", "--candidates", "-5"), ("extract-features", "--workers", "-1"), ("extract-features", "--batch-size", "0"),
    ("neighbours", "--top", "0"), ("build-graph", "--feature-dim", "0"), ("sweep", "--k", "1,0"),
])
def test_numeric_options_out_of_range_exit_2_naming_the_option(graph_dir, tmp_path, command, option, value):
    where = {"train": ["--graph", str(graph_dir), "-o", str(tmp_path / "r")], "sweep": ["--graph", str(graph_dir)],
             "evaluate": [str(tmp_path / "r")], "neighbours": ["B000000001"]}.get(command, [])
    result = runner.invoke(app, [command, *where, option, value])
    assert result.exit_code == 2
    message = _one_line_error(result)
    assert message.startswith(f"error: {option} must be ") and "(got " in message
    assert not (tmp_path / "r").exists()


def test_train_and_evaluate_share_the_candidates_limit(graph_dir, tmp_path):
    train = runner.invoke(app, ["train", "--graph", str(graph_dir), "-o", str(tmp_path / "r"), "--candidates", "100001"])
    evaluate = runner.invoke(app, ["evaluate", str(tmp_path / "r"), "--candidates", "100001"])
    assert train.exit_code == evaluate.exit_code == 2
    assert _one_line_error(train) == _one_line_error(evaluate)


FLOAT_OPTIONS = ["--lr", "--shrink", "--noise-floor", "--aux-weight", "--weight-decay"]
INT_OPTIONS = ["--k", "--layers", "--epochs", "--batch-size", "--negatives", "--patience", "--seed", "--candidates"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(FLOAT_OPTIONS + INT_OPTIONS), number=st.floats(allow_nan=True, allow_infinity=True),
       integer=st.integers(min_value=-(2**70), max_value=2**70))
def test_any_number_for_any_train_option_is_a_clean_exit(tmp_path, option, number, integer):
    """Arbitrary finite and non-finite values never give a traceback: the graph folder does
    not exist, so a value within the limits ends in that (cheap) error instead of training."""
    value = str(integer) if option in INT_OPTIONS else repr(number)
    result = runner.invoke(app, ["train", "--graph", str(tmp_path / "nowhere"), "-o", str(tmp_path / "r"), option, value])
    assert result.exit_code == 2, result.output
    message = _one_line_error(result)
    low, high, low_open, high_open = LIMITS[option.lstrip("-").replace("-", "_")]
    parsed = float(value)
    inside = math.isfinite(parsed) and (parsed > low if low_open else parsed >= low) and (parsed < high if high_open else parsed <= high)
    assert (f"{option} must be " in message) != inside, message


def test_sweep_refuses_an_empty_decoder_list_and_a_k_above_the_feature_dimension_before_training(graph_dir, tmp_path):
    result = runner.invoke(app, ["sweep", "--graph", str(graph_dir), "--decoder", ",", "-o", str(tmp_path / "s")])
    assert result.exit_code == 2 and "at least one decoder" in _one_line_error(result)
    result = runner.invoke(app, ["sweep", "--graph", str(graph_dir), "--k", "1,99", "--decoder", "mahalanobis",
                                 "-o", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert "K = 99 is larger than the feature dimension 16" in _one_line_error(result)
    assert not (tmp_path / "s").exists()  # nothing trained, not even K = 1


def test_from_file_skips_a_bom_and_pads(tmp_path):
    file = tmp_path / "queries.txt"
    file.write_bytes("\ufeff  B000000001 \n# a comment\nB000000002\t# trailing\n\u00a0B000000003\u200b\n".encode())
    assert read_asin_file(file) == ["B000000001", "B000000002", "B000000003"]


@pytest.mark.parametrize("option", [{"lr": math.nan}, {"lr": math.inf}, {"aux_weight": math.inf}])
def test_the_library_refuses_non_finite_settings_too(graph_dir, tmp_path, option):
    from graphrec.errors import UsageError
    from graphrec.train import train

    with pytest.raises(UsageError, match="finite positive"):
        train(graph_dir, k=2, out_dir=tmp_path / "run", quiet=True, **option)
    assert not (tmp_path / "run").exists()
