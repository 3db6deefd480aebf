"""The joint weight-decay search (graphrec.training.joint) against the sequential one."""

from __future__ import annotations

import pytest
import torch
from test_train import easy_graph

from graphrec.errors import UsageError
from graphrec.train import train
from graphrec.training.joint import PRUNE_AFTER, PRUNE_MARGIN, prune_margin, stacked_product

OPTIONS = {"decoder": "mahalanobis", "epochs": 8, "lr": 0.02, "batch_size": 128, "quiet": True}


def _search(run) -> list[dict]:
    return run.metrics["weight_decay_search"]


@pytest.mark.parametrize(("k", "decays", "patience", "preprocessing"), [
    (2, [1e-3, 0.3, 30.0], 6, None),
    (1, [0.0, 1.0], 2, None),  # K = 1, no penalty at all, candidates stopping early at different epochs
    (3, [30.0, 1e-3], 2, "max"),  # a per-dimension scale folded into the stacked map; strongest penalty first
])
def test_joint_search_picks_what_the_sequential_search_picks(tmp_path, k, decays, patience, preprocessing):
    runs = {mode: train(easy_graph(), k=k, weight_decay=decays, patience=patience, preprocessing=preprocessing,
                        decay_search=mode, out_dir=tmp_path / mode, **OPTIONS)
            for mode in ("sequential", "joint")}
    joint, sequential = runs["joint"], runs["sequential"]
    assert joint.metrics["weight_decay"] == sequential.metrics["weight_decay"]
    assert [row["weight_decay"] for row in _search(joint)] == decays
    chosen = next(row for row in _search(joint) if row["weight_decay"] == joint.metrics["weight_decay"])
    for got, want in zip(_search(joint), _search(sequential)):
        if got["epochs_run"] < want["epochs_run"]:  # dropped as hopeless: far below the one chosen
            assert got["epochs_run"] >= PRUNE_AFTER and got["val_accuracy"] < chosen["val_accuracy"] - PRUNE_MARGIN
            continue
        assert (got["best_epoch"], got["epochs_run"]) == (want["best_epoch"], want["epochs_run"])
        assert got["val_accuracy"] == pytest.approx(want["val_accuracy"], abs=1e-9)
        assert got["val_auc"] == pytest.approx(want["val_auc"], abs=1e-4)
    # the same fit up to float rounding: stacked products do not round like separate ones
    assert torch.allclose(joint.model.encoder.Y, sequential.model.encoder.Y, rtol=1e-4, atol=1e-5)
    assert joint.metrics["test"]["accuracy"] == pytest.approx(sequential.metrics["test"]["accuracy"], abs=1e-9)
    assert [row["epoch"] for row in joint.history] == [row["epoch"] for row in sequential.history]


