"""The package as a user installs it: the bundled sample is package data, ``python -m graphrec``
is the command line, and the graph package keeps its public names."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import graphrec
from graphrec import sample
from graphrec.graph import Graph

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(graphrec.__file__).resolve().parent


def test_the_bundled_sample_is_package_data_declared_in_pyproject():
    assert sample.SAMPLE_META.is_file() and sample.SAMPLE_IMAGES.is_dir()
    assert sample.SAMPLE_DIR.is_relative_to(PACKAGE)  # inside the package, so a wheel carries it
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = config["tool"]["setuptools"]["package-data"]["graphrec.datasets"]
    base = PACKAGE / "datasets"
    files = [path.relative_to(base).as_posix() for path in sample.SAMPLE_DIR.rglob("*") if path.is_file()]
    missing = [name for name in files if not any(fnmatch.fnmatch(name, pattern) for pattern in declared)]
    assert len(files) > 800 and missing == []


def test_python_dash_m_graphrec_is_the_command_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "graphrec", "--help"], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "build-graph" in result.stdout and "Usage: graphrec" in result.stdout
    assert not (ROOT / "cli.py").exists()


def test_to_pyg_shares_the_stored_features_and_carries_asins():
    features = np.arange(12, dtype=np.float16).reshape(4, 3)
    graph = Graph.from_arrays(["A1", "B2", "C3", "D4"], {"also_bought": np.array([[0, 2], [1, 3]])}, features=features)
    data = graph.to_pyg()
    x = data["product"].x
    assert x.dtype == torch.float16 and x.data_ptr() == features.ctypes.data  # no copy
    assert data["product"].asin == ["A1", "B2", "C3", "D4"]
    assert data["product", "also_bought", "product"].edge_index.tolist() == [[0, 2, 1, 3], [1, 3, 0, 2]]
    assert graph.to_pyg(dtype=torch.float32)["product"].x.dtype == torch.float32
    assert "x" not in graph.to_pyg(with_features=False)["product"]
