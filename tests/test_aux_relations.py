"""--aux-relations: other relations train the main relation's style space without
touching its held-out pairs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from test_train import write_graph_dir
from typer.testing import CliRunner

from graphrec.cli import app
from graphrec.errors import DataError, UsageError
from graphrec.evaluate import roc_auc
from graphrec.graph import Graph
from graphrec.inputs import node_inputs
from graphrec.models import LinearEncoder, MahalanobisModel, NodeInputs
from graphrec.models.heads import RelationHeads
from graphrec.sampling import auxiliary_relation, pair_keys, split_pairs
from graphrec.train import link_loss, train
from graphrec.training.objective import shared_style_logits


def two_relation_graph(n: int = 300, main_edges: int = 100, seed: int = 0, dim: int = 16) -> Graph:
    """Products with a 2-d style and 6 nuisance factors (e.g. pose and light); features are
    a ReLU of a fixed random linear map of both (the same map for every ``seed``).
    also_viewed links every product to its 4 nearest styles; also_bought is a small random
    subset of those links."""
    mixing = np.random.default_rng(99).normal(size=(8, dim))
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    x = np.maximum(np.concatenate([z, rng.normal(size=(n, 6))], 1) @ mixing + 0.3, 0).astype(np.float16)
    d = ((z[:, None] - z[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    near = np.argsort(d, 1)[:, :4]
    viewed = np.stack([np.repeat(np.arange(n), 4), near.ravel()])
    bought = viewed[:, rng.choice(viewed.shape[1], size=main_edges, replace=False)]
    products = pd.DataFrame({"asin": [f"B{i:09d}" for i in range(n)], "title": [f"item {i}" for i in range(n)]})
    return Graph.from_arrays(list(products["asin"]), {"also_bought": bought, "also_viewed": viewed}, features=x, products=products)


def test_auxiliary_edges_never_touch_held_out_pairs():
    graph = two_relation_graph()
    split = split_pairs(graph, "also_bought", seed=0)
    n = graph.num_nodes
    viewed = pair_keys(graph.edge_index("also_viewed").t(), n)
    held_out = split.held_out_keys
    # every held-out also_bought pair (an edge or a non-edge there) that is an also_viewed edge
    assert torch.isin(held_out, viewed).sum() > 5
    aux = auxiliary_relation(graph, split, "also_viewed")
    kept = pair_keys(aux.positives, n)
    assert not torch.isin(kept, held_out).any()
    assert len(kept) == int((~torch.isin(viewed, held_out)).sum())
    pairs, labels = aux.epoch_pairs(3, torch.Generator().manual_seed(0))
    assert len(pairs) == 4 * len(kept) and int(labels.sum()) == len(kept)
    drawn = pair_keys(pairs[labels == 0], n)
    assert not torch.isin(drawn, held_out).any() and not torch.isin(drawn, viewed).any()
    assert torch.equal(pair_keys(pairs[labels == 1], n).sort().values, kept.sort().values)
    capped = auxiliary_relation(graph, split, "also_viewed", max_edges=50)
    assert len(capped.positives) == 50 and torch.isin(pair_keys(capped.positives, n), kept).all()
    assert torch.equal(capped.exclude, aux.exclude)  # a dropped edge is still never drawn as a negative


def test_auxiliary_relation_refuses_the_main_relation_and_an_empty_one():
    graph = two_relation_graph()
    split = split_pairs(graph, "also_bought", seed=0)
    with pytest.raises(UsageError, match="being learnt"):
        auxiliary_relation(graph, split, "also_bought")
    # a relation made only of held-out pairs has nothing left to teach
    held = split.test_pairs[:3].t()
    tiny = Graph.from_arrays(list(graph.products["asin"]), {**graph.edges, "bought_together": held.numpy()},
                             features=np.asarray(graph.features), products=graph.products)
    with pytest.raises(DataError, match="bought_together"):
        auxiliary_relation(tiny, split_pairs(tiny, "also_bought", seed=0), "bought_together")


def test_shared_style_logits_match_the_model_and_the_heads():
    torch.manual_seed(0)
    model = MahalanobisModel(LinearEncoder(feature_dim=6, k=3, preprocessing="sqrt"))
    heads = RelationHeads(["also_viewed"], k=3, shift=0.5)
    with torch.no_grad():
        heads.maps[0].copy_(torch.randn(3, 3))
    raw = torch.rand(10, 6)
    inputs = model.training_inputs(NodeInputs.from_arrays(raw))  # training inputs: square-rooted once (the default preprocessing)
    assert not torch.allclose(inputs, raw)
    part = torch.tensor([[0, 1], [2, 3]])
    aux_pairs, aux_labels = torch.tensor([[4, 5], [6, 9], [7, 8]]), torch.tensor([1.0, 0.0, 1.0])
    logits, aux_loss = shared_style_logits(model, heads, inputs, part, [(aux_pairs, aux_labels)], 0.0)
    assert torch.allclose(logits, model.logits(inputs, part))
    style = model.embed_features(raw)
    diff = (style[aux_pairs[:, 0]] - style[aux_pairs[:, 1]]) @ heads.maps[0]
    want = link_loss(0.5 - (diff * diff).sum(-1), aux_labels) / 3
    assert torch.allclose(aux_loss, want)
    aux_loss.backward()  # the auxiliary loss alone moves the shared projection
    assert model.encoder.Y.grad is not None and model.encoder.Y.grad.abs().sum() > 0


def test_a_dense_auxiliary_relation_teaches_a_sparse_main_one(tmp_path):
    # scored on products that training never saw: their nearest styles against random pairs
    unseen = two_relation_graph(seed=100)
    near = unseen.edge_index("also_viewed").t()
    far = torch.randint(0, unseen.num_nodes, (len(near), 2), generator=torch.Generator().manual_seed(0))
    pairs, labels = torch.cat([near, far]), torch.cat([torch.ones(len(near)), torch.zeros(len(far))])
    settings = dict(decoder="mahalanobis", k=2, epochs=50, lr=0.05, batch_size=16, patience=0, quiet=True,
                    preprocessing="max", weight_decay=1e-3)
    for seed in (0, 1):
        graph = two_relation_graph(seed=seed)
        alone = train(graph, seed=seed, out_dir=tmp_path / f"alone{seed}", **settings)
        shared = train(graph, seed=seed, aux_relations=["also_viewed"], out_dir=tmp_path / f"shared{seed}", **settings)
        auc_alone = roc_auc(alone.model.predict_proba(node_inputs(unseen), pairs), labels)
        auc_shared = roc_auc(shared.model.predict_proba(node_inputs(unseen), pairs), labels)
        assert auc_shared > auc_alone + 0.02, (seed, auc_alone, auc_shared)  # measured: +0.04 for both seeds
    config = json.loads((tmp_path / "shared0" / "config.json").read_text())
    assert config["aux_relations"] == ["also_viewed"] and config["aux_weight"] == 1.0
    assert json.loads((tmp_path / "alone0" / "config.json").read_text())["aux_relations"] == []


def test_interrupted_training_with_auxiliary_relations_resumes_exactly(tmp_path, monkeypatch):
    import graphrec.runs as runs

    graph = two_relation_graph(n=120)
    settings = dict(decoder="mahalanobis", k=2, epochs=5, lr=0.02, batch_size=32, patience=0, quiet=True,
                    aux_relations=["also_viewed"], negatives=2)
    reference = train(graph, out_dir=tmp_path / "reference", **settings)
    real = runs.RunWriter.save_checkpoint

    def save_then_stop(self, state):
        real(self, state)
        if state["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs.RunWriter, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(graph, out_dir=tmp_path / "run", **settings)
    monkeypatch.setattr(runs.RunWriter, "save_checkpoint", real)
    resumed = train(graph, out_dir=tmp_path / "run", resume=True, **settings)
    for key in ("val", "test"):
        assert resumed.metrics[key] == reference.metrics[key]
    assert torch.equal(resumed.model.encoder.Y, reference.model.encoder.Y)


def test_bad_auxiliary_requests_are_usage_errors(tmp_path):
    graph = two_relation_graph(n=80)
    bad = [
        (dict(decoder="fm", aux_relations=["also_viewed"]), "style space"),
        (dict(aux_relations=["bought_together"]), "bought_together"),
        (dict(aux_relations=["also_bought"]), "being learnt"),
        (dict(aux_relations=["also_viewed", "also_viewed"]), "twice"),
        (dict(aux_relations=["also_viewed"], aux_weight=0.0), "--aux-weight"),
    ]
    for options, message in bad:
        with pytest.raises(UsageError, match=message):
            train(graph, out_dir=tmp_path / "r", quiet=True, **{"decoder": "mahalanobis", **options})
        assert not (tmp_path / "r").exists()


def test_cli_takes_comma_separated_auxiliary_relations(tmp_path):
    graph_dir = write_graph_dir(two_relation_graph(n=80), tmp_path / "graph")
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--graph", str(graph_dir), "--k", "2", "--epochs", "2", "--aux-relations",
                                 "also_viewed", "--aux-weight", "0.5", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["aux_relations"] == ["also_viewed"] and config["aux_weight"] == 0.5
    result = runner.invoke(app, ["train", "--graph", str(graph_dir), "--aux-relations", "also_viewed,co_worn", "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "co_worn" in result.output and "Traceback" not in result.output
