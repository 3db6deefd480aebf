"""`build-graph --edges`: a graph from a plain edge list alone, or with metadata / features."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from graphrec.cli import app
from graphrec.errors import UsageError
from graphrec.graph import build_graph, load_graph

runner = CliRunner()


def edge_file(tmp_path, text: str, name: str = "edges.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def named(graph, relation):
    asins = graph.asins
    return sorted(tuple(sorted((asins[u], asins[v]))) for u, v in graph.edge_index(relation).t().tolist())


def test_edges_alone_make_bare_products_and_canonical_edges(tmp_path):
    edges = edge_file(tmp_path, "# GATNE-style\n1 n1 n2\n1 n2 n1\n2 n1 n3\n1 n3 n3\n1 n4\n")
    result = build_graph(None, tmp_path / "g", edges=edges, quiet=True)  # warnings come back in result.warnings
    graph = load_graph(result.path)
    assert list(graph.asins) == ["n1", "n2", "n3"]  # n3-n3 is a self-loop; n4's line is bad
    assert named(graph, "also_bought") == [("n1", "n2")]  # listed twice, stored once
    assert named(graph, "also_viewed") == [("n1", "n3")]
    assert graph.features is None and graph.products["title"].isna().all()
    manifest = result.manifest
    assert manifest["node_order"] == "edge list" and manifest["sources"]["metadata"] is None
    assert manifest["sources"]["edges"]["relation_labels"] == {"1": "also_bought", "2": "also_viewed"}
    assert manifest["dropped"]["bad_edge_lines"] == 1 and manifest["dropped"]["self_loops"] == 1
    assert any("line 6" in w for w in result.warnings) and any("GATNE" in n for n in result.notes)


def test_relation_names_and_relations_filter(tmp_path):
    edges = edge_file(tmp_path, "1 a b\n2 a c\n3 b c\n")
    graph = load_graph(build_graph(None, tmp_path / "g", edges=edges, quiet=True,
                                   relation_names={"3": "bought_together"}, relations=["bought_together", "1"]).path)
    assert set(graph.relations) == {"1", "bought_together"}  # labels not mapped are kept as written
    with pytest.raises(UsageError, match="does not have"):
        build_graph(None, tmp_path / "h", edges=edges, relations=["also_viewed"], quiet=True)


def test_with_metadata_the_products_come_from_it_and_the_edges_from_the_file(tmp_path, small_catalogue):
    meta, features = small_catalogue
    edges = edge_file(tmp_path, "A000000001,E000000005\nD000000004 C000000003\nA000000001 Q000000077\n")
    result = build_graph(meta, tmp_path / "g", edges=edges, category="Clothing, Shoes & Jewelry|Men", quiet=True)
    graph = load_graph(result.path)
    assert sorted(graph.asins) == ["A000000001", "B000000002", "C000000003", "E000000005"]  # D is Women's
    assert list(graph.relations) == ["also_bought"]  # the metadata's also_viewed lists are not read
    assert named(graph, "also_bought") == [("A000000001", "E000000005")]
    assert result.manifest["dropped"]["dangling"] == {"also_bought": 1}  # A - Q (D-C: D is not a node)
    assert graph.products.set_index("asin").loc["A000000001", "title"] == "Product A000000001"


def test_with_features_only_ids_with_a_record_are_nodes(tmp_path, small_catalogue):
    _, features = small_catalogue
    edges = edge_file(tmp_path, "A000000001 B000000002\nB000000002 D000000004\n")
    graph = load_graph(build_graph(None, tmp_path / "g", features, edges=edges, feature_dim=8, quiet=True).path)
    assert list(graph.asins) == ["A000000001", "B000000002"]  # features-file order; D has no record
    assert graph.features.shape == (2, 8) and graph.features[0, 0] == 2.0  # A is the 2nd record


def test_category_needs_metadata(tmp_path):
    with pytest.raises(UsageError, match="--category"):
        build_graph(None, tmp_path / "g", edges=edge_file(tmp_path, "a b\n"), category="X")


def test_cli_builds_from_an_edge_list_and_reports_bad_lines(tmp_path):
    edges = edge_file(tmp_path, "a,b\nb,c\nc\n")
    out = tmp_path / "g"
    result = runner.invoke(app, ["build-graph", "--edges", str(edges), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "line 3" in result.output and "built from an edge list only" in result.output
    assert json.loads((out / "manifest.json").read_text())["relations"]["also_bought"]["num_edges"] == 2
    bad = runner.invoke(app, ["build-graph", "--edges", str(edges), "-o", str(tmp_path / "h"), "--relation-names", "1"])
    assert bad.exit_code == 2 and "--relation-names" in bad.output
