"""What a recommender user reaches for around a trained run: output files that follow the
umask, ``graphrec info RUN_DIR``, ``graphrec runs DIR``, ``graphrec export``, ``--json`` of
train and evaluate, and one-line ``repr()`` of Graph, Run and Recommender."""

from __future__ import annotations

import os
import stat

import pytest
from test_cli_neighbours import write_catalogue
from typer.testing import CliRunner

from graphrec.fs import default_mode, write_text_atomic
from graphrec.graph.builddir import staging

runner = CliRunner()


@pytest.fixture
def umask():
    """``umask(value)`` sets the process umask for the test; the old one comes back after."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny GRAPH_DIR (24 products, 16-d features) and a mahalanobis K = 4 run trained on it."""
    from graphrec.train import train

    root = tmp_path_factory.mktemp("tools")
    _, graph_dir = write_catalogue(root)
    run = train(graph_dir, decoder="mahalanobis", k=4, epochs=3, out_dir=root / "runs" / "k4", quiet=True)
    return root, graph_dir, run


# --- 1. outputs follow the umask ---------------------------------------------------------


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_get_the_mode_of_an_ordinary_open(umask, tmp_path, mask, expected):
    umask(mask)
    assert default_mode() == expected
    assert _mode(write_text_atomic(tmp_path / "a.txt", "x")) == expected


def test_a_writer_that_makes_a_private_file_still_gives_the_umask_mode(umask, tmp_path):
    from graphrec.fs import atomic_write

    umask(0o022)

    def private(tmp):
        tmp.write_text("secret?")
        os.chmod(tmp, 0o600)  # what tempfile.mkstemp gives

    assert _mode(atomic_write(tmp_path / "b.txt", private)) == 0o644


def test_a_picture_is_0644_under_umask_022(umask, tmp_path):
    from graphrec.picture import Tile, render_grid

    umask(0o022)
    out = render_grid([Tile(None, "A000000001", "a title", label="query")], tmp_path / "grid.png")
    assert _mode(out) == 0o644


@pytest.mark.parametrize("mask, expected", [(0o022, 0o755), (0o027, 0o750)])
def test_a_built_directory_follows_the_umask(umask, tmp_path, mask, expected):
    umask(mask)
    with staging(tmp_path / "graph", force=False) as tmp:
        (tmp / "manifest.json").write_text("{}")
    assert _mode(tmp_path / "graph") == expected
