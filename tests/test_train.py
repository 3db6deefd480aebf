"""Training end to end on small generated graphs: it learns, it saves, it reloads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from graphrec.errors import UsageError
from graphrec.graph import FORMAT_VERSION, Graph
from graphrec.inputs import node_inputs
from graphrec.runs import load_run
from graphrec.train import train


def easy_graph(n: int = 160, dim: int = 16, seed: int = 0, features: bool = True) -> Graph:
    """Products with a 2-d latent style; each is linked to its 3 nearest styles; features
    are a noisy ReLU of a random linear map of the style."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    x = np.maximum(z @ rng.normal(size=(2, dim)) + 0.1 * rng.normal(size=(n, dim)) + 0.3, 0).astype(np.float16)
    d = ((z[:, None] - z[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    near = np.argsort(d, 1)[:, :3]
    edges = np.stack([np.repeat(np.arange(n), 3), near.ravel()])
    cats = ["Clothing|Men|Shoes" if v > 0 else "Clothing|Women|Dress" for v in z[:, 0]]
    products = pd.DataFrame({
        "asin": [f"B{i:09d}" for i in range(n)], "title": [f"item {i}" for i in range(n)],
        "brand": [f"brand{int(v > 0)}" for v in z[:, 1]], "price": np.exp(z[:, 1] + 3), "category": cats,
        "categories": [json.dumps([c]) for c in cats],
    })
    return Graph.from_arrays(list(products["asin"]), {"also_bought": edges}, features=x if features else None, products=products)


def write_graph_dir(graph: Graph, path: Path) -> Path:
    """A GRAPH_DIR as documented in graphrec/graph.py (what build-graph writes)."""
    path.mkdir(parents=True)
    edges = {name: e for name, e in graph.edges.items()}
    torch.save({"format_version": FORMAT_VERSION, "num_nodes": graph.num_nodes, "edge_index": edges}, path / "graph.pt")
    if graph.features is not None:
        np.save(path / "features.npy", np.asarray(graph.features))
    graph.products.to_parquet(path / "products.parquet")
    manifest = {"format_version": FORMAT_VERSION, "num_nodes": graph.num_nodes, "feature_dim": graph.feature_dim,
                "relations": {k: {"num_edges": int(v.shape[1])} for k, v in edges.items()}}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    graph_dir = write_graph_dir(easy_graph(), root / "graph")
    run = train(graph_dir, decoder="mahalanobis", k=2, epochs=25, lr=0.02, batch_size=256, seed=0, out_dir=root / "run", quiet=True)
    return graph_dir, run


def test_training_beats_chance_by_a_wide_margin(trained):
    _, run = trained
    assert run.metrics["test"]["accuracy"] > 0.8
    assert run.metrics["test"]["auc"] > 0.9
    assert run.metrics["test"]["hit@10"] > run.metrics["test_random_candidates"]["hit@10"] - 1.0  # both present
    assert 0 <= run.metrics["test_random_candidates"]["mrr"] <= 1


def test_run_dir_holds_the_contract_files(trained):
    graph_dir, run = trained
    assert sorted(p.name for p in run.path.iterdir()) == ["config.json", "curve.png", "curves.png", "history.csv", "metrics.json",
                                                         "model.pt", "style_space.png"]
    assert not list(run.path.parent.glob(".*partial*"))
    config = json.loads((run.path / "config.json").read_text())
    for key in ("decoder", "k", "relation", "seed", "graph", "graph_checksum", "epochs", "lr", "model"):
        assert key in config
    assert (run.path / config["graph"]).resolve() == graph_dir.resolve() == Path(config["graph_absolute"])
    assert not Path(config["graph"]).is_absolute()  # relative to the run: the project folder can move
    metrics = json.loads((run.path / "metrics.json").read_text())
    for key in ("decoder", "k", "relation", "train_seconds"):
        assert key in metrics
    assert set(metrics["val"]) >= {"accuracy", "auc"}
    assert set(metrics["test"]) >= {"accuracy", "auc", "hit@10", "mrr", "ndcg@10"}
    state = torch.load(run.path / "model.pt", weights_only=True)
    assert set(state) == {"encoder.Y", "decoder.shift", "encoder.scale"}  # the encoder/decoder split
    history = (run.path / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,loss,train_accuracy,val_accuracy")
    assert len(history) - 1 == metrics["epochs_run"]


def test_saved_run_reloads_to_identical_predictions(trained):
    graph_dir, run = trained
    loaded = load_run(run.path)
    assert not loaded.model.training
    pairs = torch.tensor([[0, 1], [5, 9], [10, 150], [3, 3]])
    assert torch.equal(loaded.model.predict_proba(loaded.inputs, pairs), run.model.predict_proba(run.inputs, pairs))
    x = torch.from_numpy(np.asarray(loaded.graph.features[[0, 1]], dtype=np.float32))
    s = loaded.model.embed_features(x)
    direct = torch.sigmoid(loaded.model.decoder.shift - ((s[0] - s[1]) ** 2).sum())
    assert loaded.model.predict_proba(loaded.inputs, pairs[:1]).item() == pytest.approx(direct.item(), rel=1e-6)


def test_changed_graph_is_refused(trained, tmp_path):
    graph_dir, run = trained
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run.path, copy)
    config = json.loads((copy / "config.json").read_text())
    config["graph_checksum"] = "0" * 64
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(Exception, match="changed since"):
        load_run(copy)


def test_fm_and_category_tree_train_without_features(tmp_path):
    graph = easy_graph(features=False)
    for decoder in ("fm", "category-tree"):
        run = train(graph, decoder=decoder, k=4, epochs=10, seed=1, out_dir=tmp_path / decoder, quiet=True)
        assert run.metrics["test"]["accuracy"] > 0.6  # categories carry real signal here
        assert run.metrics["test"]["hit@10"] is None  # no features: no nearest-neighbour candidates
        reloaded = load_run(tmp_path / decoder, graph=graph)
        pairs = torch.tensor([[0, 1], [2, 3]])
        assert torch.equal(reloaded.model.predict_proba(node_inputs(graph), pairs), run.model.predict_proba(node_inputs(graph), pairs))


def test_bad_requests_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="image features"):  # without features the default encoder is lightgcn (issue 14)
        train(easy_graph(features=False), decoder="mahalanobis", encoder="linear", out_dir=tmp_path / "a", quiet=True)
    with pytest.raises(UsageError, match="larger than the feature dimension"):
        train(easy_graph(), decoder="mahalanobis", k=17, out_dir=tmp_path / "b", quiet=True)
    with pytest.raises(UsageError, match="relation"):
        train(easy_graph(), relation="also_viewed", out_dir=tmp_path / "c", quiet=True)
    (tmp_path / "exists").mkdir()
    with pytest.raises(UsageError, match="--force"):
        train(easy_graph(), decoder="euclidean", out_dir=tmp_path / "exists", quiet=True)
    assert not list(tmp_path.glob(".*partial*"))


def test_link_loss_is_the_mixture_likelihood():
    from graphrec.train import link_loss

    logits = torch.tensor([-30.0, -2.0, 0.0, 1.5, 4.0], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum")
    assert torch.allclose(link_loss(logits, target, 0.0), plain)
    floor = 0.1
    p = floor + (1 - floor) * torch.sigmoid(logits)
    naive = -(target * p.log() + (1 - target) * (1 - p).log()).sum()
    loss = link_loss(logits, target, floor)
    assert torch.allclose(loss, naive)
    # an edge far apart in style space costs at most -log(floor) and barely pulls any more
    loss.backward()
    assert abs(logits.grad[0].item()) < 1e-9
    far = link_loss(torch.tensor([-1e4]), torch.tensor([1.0]), floor)
    assert far.item() == pytest.approx(-np.log(floor), rel=1e-6)


def test_noise_floor_is_recorded_and_checked(tmp_path):
    run = train(easy_graph(), decoder="mahalanobis", k=2, epochs=2, noise_floor=0.2, out_dir=tmp_path / "r", quiet=True)
    assert json.loads((run.path / "config.json").read_text())["noise_floor"] == 0.2
    with pytest.raises(UsageError, match="--noise-floor"):
        train(easy_graph(), decoder="mahalanobis", noise_floor=0.5, out_dir=tmp_path / "s", quiet=True)


def test_negatives_per_edge_are_drawn_fresh_and_recorded(tmp_path, monkeypatch):
    import graphrec.train as train_module
    from graphrec.sampling import fresh_negatives, pair_keys, split_pairs
    from graphrec.training import loop

    drawn: list[torch.Tensor] = []

    def recording(split, count, generator):
        pairs = fresh_negatives(split, count, generator)
        drawn.append(pairs)
        return pairs

    monkeypatch.setattr(loop, "fresh_negatives", recording)
    run = train(easy_graph(), decoder="mahalanobis", k=2, epochs=3, patience=0, negatives=3, weight_decay=1e-3, out_dir=tmp_path / "r", quiet=True)
    config = json.loads((run.path / "config.json").read_text())
    split_negatives = int((split_pairs(easy_graph(), "also_bought", 0).train_labels == 0).sum())
    assert config["negatives"] == 3
    # epoch 1 tops the split's own negatives up to 3 per edge; epochs 2 and 3 draw all 3 afresh
    assert [len(pairs) for pairs in drawn] == [2 * split_negatives, 3 * split_negatives, 3 * split_negatives]
    graph = easy_graph()
    edges = pair_keys(graph.edge_index("also_bought").t(), graph.num_nodes)
    assert not any(torch.isin(pair_keys(pairs, graph.num_nodes), edges).any() for pairs in drawn)
    # the default batch grows with the epoch, so an epoch keeps its number of steps
    assert config["batch_size"] == train_module.default_batch_size(4096, config["split"]["train"], 3)
    assert train_module.default_batch_size(4096, 43_000, 1) == 4096
    assert train_module.default_batch_size(4096, 43_000, 8) == 4096 * 9 // 2
    assert train_module.default_batch_size(4096, 1_000, 1) == 256
    with pytest.raises(UsageError, match="--negatives"):
        train(easy_graph(), decoder="mahalanobis", negatives=0, out_dir=tmp_path / "s", quiet=True)


def test_several_weight_decays_keep_the_best_on_validation(tmp_path):
    # one fit per decay, so that the kept fit can be compared bit for bit with a single-decay run
    # (the default joint search is compared with this one in tests/test_joint_search.py)
    run = train(easy_graph(), decoder="mahalanobis", k=2, epochs=6, lr=0.02, batch_size=128, weight_decay=[1e-3, 0.3, 30.0],
                decay_search="sequential", out_dir=tmp_path / "r", quiet=True)
    search = run.metrics["weight_decay_search"]
    assert [row["weight_decay"] for row in search] == [1e-3, 0.3, 30.0]
    best = max(search, key=lambda row: (row["val_accuracy"], row["val_auc"]))
    assert run.metrics["weight_decay"] == best["weight_decay"] != 30.0  # a penalty of 30 flattens the style space
    assert run.metrics["val"]["accuracy"] == pytest.approx(best["val_accuracy"])
    assert run.metrics["best_epoch"] == best["best_epoch"]
    assert json.loads((run.path / "config.json").read_text())["weight_decay"] == [1e-3, 0.3, 30.0]
    single = train(easy_graph(), decoder="mahalanobis", k=2, epochs=6, lr=0.02, batch_size=128, weight_decay=best["weight_decay"],
                   out_dir=tmp_path / "single", quiet=True)
    assert torch.equal(single.model.encoder.Y, run.model.encoder.Y)  # the kept fit is exactly the single-decay run
    assert "weight_decay_search" not in single.metrics
    with pytest.raises(UsageError, match="--weight-decay"):
        train(easy_graph(), decoder="mahalanobis", weight_decay=[1e-3, -1.0], out_dir=tmp_path / "bad", quiet=True)


def test_an_interrupted_weight_decay_search_resumes_without_refitting(tmp_path, monkeypatch):
    import graphrec.runs as runs
    from graphrec.training import loop

    options = dict(decoder="mahalanobis", k=2, epochs=4, lr=0.02, batch_size=128, patience=0, weight_decay=[1e-3, 0.3],
                   decay_search="sequential", quiet=True)  # the joint search's resume: tests/test_joint_search.py
    reference = train(easy_graph(), out_dir=tmp_path / "reference", **options)
    real_save = runs.RunWriter.save_checkpoint

    def stop_in_the_second_fit(self, state):
        real_save(self, state)
        if len(state["search"]["done"]) == 1 and state["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs.RunWriter, "save_checkpoint", stop_in_the_second_fit)
    with pytest.raises(KeyboardInterrupt):
        train(easy_graph(), out_dir=tmp_path / "run", **options)
    monkeypatch.setattr(runs.RunWriter, "save_checkpoint", real_save)
    fits = []
    real_fit = loop.fit_model
    monkeypatch.setattr(loop, "fit_model", lambda *a, **kw: fits.append(kw["resume"] is not None) or real_fit(*a, **kw))
    resumed = train(easy_graph(), out_dir=tmp_path / "run", resume=True, **options)
    assert fits == [True]  # the first decay is not refitted; the second continues from its checkpoint
    assert resumed.metrics["weight_decay_search"] == reference.metrics["weight_decay_search"]
    assert resumed.metrics["test"] == reference.metrics["test"]


def test_run_pictures_mark_the_kept_epoch_and_show_the_test_curves(trained, tmp_path):
    from graphrec.plots import plot_curves, plot_history

    _, run = trained
    for name in ("curve.png", "curves.png", "style_space.png"):
        assert (run.path / name).stat().st_size > 0
    history = pd.read_csv(run.path / "history.csv").to_dict("records")
    best = run.metrics["best_epoch"]
    right = plot_history(history, tmp_path / "c.png", "t", best_epoch=best).axes[1]
    assert any(f"kept: epoch {best}" == text.get_text() for text in right.get_legend().get_texts())
    assert [line.get_xdata()[0] for line in right.get_lines() if line.get_linestyle() == ":"] == [best]
    roc = plot_curves((np.array([0, 0.5, 1]), np.array([0, 0.8, 1])), (np.array([0, 1]), np.array([1, 0.5])), tmp_path / "r.png", "t", auc=0.8)
    assert [ax.get_title() for ax in roc.axes] == ["ROC", "precision-recall"]
    assert "AUC 0.8000" in roc.axes[0].get_legend().get_texts()[0].get_text()
