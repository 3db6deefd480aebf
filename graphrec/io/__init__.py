"""Readers for the raw inputs: Amazon metadata (2014 / 2018 dumps) and McAuley ``.b`` features,
as people have them (compressed or not, with a byte-order mark, ids padded with spaces).

All readers are iterators and stream their file; nothing here knows about graphs or models.
"""

from graphrec.io.features import (
    BinaryFeatureReader,
    BinaryFeatureWriter,
    FeatureChunk,
    guess_dim,
    read_features,
    read_sidecar,
)
from graphrec.io.ids import normalize_asin
from graphrec.io.metadata import MetadataReader, Product, detect_format, parse_literal, parse_price, read_metadata
from graphrec.io.textfiles import open_text_lines, read_text

__all__ = [
    "BinaryFeatureReader",
    "BinaryFeatureWriter",
    "FeatureChunk",
    "MetadataReader",
    "Product",
    "detect_format",
    "guess_dim",
    "normalize_asin",
    "open_text_lines",
    "parse_literal",
    "parse_price",
    "read_features",
    "read_metadata",
    "read_sidecar",
    "read_text",
]
