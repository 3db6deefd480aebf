"""One contract every registered model honours (implicit's test-mixin idea): build from
training pairs, a short fit through the real training loop, a save/load round trip,
probabilities in [0, 1], and the threshold shift training uses for calibration."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch

from graphrec.errors import UsageError
from graphrec.graph import Graph
from graphrec.inputs import node_inputs
from graphrec.models import LinearEncoder, MahalanobisModel, NodeInputs, get_model, list_models
from graphrec.sampling import split_pairs
from graphrec.training import TrainConfig, fit_model


def contract_graph(n: int = 60, dim: int = 12, seed: int = 0) -> Graph:
    """Two style clusters (features and categories agree), edges mostly inside a cluster."""
    rng = np.random.default_rng(seed)
    cluster = np.arange(n) % 2
    x = (rng.random((n, dim)) + 2.0 * cluster[:, None] * (np.arange(dim) < dim // 2)).astype(np.float16)
    edges = [(i, j) for i in range(n) for j in range(i + 1, n) if cluster[i] == cluster[j] and rng.random() < 0.12]
    cats = ["Clothing|Men|Shoes" if c else "Clothing|Women|Dress" for c in cluster]
    products = pd.DataFrame({
        "asin": [f"B{i:09d}" for i in range(n)], "category": cats, "categories": [json.dumps([c]) for c in cats],
        "brand": ["Acme" if i % 3 else "Other" for i in range(n)], "price": [float(5 + i) for i in range(n)],
    })
    return Graph.from_arrays(list(products["asin"]), {"also_bought": np.array(edges).T}, features=x, products=products)


@pytest.fixture(scope="module")
def graph() -> Graph:
    return contract_graph()


def _build(name: str, inputs: NodeInputs, split):
    cls = get_model(name)
    options = {"k": 3} if cls.has_k else {}
    options.update({"seed": 0} if not cls.unknown_options({"seed": 0}) else {})
    return cls.build(inputs, split.train_pairs, split.train_labels, **options)


@pytest.mark.parametrize("name", list_models())
def test_every_model_builds_fits_saves_and_scores(graph, name):
    cls = get_model(name)
    inputs = node_inputs(graph)
    split = split_pairs(graph, "also_bought", seed=0)
    model = _build(name, inputs, split)
    config = TrainConfig.resolve(cls, epochs=3, batch_size=64, patience=0)
    config = config.with_decay(config.decays[0])  # one fit (train() searches over several)
    history, best_epoch = fit_model(model, inputs, split, config, seed=0)
    assert 1 <= best_epoch <= len(history) <= (3 if cls.trainable else 1)
    probs = model.predict_proba(inputs, split.test_pairs)
    assert probs.shape == (len(split.test_pairs),) and bool(((probs >= 0) & (probs <= 1)).all())
    assert probs.std() > 0  # the fit learnt something that tells pairs apart
    # round trip: JSON hyper-parameters + a weights-only state_dict give the same model
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    restored = cls.from_hparams(json.loads(json.dumps(model.hparams())))
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    restored.eval()
    assert torch.equal(restored.predict_proba(inputs, split.test_pairs), probs)
    # a misspelt hyper-parameter is an error, not silently ignored
    with pytest.raises((TypeError, UsageError)):
        cls.from_hparams({**model.hparams(), "k_typo": 3})


@pytest.mark.parametrize("name", list_models())
def test_threshold_shift_moves_every_logit(graph, name):
    cls = get_model(name)
    inputs = node_inputs(graph)
    split = split_pairs(graph, "also_bought", seed=0)
    model = _build(name, inputs, split)
    if not cls.trainable:
        model.fit(inputs, split.train_pairs, split.train_labels)
    x = model.training_inputs(inputs)
    before = model.all_logits(x, split.val_pairs)
    model.shift_logits(0.75)
    after = model.all_logits(x, split.val_pairs)
    if cls.is_metric or cls.trainable:  # a model with a bias moves it
        torch.testing.assert_close(after, before + 0.75)
    else:  # counting models have no bias to move
        torch.testing.assert_close(after, before)


def test_registry_metadata_drives_defaults_and_k():
    assert list_models(has_k=True) == ["mahalanobis", "fm"]
    assert get_model("mahalanobis").defaults.weight_decay == (1e-3, 3e-2, 1.0)
    assert TrainConfig.resolve(get_model("wnn")).epochs == 20
    assert TrainConfig.resolve(get_model("fm"), epochs=5).epochs == 5
    with pytest.raises(UsageError, match="unknown decoder"):
        get_model("svm")


def test_a_metric_model_runs_on_literal_tensors():
    """No graph needed: a model is tested with literal feature rows."""
    x = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0]])
    model = MahalanobisModel(LinearEncoder(feature_dim=3, k=2, preprocessing="max"))
    inputs = NodeInputs.from_arrays(x)
    pairs = torch.tensor([[0, 1], [0, 2]])
    probs = model.predict_proba(inputs, pairs)
    style = model.styles(inputs)
    expected = model.decoder.probability(style, pairs)
    torch.testing.assert_close(probs, expected.detach())


def test_runs_saved_before_the_encoder_split_still_load(graph):
    """model.pt of older runs has top-level Y / scale / shift; they load into the split model."""
    inputs = node_inputs(graph)
    split = split_pairs(graph, "also_bought", seed=0)
    model = _build("mahalanobis", inputs, split)
    old_state = {key.split(".", 1)[1]: value for key, value in model.state_dict().items()}
    assert set(old_state) == {"Y", "scale", "shift"}
    old_hparams = {key: value for key, value in model.hparams().items() if key != "encoder"}
    restored = get_model("mahalanobis").from_hparams(old_hparams)
    restored.load_state_dict(old_state)
    assert torch.equal(restored.predict_proba(inputs, split.test_pairs), model.predict_proba(inputs, split.test_pairs))


def test_an_option_a_model_does_not_take_is_a_usage_error(graph, tmp_path):
    from graphrec.train import train

    with pytest.raises(UsageError, match="takes no --preprocessing"):
        train(graph, decoder="fm", preprocessing="sqrt", out_dir=tmp_path / "fm", quiet=True)
