"""Category paths: ``"A|B|C"`` strings, split and joined one way everywhere, and the
whole-name prefix match that ``--category`` means."""

from __future__ import annotations

import json
from typing import Iterable

import numpy as np

__all__ = ["category_mask", "join_category", "matches_prefix", "split_category"]


def split_category(prefix: str) -> list[str]:
    """``"A|B"`` -> ``["A", "B"]`` (names stripped, empty names dropped)."""
    return [name.strip() for name in str(prefix).split("|") if name.strip()]


def join_category(path: list[str]) -> str:
    """A category path as one string, names joined with ``|`` (a ``|`` inside a name becomes ``/``)."""
    return "|".join(name.replace("|", "/") for name in path)


def matches_prefix(path: list[str], wanted: list[str]) -> bool:
    """Whether the category path ``path`` starts with the names ``wanted`` (whole names only)."""
    return path[: len(wanted)] == wanted


def category_mask(categories: Iterable[str | None] | None, prefix: str, count: int) -> np.ndarray:
    """Boolean mask over ``count`` products: those with any category path starting with ``prefix``.

    ``categories`` holds, per product, the JSON list of its ``|``-joined paths (the
    ``categories`` column of products.parquet); None when the graph records none.
    ``prefix`` matches whole names only: ``"Clothing, Shoes & Jewelry|Men"`` does not
    match ``...|Mens Shoes``.
    """
    if categories is None:
        return np.zeros(count, dtype=bool)
    wanted = split_category(prefix)
    return np.fromiter(
        (any(matches_prefix(path.split("|"), wanted) for path in json.loads(paths or "[]")) for paths in categories),
        dtype=bool,
        count=count,
    )
