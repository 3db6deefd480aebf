"""Kill -9 in the middle of build-graph, extract-features and train.

Each command runs in a subprocess with one internal step wrapped so that it announces
itself (a "ready" file) and waits there: the test then sends SIGKILL at exactly that
point, which is what a user's ``kill -9`` or an out-of-memory kill would do. Afterwards
no output looks complete when it is not, and the same command started again finishes
the job (extract-features without recomputing finished images).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from graphrec.cli import app
from graphrec.errors import DataError, UsageError
from graphrec.graph import build_graph, clean_stale_builds, load_graph
from graphrec.io.features import read_features
from test_bad_input import DIM, asin, features_for, good_lines, write_b, write_meta

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def start_and_kill(tmp_path: Path, body: str, timeout: float = 120.0) -> None:
    """Run ``body`` (Python; ``READY`` is the path to touch, then it should hang) in a
    subprocess, wait until it is ready and kill it with SIGKILL."""
    ready = tmp_path / f"ready-{time.monotonic_ns()}"
    script = tmp_path / "victim.py"
    script.write_text(f"import os, sys, time\nREADY = {str(ready)!r}\n" + textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while not os.path.exists(ready):
            if proc.poll() is not None:
                raise AssertionError(f"the victim ended before it was killed:\n{proc.stdout.read().decode()}")
            if time.monotonic() > deadline:
                raise AssertionError("the victim never reached the point where it is killed")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


HANG = "open(READY, 'w').close(); time.sleep(600)"


# ----------------------------------------------------------------------------- build-graph


@pytest.fixture
def inputs(tmp_path):
    meta = write_meta(tmp_path / "meta.json.gz", good_lines(12))
    b = write_b(tmp_path / "f.b", [asin(i) for i in range(12)], features_for(12))
    return meta, b


def _kill_build_during_edges(tmp_path, meta, b, out, *extra):
    start_and_kill(tmp_path, f"""
        import graphrec.graph.build as build
        def hang(*args, **kwargs):
            {HANG}
        build.relation_edges = hang  # the edge pass: features.npy is already half of the temp directory
        from graphrec.cli import app
        app(["build-graph", "--meta", {str(meta)!r}, "--features", {str(b)!r}, "--feature-dim", "{DIM}",
             "-o", {str(out)!r}, "-q", *{list(extra)!r}])
    """)


def test_build_graph_killed_leaves_no_graph_and_the_next_build_cleans_up(tmp_path, inputs):
    meta, b = inputs
    out = tmp_path / "graph"
    _kill_build_during_edges(tmp_path, meta, b, out)
    assert not out.exists()  # nothing that looks like a graph
    leftovers = list(tmp_path.glob(".graph.building-*"))
    assert len(leftovers) == 1 and (leftovers[0] / "features.npy").exists()
    assert not (leftovers[0] / "manifest.json").exists()
    result = runner.invoke(app, ["info", str(out)])
    assert result.exit_code != 0 and "not a graph directory" in result.output
    # the same command again: builds, and removes what the killed build left
    result = runner.invoke(app, ["build-graph", "--meta", str(meta), "--features", str(b), "--feature-dim", str(DIM),
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "interrupted build" in result.output
    assert not list(tmp_path.glob(".graph.building-*"))
    assert load_graph(out).num_nodes == 12
    assert not (out / ".building.lock").exists()


def test_a_running_build_is_never_cleaned_up(tmp_path, inputs):
    meta, b = inputs
    out = tmp_path / "graph"
    ready = tmp_path / "ready-live"
    script = tmp_path / "live.py"
    script.write_text(textwrap.dedent(f"""
        import time
        import graphrec.graph as graph
        import graphrec.graph.build as build
        def hang(*args, **kwargs):
            open({str(ready)!r}, 'w').close(); time.sleep(600)
        build.relation_edges = hang
        graph.build_graph({str(meta)!r}, {str(out)!r}, {str(b)!r}, feature_dim={DIM}, quiet=True)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        building = list(tmp_path.glob(".graph.building-*"))
        assert len(building) == 1
        assert clean_stale_builds(out, grace_seconds=0) == []  # alive: its lock is held
        assert building[0].is_dir()
    finally:
        proc.kill()
        proc.wait()
    assert clean_stale_builds(out) == building  # dead now: removed at once, no grace period needed
    assert not building[0].exists()


