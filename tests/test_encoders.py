"""Collaborative encoders (embedding, hybrid, lightgcn, sage) behind the one distance decoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_model_contract import contract_graph

from graphrec.errors import UsageError
from graphrec.graph import Graph
from graphrec.inputs import node_inputs
from graphrec.models import EmbeddingEncoder, get_encoder, list_encoders
from graphrec.recommend import Recommender
from graphrec.runs import load_run
from graphrec.sampling import message_edges, pair_keys, split_pairs
from graphrec.train import train

QUICK = {"epochs": 4, "weight_decay": 1e-3, "quiet": True, "max_queries": 20, "candidates": 10}


def multiplex_graph(n: int = 80) -> Graph:
    """also_viewed lists every also_bought edge and more, so held-out also_bought pairs are
    also_viewed edges: the message-passing graph must drop them."""
    graph = contract_graph(n=n)
    bought = graph.edge_index("also_bought")
    rng = np.random.default_rng(1)
    extra = np.stack([rng.integers(0, n, 60), rng.integers(0, n, 60)])
    extra = extra[:, extra[0] != extra[1]]
    viewed = np.concatenate([bought.numpy(), extra], axis=1)
    return Graph.from_arrays(list(graph.asins), {"also_bought": bought.numpy(), "also_viewed": viewed},
                             features=np.asarray(graph.features), products=graph.products)


def _held_out_positive_keys(split) -> torch.Tensor:
    positives = torch.cat([split.val_pairs[split.val_labels > 0.5], split.test_pairs[split.test_labels > 0.5]])
    return pair_keys(positives, split.num_nodes)


def test_message_edges_hold_training_positives_and_no_held_out_pair():
    graph = multiplex_graph()
    split = split_pairs(graph, "also_bought", seed=0)
    for relations in ([], ["also_viewed"]):
        edges = message_edges(graph, split, relations)
        keys = pair_keys(edges.t(), split.num_nodes)
        assert not torch.isin(keys, split.held_out_keys).any()  # no validation/test pair, edge or not
        assert torch.isin(pair_keys(split.train_positives, split.num_nodes), keys).all()
    # also_viewed adds edges, but never one of also_bought's held-out positives (it lists them all)
    assert torch.isin(_held_out_positive_keys(split), pair_keys(graph.edge_index("also_viewed").t(), split.num_nodes)).all()
    assert len(message_edges(graph, split, ["also_viewed"])[0]) > len(message_edges(graph, split)[0])


@pytest.mark.parametrize("encoder", ["lightgcn", "sage"])
def test_a_trained_message_passing_model_never_saw_validation_or_test_edges(tmp_path, encoder):
    graph = multiplex_graph()
    run = train(graph, k=3, encoder=encoder, message_relations=["also_viewed"], out_dir=tmp_path / encoder, **QUICK)
    split = split_pairs(graph, "also_bought", seed=0)
    for model in (run.model, load_run(run.path, graph=graph).model):
        stored = model.encoder.edge_index
        keys = pair_keys(stored.t(), split.num_nodes)
        assert not torch.isin(keys, split.held_out_keys).any()
        assert not torch.isin(_held_out_positive_keys(split), keys).any()
    assert run.config["message_relations"] == ["also_viewed"] and run.config["encoder"] == encoder


def test_every_encoder_trains_reloads_and_recommends(tmp_path):
    graph = contract_graph(n=80)
    for name in list_encoders():
        run = train(graph, k=3, encoder=name, out_dir=tmp_path / name, **QUICK)
        reloaded = load_run(run.path, graph=graph)
        pairs = torch.tensor([[0, 2], [1, 3], [0, 1]])
        assert torch.equal(reloaded.model.predict_proba(reloaded.inputs, pairs), run.model.predict_proba(run.inputs, pairs))
        rec = Recommender.load(run.path, graph=graph, cache=False)
        table = rec.neighbours(str(graph.asins[0]), top=5)
        assert len(table) == 5 and str(graph.asins[0]) not in set(table["asin"])
        # the table's probability is the model's own for that pair
        node = graph.index_of(table["asin"].iloc[0])
        expected = run.model.predict_proba(run.inputs, torch.tensor([[0, node]])).item()
        assert table["probability"].iloc[0] == pytest.approx(expected, rel=1e-5)


def test_a_graph_without_features_or_metadata_trains_and_recommends(tmp_path):
    graph = contract_graph(n=80)
    bare = Graph.from_arrays(list(graph.asins), graph.edges)
    run = train(bare, k=4, out_dir=tmp_path / "bare", **QUICK)
    assert run.config["encoder"] == "lightgcn" and run.config["model"]["base"]["encoder"] == "embedding"
    assert run.metrics["test"]["hit@10"] is None  # no features: no nearest-neighbour candidates
    table = Recommender.load(run.path, graph=bare, cache=False).neighbours(str(bare.asins[3]), top=4)
    assert len(table) == 4 and table["probability"].between(0, 1).all()
    with pytest.raises(UsageError, match="image features"):
        train(bare, k=4, encoder="linear", out_dir=tmp_path / "linear", **QUICK)


def subgroup_graph(n: int = 800, dim: int = 8, seed: int = 0, isolated: int = 20) -> Graph:
    """Features that tell 2 clusters apart, edges only inside 8 hidden subgroups (4 per
    cluster; the last ``isolated`` products have none): ``x Y`` learns the clusters,
    per-product offsets can learn the subgroups."""
    rng = np.random.default_rng(seed)
    group = np.arange(n) % 8
    cluster = group % 2
    features = (rng.random((n, dim)) + 2.0 * cluster[:, None] * (np.arange(dim) < dim // 2)).astype(np.float16)
    edges = [(i, j) for i in range(n - isolated) for j in range(i + 1, n - isolated) if group[i] == group[j] and rng.random() < 0.25]
    return Graph.from_arrays([f"B{i:09d}" for i in range(n)], {"also_bought": np.array(edges).T}, features=features)


STAGED = {"epochs": 30, "quiet": True, "max_queries": 20, "candidates": 10, "patience": 5}


def test_hybrid_products_without_training_edges_keep_their_visual_style(tmp_path):
    graph = subgroup_graph()
    run = train(graph, k=3, encoder="hybrid", out_dir=tmp_path / "hybrid", **STAGED)
    assert run.metrics["offsets"]["kept"]
    encoder, inputs = run.model.encoder, node_inputs(graph)
    split = split_pairs(graph, "also_bought", seed=0)
    seen = torch.zeros(graph.num_nodes, dtype=torch.bool)
    seen[split.train_positives.reshape(-1)] = True
    cold = (~seen).nonzero().squeeze(1)
    assert len(cold) and seen.any()
    visual = encoder.linear.styles(inputs)
    torch.testing.assert_close(encoder.styles(inputs, cold), visual[cold])  # offsets of cold products stay 0
    assert not torch.allclose(encoder.styles(inputs, seen.nonzero().squeeze(1)), visual[seen])
    rows = torch.from_numpy(np.asarray(graph.features[:2], dtype=np.float32))
    torch.testing.assert_close(run.model.embed_features(rows), encoder.linear.embed_features(rows))  # a new photo: xY


def test_warm_and_cold_test_pairs_are_reported_apart(tmp_path):
    graph = contract_graph(n=80)
    run = train(graph, k=3, encoder="embedding", out_dir=tmp_path / "warm", **QUICK)
    warm, cold, test = run.metrics["test_warm"], run.metrics["test_cold"], run.metrics["test"]
    assert warm["pairs"] + cold["pairs"] == test["pairs"] and warm["pairs"] > 0 and cold["pairs"] > 0
    blended = (warm["accuracy"] * warm["pairs"] + cold["accuracy"] * cold["pairs"]) / test["pairs"]
    assert blended == pytest.approx(test["accuracy"])


def test_encoder_options_are_checked(tmp_path):
    graph = contract_graph(n=80)
    with pytest.raises(UsageError, match="unknown encoder"):
        train(graph, encoder="gat", out_dir=tmp_path / "a", **QUICK)
    with pytest.raises(UsageError, match="takes no --preprocessing"):
        train(graph, encoder="embedding", preprocessing="sqrt", out_dir=tmp_path / "b", **QUICK)
    with pytest.raises(UsageError, match="message-passing encoder"):
        train(graph, encoder="linear", message_relations=["also_bought"], out_dir=tmp_path / "c", **QUICK)
    with pytest.raises(UsageError, match="cannot embed a new photo"):
        EmbeddingEncoder(num_nodes=3, k=2).embed_features(torch.zeros(1, 4))
    assert get_encoder("lightgcn").needs_edges and not get_encoder("hybrid").needs_edges


def test_products_table_is_not_needed_by_collaborative_encoders():
    inputs = node_inputs(Graph.from_arrays(["a", "b", "c"], {"also_bought": np.array([[0], [1]])}))
    assert inputs.features is None and inputs.fields.tokens()[0] == ["brand:?", "price:?"]


@pytest.mark.parametrize("encoder, base, target", [("embedding", None, 1e-3), ("lightgcn", "embedding", 1e-3),
                                                    ("lightgcn", "hybrid", 2.0), ("linear", None, 2.0)])
def test_the_initial_style_scale_follows_the_encoder(encoder, base, target):
    """Free vectors start close together (a product with few edges stays near its partners);
    a projection of features starts at the paper's mean distance 2."""
    from graphrec.models import get_model
    from graphrec.models.decoder import DistanceDecoder

    graph = contract_graph(n=80)
    split, inputs = split_pairs(graph, "also_bought", 0), node_inputs(graph)
    options = {"encoder": encoder, **({"base": base} if base else {})}
    if get_encoder(encoder).needs_edges:
        options["edge_index"] = message_edges(graph, split, ())
    model = get_model("mahalanobis").build(inputs, split.train_pairs, split.train_labels, k=4, **options)
    sample = DistanceDecoder.sample_pairs(split.train_pairs)
    distances = model.decoder.distances(model.encoder.styles(inputs), sample)
    assert float(distances.mean()) == pytest.approx(target, rel=1e-3)


