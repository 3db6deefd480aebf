import ast
import gzip
import json

import numpy as np
import pytest

from graphrec.datasets.synthetic import best_threshold_accuracy, generate_catalogue, main
from graphrec.io.features import record_dtype


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    return generate_catalogue(tmp_path_factory.mktemp("syn"), 300, feature_dim=512, seed=3, images=True, image_size=32)


def _records(path):
    # Amazon 2014 format: one Python-literal dict per line (single quotes), never JSON.
    with gzip.open(path, "rt") as handle:
        lines = handle.read().splitlines()
    assert lines[0].startswith("{'asin': ")
    return [ast.literal_eval(line) for line in lines]


def test_sizes_and_metadata_format(catalogue):
    records = _records(catalogue.meta_path)
    assert len(records) == catalogue.num_products == 300
    asins = [r["asin"] for r in records]
    assert len(set(asins)) == 300 and all(len(a) == 10 for a in asins)
    known = set(asins)
    edges = {name: set() for name in catalogue.num_edges}
    for r in records:
        assert r["categories"][0][0] == "Clothing, Shoes & Jewelry"
        assert r["categories"][0][1] in ("Men", "Women")
        for name, partners in r.get("related", {}).items():
            assert set(partners) <= known
            edges[name].update(frozenset((r["asin"], p)) for p in partners)
    for name, count in catalogue.num_edges.items():
        assert len(edges[name]) == count > 0
    # average also_bought degree close to the target of 13.5
    assert 10 < 2 * catalogue.num_edges["also_bought"] / 300 < 16


def test_features_readable_and_fc7_like(catalogue):
    records = np.fromfile(catalogue.features_path, dtype=record_dtype(512))
    assert len(records) == 300
    x = records["x"]
    assert (x >= 0).all() and 0.4 < (x == 0).mean() < 0.9
    meta_asins = [r["asin"] for r in _records(catalogue.meta_path)]
    assert [a.decode().strip() for a in records["asin"]] == meta_asins
    sidecar = json.loads(open(str(catalogue.features_path) + ".json").read())
    assert sidecar["extractor"] is None and sidecar["num_images"] == 300


def test_style_recoverable_and_signal_in_edges(catalogue):
    truth = np.load(catalogue.truth_path)
    z = truth["z"]
    x = np.fromfile(catalogue.features_path, dtype=record_dtype(512))["x"]
    a = np.c_[x, np.ones(len(x))]
    proj, *_ = np.linalg.lstsq(a[:200], z[:200], rcond=1e-6)
    assert np.sqrt(((a[200:] @ proj - z[200:]) ** 2).mean()) < 0.3  # linearly recoverable (held out)
    keys = truth["edges_also_bought"]
    n = len(z)
    d_edge = ((z[keys // n] - z[keys % n]) ** 2).sum(1)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, n, 2000), rng.integers(0, n, 2000)
    d_rand = ((z[i] - z[j]) ** 2).sum(1)
    assert np.median(d_edge) < 0.5 * np.median(d_rand)


def test_bayes_limit_in_range_and_images(catalogue):
    for name, value in catalogue.bayes_limit.items():
        assert 0.7 < value <= 1.0
        assert abs(value - catalogue.bayes_limit_style[name]) < 0.02
    files = sorted(p.name for p in catalogue.images_dir.iterdir())
    assert len(files) == 300 and all(f.endswith(".png") for f in files)


def test_deterministic(tmp_path):
    a = generate_catalogue(tmp_path / "a", 120, feature_dim=16, seed=5)
    b = generate_catalogue(tmp_path / "b", 120, feature_dim=16, seed=5)
    assert a.meta_path.read_bytes() != b"" and gzip.decompress(a.meta_path.read_bytes()) == gzip.decompress(b.meta_path.read_bytes())
    assert a.features_path.read_bytes() == b.features_path.read_bytes()
    assert a.bayes_limit == b.bayes_limit


def test_best_threshold_accuracy_handles_ties():
    assert best_threshold_accuracy(np.array([1.0, 1.0]), np.array([0.0, 0.0])) == 1.0
    # all tied: no threshold can separate them
    assert best_threshold_accuracy(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.5


def test_command_prints_bayes_limit(tmp_path, capsys):
    assert main(["--products", "100", "--out", str(tmp_path), "--feature-dim", "8"]) == 0
    out = capsys.readouterr().out
    assert "Bayes limit" in out and "also_bought" in out


def test_decaying_spectrum_weights_and_command(tmp_path):
    from graphrec.datasets.synthetic import RELATION_RULES, relation_rules

    assert relation_rules("flat") == RELATION_RULES
    decaying = {rule.name: rule.weights for rule in relation_rules("decaying")}
    assert decaying["also_bought"] == (4.0, 2.0, 1.0, 0.5, 0.25, 0.125)
    with pytest.raises(ValueError, match="spectrum"):
        relation_rules("steep")
    assert main(["--products", "100", "--out", str(tmp_path), "--feature-dim", "8", "--spectrum", "decaying"]) == 0
    written = json.loads((tmp_path / "generator.json").read_text())
    assert written["params"]["relations"]["also_bought"]["weights"] == [4.0, 2.0, 1.0, 0.5, 0.25, 0.125]
