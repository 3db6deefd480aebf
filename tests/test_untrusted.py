"""Untrusted files never run code: crafted pickles in place of graphrec's own files fail
safely with one clear sentence, graphrec's source has no eval/exec or unsafe loads, and
image paths taken from data cannot leave the images folder.

Every payload here would create a marker file if it were ever unpickled; each test first
proves that on a copy (with an explicitly unsafe load), then checks graphrec never does.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from graphrec.cli import app
from graphrec.errors import DataError
from graphrec.graph import build_graph, find_images, load_graph
from graphrec.picture import Tile, render_grid, safe_image_path
from graphrec.runs import load_run
from test_bad_input import (
    DIM,
    asin,
    assert_clean_error,
    good_lines,
    run_setup,  # noqa: F401 - fixture
    write_meta,
)

runner = CliRunner()
PACKAGE = Path(__file__).resolve().parent.parent / "graphrec"


class Payload:
    """Unpickling this calls ``os.mkdir(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def crafted_torch_file(path: Path, marker: Path, wrap=lambda payload: payload) -> Path:
    """A torch.save file whose pickle runs ``os.mkdir(marker)``; proven live on a copy."""
    torch.save(wrap(Payload(marker)), path)
    probe = marker.with_name(marker.name + "-probe")
    control = path.with_name(path.name + ".control")
    torch.save(wrap(Payload(probe)), control)
    torch.load(control, weights_only=False)  # the unsafe load a careless loader would do
    assert probe.is_dir(), "the payload must really run code when unpickled"
    control.unlink()
    return path


WRAPS = {
    "bare": lambda p: p,
    "inside a state_dict": lambda p: {"projection": torch.zeros(DIM, 3), "shift": torch.tensor(1.0), "extra": p},
}


@pytest.mark.parametrize("wrap", WRAPS, ids=list(WRAPS))
def test_a_crafted_model_pt_fails_safely(run_setup, tmp_path, wrap):  # noqa: F811
    *_, run = run_setup
    marker = tmp_path / "PWNED"
    crafted_torch_file(run / "model.pt", marker, WRAPS[wrap])
    for args in (["neighbours", asin(0), "--run", str(run)], ["evaluate", str(run)]):
        result = runner.invoke(app, args)
        assert_clean_error(result, "model.pt", code=1)
        assert not marker.exists()
    with pytest.raises(DataError, match="model.pt"):
        load_run(run)
    assert not marker.exists()


@pytest.mark.parametrize("wrap", WRAPS, ids=list(WRAPS))
def test_a_crafted_graph_pt_fails_safely(run_setup, tmp_path, wrap):  # noqa: F811
    _, _, graph_dir, run = run_setup
    marker = tmp_path / "PWNED"
    crafted_torch_file(graph_dir / "graph.pt", marker, WRAPS[wrap])
    for args in (["info", str(graph_dir)], ["train", "--graph", str(graph_dir), "--k", "2", "-o", str(tmp_path / "r")],
                 ["neighbours", asin(0), "--run", str(run)]):
        result = runner.invoke(app, args)
        assert_clean_error(result, "graph.pt", "refused", code=1)
        assert not marker.exists()


def test_a_graph_pt_of_the_wrong_shape_is_refused(run_setup):  # noqa: F811
    _, _, graph_dir, _ = run_setup
    torch.save({"format_version": 1, "num_nodes": 12, "edge_index": {"also_bought": torch.tensor([[0, 1], [2, 99]])}},
               graph_dir / "graph.pt")
    with pytest.raises(DataError, match="not a valid"):
        load_graph(graph_dir)


def test_a_pickled_features_npy_is_never_unpickled(run_setup, tmp_path):  # noqa: F811
    _, _, graph_dir, _ = run_setup
    marker = tmp_path / "PWNED"
    payload = np.empty(1, dtype=object)
    payload[0] = Payload(marker)
    np.save(graph_dir / "features.npy", payload, allow_pickle=True)
    result = runner.invoke(app, ["info", str(graph_dir)])
    assert_clean_error(result, "features.npy", code=1)
    assert not marker.exists()
    np.load(graph_dir / "features.npy", allow_pickle=True)  # proof: the unsafe load runs it
    assert marker.is_dir()


def test_a_crafted_index_cache_is_rebuilt_not_loaded(run_setup, tmp_path):  # noqa: F811
    *_, run = run_setup
    first = runner.invoke(app, ["neighbours", asin(0), "--run", str(run), "--json"])
    assert first.exit_code == 0, first.output
    cache = run / "index" / "style.npy"
    assert cache.is_file()
    marker = tmp_path / "PWNED"
    payload = np.empty(12, dtype=object)
    payload[:] = [Payload(marker)] * 12
    np.save(cache, payload, allow_pickle=True)
    again = runner.invoke(app, ["neighbours", asin(0), "--run", str(run), "--json"])
    assert again.exit_code == 0, again.output
    assert again.output == first.output and not marker.exists()
    np.save(cache, np.zeros((5, 3), dtype=np.float32))  # a stale cache of the wrong size
    assert runner.invoke(app, ["neighbours", asin(0), "--run", str(run), "--json"]).output == first.output


def test_crafted_alexnet_weights_fail_safely(tmp_path):
    marker = tmp_path / "PWNED"
    weights = crafted_torch_file(tmp_path / "alexnet.pt", marker)
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (32, 32), (10, 20, 30)).save(folder / f"{asin(1)}.png")
    result = runner.invoke(app, ["extract-features", "--images", str(folder), "-o", str(tmp_path / "f.b"),
                                 "--weights", str(weights), "--workers", "0", "-q"])
    assert_clean_error(result, "alexnet.pt", code=1)
    assert not marker.exists() and not (tmp_path / "f.b").exists()