def test_collaborative_encoders_choose_their_threshold_on_validation_pairs(tmp_path):
    """Their training pairs are memorised, so the threshold comes from validation pairs
    (never test pairs); the linear encoder keeps choosing it on training pairs."""
    from graphrec.training import TrainConfig
    from graphrec.training.loop import calibration_pairs

    graph = contract_graph(n=80)
    bare = Graph.from_arrays(list(graph.asins), graph.edges)
    assert train(bare, k=4, out_dir=tmp_path / "bare", **QUICK).config["calibration"] == "val"
    assert train(graph, k=4, out_dir=tmp_path / "linear", **QUICK).config["calibration"] == "train"
    split = split_pairs(graph, "also_bought", 0)
    config = TrainConfig(epochs=1, lr=0.1, batch_size=8, weight_decay=0.0, patience=0, ema=0.0, noise_floor=0.0,
                         negatives=1, calibration="val")
    pairs, labels = calibration_pairs(split, config, seed=0)
    assert torch.equal(pairs, split.val_pairs) and torch.equal(labels, split.val_labels)
    pairs, _ = calibration_pairs(split, TrainConfig(**{**config.to_dict(), "calibration": "train"}), seed=0)
    train_keys = set(pair_keys(split.train_pairs, split.num_nodes).tolist())
    assert set(pair_keys(pairs, split.num_nodes).tolist()) <= train_keys
    with pytest.raises(UsageError, match="unknown --calibration .*; choose one of train, val"):
        train(graph, k=4, calibration="test", out_dir=tmp_path / "bad", **QUICK)


