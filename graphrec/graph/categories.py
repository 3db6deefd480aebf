"""Category paths: ``"A|B|C"`` strings, split and joined one way everywhere, and the
whole-name prefix match that ``--category`` means."""

from __future__ import annotations

import json
from typing import Iterable

import numpy as np

from graphrec.errors import closest

__all__ = ["category_mask", "existing_below", "join_category", "matches_prefix", "split_category"]


def split_category(prefix: str) -> list[str]:
    """``"A|B"`` -> ``["A", "B"]`` (names stripped, empty names dropped)."""
    return [name.strip() for name in str(prefix).split("|") if name.strip()]


def join_category(path: list[str]) -> str:
    """A category path as one string, names joined with ``|`` (a ``|`` inside a name becomes ``/``)."""
    return "|".join(name.replace("|", "/") for name in path)


def matches_prefix(path: list[str], wanted: list[str]) -> bool:
    """Whether the category path ``path`` starts with the names ``wanted`` (whole names only,
    case ignored: ``women`` is ``Women``)."""
    return len(path) >= len(wanted) and all(a.lower() == b.lower() for a, b in zip(path, wanted))


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


def existing_below(category_lists: Iterable[tuple[str | None, int]], prefix: str, limit: int = 8) -> str:
    """Where ``prefix`` stops matching, the names that do exist there, most products first:
    ``"under 'Clothing, Shoes & Jewelry' there are Women, Men, Girls."`` (for an error that
    says what to type instead). ``category_lists``: (a ``categories`` column value, how many
    products have it) pairs, e.g. ``column.value_counts().items()``."""
    counts: dict[str, int] = {}
    for paths, products in category_lists:
        for path in json.loads(paths or "[]"):
            counts[path] = counts.get(path, 0) + int(products)
    split = [(path.split("|"), count) for path, count in counts.items()]
    wanted = split_category(prefix)
    depth = 0
    while depth < len(wanted) and any(matches_prefix(path, wanted[: depth + 1]) for path, _ in split):
        depth += 1
    names: dict[str, int] = {}
    spelt = wanted[:depth]  # as the graph spells them
    for path, count in split:
        if len(path) > depth and matches_prefix(path, wanted[:depth]):
            names[path[depth]] = names.get(path[depth], 0) + count
            spelt = path[:depth]
    ranked = sorted(names, key=lambda name: -names[name])
    shown = ", ".join(ranked[:limit]) + (f" and {len(ranked) - limit} more" if len(ranked) > limit else "")
    where = f"under {'|'.join(spelt)!r}" if depth else "at the top level"
    near = closest(wanted[depth], ranked) if depth < len(wanted) else []
    hint = f"; did you mean {'|'.join([*spelt, near[0]])!r}?" if near else "."
    return f"{where} there are {shown}{hint}" if ranked else f"there is nothing {where}."
