"""Metadata readers: 2014 literals, 2018 JSON, detection, bad lines, the fast literal parser."""

from __future__ import annotations

import ast
import gzip
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import product_2014
from graphrec.errors import DataError, UsageError
from graphrec.io.metadata import MetadataReader, detect_format, parse_literal, parse_price, read_metadata

# ------------------------------------------------------------------ parse_literal == literal_eval

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    st.sampled_from(["Men's", 'say "hi"', "back\\slash", "tab\there", "é ü 漢字", "\x00\x1f", "\ud800x", "'\"'"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4),
                            st.tuples(inner, inner)),
    max_leaves=12,
)


def _outcome(function, text):
    try:
        return "ok", repr(function(text))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return "error", None


@settings(max_examples=300, deadline=None)
@given(_values)
def test_parse_literal_matches_literal_eval_on_python_reprs(value):
    text = repr(value)
    assert repr(parse_literal(text)) == repr(ast.literal_eval(text))


@settings(max_examples=300, deadline=None)
@given(_values, st.integers(0, 200), st.text(alphabet="'\"\\{}[]:, uTNaxe0.-+()\n\t", min_size=1, max_size=3))
def test_parse_literal_agrees_with_literal_eval_on_damaged_text(value, position, insert):
    text = repr(value)
    position = position % (len(text) + 1)
    damaged = text[:position] + insert + text[position:]
    assert _outcome(parse_literal, damaged) == _outcome(ast.literal_eval, damaged)


@pytest.mark.parametrize("text", [
    "{'a': u'x'}", "{'a': '\\x41'}", "['\\ud83d\\ude00']", "[1, 2,]", "(1, 2)", "{1: 2}", "[NaN]",
    "[true]", "[null]", "[.5, 1., 1e400, -0]", "'a' 'b'", "[Infinity]", "{'a': 1, 'a': 2}", "b'x'",
])
def test_parse_literal_edge_cases_match_literal_eval(text):
    assert _outcome(parse_literal, text) == _outcome(ast.literal_eval, text)


def test_parse_literal_never_evaluates_code(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises((ValueError, SyntaxError)):
        parse_literal(f"__import__('pathlib').Path({str(marker)!r}).touch()")
    assert not marker.exists()


# ------------------------------------------------------------------ 2014 dump


def test_reads_2014_gzip_records_with_all_fields(write_meta):
    records = [
        product_2014("A1", also_bought=["B2", "C3"], also_viewed=["D4"], brand="Acme", title="Men's \"Oxford\" shoe"),
        {"asin": "B2", "related": {"bought_together": ["A1"], "buy_after_viewing": ["C3"]}, "price": 3},
    ]
    path = write_meta(records, name="meta.json.gz")
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    reader = MetadataReader(path)
    products = list(reader)
    assert reader.format == "2014" and reader.bad_lines == 0 and reader.lines == 2
    first, second = products
    assert first.asin == "A1" and first.brand == "Acme" and first.title == "Men's \"Oxford\" shoe"
    assert first.related == {"also_bought": ["B2", "C3"], "also_viewed": ["D4"]}
    assert first.categories == [["Clothing, Shoes & Jewelry", "Men"]]
    assert first.price == pytest.approx(9.99) and first.image_url == "http://img/A1.jpg"
    assert first.sales_rank == {"Clothing": 1000} and first.line == 1
    assert second.related == {"bought_together": ["A1"], "buy_after_viewing": ["C3"]}
    assert second.price == 3.0
    assert second.title is None and second.categories == []


def test_plain_and_gzip_files_read_the_same(write_meta):
    records = [product_2014(f"A{i}", also_bought=[f"A{i + 1}"]) for i in range(5)]
    plain = list(read_metadata(write_meta(records, name="meta.json")))
    packed = list(read_metadata(write_meta(records, name="meta.json.gz")))
    assert [p.asin for p in plain] == [p.asin for p in packed] == [f"A{i}" for i in range(5)]
    assert [p.related for p in plain] == [p.related for p in packed]


def test_bad_lines_are_skipped_counted_and_reported_with_line_numbers(write_meta):
    records = [product_2014("A1"), "{'asin': 'broken'", "", "[1, 2, 3]", "{'title': 'no asin'}",
               "__import__('os').system('echo hi')", product_2014("B2")]
    reader = MetadataReader(write_meta(records))
    with pytest.warns(UserWarning, match="line 2"):
        products = list(reader)
    assert [p.asin for p in products] == ["A1", "B2"]
    assert reader.bad_lines == 4  # the empty line is not bad
    assert any("line 2" in m for m in reader.messages) and any("line 6" in m for m in reader.messages)
    assert all("line 3" not in m for m in reader.messages)


def test_counts_are_per_pass(write_meta):
    reader = MetadataReader(write_meta([product_2014("A1"), "{'asin': "]))
    for _ in range(2):
        with pytest.warns(UserWarning):
            assert [p.asin for p in reader] == ["A1"]
        assert (reader.lines, reader.bad_lines, len(reader.messages)) == (2, 1, 1)


def test_strict_makes_the_first_bad_line_an_error(write_meta):
    path = write_meta([product_2014("A1"), "{'asin': "])
    with pytest.raises(DataError, match=r"line 2.*--strict"):
        list(MetadataReader(path, strict=True))


def test_truncated_gzip_is_a_clear_error(write_meta, tmp_path):
    path = write_meta([product_2014(f"A{i}", also_bought=["X"] * 50) for i in range(200)])
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="damaged or truncated"):
        list(MetadataReader(cut, format="2014"))