def test_lightgcn_gradient_matches_the_dense_product():
    """The propagation's hand-written backward (one more LGConv, the adjacency being
    symmetric) gives autograd's gradient of the dense computation."""
    from graphrec.models.propagation import LightGCNEncoder

    torch.manual_seed(0)
    n = 40
    edges = torch.randint(0, n, (2, 150))
    edges = edges[:, edges[0] != edges[1]]
    encoder = LightGCNEncoder(EmbeddingEncoder(n, 4), edges.shape[1] * 2)
    encoder.edge_index.copy_(torch.cat([edges, edges.flip(0)], dim=1))
    dense = encoder._adjacency(n).to_dense()
    weights, h = torch.randn(n, 4), torch.randn(n, 4, requires_grad=True)
    (encoder.propagate(h) * weights).sum().backward()
    mine, h.grad = h.grad.clone(), None
    total, layer = h, h
    for _ in range(encoder.layers):
        layer = dense @ layer
        total = total + layer
    (total / (encoder.layers + 1) * weights).sum().backward()
    assert torch.allclose(mine, h.grad, atol=1e-5) and not torch.equal(mine, torch.zeros_like(mine))


@pytest.mark.parametrize("graph_of, offsets_help", [(subgroup_graph, True), (contract_graph, False)])
def test_hybrid_keeps_its_offsets_only_when_they_beat_linear_on_validation(tmp_path, graph_of, offsets_help):
    graph = graph_of()
    linear = train(graph, k=3, encoder="linear", out_dir=tmp_path / "linear", **STAGED)
    hybrid = train(graph, k=3, encoder="hybrid", out_dir=tmp_path / "hybrid", **STAGED)
    kept = hybrid.metrics["offsets"]["kept"]
    assert hybrid.metrics["val"]["accuracy"] >= linear.metrics["val"]["accuracy"]
    assert hybrid.metrics["weight_decay"] == linear.metrics["weight_decay"]  # stage 1 is linear's search
    if offsets_help:  # measured: val accuracy 0.744 -> 0.943 (test 0.754 -> 0.952)
        assert kept and hybrid.metrics["val"]["accuracy"] > linear.metrics["val"]["accuracy"] + 0.03
        assert hybrid.metrics["best_epoch"] > linear.metrics["epochs_run"]  # an epoch of the second stage
    else:  # the features explain the edges: the offsets overfit and the linear fit is kept as it is
        assert not kept and hybrid.metrics["test"] == linear.metrics["test"]
    inputs = node_inputs(graph)
    visual = hybrid.model.encoder.linear.styles(inputs)
    torch.testing.assert_close(visual, linear.model.encoder.styles(inputs))  # Y is the linear fit's


def test_hybrid_interrupted_in_its_offset_stage_resumes_exactly(tmp_path, monkeypatch):
    import graphrec.runs as runs

    graph = subgroup_graph()
    reference = train(graph, k=3, encoder="hybrid", out_dir=tmp_path / "reference", **STAGED)
    first_stage = reference.metrics["offsets"]["epochs_run"]
    assert first_stage > 2
    real = runs.RunWriter.save_checkpoint

    def save_then_stop(self, state):
        real(self, state)
        if state.get("stage") == "offsets" and state["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs.RunWriter, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(graph, k=3, encoder="hybrid", out_dir=tmp_path / "run", **STAGED)
    monkeypatch.setattr(runs.RunWriter, "save_checkpoint", real)
    resumed = train(graph, k=3, encoder="hybrid", out_dir=tmp_path / "run", resume=True, **STAGED)
    for key in ("val", "test", "best_epoch", "epochs_run", "offsets"):
        assert resumed.metrics[key] == reference.metrics[key]
    assert torch.equal(resumed.model.encoder.offsets, reference.model.encoder.offsets)
