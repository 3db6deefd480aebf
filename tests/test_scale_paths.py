"""The paths graphrec takes at catalogue scale give the same numbers as the simple ones.

At 1.5M products nothing may hold the whole feature matrix in memory at once, so the
code reads it in chunks, memory-maps the float16 matrix and projects a few rows at a
time. These tests force those paths on tiny generated catalogues (by shrinking the chunk
sizes and limits) and compare them with the one-shot, in-memory computation.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from graphrec.datasets.synthetic import generate_catalogue
from graphrec.graph import build_graph, load_graph
from graphrec.models import MahalanobisModel
from graphrec.sampling import split_pairs

DIM = 32


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    return generate_catalogue(tmp_path_factory.mktemp("catalogue"), 300, feature_dim=DIM, seed=3)


@pytest.fixture(scope="module")
def graph_dir(catalogue, tmp_path_factory):
    out = tmp_path_factory.mktemp("graphs") / "graph"
    build_graph(catalogue.meta_path, out, catalogue.features_path, feature_dim=DIM, quiet=True)
    return out


@pytest.fixture(scope="module")
def model(graph_dir):
    graph = load_graph(graph_dir)
    split = split_pairs(graph, "also_bought", seed=0)
    return MahalanobisModel.build(graph, split.train_pairs, split.train_labels, k=4, seed=0).eval()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_in_tiny_chunks_writes_the_same_graph(catalogue, graph_dir, tmp_path, monkeypatch):
    """Streaming the .b file three records at a time gives byte-identical features and edges."""
    import graphrec.io.features as features_module

    record = 10 + 4 * DIM
    monkeypatch.setattr(features_module, "CHUNK_BYTES", 3 * record)
    small = tmp_path / "small-chunks"
    build_graph(catalogue.meta_path, small, catalogue.features_path, feature_dim=DIM, quiet=True)
    assert _digest(small / "features.npy") == _digest(graph_dir / "features.npy")
    one, other = load_graph(graph_dir), load_graph(small)
    assert list(one.asins) == list(other.asins)
    assert one.edges.keys() == other.edges.keys()
    for relation in one.edges:
        assert torch.equal(one.edges[relation], other.edges[relation])


def test_float16_features_match_the_float32_source(catalogue, graph_dir):
    """features.npy rows are the .b rows (node order = file order) rounded to float16."""
    from graphrec.io.features import BinaryFeatureReader

    graph = load_graph(graph_dir)
    source = {}
    for chunk in BinaryFeatureReader(catalogue.features_path, dim=DIM):
        source.update(zip(chunk.asins, np.array(chunk.values, dtype=np.float32)))
    expected = np.stack([source[a] for a in graph.asins]).astype(np.float16)
    assert graph.features.dtype == np.float16
    assert np.array_equal(np.asarray(graph.features), expected)


def test_memory_mapped_features_give_the_same_predictions(graph_dir, model):
    mapped, loaded = load_graph(graph_dir, mmap=True), load_graph(graph_dir, mmap=False)
    assert isinstance(mapped.features, np.memmap) and not isinstance(loaded.features, np.memmap)
    pairs = torch.randint(0, mapped.num_nodes, (500, 2), generator=torch.Generator().manual_seed(1))
    assert torch.equal(model.predict_proba(mapped, pairs), model.predict_proba(loaded, pairs))


def test_chunked_embedding_matches_one_shot(graph_dir, model, monkeypatch):
    """embed_nodes streams 7 rows at a time from the memory map; same as one matrix product."""
    import graphrec.models.base as base

    graph = load_graph(graph_dir)
    with torch.no_grad():
        whole = model.embed(torch.from_numpy(np.asarray(graph.features, dtype=np.float32)))
    monkeypatch.setattr(base, "ROW_CHUNK", 7)
    chunked = model.embed_nodes(graph)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
    # the rows of a sorted subset come back in the requested (unsorted) order
    nodes = torch.tensor([5, 250, 3, 3, 120])
    torch.testing.assert_close(model.embed_nodes(graph, nodes), whole[nodes], rtol=1e-5, atol=1e-5)


def test_feature_rows_in_chunks(graph_dir, monkeypatch):
    import graphrec.models.base as base

    graph = load_graph(graph_dir)
    nodes = torch.randperm(graph.num_nodes, generator=torch.Generator().manual_seed(2))[:100]
    expected = torch.from_numpy(np.asarray(graph.features, dtype=np.float32))[nodes]
    monkeypatch.setattr(base, "ROW_CHUNK", 9)
    assert torch.equal(base.feature_rows(graph, nodes), expected)
    assert torch.equal(base.feature_rows(graph, None, dtype=torch.float16), torch.from_numpy(np.array(graph.features)))


def test_neighbours_index_embeds_in_chunks(graph_dir, tmp_path, monkeypatch):
    """The recommender embeds every product a chunk at a time; the style vectors and the
    answers equal a one-shot embedding and a brute-force search."""
    import graphrec.recommend as recommend
    from graphrec.recommend import Recommender
    from graphrec.train import train

    run = train(graph_dir, decoder="mahalanobis", k=4, epochs=1, out_dir=tmp_path / "run", quiet=True, max_queries=20, candidates=10)
    graph = run.graph
    whole = run.model.embed(torch.from_numpy(np.asarray(graph.features, dtype=np.float32))).detach().numpy()
    monkeypatch.setattr(recommend, "EMBED_CHUNK", 11)
    rec = Recommender.load(run.path, cache=False, approx=False)
    np.testing.assert_allclose(rec.style, whole, rtol=1e-5, atol=1e-5)
    query = 17
    table = rec.neighbours(str(graph.asins[query]), k=5)
    distances = ((whole - whole[query]) ** 2).sum(1)
    distances[query] = np.inf
    assert list(table["asin"]) == list(graph.asins[np.argsort(distances, kind="stable")[:5]])
