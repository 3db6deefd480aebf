"""Shared test helpers: writers for small Amazon-format files (2014 literals, 2018 JSON,
McAuley ``.b`` features), so every test builds its own inputs in ``tmp_path``."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pytest

from graphrec.io.features import BinaryFeatureWriter


def _write_lines(path: Path, lines: Iterable[str]) -> Path:
    text = "".join(line + "\n" for line in lines).encode("utf-8")
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text))
    else:
        path.write_bytes(text)
    return path


@pytest.fixture
def write_meta(tmp_path) -> Callable[..., Path]:
    """``write_meta(records, name="meta.json.gz", format="2014", extra_lines=())``.

    2014 records are written as Python literals (``repr``), 2018 ones as JSON lines;
    a record that is a ``str`` is written verbatim (for bad lines).
    """

    def write(records, name: str = "meta.json.gz", format: str = "2014") -> Path:
        dump = repr if format == "2014" else json.dumps
        return _write_lines(tmp_path / name, [r if isinstance(r, str) else dump(r) for r in records])

    return write


@pytest.fixture
def write_features(tmp_path) -> Callable[..., Path]:
    """``write_features(asins, values=None, dim=8, name="features.b", seed=0)``: a ``.b`` file;
    when ``values`` is None row ``i`` is filled with ``i + 1`` (so rows are easy to check)."""

    def write(asins, values=None, dim: int = 8, name: str = "features.b") -> Path:
        asins = list(asins)
        if values is None:
            values = np.repeat(np.arange(1, len(asins) + 1, dtype=np.float32)[:, None], dim, axis=1)
        path = tmp_path / name
        with BinaryFeatureWriter(path, dim=dim) as writer:
            writer.write(asins, np.asarray(values, dtype=np.float32))
        return path

    return write


def product_2014(asin: str, also_bought=(), also_viewed=(), categories=(("Clothing, Shoes & Jewelry", "Men"),), **fields) -> dict:
    """A 2014-style record as McAuley's dump has them."""
    record = {"asin": asin, "title": f"Product {asin}", "price": 9.99, "imUrl": f"http://img/{asin}.jpg"}
    related = {}
    if also_bought:
        related["also_bought"] = list(also_bought)
    if also_viewed:
        related["also_viewed"] = list(also_viewed)
    if related:
        record["related"] = related
    record["salesRank"] = {"Clothing": 1000}
    record["categories"] = [list(path) for path in categories]
    record.update(fields)
    return record


@pytest.fixture
def small_catalogue(write_meta, write_features):
    """Five products A..E in 2014 format with features for A, B, C, E (dim 8):

    A bought-with B, C and an unknown Z (dangling); B lists A back and itself (self-loop);
    C also-viewed D (D has no features); D is Women's; E duplicates nothing, has no edges.
    """
    men = [("Clothing, Shoes & Jewelry", "Men", "Shoes")]
    women = [("Clothing, Shoes & Jewelry", "Women")]
    records = [
        product_2014("A000000001", also_bought=["B000000002", "C000000003", "Z000000099"], categories=men),
        product_2014("B000000002", also_bought=["A000000001", "B000000002"], categories=men, brand="Acme"),
        product_2014("C000000003", also_viewed=["D000000004", "A000000001"], categories=men),
        product_2014("D000000004", also_viewed=["C000000003"], categories=women),
        product_2014("E000000005", categories=men),
    ]
    meta = write_meta(records)
    features = write_features(["C000000003", "A000000001", "B000000002", "E000000005"], dim=8)
    return meta, features
