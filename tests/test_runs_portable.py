"""Runs that survive a rebuild of their graph and a move of the project folder: the graph
is recognised by its content, and found relative to the run."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest
from test_cli_neighbours import write_catalogue
from typer.testing import CliRunner

from graphrec.cli import app
from graphrec.errors import DataError
from graphrec.graph import build_graph, load_graph, manifest_checksum, manifest_fingerprint
from graphrec.runs import graph_checksum, load_run
from graphrec.train import train

runner = CliRunner()


@pytest.fixture
def project(tmp_path):
    """A project folder: the inputs, graph/ built from them, and a tiny trained runs/m2."""
    root = tmp_path / "project"
    root.mkdir()
    asins, graph_dir = write_catalogue(root)
    run = train(graph_dir, decoder="mahalanobis", k=2, epochs=2, out_dir=root / "runs" / "m2", quiet=True, max_queries=20)
    return root, asins, graph_dir, run.path


def rebuild(root, graph_dir):
    build_graph(root / "meta.json.gz", graph_dir, root / "features.b", feature_dim=16, dtype="float32", quiet=True, force=True)


def test_fingerprint_ignores_times_versions_and_paths():
    manifest = {"format_version": 1, "num_nodes": 3, "created": "2026-01-01T00:00:00+00:00", "graphrec_version": "0.1.0",
                "sources": {"metadata": {"path": "/a/meta.json.gz", "size": 10, "sha256": "ab"}},
                "options": {"images": "/a/images", "dtype": "float16"}}
    moved = json.loads(json.dumps(manifest))
    moved.update(created="2027-05-05T10:00:00+00:00", graphrec_version="0.2.0")
    moved["sources"]["metadata"]["path"] = "/b/meta.json.gz"
    moved["options"]["images"] = "/b/images"
    assert manifest_fingerprint(moved) == manifest_fingerprint(manifest)
    for change in ({"num_nodes": 4}, {"options": {"images": "/a/images", "dtype": "float32"}},
                   {"sources": {"metadata": {"path": "/a/meta.json.gz", "size": 10, "sha256": "cd"}}}):
        assert manifest_fingerprint({**manifest, **change}) != manifest_fingerprint(manifest)


def test_a_forced_rebuild_of_the_same_inputs_keeps_the_run_loadable(project):
    root, asins, graph_dir, run_dir = project
    before = (graph_dir / "manifest.json").read_bytes()
    manifest = json.loads(before)
    manifest["created"] = "1999-01-01T00:00:00+00:00"  # as if built long ago: the file differs, the content not
    (graph_dir / "manifest.json").write_text(json.dumps(manifest))
    rebuild(root, graph_dir)
    assert json.loads((graph_dir / "manifest.json").read_text())["created"] != manifest["created"]  # really rebuilt
    run = load_run(run_dir)
    assert run.config["graph_checksum"] == graph_checksum(run.graph)
    result = runner.invoke(app, ["neighbours", asins[0], "--run", str(run_dir), "--top", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 3


def test_a_real_change_of_inputs_is_still_refused(project):
    root, asins, graph_dir, run_dir = project
    meta = root / "meta.json.gz"
    lines = gzip.decompress(meta.read_bytes()).decode().splitlines()
    meta.write_bytes(gzip.compress(("\n".join(lines[:-1]) + "\n").encode()))  # one product fewer
    rebuild(root, graph_dir)
    with pytest.raises(DataError, match="changed since the run"):
        load_run(run_dir)
    result = runner.invoke(app, ["neighbours", asins[0], "--run", str(run_dir)])
    assert result.exit_code == 1 and "changed since the run" in result.output


def test_runs_of_earlier_versions_with_a_manifest_checksum_still_load(project):
    root, asins, graph_dir, run_dir = project
    config = json.loads((run_dir / "config.json").read_text())
    config["graph_checksum"] = manifest_checksum(graph_dir)
    (run_dir / "config.json").write_text(json.dumps(config))
    assert load_run(run_dir).graph.num_nodes == len(asins)
    config["graph_checksum"] = manifest_checksum(graph_dir)[::-1]
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match="changed since"):
        load_run(run_dir)


def test_copied_project_folder_works_without_the_original(project, tmp_path):
    root, asins, graph_dir, run_dir = project
    config = json.loads((run_dir / "config.json").read_text())
    assert config["graph"] == "../../graph"
    moved = tmp_path / "elsewhere" / "project"
    shutil.copytree(root, moved)
    shutil.rmtree(root)
    run = load_run(moved / "runs" / "m2")
    assert run.graph.path.resolve() == (moved / "graph").resolve()
    result = runner.invoke(app, ["neighbours", asins[0], "--run", str(moved / "runs" / "m2"), "--top", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 2


def test_graph_option_overrides_the_recorded_graph(project, tmp_path):
    root, asins, graph_dir, run_dir = project
    other = tmp_path / "graph-copy"
    shutil.copytree(graph_dir, other)
    shutil.rmtree(graph_dir)
    result = runner.invoke(app, ["neighbours", asins[0], "--run", str(run_dir)])
    assert result.exit_code == 2 and "--graph" in result.output, result.output
    result = runner.invoke(app, ["neighbours", asins[0], "--run", str(run_dir), "--graph", str(other), "--top", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 2
    result = runner.invoke(app, ["evaluate", str(run_dir), "--graph", str(other), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["test"]["accuracy"] == json.loads((run_dir / "metrics.json").read_text())["test"]["accuracy"]
    assert load_run(run_dir, graph=load_graph(other)).graph.path == other


def test_old_runs_with_an_absolute_graph_path_still_load(project):
    root, asins, graph_dir, run_dir = project
    config = json.loads((run_dir / "config.json").read_text())
    config["graph"] = str(graph_dir.resolve())
    config.pop("graph_absolute", None)
    (run_dir / "config.json").write_text(json.dumps(config))
    assert load_run(run_dir).graph.path.resolve() == graph_dir.resolve()
