"""Decoder maths against direct computations on tiny inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from graphrec.errors import UsageError
from graphrec.graph import Graph
from graphrec.inputs import node_inputs, product_fields
from graphrec.models import (
    MODELS,
    CategoryTreeModel,
    EuclideanModel,
    FactorizationMachine,
    LinearEncoder,
    MahalanobisModel,
    NodeInputs,
    WeightedNeighbourModel,
    model_class,
)
from graphrec.models.euclidean import fit_logistic_1d
from graphrec.models.fm import fm_interaction


def tiny_graph(n: int = 12, dim: int = 8, features: bool = True, seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    x = rng.random((n, dim)).astype(np.float16) * 5
    edges = np.array([[i, (i + 1) % n] for i in range(n)]).T
    cats = ["Clothing|Men|Shoes" if i % 2 else "Clothing|Women|Dress" for i in range(n)]
    products = pd.DataFrame({
        "asin": [f"B{i:09d}" for i in range(n)],
        "category": cats,
        "categories": [f'["{c}", "Sale|Outlet"]' for c in cats],
        "brand": ["Acme" if i % 3 else None for i in range(n)],
        "price": [float(i * 7) if i % 4 else float("nan") for i in range(n)],
    })
    return Graph.from_arrays(list(products["asin"]), {"also_bought": edges}, features=x if features else None, products=products)


PAIRS = torch.tensor([[0, 1], [2, 5], [3, 3], [7, 11], [4, 9]])
LABELS = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0])


def direct_metric_proba(model, graph, pairs):
    x = torch.from_numpy(np.asarray(graph.features, dtype=np.float32))
    out = []
    for i, j in pairs.tolist():
        s_i, s_j = model.embed_features(x[i : i + 1]), model.embed_features(x[j : j + 1])
        out.append(torch.sigmoid(model.decoder.shift - ((s_i - s_j) ** 2).sum()))
    return torch.stack(out).detach()


@pytest.mark.parametrize("preprocessing", ["sqrt", "max"])
def test_mahalanobis_distance_and_probability_match_direct_computation(preprocessing):
    graph = tiny_graph()
    model = MahalanobisModel.build(node_inputs(graph), PAIRS, LABELS, k=3, seed=1, preprocessing=preprocessing)
    x = torch.from_numpy(np.asarray(graph.features, dtype=np.float32))
    largest = x.abs().max()  # every node is a training node here
    if preprocessing == "sqrt":  # sign(x) sqrt(|x| / max), then Y
        z, y = (x / largest).sign() * (x / largest).abs().sqrt(), model.encoder.Y
    else:  # x / max, then Y: the scale folds into Y
        z, y = x, model.encoder.scale[:, None] * model.encoder.Y
    assert torch.allclose(model.encoder.scale, torch.full_like(model.encoder.scale, 1 / largest))
    for i, j in PAIRS.tolist():  # d = ||(z_i - z_j) Y||^2, the definition
        d_direct = (((z[i] - z[j]) @ y) ** 2).sum()
        s = model.embed_features(x)
        assert torch.allclose(((s[i] - s[j]) ** 2).sum(), d_direct, rtol=1e-4, atol=1e-5)
    expected = direct_metric_proba(model, graph, PAIRS)
    assert torch.allclose(model.predict_proba(node_inputs(graph), PAIRS), expected, atol=1e-6)
    # training path: rows prepared once, then gathered rows of S = prepare(X) Y
    prepared = model.training_inputs(NodeInputs.from_arrays(x))
    assert torch.allclose(prepared, z if preprocessing == "sqrt" else x)
    logits = model.logits(prepared, PAIRS)
    assert torch.allclose(torch.sigmoid(logits).detach(), expected, atol=1e-6)
    assert model.predict_proba(node_inputs(graph), torch.tensor([[3, 3]])).item() == pytest.approx(torch.sigmoid(model.decoder.shift).item())


def test_mahalanobis_gradient_reaches_shift_and_projection():
    graph = tiny_graph()
    model = MahalanobisModel.build(node_inputs(graph), PAIRS, LABELS, k=2)
    x = torch.from_numpy(np.asarray(graph.features, dtype=np.float32))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model.logits(x, PAIRS), LABELS)
    loss.backward()
    assert model.decoder.shift.grad is not None and model.decoder.shift.grad.abs().item() > 0
    assert model.encoder.Y.grad is not None and model.encoder.Y.grad.abs().sum().item() > 0
    assert model.encoder.scale.requires_grad is False  # preprocessing is a buffer, stored, not learned


def test_mahalanobis_preprocessing_uses_training_nodes_only():
    graph = tiny_graph()
    train_pairs = torch.tensor([[0, 1], [1, 2], [2, 3]])
    model = MahalanobisModel.build(node_inputs(graph), train_pairs, torch.ones(3), k=2, preprocessing="max")
    x = np.asarray(graph.features, dtype=np.float32)
    assert model.encoder.scale[0].item() == pytest.approx(1 / x[:4].max(), rel=1e-5)
    changed = np.array(graph.features)
    changed[10] = 1000  # node 10 is not in a training pair
    other = Graph.from_arrays(list(graph.asins), graph.edges, features=changed, products=graph.products)
    again = MahalanobisModel.build(node_inputs(other), train_pairs, torch.ones(3), k=2, preprocessing="max")
    assert torch.equal(model.encoder.scale, again.encoder.scale)
    std = MahalanobisModel.build(node_inputs(graph), train_pairs, torch.ones(3), k=2, preprocessing="std")
    assert torch.allclose(std.encoder.scale, torch.from_numpy(1 / x[:4].std(0)), rtol=1e-3)


def test_k_larger_than_feature_dimension_is_a_usage_error():
    with pytest.raises(UsageError, match="larger than the feature dimension"):
        MahalanobisModel(LinearEncoder(feature_dim=8, k=9))


def test_models_that_need_features_say_so():
    graph = tiny_graph(features=False)
    for name in ("mahalanobis", "wnn", "euclidean"):
        with pytest.raises(UsageError, match="image features"):
            model_class(name).build(node_inputs(graph), PAIRS, LABELS, **({"k": 2} if name == "mahalanobis" else {}))
    with pytest.raises(UsageError, match="unknown decoder"):
        model_class("svm")


def test_fm_identity_equals_naive_pairwise_sum():
    torch.manual_seed(0)
    v = torch.randn(4, 7, 3)
    v[:, 5:] = 0  # padding rows contribute nothing
    naive = torch.stack([sum(v[m, a] @ v[m, b] for a in range(7) for b in range(a + 1, 7)) for m in range(4)])
    assert torch.allclose(fm_interaction(v), naive, atol=1e-5)


def test_fm_scores_pairs_from_metadata_without_features():
    graph = tiny_graph(features=False)
    model = FactorizationMachine.build(node_inputs(graph), PAIRS, LABELS, k=4, seed=0)
    tokens = product_fields(graph.products.iloc[[1]]).tokens()[0]
    assert "cat0:Clothing" in tokens and "cat2:Clothing|Men|Shoes" in tokens and "cat0:Sale" in tokens
    assert "brand:acme" in tokens and any(t.startswith("price:") for t in tokens)
    with torch.no_grad():
        model.embedding.normal_()
        model.bias.normal_()
    inputs = model.node_inputs(node_inputs(graph))
    i, j = 1, 4
    ids = [t for t in torch.cat([inputs[i], inputs[j]]).tolist() if t > 0]
    pairwise = sum(model.embedding[ids[a]] @ model.embedding[ids[b]] for a in range(len(ids)) for b in range(a + 1, len(ids)))
    expected = torch.sigmoid(model.global_bias + model.bias[ids].sum() + pairwise)
    assert model.predict_proba(node_inputs(graph), torch.tensor([[i, j]])).item() == pytest.approx(expected.item(), rel=1e-5)
    assert model.predict_proba(node_inputs(graph), torch.tensor([[j, i]])).item() == pytest.approx(expected.item(), rel=1e-5)


def test_wnn_is_a_diagonal_metric():
    graph = tiny_graph()
    model = WeightedNeighbourModel.build(node_inputs(graph), PAIRS, LABELS)
    with torch.no_grad():
        model.encoder.raw_weight.normal_()
    x = torch.from_numpy(np.asarray(graph.features, dtype=np.float32))
    w = torch.nn.functional.softplus(model.encoder.raw_weight) * model.encoder.scale**2
    for row, (i, j) in enumerate(PAIRS.tolist()):
        d = (w * (x[i] - x[j]) ** 2).sum()
        assert model.predict_proba(node_inputs(graph), PAIRS)[row].item() == pytest.approx(torch.sigmoid(model.decoder.shift - d).item(), rel=1e-4)
    assert (model.encoder.weights() >= 0).all()


def test_logistic_threshold_separates_distances():
    dist = torch.tensor([0.1, 0.2, 0.3, 0.4, 2.0, 2.5, 3.0, 3.5])
    labels = torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0])
    slope, shift = fit_logistic_1d(dist, labels)
    threshold = shift / slope
    assert 0.4 < threshold < 2.0


def test_euclidean_fits_threshold_on_training_pairs():
    graph = tiny_graph()
    model = EuclideanModel.build(node_inputs(graph), PAIRS, LABELS)
    model.fit(node_inputs(graph), PAIRS, LABELS)
    expected = direct_metric_proba(model, graph, PAIRS)
    assert torch.allclose(model.predict_proba(node_inputs(graph), PAIRS), expected, atol=1e-6)


def test_category_tree_counts_training_edges_by_category():
    graph = tiny_graph(n=20)
    men = [i for i in range(20) if i % 2]
    women = [i for i in range(20) if not i % 2]
    pairs = torch.tensor([[men[a], men[a + 1]] for a in range(8)] + [[men[a], women[a]] for a in range(8)])
    labels = torch.tensor([1.0] * 8 + [0.0] * 8)
    model = CategoryTreeModel.build(node_inputs(graph), pairs, labels)
    model.fit(node_inputs(graph), pairs, labels)
    p = model.predict_proba(node_inputs(graph), torch.tensor([[men[0], men[5]], [men[1], women[6]]]))
    assert p[0] == pytest.approx(9 / 10) and p[1] == pytest.approx(1 / 10)
    restored = CategoryTreeModel(**model.hparams())  # count tables take the stored shape
    restored.load_state_dict(model.state_dict())
    assert torch.equal(restored.predict_proba(node_inputs(graph), pairs), model.predict_proba(node_inputs(graph), pairs))


def test_registry_names_every_decoder():
    assert set(MODELS) == {"mahalanobis", "fm", "wnn", "euclidean", "category-tree"}
    assert all(MODELS[name].name == name for name in MODELS)
    assert MahalanobisModel.is_metric and not FactorizationMachine.is_metric
