""""Did you mean ...?" for product ids, case-insensitive and quick on catalogues of millions.

difflib over every id takes seconds per query at a million products, so the candidates are
narrowed first, with numpy over a fixed-width copy of the lower-cased ids (built on the first
miss, then kept): the ids equal to the query but for case, those that differ from it in at
most two positions (a mistyped or swapped character, a missing last one), and those next to
it in sorted order (a missing or extra character near the end). difflib ranks only those.
"""

from __future__ import annotations

import difflib
from functools import cached_property

import numpy as np

__all__ = ["IdSuggester"]


class IdSuggester:
    """Close matches of a query among ``ids`` (any sequence of strings)."""

    def __init__(self, ids, neighbourhood: int = 16, max_mismatches: int = 2) -> None:
        self.ids = np.asarray(ids, dtype=object)
        self.neighbourhood, self.max_mismatches = neighbourhood, max_mismatches

    @cached_property
    def _lowered(self) -> np.ndarray:
        return np.char.lower(self.ids.astype(str))

    @cached_property
    def _order(self) -> np.ndarray:
        return np.argsort(self._lowered, kind="stable")

    @cached_property
    def _codes(self) -> np.ndarray:
        """Every lower-cased id as a row of code points, zero-padded to the longest."""
        width = max(self._lowered.dtype.itemsize // 4, 1)
        return self._lowered.astype(f"<U{width}").view(np.uint32).reshape(len(self.ids), width)

    def _mismatches(self, text: str) -> np.ndarray:
        """Per id, the positions where it differs from ``text`` (padding included)."""
        width = self._codes.shape[1]
        query = np.array([text[:width]], dtype=f"<U{width}").view(np.uint32)
        return (self._codes != query).sum(axis=1) + max(len(text) - width, 0)

    def candidates(self, query: str) -> np.ndarray:
        """Indices of the ids worth ranking for ``query``."""
        if not len(self.ids):
            return np.zeros(0, dtype=np.int64)
        text = query.lower()
        near = np.flatnonzero(self._mismatches(text) <= self.max_mismatches)
        at = int(np.searchsorted(self._lowered[self._order], text))
        around = self._order[max(at - self.neighbourhood, 0): at + self.neighbourhood]
        return np.unique(np.concatenate([near, around]))

    def __call__(self, query: str, n: int = 3, cutoff: float = 0.7) -> list[str]:
        """Up to ``n`` ids closest to ``query``, best first: same-but-for-case ones, then by
        difflib's similarity of the lower-cased strings (at least ``cutoff``)."""
        text = query.lower()
        scored = []
        for index in self.candidates(query):
            ratio = 2.0 if self._lowered[index] == text else difflib.SequenceMatcher(None, text, self._lowered[index]).ratio()
            if ratio >= cutoff:
                scored.append((-ratio, str(self.ids[index])))
        return [name for _, name in sorted(scored)[:n]]