def test_a_killed_force_rebuild_never_loses_the_old_graph(tmp_path, inputs):
    meta, b = inputs
    out = tmp_path / "graph"
    build_graph(meta, out, b, feature_dim=DIM, quiet=True)
    before = (out / "manifest.json").read_text()
    # killed between moving the old graph aside and moving the new one in
    start_and_kill(tmp_path, f"""
        import graphrec.graph as graph
        real = os.rename
        def rename(src, dst):
            real(src, dst)
            if ".old-" in str(dst):
                {HANG}
        os.rename = rename  # graphrec.fs.swap_into_place renames through the os module
        graph.build_graph({str(meta)!r}, {str(out)!r}, {str(b)!r}, feature_dim={DIM}, category="Clothing, Shoes & Jewelry",
                          force=True, quiet=True)
    """)
    assert not out.exists()  # the new graph never arrived...
    assert list(tmp_path.glob(".graph.old-*"))  # ...and the old one is aside
    # the next build puts the old graph back first, so without --force it refuses to overwrite it
    result = runner.invoke(app, ["build-graph", "--meta", str(meta), "-o", str(out), "-q"])
    assert result.exit_code == 2 and "already exists" in result.output
    assert (out / "manifest.json").read_text() == before
    assert load_graph(out).num_nodes == 12
    assert not list(tmp_path.glob(".graph.building-*"))


# ----------------------------------------------------------------------------- extract-features


N_IMAGES = 6


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        Image.fromarray(rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)).save(folder / f"{asin(i)}.png")
    (folder / f"{asin(N_IMAGES)}.jpg").write_bytes(b"not an image")
    return folder


def _extract_call(images, out) -> str:
    return (f"extract_features(images={str(images)!r}, out={str(out)!r}, weights='random', seed=0, batch_size=2, "
            f"chunk_images=2, workers=0, quiet=True)")


_NETWORKS = {}


def network(seed: int):
    """A random-weights AlexNet, built once per seed and session."""
    from graphrec.vision import Fc7Extractor, RandomWeightsWarning

    if seed not in _NETWORKS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)
            _NETWORKS[seed] = Fc7Extractor("random", seed=seed)
    return _NETWORKS[seed]


class CountingExtractor:
    """The real network (seed 0), counting the images it sees."""

    def __init__(self):
        self.inner = network(0)
        self.images = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def forward(self, batch):
        self.images += len(batch)
        return self.inner.forward(batch)


