"""Recommender: neighbours by ASIN (single and batched), --category, --exclude-known,
probabilities equal to the model's own prediction, and the index cache in RUN_DIR."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from graphrec.errors import UsageError
from graphrec.graph import Graph
from graphrec.inputs import node_inputs
from graphrec.models import LinearEncoder, MahalanobisModel
from graphrec.recommend import COLUMNS, Recommender, category_mask
from graphrec.runs import RunWriter

N, F, K = 60, 24, 4
CATEGORIES = ["Clothing|Men|Shoes", "Clothing|Women|Dresses", "Clothing|Men|Shirts"]


def make_graph(n: int = N, features: np.ndarray | None = None, image_paths=None, manifest_features=None) -> Graph:
    rng = np.random.default_rng(0)
    asins = [f"B{i:09d}" for i in range(n)]
    cats = [CATEGORIES[i % 3] for i in range(n)]
    products = pd.DataFrame({
        "asin": asins,
        "title": [f"product number {i}" for i in range(n)],
        "brand": [f"brand{i % 5}" for i in range(n)],
        "price": [float(i) if i % 4 else np.nan for i in range(n)],
        "category": cats,
        "categories": [json.dumps([c]) for c in cats],
        "image_url": [None] * n,
        "image_path": image_paths if image_paths is not None else [None] * n,
    })
    edges = {"also_bought": rng.integers(0, n, size=(2, 3 * n))}
    x = features if features is not None else rng.standard_normal((n, F)).astype(np.float16)
    graph = Graph.from_arrays(asins, edges, features=x, products=products)
    if manifest_features is not None:
        graph.manifest["features"] = manifest_features
    return graph


def make_run(tmp_path, graph: Graph, k: int = K, name: str = "run"):
    model = MahalanobisModel(LinearEncoder(feature_dim=graph.feature_dim, k=k, seed=3))
    with torch.no_grad():
        model.decoder.shift.fill_(2.5)
    writer = RunWriter(tmp_path / name)
    writer.write_config({"decoder": model.name, "k": k, "relation": "also_bought", "seed": 3, "graph": "<memory>", "graph_checksum": None,
                         "model": model.hparams()})
    writer.write_model(model)
    return writer.commit()


@pytest.fixture
def graph():
    return make_graph()


@pytest.fixture
def rec(tmp_path, graph):
    return Recommender.load(make_run(tmp_path, graph), graph=graph)


def test_neighbours_exclude_query_sorted_and_exact(rec, graph):
    table = rec.neighbours("B000000007", top=8)
    assert list(table.columns) == COLUMNS and len(table) == 8
    assert "B000000007" not in set(table["asin"])
    assert table["rank"].tolist() == list(range(1, 9))
    assert table["distance"].is_monotonic_increasing
    # the same as brute force in the style space
    style = rec.model.embed_features(torch.from_numpy(np.asarray(graph.features, dtype=np.float32))).detach().numpy()
    d = ((style - style[7]) ** 2).sum(1)
    d[7] = np.inf
    assert table["asin"].tolist() == [graph.asins[i] for i in np.argsort(d)[:8]]
    np.testing.assert_allclose(table["distance"], np.sort(d)[:8], rtol=1e-4, atol=1e-5)
    assert table.loc[0, "title"] == f"product number {graph.index_of(table.loc[0, 'asin'])}"


def test_probability_is_the_models_prediction(rec, graph):
    table = rec.neighbours("B000000011", top=10)
    pairs = torch.tensor([[11, graph.index_of(a)] for a in table["asin"]])
    expected = rec.model.predict_proba(node_inputs(graph), pairs).numpy()
    np.testing.assert_allclose(table["probability"].to_numpy(), expected, rtol=1e-5, atol=1e-6)
    shift = float(rec.model.decoder.shift.detach())
    np.testing.assert_allclose(table["probability"], 1 / (1 + np.exp(-(shift - table["distance"]))), rtol=1e-6)
    assert table["probability"].is_monotonic_decreasing


def test_category_restricts_candidates(rec, graph):
    men = category_mask(graph, "Clothing|Men")
    assert men.sum() == 40  # shoes + shirts
    table = rec.neighbours("B000000001", top=50, category="Clothing|Men")
    assert len(table) == 40  # every Men product but... the query (a Women dress) is not Men
    assert all(men[graph.index_of(a)] for a in table["asin"])
    few = rec.neighbours("B000000000", top=30, category="Clothing | Men | Shoes")  # spaces around '|' are fine
    assert len(few) == 19 and "B000000000" not in set(few["asin"])  # 20 shoes minus the query
    with pytest.raises(UsageError, match="no product"):
        rec.neighbours("B000000000", category="Sports")


def test_exclude_known_drops_training_partners(rec, graph):
    edges = graph.edge_index("also_bought").numpy()
    query = int(np.bincount(edges.ravel()).argmax())
    partners = set(edges[1][edges[0] == query]) | set(edges[0][edges[1] == query])
    assert partners
    everything = rec.neighbours(graph.asins[query], top=N)
    assert {graph.index_of(a) for a in everything["asin"]} >= partners  # they are there by default
    filtered = rec.neighbours(graph.asins[query], top=N, exclude_known=True)
    got = {graph.index_of(a) for a in filtered["asin"]}
    assert not got & partners and query not in got
    assert len(filtered) == N - 1 - len(partners)
    assert filtered["distance"].is_monotonic_increasing


def test_batch_equals_single_queries(rec):
    asins = ["B000000003", "B000000040", "B000000003"]
    batch = rec.neighbours_batch(asins, top=5, category="Clothing|Men")
    assert list(batch.columns) == ["query", *COLUMNS] and len(batch) == 15
    for asin in asins:
        single = rec.neighbours(asin, top=5, category="Clothing|Men")
        part = batch[batch["query"] == asin].drop(columns="query").head(5).reset_index(drop=True)
        pd.testing.assert_frame_equal(part, single)


def test_unknown_asin_is_a_usage_error(rec):
    with pytest.raises(UsageError, match="B00000000X.*Did you mean"):
        rec.neighbours("B00000000X")


def test_scoring_path_agrees_with_index(rec, graph):
    """The path used for non-metric decoders (score every candidate with predict_proba)
    must rank like the metric index does for a metric model."""
    nodes = np.array([5, 9])
    excluded = [rec._excluded(int(q), True) for q in nodes]
    ids, prob = rec._score(nodes, 6, "Clothing|Men", excluded)
    by_index = rec.neighbours_batch([graph.asins[5], graph.asins[9]], top=6, category="Clothing|Men", exclude_known=True)
    assert [graph.asins[i] for i in ids.ravel()] == by_index["asin"].tolist()
    np.testing.assert_allclose(prob.ravel(), by_index["probability"], rtol=1e-5)


def test_index_is_cached_and_invalidated(tmp_path, graph):
    run_dir = make_run(tmp_path, graph)
    first = Recommender.load(run_dir, graph=graph)
    cached = run_dir / "index" / "style.npy"
    assert cached.is_file()
    np.testing.assert_array_equal(np.load(cached), first.style)
    stamp = cached.stat().st_mtime_ns
    Recommender.load(run_dir, graph=graph)
    assert cached.stat().st_mtime_ns == stamp  # reused
    retrained = MahalanobisModel(LinearEncoder(feature_dim=F, k=K, seed=99))
    torch.save(retrained.state_dict(), run_dir / "model.pt")
    again = Recommender.load(run_dir, graph=graph)
    assert not np.allclose(again.style, first.style)
    np.testing.assert_array_equal(np.load(cached), again.style)


def test_approximate_index_finds_the_same_neighbours(tmp_path):
    graph = make_graph(n=1500)
    run_dir = make_run(tmp_path, graph)
    exact = Recommender.load(run_dir, graph=graph, approx=False)
    approx = Recommender.load(run_dir, graph=graph, approx=True)
    assert approx.index.kind == "ivf" and exact.index.kind == "flat"
    asins = list(graph.asins[:50])
    a = exact.neighbours_batch(asins, top=10)
    b = approx.neighbours_batch(asins, top=10)
    recall = np.mean([len(set(a[a["query"] == q]["asin"]) & set(b[b["query"] == q]["asin"])) / 10 for q in asins])
    assert recall >= 0.9
    assert not (b["asin"] == b["query"]).any()


def test_fm_scores_candidates_with_the_model(tmp_path, graph):
    """FM has no style space: neighbours are the most probable candidates under predict_proba."""
    from graphrec.models.fm import FactorizationMachine

    pairs = graph.edge_index("also_bought").T.contiguous()
    model = FactorizationMachine.build(node_inputs(graph), pairs, torch.ones(len(pairs)), k=4, seed=1)
    with torch.no_grad():  # give the untrained embeddings a spread so scores differ
        model.embedding.normal_(0, 0.5, generator=torch.Generator().manual_seed(2))
        model.bias.normal_(0, 0.5, generator=torch.Generator().manual_seed(3))
    writer = RunWriter(tmp_path / "fm")
    writer.write_config({"decoder": "fm", "k": 4, "relation": "also_bought", "seed": 1, "graph": "<memory>", "model": model.hparams()})
    writer.write_model(model)
    rec = Recommender.load(writer.commit(), graph=graph)
    assert rec.index is None and not rec.model.is_metric
    table = rec.neighbours("B000000004", top=7, category="Clothing|Men", exclude_known=True)
    assert len(table) == 7 and table["distance"].isna().all()
    assert table["probability"].is_monotonic_decreasing
    # brute force over every allowed candidate
    known = set(map(tuple, graph.edge_index("also_bought").T.tolist()))
    allowed = [j for j in np.flatnonzero(category_mask(graph, "Clothing|Men")) if j != 4 and (min(4, j), max(4, j)) not in known]
    scores = rec.model.predict_proba(node_inputs(graph), torch.tensor([[4, j] for j in allowed])).numpy()
    best = np.argsort(-scores, kind="stable")[:7]
    assert table["asin"].tolist() == [graph.asins[allowed[i]] for i in best]
    np.testing.assert_allclose(table["probability"], scores[best], rtol=1e-5)
    with pytest.raises(UsageError, match="does not use images"):
        rec.neighbours_for_image("photo.png")