def test_missing_empty_and_unknown_format(tmp_path, write_meta):
    with pytest.raises(DataError, match="not found"):
        MetadataReader(tmp_path / "nope.json.gz")
    empty = tmp_path / "empty.json"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="empty"):
        MetadataReader(empty)
    with pytest.raises(UsageError, match="unknown metadata format"):
        MetadataReader(write_meta([product_2014("A1")]), format="2020")
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("hello world\n")
    with pytest.raises(DataError, match="cannot detect"):
        detect_format(garbage)


# ------------------------------------------------------------------ 2018 dump


def test_reads_2018_json_lines(write_meta):
    records = [
        {"asin": "A1", "title": "Shirt", "brand": "Acme", "price": "$1,212.99", "also_buy": ["B2"], "also_view": ["C3", "D4"],
         "category": ["Clothing, Shoes & Jewelry", "Men", "Shirts"], "imageURL": ["small.jpg"], "imageURLHighRes": ["big.jpg"],
         "rank": "1,234 in Clothing"},
        {"asin": "B2", "price": "", "category": [], "image": "only.jpg"},
        {"asin": "C3", "price": "$10.00 - $20.00", "imageURL": []},
    ]
    path = write_meta(records, name="meta_2018.json.gz", format="2018")
    assert detect_format(path) == "2018"
    reader = MetadataReader(path)
    first, second, third = list(reader)
    assert reader.format == "2018"
    assert first.related == {"also_bought": ["B2"], "also_viewed": ["C3", "D4"]}
    assert first.categories == [["Clothing, Shoes & Jewelry", "Men", "Shirts"]]
    assert first.price == pytest.approx(1212.99) and first.image_url == "big.jpg" and first.brand == "Acme"
    assert first.sales_rank == "1,234 in Clothing"
    assert math.isnan(second.price) and second.image_url == "only.jpg" and second.categories == []
    assert math.isnan(third.price) and third.image_url is None


def test_detection_uses_keys_and_format_can_be_forced(write_meta, tmp_path):
    json_2014 = tmp_path / "json2014.json"
    json_2014.write_text(json.dumps({"asin": "A1", "related": {"also_bought": ["B2"]}}) + "\n")
    assert detect_format(json_2014) == "2014"
    assert list(MetadataReader(json_2014))[0].related == {"also_bought": ["B2"]}
    plain = write_meta([{"asin": "A1"}], name="plain.json", format="2018")
    assert detect_format(plain) == "2018"
    assert MetadataReader(plain, format="2014").format == "2014"


@pytest.mark.parametrize("value, expected", [
    (12.5, 12.5), (3, 3.0), ("$12.99", 12.99), ("12.99", 12.99), ("$1,299.00", 1299.0),
    ("", math.nan), ("$10.00 - $20.00", math.nan), (None, math.nan), (True, math.nan), ("free", math.nan), (-1, math.nan),
])
def test_parse_price(value, expected):
    got = parse_price(value)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_gzip_detected_from_content_not_name(tmp_path):
    path = tmp_path / "meta.json"  # gzip content, misleading name
    path.write_bytes(gzip.compress((repr(product_2014("A1")) + "\n").encode()))
    assert [p.asin for p in read_metadata(path)] == ["A1"]