def test_extract_features_killed_resumes_without_recomputing(tmp_path, images):
    out = tmp_path / "features.b"
    start_and_kill(tmp_path, f"""
        import graphrec.extract as extract
        real = extract.write_text_atomic
        done = []
        def write_atomic(path, text):
            real(path, text)
            if path.name.startswith("part-") and path.suffix == ".json":
                done.append(path)
                if len(done) == 1:  # one chunk of two images is finished
                    {HANG}
        extract.write_text_atomic = write_atomic
        from graphrec.extract import extract_features
        {_extract_call(images, out)}
    """)
    assert not out.exists() and not Path(str(out) + ".json").exists()  # nothing looks finished
    assert Path(str(out) + ".parts").is_dir()
    # build-graph refuses the unfinished features rather than guessing
    meta = write_meta(tmp_path / "meta.json.gz", good_lines(N_IMAGES))
    with pytest.raises((DataError, UsageError)):
        build_graph(meta, tmp_path / "graph", out, quiet=True)

    from graphrec.extract import extract_features

    counting = CountingExtractor()
    result = extract_features(images=images, out=out, batch_size=2, chunk_images=2, workers=0, quiet=True,
                              extractor=counting)
    assert result.resumed == 2 and result.extracted == N_IMAGES - 2
    assert counting.images == N_IMAGES - 2  # finished images were not recomputed
    assert result.num_images == N_IMAGES and sum(result.skipped.values()) == 1
    assert not Path(str(out) + ".parts").exists()

    reference = tmp_path / "reference.b"
    extract_features(images=images, out=reference, batch_size=2, chunk_images=2, workers=0, quiet=True,
                     extractor=CountingExtractor())
    got_asins, got = read_features(out, dim=4096)
    want_asins, want = read_features(reference, dim=4096)
    assert got_asins == want_asins == [asin(i) for i in range(N_IMAGES)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    sidecar = json.loads(Path(str(out) + ".json").read_text())
    assert sidecar["num_images"] == N_IMAGES
    assert build_graph(meta, tmp_path / "graph", out, quiet=True).manifest["num_nodes"] == N_IMAGES


def _kill_between_file_and_sidecar(tmp_path, images, out) -> tuple[dict, bytes]:
    """An earlier file from another network (seed 7) at ``out``, then a seed-0 run killed
    when one of its two final steps (write ``OUT.json``, rename the new ``OUT`` into place)
    is done and the other is not, whichever order extract.py uses. Returns the old
    sidecar and the old file's bytes."""
    from graphrec.extract import extract_features

    extract_features(images=images, out=out, batch_size=6, workers=0, quiet=True, extractor=network(7))
    old_sidecar, old_bytes = json.loads(Path(str(out) + ".json").read_text()), out.read_bytes()
    start_and_kill(tmp_path, f"""
        import graphrec.extract as extract
        OUT = {str(out)!r}
        done = []
        def step(name):
            if done:  # the other final step is done, this one is not
                {HANG}
            done.append(name)
        real_write, real_replace = extract.write_text_atomic, os.replace
        def write_atomic(path, text):
            if str(path) == OUT + ".json":
                step("sidecar")
            real_write(path, text)
        def replace(src, dst):
            if str(dst) == OUT:
                step("file")
            real_replace(src, dst)
        extract.write_text_atomic = write_atomic
        extract.os.replace = replace
        from graphrec.extract import extract_features
        {_extract_call(images, out)}
    """)
    return old_sidecar, old_bytes


def test_extract_killed_between_file_and_sidecar_is_not_mistaken_for_finished(tmp_path, images):
    from graphrec.extract import extract_features

    out = tmp_path / "features.b"
    _kill_between_file_and_sidecar(tmp_path, images, out)
    assert Path(str(out) + ".parts").is_dir()
    meta = write_meta(tmp_path / "meta.json.gz", good_lines(N_IMAGES))
    with pytest.raises(DataError, match="interrupted"):
        build_graph(meta, tmp_path / "graph", out, quiet=True)  # the pair may name the wrong network
    counting = CountingExtractor()
    result = extract_features(images=images, out=out, batch_size=2, chunk_images=2, workers=0, quiet=True,
                              extractor=counting)
    assert counting.images == 0 and result.spec["seed"] == 0  # everything was in finished chunks
    assert json.loads(Path(str(out) + ".json").read_text())["extractor"]["seed"] == 0
    reference = tmp_path / "reference.b"
    extract_features(images=images, out=reference, batch_size=6, workers=0, quiet=True, extractor=network(0))
    np.testing.assert_allclose(read_features(out, dim=4096)[1], read_features(reference, dim=4096)[1], rtol=1e-5, atol=1e-6)
    assert build_graph(meta, tmp_path / "graph", out, quiet=True).manifest["features"]["extractor"]["seed"] == 0


def test_extract_output_and_sidecar_always_agree_after_a_kill(tmp_path, images):
    out = tmp_path / "features.b"
    old_sidecar, old_bytes = _kill_between_file_and_sidecar(tmp_path, images, out)
    sidecar = Path(str(out) + ".json")
    if sidecar.exists():
        seed = json.loads(sidecar.read_text())["extractor"]["seed"]
        assert (seed == 7) == (out.read_bytes() == old_bytes)  # the sidecar describes the file next to it


# ----------------------------------------------------------------------------- train


TRAIN_ARGS = ["--decoder", "mahalanobis", "--k", "2", "--epochs", "6", "--patience", "0", "--batch-size", "128",
              "--seed", "3"]


@pytest.fixture
def train_graph(tmp_path):
    from test_train import easy_graph, write_graph_dir

    return write_graph_dir(easy_graph(n=80), tmp_path / "graph")


def _comparable(run_dir: Path) -> tuple[dict, list]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics.pop("train_seconds", None)
    history = [{k: v for k, v in row.items() if k != "seconds"}
               for row in csv.DictReader((run_dir / "history.csv").open())]
    return metrics, history


def test_train_killed_resumes_to_the_same_metrics(tmp_path, train_graph):
    reference = tmp_path / "reference"
    result = runner.invoke(app, ["train", "--graph", str(train_graph), *TRAIN_ARGS, "-o", str(reference)])
    assert result.exit_code == 0, result.output

    out = tmp_path / "run"
    start_and_kill(tmp_path, f"""
        import graphrec.runs as runs
        real = runs.RunWriter.save_checkpoint
        def save_checkpoint(self, state):
            real(self, state)
            if state["epoch"] == 3:  # killed after the third epoch's checkpoint
                {HANG}
        runs.RunWriter.save_checkpoint = save_checkpoint
        from graphrec.cli import app
        app(["train", "--graph", {str(train_graph)!r}, *{TRAIN_ARGS!r}, "-o", {str(out)!r}])
    """)
    assert not out.exists()  # no RUN_DIR that looks finished
    partial = tmp_path / ".run.partial"
    assert (partial / "checkpoint.pt").is_file() and not (partial / "metrics.json").exists()
    result = runner.invoke(app, ["evaluate", str(out)])
    assert result.exit_code == 2 and "interrupted" in result.output

    # other options than the interrupted run's: refused, the checkpoint is kept
    result = runner.invoke(app, ["train", "--graph", str(train_graph), *TRAIN_ARGS, "--lr", "0.5", "-o", str(out), "--resume"])
    assert result.exit_code == 2 and "other options" in result.output and "Traceback" not in result.output
    assert (partial / "checkpoint.pt").is_file()

    result = runner.invoke(app, ["train", "--graph", str(train_graph), *TRAIN_ARGS, "-o", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and "epoch 3" in result.output
    assert not partial.exists() and not (out / "checkpoint.pt").exists()
    got, want = _comparable(out), _comparable(reference)
    assert got[0] == want[0]  # every metric, exactly
    assert got[1] == want[1]  # and every epoch of the history


def test_resume_without_an_interrupted_run_starts_from_the_beginning(tmp_path, train_graph):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--graph", str(train_graph), *TRAIN_ARGS, "-o", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    assert "nothing to resume" in result.output
    assert (out / "metrics.json").is_file()


def test_a_crafted_checkpoint_fails_safely(tmp_path, train_graph):
    from test_untrusted import crafted_torch_file

    out = tmp_path / "run"
    partial = tmp_path / ".run.partial"
    partial.mkdir()
    marker = tmp_path / "PWNED"
    crafted_torch_file(partial / "checkpoint.pt", marker, lambda p: {"epoch": 2, "model": p})
    result = runner.invoke(app, ["train", "--graph", str(train_graph), *TRAIN_ARGS, "-o", str(out), "--resume"])
    assert result.exit_code == 1 and "checkpoint.pt" in result.output and "Traceback" not in result.output
    assert not marker.exists() and not out.exists()