# ----------------------------------------------------------------------------- the source


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
            yield node, owner, name


def _keyword(node: ast.Call, name: str):
    for keyword in node.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def test_no_eval_exec_or_unsafe_loading_in_graphrec():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    problems = []
    torch_loads = 0
    for file in files:
        tree = ast.parse(file.read_text(), filename=str(file))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [alias.name for alias in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if any(n and n.split(".")[0] in ("pickle", "cPickle", "dill", "marshal", "shelve", "joblib") for n in names):
                    problems.append(f"{file.name}:{node.lineno} imports a pickle-like module")
        for node, owner, name in _calls(tree):
            where = f"{file.relative_to(PACKAGE)}:{node.lineno}"
            bare = isinstance(node.func, ast.Name) or owner == "builtins"  # not a method such as model.eval()
            if bare and name in ("eval", "exec", "compile", "__import__"):
                problems.append(f"{where} calls {name}")
            if owner == "torch" and name == "load":
                torch_loads += 1
                flag = _keyword(node, "weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    problems.append(f"{where} torch.load without weights_only=True")
            if owner == "np" and name == "load":
                flag = _keyword(node, "allow_pickle")
                if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
                    problems.append(f"{where} np.load with allow_pickle")
            if name in ("read_pickle", "load_pickle") or (owner == "yaml" and name == "load"):
                problems.append(f"{where} calls {name}")
    assert torch_loads >= 3  # model.pt, graph.pt, weights files: the scan does see them
    assert problems == []


# ----------------------------------------------------------------------------- image paths


def test_image_paths_from_metadata_cannot_leave_the_images_folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    secret_dir = tmp_path / "private"
    secret_dir.mkdir()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(secret_dir / "secret.png")
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "outside.png")
    for i in range(3):
        Image.new("RGB", (8, 8), (9, 9, 9)).save(images / f"{asin(i)}.png")
    (images / f"{asin(3)}.png").symlink_to(secret_dir / "secret.png")  # a link leading out
    lines = good_lines(4)
    lines.append(repr({"asin": "../outside", "title": "escape", "imUrl": str(tmp_path / "outside.png"),
                       "categories": [["Clothing, Shoes & Jewelry", "Men"]], "related": {"also_bought": [asin(0)]}}))
    lines.append(repr({"asin": "../private/secret", "title": "escape", "categories": [["Clothing, Shoes & Jewelry", "Men"]]}))
    meta = write_meta(tmp_path / "meta.json.gz", lines)
    graph = load_graph(build_graph(meta, tmp_path / "graph", images=images, quiet=True).path)
    root = images.resolve()
    paths = dict(zip(graph.asins, graph.products["image_path"]))
    assert paths["../outside"] is None and paths["../private/secret"] is None and paths[asin(3)] is None
    for i in range(3):
        assert Path(paths[asin(i)]).parent == root
    assert all(Path(p).resolve().is_relative_to(root) for p in find_images(images).values())


def test_a_tampered_image_path_is_never_read_into_a_picture(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (40, 40), (0, 0, 255)).save(images / "inside.png")
    outside = tmp_path / "outside.png"
    Image.new("RGB", (40, 40), (255, 0, 0)).save(outside)
    assert safe_image_path(images / "inside.png", images) is not None
    for bad in (outside, images / ".." / "outside.png", "../outside.png"):
        assert safe_image_path(bad, images) is None
    out = render_grid([Tile(images / "inside.png", "A"), Tile(outside, "B"), Tile("../outside.png", "C")], tmp_path / "p.png",
                      images_dir=images, tile_size=40)
    picture = np.asarray(Image.open(out).convert("RGB")).reshape(-1, 3)
    blue = ((picture[:, 2] > 200) & (picture[:, 0] < 50)).sum()
    red = ((picture[:, 0] > 200) & (picture[:, 1] < 50) & (picture[:, 2] < 50)).sum()
    assert blue >= 40 * 40 * 0.9 and red == 0  # only the inside image was drawn
