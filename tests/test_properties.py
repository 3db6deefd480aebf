"""Property-based tests (hypothesis) for the readers: random and mutated inputs to the
2014/2018 metadata readers and the ``.b`` reader never raise anything but the documented
error types (:class:`DataError`, a :class:`GraphrecError`) and never yield a record that
was not in the input."""

from __future__ import annotations

import ast
import gzip
import json
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphrec.errors import GraphrecError
from graphrec.io.features import ASIN_BYTES, BinaryFeatureReader, BinaryFeatureWriter
from graphrec.io.metadata import MetadataReader, detect_format

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

asins = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=10)
texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@st.composite
def records(draw):
    rec = {"asin": draw(asins), "title": draw(texts), "price": draw(st.floats(0, 1e4) | st.just(None))}
    rec["related"] = {"also_bought": draw(st.lists(asins, max_size=3))}
    rec["categories"] = [draw(st.lists(texts, min_size=1, max_size=3))]
    return rec


def as_2018(rec: dict) -> dict:
    return {"asin": rec["asin"], "title": rec["title"], "price": "" if rec["price"] is None else f"${rec['price']:.2f}",
            "also_buy": rec["related"]["also_bought"], "category": rec["categories"][0]}


@st.composite
def mutations(draw, data: bytes) -> bytes:
    """``data`` with a few random byte flips, deletions, insertions, a truncation or a repeat."""
    data = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "repeat"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "delete" and data:
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "truncate":
            del data[at:]
        elif op == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 40))]
    return bytes(data)


def readable_text(raw: bytes) -> bytes:
    """What a tolerant reader can get out of ``raw``: the decompressed prefix of a
    (possibly damaged) gzip stream, or the bytes themselves."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    out = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        return out.decompress(raw)
    except zlib.error:
        return b""


def reference(line: bytes):
    """The line parsed by the reference parsers (JSON, then ``ast.literal_eval``)."""
    text = line.decode("utf-8", errors="replace").strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except Exception:
        return None


def check_metadata(raw: bytes, fmt: str | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "meta.json"
        path.write_bytes(raw)
        lines = readable_text(raw).split(b"\n")
        got = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                if fmt is None:
                    detect_format(path)
                for product in MetadataReader(path, format=fmt):
                    got.append(product)
            except GraphrecError:
                pass  # the documented error types (DataError for a damaged or empty file)
        for product in got:
            assert 1 <= product.line <= len(lines)
            source = reference(lines[product.line - 1])
            assert isinstance(source, dict), "a product came from a line that is not a record"
            assert source["asin"].strip() == product.asin
            listed = set(source.get("related", {}).get("also_bought", []) if isinstance(source.get("related"), dict) else [])
            listed |= set(source.get("also_buy", []) if isinstance(source.get("also_buy"), list) else [])
            assert set(product.related.get("also_bought", [])) <= listed


def encode(recs: list[dict], fmt: str, gz: bool) -> bytes:
    body = "".join((repr(r) if fmt == "2014" else json.dumps(as_2018(r))) + "\n" for r in recs).encode()
    return gzip.compress(body) if gz else body


@SETTINGS
@given(raw=st.binary(max_size=600), fmt=st.sampled_from([None, "2014", "2018"]), gz=st.booleans())
def test_metadata_readers_on_random_bytes(raw, fmt, gz):
    check_metadata(gzip.compress(raw) if gz else raw, fmt)


@SETTINGS
@given(recs=st.lists(records(), min_size=1, max_size=5), fmt=st.sampled_from(["2014", "2018"]),
       read_as=st.sampled_from([None, "2014", "2018"]), gz=st.booleans(), data=st.data())
def test_metadata_readers_on_mutated_files(recs, fmt, read_as, gz, data):
    raw = data.draw(mutations(encode(recs, fmt, gz)))
    check_metadata(raw, read_as)


@SETTINGS
@given(recs=st.lists(records(), min_size=1, max_size=5), fmt=st.sampled_from(["2014", "2018"]), gz=st.booleans())
def test_metadata_readers_read_valid_files_completely(recs, fmt, gz):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "meta.json"
        path.write_bytes(encode(recs, fmt, gz))
        products = list(MetadataReader(path))
    assert [p.asin for p in products] == [r["asin"] for r in recs]
    assert [p.related.get("also_bought", []) for p in products] == [r["related"]["also_bought"] for r in recs]


# ----------------------------------------------------------------------------- .b files


def check_features(raw: bytes, dim: int) -> None:
    record = ASIN_BYTES + 4 * dim
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.b"
        path.write_bytes(raw)
        got = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                reader = BinaryFeatureReader(path, dim=dim, chunk_records=3)
                for chunk in reader:
                    got.extend(zip(chunk.asins, np.array(chunk.values), chunk.offsets.tolist()))
            except GraphrecError:
                assert len(raw) % record != 0 or not raw  # only a size that is not whole records is an error
                return
    assert len(raw) % record == 0
    assert len(got) + sum(reader.dropped.values()) == len(raw) // record
    for asin, values, offset in got:
        assert offset % record == 0
        head = raw[offset : offset + ASIN_BYTES]
        assert asin == head.decode("ascii").strip("\0 ") and asin and asin.isprintable() and " " not in asin
        expected = np.frombuffer(raw[offset + ASIN_BYTES : offset + record], dtype="<f4")
        np.testing.assert_array_equal(values, expected)
        assert np.isfinite(values).all()


@SETTINGS
@given(raw=st.binary(max_size=400), dim=st.integers(1, 4))
def test_feature_reader_on_random_bytes(raw, dim):
    check_features(raw, dim)


@SETTINGS
@given(ids=st.lists(asins, min_size=1, max_size=6), dim=st.integers(1, 4), data=st.data())
def test_feature_reader_on_mutated_files(ids, dim, data):
    values = data.draw(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=len(ids) * dim,
                                max_size=len(ids) * dim))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.b"
        with BinaryFeatureWriter(path, dim=dim) as writer:
            writer.write(ids, np.array(values, dtype=np.float32).reshape(len(ids), dim))
        raw = path.read_bytes()
    check_features(data.draw(mutations(raw)), dim)


def test_padding_inside_an_asin_is_not_an_asin(tmp_path):
    dim = 2
    raw = b"".join(head + np.ones(dim, dtype="<f4").tobytes()
                   for head in (b"B000000001", b"B0001     ", b"  B0002\0\0\0", b"B00 000003", b"B00\x00000004"))
    (tmp_path / "f.b").write_bytes(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = BinaryFeatureReader(tmp_path / "f.b", dim=dim)
        got = [a for chunk in reader for a in chunk.asins]
    assert got == ["B000000001", "B0001", "B0002"] and reader.dropped["bad_asin"] == 2
