"""graphrec under torchrun: two CPU processes (gloo) against one process.

Each test starts ``python -m torch.distributed.run --nproc_per_node 2`` (the venv's
torchrun) on a free port chosen at test time, so tests never collide.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from graphrec.datasets.synthetic import draw_product_image
from graphrec.distributed import DistContext, distributed_context, shard_list, shard_range, torchrun_env
from graphrec.errors import UsageError
from graphrec.extract import extract_features
from graphrec.io.features import record_dtype
from graphrec.vision import Fc7Extractor, RandomWeightsWarning

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(args: list[str], cwd: Path, nproc: int = 2, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


# -- helpers without processes ------------------------------------------------------


def test_shards_are_disjoint_contiguous_and_cover_everything():
    for n in range(0, 12):
        for world in range(1, 5):
            blocks = [shard_list(list(range(n)), rank, world) for rank in range(world)]
            assert sum(blocks, []) == list(range(n))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    assert shard_range(10, 1, 3) == (4, 7)


def test_environment_detection(monkeypatch):
    assert torchrun_env({}) is None
    assert torchrun_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == \
        {"rank": 1, "world_size": 2, "local_rank": 1, "local_world_size": 2}
    with pytest.raises(UsageError, match="RANK=3"):
        torchrun_env({"RANK": "3", "WORLD_SIZE": "2"})
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with distributed_context() as ctx:  # plain process: one rank, collectives are identities
        assert ctx == DistContext() and ctx.all_reduce_sum(2, 3.5) == (2.0, 3.5)
        assert ctx.on_main(lambda: 7) == 7 and ctx.all_gather_object("x") == ["x"]
    with pytest.raises(UsageError, match="torchrun"), distributed_context(True):
        pass


# -- sharded extraction -------------------------------------------------------------

ASINS = [f"B{k:09d}" for k in range(9)]

DRIVER_EXTRACT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from graphrec.extract import extract_features
    # rank 1 dies after its first chunk, as a killed process would, once rank 0 has
    # finished its block (so that the test knows what is on disk)
    rank = os.environ["RANK"]
    try:
        extract_features(sys.argv[1], sys.argv[2], weights="random", seed=0, batch_size=1, chunk_images=1,
                         workers=0, quiet=True, stop_after_chunks=1 if rank == "1" else None)
    except KeyboardInterrupt:
        deadline = time.time() + 60
        while len(list(Path(sys.argv[2] + ".parts").glob("part-000-*.json"))) < 5 and time.time() < deadline:
            time.sleep(0.1)
        sys.exit(1)
""")


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for k, asin in enumerate(ASINS):
        draw_product_image(k % 5, bool(k % 2), k % 3, k / 9, 0.4, k % 3, np.zeros(3), size=40).save(folder / f"{asin}.png")
    (folder / "B00000000X.png").write_bytes(b"not a png")  # skipped and counted, on whichever rank gets it
    return folder


def test_sharded_extraction_survives_a_killed_rank_and_matches_one_process(image_folder, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        single = extract_features(image_folder, tmp_path / "single.b", extractor=Fc7Extractor("random", seed=0),
                                  workers=0, quiet=True)
    assert single.num_images == 9

    out = tmp_path / "multi.b"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER_EXTRACT)
    killed = _torchrun([str(driver), str(image_folder), str(out)], cwd=tmp_path)
    assert killed.returncode != 0 and not out.exists()
    parts = tmp_path / "multi.b.parts"
    # rank 0 finished its whole block (5 of the 10 files, one per chunk), rank 1 only its first chunk
    chunks = sorted(p.name for p in parts.glob("part-*.json"))
    assert [c for c in chunks if c.startswith("part-001-")] == ["part-001-00000.json"]
    assert len([c for c in chunks if c.startswith("part-000-")]) == 5
    rank0_chunk = (parts / "part-000-00000.b").read_bytes()

    finished = _torchrun(["-m", "graphrec.cli", "extract-features", "--images", str(image_folder), "-o", str(out),
                          "--weights", "random", "--workers", "0", "--batch-size", "2", "--quiet"], cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]
    # the restarted run redid nothing: 6 images were done (5 on rank 0, 1 on rank 1), 4 left (one unreadable)
    assert "3 extracted now" in finished.stdout and "6 from an earlier run" in finished.stdout
    assert finished.stdout.count("wrote ") == 1  # rank 0 reports for both processes
    # same records in the same order; values equal up to float rounding (batch size and
    # thread count change the order of the convolution sums, by ~1e-7 relative)
    multi, one = np.fromfile(out, dtype=record_dtype(4096)), np.fromfile(tmp_path / "single.b", dtype=record_dtype(4096))
    assert list(multi["asin"]) == list(one["asin"])
    np.testing.assert_allclose(multi["x"], one["x"], rtol=1e-5, atol=1e-6)
    assert rank0_chunk == out.read_bytes()[: len(rank0_chunk)]  # finished chunks are copied, not recomputed
    sidecar = json.loads((tmp_path / "multi.b.json").read_text())
    expected = json.loads((tmp_path / "single.b.json").read_text())
    assert sidecar == expected and sidecar["skipped"] == {"unreadable": 1}
    assert not parts.exists()
    records = np.fromfile(out, dtype=record_dtype(4096))
    assert [a.decode().strip() for a in records["asin"]] == ASINS


