"""McAuley .b features: streaming reads, truncation, bad ASINs, non-finite values."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from graphrec.errors import DataError
from graphrec.io.features import BinaryFeatureReader, BinaryFeatureWriter, guess_dim, read_features, record_dtype


def test_round_trip_across_many_small_chunks(write_features):
    rng = np.random.default_rng(0)
    asins = [f"B{i:09d}" for i in range(23)]
    values = rng.normal(size=(23, 6)).astype(np.float32)
    path = write_features(asins, values, dim=6)
    assert path.stat().st_size == 23 * (10 + 4 * 6)
    reader = BinaryFeatureReader(path, dim=6, chunk_records=5)
    chunks = list(reader)
    assert [len(c.asins) for c in chunks] == [5, 5, 5, 5, 3]
    assert [a for c in chunks for a in c.asins] == asins
    np.testing.assert_array_equal(np.concatenate([c.values for c in chunks]), values)
    assert chunks[1].offsets.tolist() == [34 * i for i in range(5, 10)]
    assert reader.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(reader) == 23 and not reader.dropped


def test_views_without_copy_hold_the_same_values(write_features):
    path = write_features([f"A{i}" for i in range(7)], dim=4)
    copied = [c.values.copy() for c in BinaryFeatureReader(path, dim=4, chunk_records=3, copy=False)]
    np.testing.assert_array_equal(np.concatenate(copied), read_features(path, dim=4)[1])


def test_truncated_file_names_the_incomplete_record_and_guesses_the_dimension(write_features, tmp_path):
    path = write_features(["A1", "A2", "A3"], dim=8)
    cut = tmp_path / "cut.b"
    cut.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"byte offset 84 is incomplete"):
        BinaryFeatureReader(cut, dim=8)
    with pytest.raises(DataError, match=r"look 8-dimensional: pass --feature-dim 8"):
        BinaryFeatureReader(path, dim=4096)
    assert guess_dim(path) == 8


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        BinaryFeatureReader(tmp_path / "none.b", dim=4)


def test_non_ascii_asin_and_non_finite_rows_are_dropped_and_counted(tmp_path):
    dtype = record_dtype(3)
    block = np.zeros(4, dtype=dtype)
    block["asin"] = [b"GOOD000001", b"BAD\xff00002", b"NAN0000003", b"GOOD000004"]
    block["x"] = [[1, 2, 3], [4, 5, 6], [np.nan, 0, 0], [7, 8, 9]]
    path = tmp_path / "mixed.b"
    path.write_bytes(block.tobytes())
    reader = BinaryFeatureReader(path, dim=3)
    with pytest.warns(UserWarning):
        asins = [a for chunk in reader for a in chunk.asins]
    assert asins == ["GOOD000001", "GOOD000004"]
    assert reader.dropped == {"bad_asin": 1, "non_finite": 1}
    assert any("byte offset 22" in m for m in reader.messages)  # record 1 starts at 10 + 12
    assert any("NAN0000003" in m for m in reader.messages)


def test_writer_rejects_asins_that_do_not_fit(tmp_path):
    with BinaryFeatureWriter(tmp_path / "x.b", dim=2) as writer:
        with pytest.raises(ValueError):
            writer.write(["TOO-LONG-ASIN"], np.zeros((1, 2)))
