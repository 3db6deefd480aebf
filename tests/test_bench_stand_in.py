"""The serve benchmark's stand-in catalogue is real input: build-graph reads it without a bad line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from graphrec.graph import build_graph, load_graph

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_serve.py"


def _bench_serve():
    spec = importlib.util.spec_from_file_location("bench_serve", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_stand_in_catalogue_builds_into_a_graph_with_every_product(tmp_path):
    meta, features = _bench_serve().write_stand_in(tmp_path / "catalogue", 2500, dim=16)
    build_graph(meta, tmp_path / "graph", features=features, feature_dim=16, quiet=True, strict=True)
    graph = load_graph(tmp_path / "graph")
    assert graph.num_nodes == 2500 and graph.feature_dim == 16
    assert np.isfinite(np.asarray(graph.features)).all() and np.asarray(graph.features).any(axis=1).all()
    edges = graph.edge_index("also_bought")
    assert edges.shape[1] > 2 * 2500  # 3 listed per product, a few fall on the product itself
    groups = max(1, 2500 // 1000)
    assert bool(((edges[0] % groups) == (edges[1] % groups)).all())  # partners share the style group
    assert graph.products["title"].str.startswith("Stand-in product").all()
