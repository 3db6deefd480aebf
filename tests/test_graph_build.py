"""build_graph: nodes, edges, drop counts, products table, features, atomic output."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

import graphrec.graph.build as build_module
from conftest import product_2014
from graphrec.errors import DataError, UsageError
from graphrec.graph import Graph, build_graph, find_images, load_graph
from graphrec.graph.features import NpyRowWriter
from graphrec.stats import graph_stats, relation_stats

A, B, C, D, E = "A000000001", "B000000002", "C000000003", "D000000004", "E000000005"
MEN = "Clothing, Shoes & Jewelry|Men"


def _pairs(graph: Graph, relation: str) -> set[tuple[str, str]]:
    asins = graph.asins
    return {tuple(sorted((asins[i], asins[j]))) for i, j in graph.edge_index(relation).t().tolist()}


def test_build_with_features_nodes_edges_and_drops(small_catalogue, tmp_path):
    meta, features = small_catalogue
    result = build_graph(meta, tmp_path / "graph", features, feature_dim=8, quiet=True)
    graph = load_graph(result.path)
    # node order = order of the features file; D has no features
    assert graph.asins.tolist() == [C, A, B, E]
    assert _pairs(graph, "also_bought") == {(A, B), (A, C)}  # A-B listed from both sides, counted once
    assert _pairs(graph, "also_viewed") == {(A, C)}
    m = graph.manifest
    assert m["num_nodes"] == 4 and m["feature_dim"] == 8 and m["node_order"] == "features file"
    assert m["relations"] == {"also_bought": {"num_edges": 2, "listed": 3}, "also_viewed": {"num_edges": 1, "listed": 1}}
    assert m["dropped"] == {
        "bad_lines": 0, "duplicate_asins": 0, "outside_category": 0, "no_features": 1, "self_loops": 1,
        "dangling": {"also_bought": 1, "also_viewed": 1}, "bad_asin": 0, "non_finite": 0, "duplicate_feature_asins": 0,
        "extreme_values": 0,
    }
    assert m["sources"]["metadata"]["format"] == "2014" and len(m["sources"]["metadata"]["sha256"]) == 64
    assert m["sources"]["features"]["size"] == features.stat().st_size
    # features.npy rows follow the node order (the fixture fills row i of the .b file with i + 1)
    assert graph.features.dtype == np.float16 and graph.features.shape == (4, 8)
    np.testing.assert_array_equal(graph.features[:, 0], [1, 2, 3, 4])
    # graph.pt loads with weights_only and is canonical
    stored = torch.load(result.path / "graph.pt", weights_only=True)
    assert stored["num_nodes"] == 4
    for index in stored["edge_index"].values():
        assert (index[0] < index[1]).all()


def test_products_table_columns_and_values(small_catalogue, tmp_path):
    meta, features = small_catalogue
    graph = load_graph(build_graph(meta, tmp_path / "g", features, feature_dim=8, quiet=True).path)
    table = graph.products
    assert list(table.columns) == ["asin", "title", "brand", "price", "category", "categories", "image_url", "image_path"]
    row = table.set_index("asin").loc[B]
    assert row["title"] == f"Product {B}" and row["brand"] == "Acme" and row["price"] == pytest.approx(9.99)
    assert row["category"] == "Clothing, Shoes & Jewelry|Men|Shoes"
    assert json.loads(row["categories"]) == ["Clothing, Shoes & Jewelry|Men|Shoes"]
    assert row["image_url"] == f"http://img/{B}.jpg" and row["image_path"] is None
    assert table.set_index("asin").loc[A, "brand"] is None


def test_category_filter_and_category_mask(small_catalogue, tmp_path):
    meta, _ = small_catalogue
    result = build_graph(meta, tmp_path / "g", category=MEN, quiet=True)
    graph = load_graph(result.path)
    assert graph.asins.tolist() == [A, B, C, E]  # metadata order without features
    assert result.manifest["dropped"]["outside_category"] == 1
    assert result.manifest["dropped"]["dangling"]["also_viewed"] == 1  # C -> D, D is Women's
    everything = load_graph(build_graph(meta, tmp_path / "all", quiet=True).path)
    assert everything.category_mask(MEN).tolist() == [True, True, True, False, True]
    assert everything.category_mask("Clothing, Shoes & Jewelry").all()
    assert not everything.category_mask("Clothing, Shoes & Jewelry|Me").any()  # whole names only
    with pytest.raises(DataError, match=r"no product .* category 'Books'.*'Clothing, Shoes & Jewelry'"):
        build_graph(meta, tmp_path / "books", category="Books", quiet=True)


def test_without_features_the_graph_says_so(small_catalogue, tmp_path):
    meta, _ = small_catalogue
    result = build_graph(meta, tmp_path / "g", quiet=True)
    graph = load_graph(result.path)
    assert graph.features is None and result.manifest["feature_dim"] is None and result.manifest["features"] is None
    assert not (result.path / "features.npy").exists()
    assert any("no image features" in note for note in result.notes)
    with pytest.raises(UsageError, match="without them"):
        graph.require_features("train")


def test_duplicate_asins_keep_the_first_record(write_meta, write_features, tmp_path):
    meta = write_meta([product_2014(A, title="first", also_bought=[B]), product_2014(B),
                       product_2014(A, title="second", also_bought=[C]), "not a record", product_2014(C)])
    features = write_features([A, B, A, C], dim=4)  # A's second record is a duplicate too
    result = build_graph(meta, tmp_path / "g", features, feature_dim=4, quiet=True)
    graph = load_graph(result.path)
    assert graph.products.set_index("asin").loc[A, "title"] == "first"
    assert _pairs(graph, "also_bought") == {(A, B)}
    d = result.manifest["dropped"]
    assert (d["duplicate_asins"], d["duplicate_feature_asins"], d["bad_lines"]) == (1, 1, 1)
    np.testing.assert_array_equal(graph.features[:, 0], [1, 2, 4])  # A keeps its first feature row
    assert result.warnings and "line 4" in result.warnings[0]


def test_2018_metadata_relations_option_and_float32(write_meta, write_features, tmp_path):
    records = [
        {"asin": A, "also_buy": [B], "also_view": [C], "category": ["Clothing, Shoes & Jewelry", "Men"], "price": "$5.00"},
        {"asin": B, "also_buy": [A], "category": ["Clothing, Shoes & Jewelry", "Men"]},
        {"asin": C, "also_view": [A, B], "category": ["Clothing, Shoes & Jewelry", "Women"]},
    ]
    meta = write_meta(records, name="meta2018.json", format="2018")
    features = write_features([A, B, C], dim=4)
    result = build_graph(meta, tmp_path / "g", features, feature_dim=4, dtype="float32",
                         relations=["also_viewed", "bought_together"], quiet=True)
    graph = load_graph(result.path)
    assert result.manifest["sources"]["metadata"]["format"] == "2018"
    assert set(graph.relations) == {"also_viewed", "bought_together"}
    assert _pairs(graph, "also_viewed") == {(A, C), (B, C)}
    assert graph.edge_index("bought_together").shape == (2, 0)
    assert graph.features.dtype == np.float32
    assert graph.products.set_index("asin").loc[A, "price"] == 5.0
    assert math.isnan(graph.products.set_index("asin").loc[B, "price"])
    with pytest.raises(UsageError, match="unknown relation"):
        build_graph(meta, tmp_path / "x", relations=["likes"], quiet=True)


def test_refuses_to_overwrite_without_force_and_replaces_with_it(small_catalogue, tmp_path):
    meta, features = small_catalogue
    out = tmp_path / "g"
    build_graph(meta, out, quiet=True)
    with pytest.raises(UsageError, match="already exists; pass --force"):
        build_graph(meta, out, features, feature_dim=8, quiet=True)
    assert load_graph(out).features is None
    build_graph(meta, out, features, feature_dim=8, force=True, quiet=True)
    assert load_graph(out).feature_dim == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.b", "g", "meta.json.gz"]
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    with pytest.raises(UsageError, match="not a graph directory"):
        build_graph(meta, precious, force=True, quiet=True)
    assert (precious / "thesis.tex").exists()


def test_an_interrupted_build_leaves_nothing_that_looks_complete(small_catalogue, tmp_path, monkeypatch):
    meta, features = small_catalogue

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_module, "products_table", crash)
    with pytest.raises(KeyboardInterrupt):
        build_graph(meta, tmp_path / "g", features, feature_dim=8, quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.b", "meta.json.gz"]


def test_wrong_dimension_non_finite_and_strict(write_meta, write_features, tmp_path):
    meta = write_meta([product_2014(A), product_2014(B), product_2014(C)])
    with pytest.raises(DataError, match="--feature-dim 4"):
        build_graph(meta, tmp_path / "g", write_features([A, B], dim=4), quiet=True)
    values = np.ones((3, 4), dtype=np.float32)
    values[1, 2] = np.inf
    bad = write_features([A, B, C], values, dim=4, name="bad.b")
    result = build_graph(meta, tmp_path / "g", bad, feature_dim=4, quiet=True)
    assert result.manifest["dropped"]["non_finite"] == 1 and result.manifest["dropped"]["no_features"] == 1
    assert load_graph(result.path).asins.tolist() == [A, C]
    with pytest.raises(DataError, match=B):
        build_graph(meta, tmp_path / "strict", bad, feature_dim=4, strict=True, quiet=True)
    huge = write_features([A], np.full((1, 4), 1e6), dim=4, name="huge.b")
    with pytest.raises(DataError, match="--dtype float32"):
        build_graph(meta, tmp_path / "h", huge, feature_dim=4, quiet=True)
    assert build_graph(meta, tmp_path / "h32", huge, feature_dim=4, dtype="float32", quiet=True).manifest["num_nodes"] == 1
    with pytest.raises(DataError, match="none of the 3 products"):
        build_graph(meta, tmp_path / "none", write_features(["X1"], dim=4, name="other.b"), feature_dim=4, quiet=True)


def test_image_paths_from_images_dir(small_catalogue, tmp_path):
    meta, _ = small_catalogue
    images = tmp_path / "images"
    images.mkdir()
    (images / f"{A}.JPG").write_bytes(b"x")
    (images / f"{B}.png").write_bytes(b"x")
    (images / f"{B}.webp").write_bytes(b"x")  # .png preferred... after .jpg/.jpeg
    (images / f"{C}.txt").write_bytes(b"x")
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"x")
    os.symlink(outside, images / f"{E}.jpg")
    assert find_images(images) == {A: str((images / f"{A}.JPG").resolve()), B: str((images / f"{B}.png").resolve())}
    graph = load_graph(build_graph(meta, tmp_path / "g", images=images, quiet=True).path)
    paths = graph.products.set_index("asin")["image_path"]
    assert paths[A].endswith(f"{A}.JPG") and paths[B].endswith(f"{B}.png") and paths[C] is None and paths[E] is None


def test_sidecar_fills_the_features_manifest(small_catalogue, tmp_path):
    meta, features = small_catalogue
    spec = {"model": "alexnet", "layer": "fc7", "weights": "random", "seed": 0, "path": None, "sha256": None}
    images = tmp_path / "imgs"
    images.mkdir()
    (images / f"{C}.jpeg").write_bytes(b"x")
    sidecar = {"extractor": spec, "images_dir": str(images), "image_manifest": None, "num_images": 4, "skipped": {}}
    (tmp_path / "features.b.json").write_text(json.dumps(sidecar))
    result = build_graph(meta, tmp_path / "g", features, feature_dim=8, quiet=True)
    assert result.manifest["features"]["extractor"] == spec
    assert result.manifest["features"]["images_dir"] == str(images)
    paths = load_graph(result.path).products.set_index("asin")["image_path"]
    assert paths[C] == str((images / f"{C}.jpeg").resolve()) and paths[A] is None
    (tmp_path / "features.b.json").write_text("{not json")
    with pytest.raises(DataError, match="features.b.json is not valid JSON"):
        build_graph(meta, tmp_path / "g2", features, feature_dim=8, quiet=True)


def test_npy_writer_rewrites_the_row_count(tmp_path):
    path = tmp_path / "x.npy"
    writer = NpyRowWriter(path, capacity=10**9, dim=3, dtype=np.float16)
    writer.write(np.arange(6).reshape(2, 3))
    writer.write(np.arange(3).reshape(1, 3))
    writer.close()
    loaded = np.load(path, mmap_mode="r")
    assert loaded.shape == (3, 3) and loaded.dtype == np.float16
    np.testing.assert_array_equal(loaded, [[0, 1, 2], [3, 4, 5], [0, 1, 2]])


def test_relation_and_graph_stats():
    edges = torch.tensor([[0, 1, 3], [1, 2, 4]])  # path 0-1-2, edge 3-4, node 5 isolated
    stats = relation_stats(edges, 6)
    assert stats == {"num_edges": 3, "components": 3, "largest_component": 3, "isolated": 1,
                     "degree_mean": 1.0, "degree_median": 1.0, "degree_max": 2}
    both = graph_stats(6, {"a": edges, "b": torch.tensor([[2, 0], [3, 1]])})
    assert both["any"]["num_edges"] == 4 and both["any"]["components"] == 2