# -- distributed training -----------------------------------------------------------

TRAIN_OPTIONS = ["--decoder", "mahalanobis", "--k", "4", "--epochs", "8", "--batch-size", "128", "--seed", "0",
                 "--candidates", "20"]


@pytest.fixture(scope="module")
def tiny_graph(tmp_path_factory):
    from graphrec.datasets.synthetic import generate_catalogue
    from graphrec.graph import build_graph

    root = tmp_path_factory.mktemp("dist-graph")
    catalogue = generate_catalogue(root / "catalogue", 300, feature_dim=32, seed=0)
    return build_graph(catalogue.meta_path, root / "graph", catalogue.features_path, feature_dim=32, quiet=True).path


def test_two_process_training_matches_one_process(tiny_graph, tmp_path):
    import torch

    from graphrec.runs import load_run
    from graphrec.train import train

    single = train(tiny_graph, decoder="mahalanobis", k=4, epochs=8, batch_size=128, seed=0, candidates=20,
                   out_dir=tmp_path / "single", quiet=True)
    result = _torchrun(["-m", "graphrec.cli", "train", "--graph", str(tiny_graph), *TRAIN_OPTIONS,
                        "-o", str(tmp_path / "multi"), "--quiet"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("run written to") == 1  # rank 0 reports and writes for both
    multi = load_run(tmp_path / "multi")
    assert sorted(p.name for p in multi.path.iterdir()) == sorted(p.name for p in single.path.iterdir())
    assert multi.config["world_size"] == 2 and single.config["world_size"] == 1
    assert not list(tmp_path.glob(".multi*"))  # no partial directory or checkpoint left
    # Each rank computes half of every mini-batch and DDP averages the gradients, with the
    # loss scaled so that the average is the whole batch's gradient: the same optimisation
    # steps as one process, up to float summation order (~1e-7 relative). Measured here:
    # identical accuracies, AUCs equal to 1e-6. The tolerances (0.005 accuracy = 2 of 404
    # pairs flipping across P = 0.5, 1e-3 AUC) leave room for rounding on other CPUs and
    # are far below seed-to-seed noise on this graph (about 0.02).
    assert multi.metrics["best_epoch"] == single.metrics["best_epoch"]
    for split in ("val", "test"):
        assert multi.metrics[split]["accuracy"] == pytest.approx(single.metrics[split]["accuracy"], abs=0.005)
        assert multi.metrics[split]["auc"] == pytest.approx(single.metrics[split]["auc"], abs=1e-3)
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(multi.model.state_dict()[name], value, rtol=1e-3, atol=1e-4)
    assert [row["epoch"] for row in multi.history] == [row["epoch"] for row in single.history]

    # a user error seen by rank 0 only (RUN_DIR exists) ends both ranks with the same one line
    again = _torchrun(["-m", "graphrec.cli", "train", "--graph", str(tiny_graph), *TRAIN_OPTIONS,
                       "-o", str(tmp_path / "multi"), "--quiet"], cwd=tmp_path)
    assert again.returncode != 0
    assert again.stderr.count("already exists; pass --force") == 2
    assert "graphrec.errors.UsageError" not in again.stderr  # printed as a sentence, not a traceback
