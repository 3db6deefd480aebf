"""`graphrec build-graph` and `graphrec info` through typer's CliRunner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import product_2014
from graphrec.cli import app
from graphrec.graph import load_graph

runner = CliRunner()


def test_build_graph_writes_a_graph_and_prints_the_summary(small_catalogue, tmp_path):
    meta, features = small_catalogue
    out = tmp_path / "graph"
    result = runner.invoke(app, ["build-graph", "--meta", str(meta), "--features", str(features), "--feature-dim", "8",
                                 "--category", "Clothing, Shoes & Jewelry|Men", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "nodes (products)" in result.output and "dangling (also_bought)" in result.output
    graph = load_graph(out)
    assert graph.num_nodes == 4 and graph.feature_dim == 8
    assert graph.manifest["options"]["category"] == "Clothing, Shoes & Jewelry|Men"
    info = runner.invoke(app, ["info", str(out)])
    assert info.exit_code == 0 and "also_bought: edges" in info.output and "no_features" in info.output
    as_json = runner.invoke(app, ["info", str(out), "--json"])
    data = json.loads(as_json.output)
    assert data["num_nodes"] == 4 and data["stats"]["relations"]["also_bought"]["num_edges"] == 2


def test_relations_option_and_no_features_note(small_catalogue, tmp_path):
    meta, _ = small_catalogue
    out = tmp_path / "g"
    result = runner.invoke(app, ["build-graph", "--meta", str(meta), "--relations", "also_viewed", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "no image features" in result.output and "nodes (products)" not in result.output
    assert load_graph(out).relations == ["also_viewed"]


@pytest.mark.parametrize("args, message, code", [
    (["--meta", "{tmp}/missing.json.gz"], "not found", 1),
    (["--meta", "{meta}", "--features", "{features}"], "--feature-dim 8", 1),
    (["--meta", "{meta}", "--category", "Books"], "category 'Books'", 1),
    (["--meta", "{meta}", "--format", "1999"], "unknown metadata format", 2),
    (["--meta", "{meta}", "--relations", "likes"], "unknown relation 'likes'", 2),
    (["--meta", "{meta}", "--dtype", "int8"], "unknown --dtype 'int8'", 2),
])
def test_bad_input_is_one_clear_line_without_traceback(small_catalogue, tmp_path, args, message, code):
    meta, features = small_catalogue
    args = [a.format(tmp=tmp_path, meta=meta, features=features) for a in args]
    result = runner.invoke(app, ["build-graph", *args, "-o", str(tmp_path / "out")])
    assert result.exit_code == code
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_strict_and_force(write_meta, tmp_path):
    meta = write_meta([product_2014("A1", also_bought=["B2"]), "{'asin':", product_2014("B2")])
    out = tmp_path / "g"
    strict = runner.invoke(app, ["build-graph", "--meta", str(meta), "--strict", "-o", str(out)])
    assert strict.exit_code == 1 and "line 2" in strict.output and not out.exists()
    lenient = runner.invoke(app, ["build-graph", "--meta", str(meta), "-o", str(out), "-q"])
    assert lenient.exit_code == 0 and "line 2" in lenient.output
    again = runner.invoke(app, ["build-graph", "--meta", str(meta), "-o", str(out)])
    assert again.exit_code == 2 and "--force" in again.output
    forced = runner.invoke(app, ["build-graph", "--meta", str(meta), "-o", str(out), "--force", "-q"])
    assert forced.exit_code == 0 and load_graph(out).manifest["dropped"]["bad_lines"] == 1


def test_info_on_a_directory_that_is_not_a_graph(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path)])
    assert result.exit_code == 2 and "not a graph directory" in result.output


def test_no_options_builds_the_bundled_sample_and_uses_its_features_when_extracted(tmp_path, monkeypatch, write_features):
    from graphrec import sample
    from graphrec.io.metadata import read_metadata

    if not sample.SAMPLE_META.is_file():
        pytest.skip("bundled sample not in this checkout")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["build-graph", "-q"])
    assert result.exit_code == 0, result.output
    assert "no image features" in result.output and "extract-features" in result.output
    graph = load_graph(tmp_path / "graphrec-sample" / "graph")
    assert graph.features is None and graph.num_nodes > 0
    first = graph.products.iloc[0]
    assert first["image_path"] == str((sample.SAMPLE_IMAGES / f"{first['asin']}.png").resolve())
    asins = [product.asin for product, _ in zip(read_metadata(sample.SAMPLE_META), range(3))]
    (tmp_path / "graphrec-sample" / "image_features.b").write_bytes(write_features(asins, dim=4096).read_bytes())
    rebuilt = runner.invoke(app, ["build-graph", "-q", "--force"])
    assert rebuilt.exit_code == 0, rebuilt.output
    graph = load_graph(tmp_path / "graphrec-sample" / "graph")
    assert graph.asins.tolist() == asins and graph.feature_dim == 4096
