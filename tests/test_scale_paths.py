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
from graphrec.inputs import node_inputs
from graphrec.models import LinearEncoder, MahalanobisModel
from graphrec.models.inputs import PreparedRows
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
    return MahalanobisModel.build(node_inputs(graph), split.train_pairs, split.train_labels, k=4, seed=0).eval()


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
    assert torch.equal(model.predict_proba(node_inputs(mapped), pairs), model.predict_proba(node_inputs(loaded), pairs))


def test_chunked_embedding_matches_one_shot(graph_dir, model, monkeypatch):
    """styles() streams 7 rows at a time from the memory map; same as one matrix product."""
    import graphrec.models.encoders as encoders

    graph = load_graph(graph_dir)
    with torch.no_grad():
        whole = model.embed_features(torch.from_numpy(np.asarray(graph.features, dtype=np.float32)))
    monkeypatch.setattr(encoders, "ROW_CHUNK", 7)
    chunked = model.styles(node_inputs(graph))
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
    # the rows of a sorted subset come back in the requested (unsorted) order
    nodes = torch.tensor([5, 250, 3, 3, 120])
    torch.testing.assert_close(model.styles(node_inputs(graph), nodes), whole[nodes], rtol=1e-5, atol=1e-5)


def test_feature_rows_in_chunks(graph_dir, monkeypatch):
    import graphrec.models.inputs as model_inputs

    graph = load_graph(graph_dir)
    nodes = torch.randperm(graph.num_nodes, generator=torch.Generator().manual_seed(2))[:100]
    expected = torch.from_numpy(np.asarray(graph.features, dtype=np.float32))[nodes]
    monkeypatch.setattr(model_inputs, "ROW_CHUNK", 9)
    features = node_inputs(graph).features
    assert torch.equal(features.rows(nodes), expected)
    assert torch.equal(features.rows(None, dtype=torch.float16), torch.from_numpy(np.array(graph.features)))


def test_neighbours_index_embeds_in_chunks(graph_dir, tmp_path, monkeypatch):
    """The recommender embeds every product a chunk at a time; the style vectors and the
    answers equal a one-shot embedding and a brute-force search."""
    import graphrec.recommend as recommend
    from graphrec.recommend import Recommender
    from graphrec.train import train

    run = train(graph_dir, decoder="mahalanobis", k=4, epochs=1, out_dir=tmp_path / "run", quiet=True, max_queries=20, candidates=10)
    graph = run.graph
    whole = run.model.embed_features(torch.from_numpy(np.asarray(graph.features, dtype=np.float32))).detach().numpy()
    monkeypatch.setattr(recommend, "EMBED_CHUNK", 11)
    rec = Recommender.load(run.path, cache=False, approx=False)
    np.testing.assert_allclose(rec.style, whole, rtol=1e-5, atol=1e-5)
    query = 17
    table = rec.neighbours(str(graph.asins[query]), top=5)
    distances = ((whole - whole[query]) ** 2).sum(1)
    distances[query] = np.inf
    assert list(table["asin"]) == list(graph.asins[np.argsort(distances, kind="stable")[:5]])


def test_nearest_rows_streamed_is_exact(graph_dir):
    """The streamed hard-negative search (7 rows at a time, float16 memory map) finds the
    same neighbours, in the same order, as a brute-force search over the whole matrix."""
    from graphrec.sampling import nearest_rows

    graph = load_graph(graph_dir)
    x = np.asarray(graph.features, dtype=np.float64)
    queries = np.array([0, 42, 299, 150])
    distances = ((x[queries, None, :] - x[None, :, :]) ** 2).sum(-1)
    expected = np.argsort(distances, axis=1, kind="stable")[:, :25]
    found = nearest_rows(graph.features, x[queries], 25, chunk=7)
    assert np.array_equal(found, expected)
    assert np.array_equal(nearest_rows(graph.features, x[queries], 25), expected)


def test_knn_candidates_do_not_depend_on_the_chunk(graph_dir, monkeypatch):
    import graphrec.sampling as sampling

    graph = load_graph(graph_dir)
    split = split_pairs(graph, "also_bought", seed=0)
    queries, partners = sampling.query_partners(split, max_queries=30)
    whole = sampling.knn_candidates(graph, split, queries, partners, n=20)
    monkeypatch.setattr(sampling, "KNN_CHUNK", 13)
    streamed = sampling.knn_candidates(graph, split, queries, partners, n=20)
    assert torch.equal(whole.candidates, streamed.candidates) and torch.equal(whole.relevant, streamed.relevant)


def test_validation_scores_with_one_projection_per_epoch(graph_dir, model):
    """Scoring many pairs projects every row once (S = XY in row chunks) and gathers: the
    same logits as scoring chunk by chunk."""
    graph = load_graph(graph_dir)
    inputs = node_inputs(graph).features.rows(None)
    pairs = torch.randint(0, graph.num_nodes, (2000, 2), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        per_chunk = torch.cat([model.logits(inputs, pairs[s : s + 100]) for s in range(0, len(pairs), 100)])
    once = model.all_logits(inputs, pairs, chunk=100)  # 2000 pairs > 100 and touch most of 300 rows
    torch.testing.assert_close(once, per_chunk, rtol=1e-5, atol=1e-5)


def test_training_from_the_memory_map_matches_in_memory(graph_dir, tmp_path, monkeypatch):
    """Above IN_MEMORY_LIMIT training reads mini-batch rows from the float16 memory map
    instead of a float32 copy: the same history and weights (float16 -> float32 is exact)."""
    import graphrec.models.encoders as encoders
    import graphrec.train as train_module

    def run(limit, name):
        monkeypatch.setattr(encoders, "IN_MEMORY_LIMIT", limit)
        return train_module.train(graph_dir, decoder="mahalanobis", k=4, epochs=2, out_dir=tmp_path / name,
                                  quiet=True, max_queries=20, candidates=10)

    graph = load_graph(graph_dir)
    model = MahalanobisModel(LinearEncoder(DIM, 2, preprocessing="max"))
    copied = model.training_inputs(node_inputs(graph))
    assert copied.dtype == torch.float32 and copied.data_ptr() != graph.features.ctypes.data
    monkeypatch.setattr(encoders, "IN_MEMORY_LIMIT", 0)
    mapped_inputs = model.training_inputs(node_inputs(graph))
    assert mapped_inputs.dtype == torch.float16 and mapped_inputs.data_ptr() == graph.features.ctypes.data  # no copy
    # square-rooted features (the default) are prepared as mini-batches read them, still without a copy
    rooted = MahalanobisModel(LinearEncoder(DIM, 2, preprocessing="sqrt")).training_inputs(node_inputs(graph))
    assert isinstance(rooted, PreparedRows) and rooted.rows.data_ptr() == graph.features.ctypes.data
    want = LinearEncoder(DIM, 2, preprocessing="sqrt").prepare(mapped_inputs[torch.tensor([3, 1])])
    assert torch.equal(rooted[torch.tensor([3, 1])], want)
    in_memory, mapped = run(1 << 40, "in-memory"), run(0, "mapped")
    for key, value in in_memory.model.state_dict().items():
        torch.testing.assert_close(mapped.model.state_dict()[key], value, rtol=1e-5, atol=1e-6)
    assert [round(r["val_accuracy"], 6) for r in mapped.history] == [round(r["val_accuracy"], 6) for r in in_memory.history]
    assert mapped.metrics["test"]["accuracy"] == pytest.approx(in_memory.metrics["test"]["accuracy"], abs=1e-9)
