"""The faiss style index: exact search, subsets, approximate recall, the RUN_DIR cache."""

from __future__ import annotations

import numpy as np
import pytest

from graphrec.errors import UsageError
from graphrec.index import brute_force_search, build_index, cache_key, cached_style_index, recall_at_k


@pytest.fixture
def vectors():
    return np.random.default_rng(0).standard_normal((3000, 8)).astype(np.float32)


def test_flat_matches_brute_force_and_is_sorted(vectors):
    index = build_index(vectors, "flat")
    queries = vectors[:20] + 0.01
    d_index, i_index = index.search(queries, 10)
    d_brute, i_brute = brute_force_search(vectors, queries, 10)
    assert index.kind == "flat" and index.ntotal == 3000
    np.testing.assert_array_equal(i_index, i_brute)
    np.testing.assert_allclose(d_index, d_brute, rtol=1e-4, atol=1e-4)
    assert (np.diff(d_index, axis=1) >= 0).all()
    # distances are squared Euclidean, the model's d(i, j)
    expected = ((vectors[i_index[0]] - queries[0]) ** 2).sum(1)
    np.testing.assert_allclose(d_index[0], expected, rtol=1e-4, atol=1e-4)


def test_subset_is_exact_and_pads_when_few_match(vectors):
    index = build_index(vectors, "flat")
    subset = np.array([5, 17, 2999])
    distances, ids = index.search(vectors[:2], 5, subset=subset)
    assert set(ids[0, :3]) == {5, 17, 2999}
    assert (ids[:, 3:] == -1).all() and np.isinf(distances[:, 3:]).all()
    mask = np.zeros(len(vectors), bool)
    mask[::7] = True
    _, ids = index.search(vectors[:5], 10, subset=mask)
    assert mask[ids].all()
    truth = np.flatnonzero(mask)[brute_force_search(vectors[mask], vectors[:5], 10)[1]]
    np.testing.assert_array_equal(ids, truth)
    _, empty = index.search(vectors[:1], 3, subset=np.zeros(len(vectors), bool))
    assert (empty == -1).all()


@pytest.mark.parametrize("kind", ["ivf", "hnsw", "pq"])
def test_approximate_recall(vectors, kind):
    index = build_index(vectors, kind, nprobe=8)
    assert index.kind == kind and not index.is_exact
    queries = vectors[:100]
    _, found = index.search(queries, 10)
    _, truth = brute_force_search(vectors, queries, 10)
    assert recall_at_k(found, truth) >= 0.9
    # a tiny subset is still answered in full (falls back to an exact scan if needed)
    subset = np.array([1, 2, 3, 4])
    _, ids = index.search(queries[:3], 4, subset=subset)
    assert np.sort(ids, axis=1).tolist() == [[1, 2, 3, 4]] * 3


def test_auto_kind_uses_threshold(vectors):
    assert build_index(vectors, "auto").kind == "flat"
    assert build_index(vectors, "auto", threshold=1000).kind == "ivf"  # low dimension: inverted lists
    wide = np.random.default_rng(1).standard_normal((1200, 64)).astype(np.float32)
    assert build_index(wide, "approx").kind == "pq"  # high dimension: fast-scan codes + exact re-rank
    with pytest.raises(UsageError):
        build_index(vectors, "lsh")


def test_cache_reuses_and_invalidates(tmp_path, vectors):
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights v1")
    calls = []

    def embed():
        calls.append(1)
        return vectors

    key = cache_key(model, "graph-sum")
    first = cached_style_index(tmp_path / "index", key, embed, kind="ivf", nprobe=4)
    second = cached_style_index(tmp_path / "index", key, embed, kind="ivf", nprobe=4)
    assert len(calls) == 1 and second.kind == "ivf" and second.ntotal == first.ntotal
    np.testing.assert_array_equal(second.search(vectors[:3], 5)[1], first.search(vectors[:3], 5)[1])
    assert not list((tmp_path / "index").glob(".*tmp"))
    model.write_bytes(b"weights v2")  # retrained: new key, embeddings recomputed
    cached_style_index(tmp_path / "index", cache_key(model, "graph-sum"), embed, kind="flat")
    assert len(calls) == 2
    cached_style_index(tmp_path / "index", cache_key(model, "other-graph"), embed, kind="flat")
    assert len(calls) == 3
