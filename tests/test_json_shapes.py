"""Every JSON file graphrec reads back, with any JSON value in it: manifest.json, the features
sidecar and the style-index cache's index.json. Each is either used, refused with one
sentence naming the file, or (a cache) rebuilt; never a traceback (issue 18, class 2)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import product_2014
from graphrec.errors import DataError, GraphrecError
from graphrec.graph import build_graph, load_graph, read_sidecar
from graphrec.index import cached_style_index
from graphrec.io.schema import Field, shape_problem

A, B, C = "A000000001", "B000000002", "C000000003"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=False) | st.text(max_size=8)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
KEYS = ["format_version", "num_nodes", "feature_dim", "relations", "dropped", "features", "options", "sources", "stats",
        "dim", "dtype", "images", "images_dir", "extractor", "num_images", "skipped", "skipped_images", "key", "indexes"]
# objects whose keys are the ones graphrec looks for, so the checks below the top level are reached
keyed_objects = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=6),
    max_leaves=16,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    lines = [json.dumps(product_2014(a, also_bought=[b])) for a, b in ((A, B), (B, C), (C, A))]
    meta = root / "meta.json"
    meta.write_text("\n".join(lines) + "\n")
    from graphrec.io.features import BinaryFeatureWriter

    with BinaryFeatureWriter(root / "f.b", dim=4) as writer:
        writer.write([A, B, C], np.eye(3, 4, dtype=np.float32))
    graph = build_graph(meta, root / "graph", root / "f.b", feature_dim=4, quiet=True).path
    return root, meta, graph


@SETTINGS
@given(value=json_values | keyed_objects)
def test_any_manifest_is_loaded_or_refused_in_one_sentence(built, tmp_path, value):
    _, _, graph = built
    copy = tmp_path / "g"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(graph, copy)
    good = json.loads((graph / "manifest.json").read_text())
    for manifest in (value, {**good, **value} if isinstance(value, dict) else value):
        (copy / "manifest.json").write_text(json.dumps(manifest))
        try:
            loaded = load_graph(copy)
        except GraphrecError as error:
            assert "manifest.json" in str(error) or "format version" in str(error)
            assert "\n" not in str(error)
        else:
            from graphrec.stats import graph_stats, summary_rows

            summary_rows(loaded.manifest, graph_stats(loaded.num_nodes, loaded.edges))  # info prints it
            assert loaded.images_dir is None or isinstance(loaded.images_dir, str)


@pytest.mark.parametrize("change, words", [
    ({"dropped": []}, "'dropped' is a list, not an object"),
    ({"features": {"dtype": "float16"}}, "'features.dim' is missing"),
    ({"num_nodes": "3"}, "'num_nodes' is a string, not an integer"),
])
def test_the_manifest_errors_name_the_file_and_the_key(built, tmp_path, change, words):
    _, _, graph = built
    copy = tmp_path / "g"
    shutil.copytree(graph, copy)
    manifest = json.loads((graph / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, **change}))
    with pytest.raises(DataError, match="manifest.json") as error:
        load_graph(copy)
    assert words in str(error.value) and "build-graph --force" in str(error.value)


@SETTINGS
@given(value=json_values | keyed_objects)
def test_any_sidecar_is_used_or_refused_in_one_sentence(built, tmp_path, value):
    root, _, _ = built
    features = tmp_path / "f.b"
    shutil.copyfile(root / "f.b", features)
    (tmp_path / "f.b.json").write_text(json.dumps(value))
    try:
        sidecar = read_sidecar(features)
    except DataError as error:
        assert "f.b.json" in str(error) and "\n" not in str(error)
        assert read_sidecar(features, strict=False) is None
    else:
        assert isinstance(sidecar, dict)


def test_a_sidecar_cut_in_half_is_refused_by_build_graph(built, tmp_path):
    root, meta, _ = built
    features = tmp_path / "f.b"
    shutil.copyfile(root / "f.b", features)
    (tmp_path / "f.b.json").write_text('{"extractor": {"model": "alex')
    with pytest.raises(DataError, match="f.b.json is not valid JSON"):
        build_graph(meta, tmp_path / "g", features, feature_dim=4, quiet=True)


@SETTINGS
@given(value=json_values | keyed_objects)
def test_any_index_cache_is_used_or_rebuilt(tmp_path, value):
    cache = tmp_path / "index"
    vectors = np.arange(12, dtype=np.float32).reshape(4, 3)
    cached_style_index(cache, "key-1", lambda: vectors, kind="flat")  # a good cache
    (cache / "index.json").write_text(json.dumps(value))
    calls = []

    def embed():
        calls.append(1)
        return vectors

    index = cached_style_index(cache, "key-1", embed, kind="flat")
    assert index.ntotal == 4
    meta = json.loads((cache / "index.json").read_text())
    assert isinstance(meta, dict) and meta.get("key") == "key-1"  # rebuilt when it was not usable


def test_shape_problem_names_nested_keys():
    spec = Field((dict,), fields={"a": Field((dict,), required=True, fields={"b": Field((int,), required=True)})})
    assert shape_problem({"a": {"b": 1}}, spec) is None
    assert shape_problem({"a": {"b": True}}, spec) == "'a.b' is true or false, not an integer"
    assert shape_problem({"a": {}}, spec) == "'a.b' is missing"
    assert shape_problem([], spec) == "the file holds a list, not an object"