def test_an_interrupted_joint_search_resumes_to_the_same_run(tmp_path, monkeypatch):
    from graphrec import runs

    options = {**OPTIONS, "k": 2, "epochs": 5, "patience": 2, "weight_decay": [1e-3, 0.3, 30.0]}
    reference = train(easy_graph(), out_dir=tmp_path / "reference", **options)
    real_save = runs.RunWriter.save_checkpoint
    saved = []

    def stop_after_epoch_3(self, state):
        real_save(self, state)
        saved.append(len(state["joint"]["active"]))
        if state["epoch"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs.RunWriter, "save_checkpoint", stop_after_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train(easy_graph(), out_dir=tmp_path / "run", **options)
    monkeypatch.setattr(runs.RunWriter, "save_checkpoint", real_save)
    resumed = train(easy_graph(), out_dir=tmp_path / "run", resume=True, **options)
    assert resumed.metrics["weight_decay_search"] == reference.metrics["weight_decay_search"]
    assert resumed.metrics["test"] == reference.metrics["test"]
    assert torch.equal(resumed.model.encoder.Y, reference.model.encoder.Y)
    with pytest.raises(UsageError, match="other options"):  # a joint checkpoint is not continued one decay at a time
        monkeypatch.setattr(runs.RunWriter, "save_checkpoint", stop_after_epoch_3)
        with pytest.raises(KeyboardInterrupt):
            train(easy_graph(), out_dir=tmp_path / "again", **options)
        train(easy_graph(), out_dir=tmp_path / "again", resume=True, **{**options, "decay_search": "sequential"})


def test_one_decay_and_bad_search_names(tmp_path):
    single = train(easy_graph(), k=2, weight_decay=0.3, out_dir=tmp_path / "single", **OPTIONS)
    assert single.metrics["weight_decay"] == 0.3 and "weight_decay_search" not in single.metrics
    same = train(easy_graph(), k=2, weight_decay=[0.3, 0.3], out_dir=tmp_path / "same", **OPTIONS)
    first, second = _search(same)
    assert first == second and same.metrics["weight_decay"] == 0.3  # identical candidates: identical fits
    assert torch.equal(same.model.encoder.Y, single.model.encoder.Y) or torch.allclose(same.model.encoder.Y, single.model.encoder.Y, atol=1e-5)
    with pytest.raises(UsageError, match="--decay-search"):
        train(easy_graph(), k=2, weight_decay=[0.3, 1.0], decay_search="parallel", out_dir=tmp_path / "bad", **OPTIONS)


def test_stacked_product_gradient_is_the_matrix_product_gradient():
    rows = torch.randn(50, 7, dtype=torch.float64)
    weight = torch.randn(7, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w: stacked_product(rows, w), (weight,))
    expected = torch.randn(7, 6, requires_grad=True)
    (rows.float() @ expected).pow(2).sum().backward()
    got = expected.detach().clone().requires_grad_(True)
    stacked_product(rows, got).pow(2).sum().backward()
    assert torch.allclose(got.grad, expected.grad, rtol=1e-5)


def test_a_hopeless_decay_is_dropped_after_the_warm_up_and_the_leader_kept():
    from graphrec.models import LinearEncoder, MahalanobisModel
    from graphrec.training.config import TrainConfig
    from graphrec.training.joint import JointState, _prune_hopeless

    models = [MahalanobisModel(LinearEncoder(feature_dim=4, k=2, seed=s)) for s in range(3)]
    config = TrainConfig(epochs=10, lr=0.01, batch_size=64, weight_decay=[1e-3, 3e-2, 1.0], ema=0.0, noise_floor=0.0, negatives=1, patience=6)
    state = JointState(models, [1e-3, 3e-2, 1.0], config, seed=0)
    trajectories = ([0.895, 0.899, 0.90, 0.90], [0.93, 0.934, 0.935, 0.935], [0.92, 0.93, 0.94, 0.94])
    for stopping, history, values in zip(state.stopping, state.history, trajectories):
        for epoch, value in enumerate(values, 1):
            stopping.improves((value, 0.9))
            history.append({"epoch": epoch, "val_accuracy": value})
    state.epoch = PRUNE_AFTER - 1
    assert _prune_hopeless(state, pairs=5000) == []  # still warming up
    state.epoch = PRUNE_AFTER
    assert _prune_hopeless(state, pairs=20) == []  # on 20 validation pairs nothing is that sure
    assert _prune_hopeless(state, pairs=5000) == [(0, 0.90, 0.94)]  # 0.04 below, +0.001 in two epochs; 0.935 is within the margin
    assert state.stopping[0].stopped and not state.stopping[1].stopped and not state.stopping[2].stopped
    state.drop_stopped()
    assert state.active == [1, 2] and state.weight.shape[1] == 4


def test_a_candidate_behind_but_catching_up_is_kept():
    from graphrec.models import LinearEncoder, MahalanobisModel
    from graphrec.training.config import TrainConfig
    from graphrec.training.joint import JointState, _prune_hopeless

    models = [MahalanobisModel(LinearEncoder(feature_dim=4, k=1, seed=s)) for s in range(2)]
    config = TrainConfig(epochs=30, lr=0.01, batch_size=64, weight_decay=[3e-2, 1.0], ema=0.0, noise_floor=0.0, negatives=1, patience=6)
    state = JointState(models, [3e-2, 1.0], config, seed=0)
    # K = 1 on the planted 4k catalogue: decay 1 was 0.034 behind at epoch 3 and chosen at epoch 19
    for stopping, history, values in zip(state.stopping, state.history, ([0.6218, 0.6685, 0.6847], [0.6054, 0.6234, 0.6504])):
        for epoch, value in enumerate(values, 1):
            stopping.improves((value, 0.7))
            history.append({"epoch": epoch, "val_accuracy": value})
    state.epoch = 3
    assert _prune_hopeless(state, pairs=5400) == []


def test_the_prune_margin_is_two_standard_errors_and_at_least_one_point():
    assert prune_margin(0.94, 5419) == PRUNE_MARGIN  # 2 SE = 0.0065 on the 4k catalogue's validation pairs
    assert prune_margin(0.78, 1072) == pytest.approx(2 * (0.78 * 0.22 / 1072) ** 0.5)  # 0.025 on the sample's
