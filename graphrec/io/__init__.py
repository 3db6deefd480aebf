"""Readers for the raw inputs: Amazon metadata (2014 / 2018 dumps) and McAuley ``.b`` features.

All readers are iterators and stream their file; nothing here knows about graphs or models.
"""

from graphrec.io.features import (
    BinaryFeatureReader,
    BinaryFeatureWriter,
    FeatureChunk,
    guess_dim,
    read_features,
)
from graphrec.io.metadata import MetadataReader, Product, detect_format, parse_literal, parse_price, read_metadata

__all__ = [
    "BinaryFeatureReader",
    "BinaryFeatureWriter",
    "FeatureChunk",
    "MetadataReader",
    "Product",
    "detect_format",
    "guess_dim",
    "parse_literal",
    "parse_price",
    "read_features",
    "read_metadata",
]
