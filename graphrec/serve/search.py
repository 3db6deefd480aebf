"""Finding products by what a person types: an ASIN prefix, or the first letters of words
in the title or brand ("red sh" finds "Red Shoes" and "Shirt by Redwood").

Built once when the server starts, in a few vectorised passes over the product table
(a second or two at a million products), then answered by binary search:

* ASINs are kept sorted (lower case), so an ASIN prefix is one ``bisect`` range;
* every distinct word of the titles and brands is kept in a sorted vocabulary with the
  products it occurs in (a compressed posting list), so a word prefix is a ``bisect``
  range of the vocabulary and the union of those postings; several words intersect.

Results come in catalogue order (ASIN hits first), at most ``limit`` of them.
"""

from __future__ import annotations

import bisect
import re

import numpy as np
import pandas as pd

__all__ = ["ProductSearch"]

WORD = re.compile(r"\w+")


class ProductSearch:
    """Prefix search over a product table's ``asin``, ``title`` and ``brand`` columns."""

    def __init__(self, products: pd.DataFrame) -> None:
        asins = products["asin"].astype(str).str.lower().to_numpy()
        order = np.argsort(asins, kind="stable")
        self._asins = asins[order].tolist()
        self._asin_nodes = order.astype(np.int64)
        self._vocabulary, self._indptr, self._postings = _word_postings(products)

    def search(self, query: str, limit: int = 20) -> list[int]:
        """Node ids matching ``query`` (an ASIN prefix, or every word as a word prefix)."""
        text = query.strip().lower()
        if not text or limit < 1:
            return []
        found = self._asin_prefix(text) if " " not in text else np.empty(0, np.int64)
        words = WORD.findall(text)
        by_words = None
        for word in words:
            nodes = self._word_prefix(word)
            by_words = nodes if by_words is None else np.intersect1d(by_words, nodes, assume_unique=True)
            if not len(by_words):
                break
        hits = list(dict.fromkeys(np.sort(found).tolist()))
        if by_words is not None:
            seen = set(hits)
            hits.extend(int(node) for node in by_words[: limit + len(hits)] if node not in seen)
        return hits[:limit]

    def _asin_prefix(self, text: str) -> np.ndarray:
        start = bisect.bisect_left(self._asins, text)
        stop = bisect.bisect_left(self._asins, text + "\U0010ffff")
        return self._asin_nodes[start:stop]

    def _word_prefix(self, word: str) -> np.ndarray:
        start = bisect.bisect_left(self._vocabulary, word)
        stop = bisect.bisect_left(self._vocabulary, word + "\U0010ffff")
        if start == stop:
            return np.empty(0, np.int64)
        return np.unique(self._postings[self._indptr[start] : self._indptr[stop]])


def _word_postings(products: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Sorted vocabulary of title and brand words, and for word ``w`` the sorted node ids
    ``postings[indptr[w] : indptr[w + 1]]`` whose title or brand contains it."""
    text = pd.Series("", index=range(len(products)), dtype=object)
    for column in ("title", "brand"):
        if column in products:
            text = text + " " + products[column].reset_index(drop=True).fillna("").astype(str)
    words = text.str.lower().str.findall(WORD).explode().dropna()
    pairs = pd.DataFrame({"node": words.index.to_numpy(np.int64), "word": words.to_numpy()}).drop_duplicates()
    codes, uniques = pd.factorize(pairs["word"])
    vocabulary = np.asarray(uniques, dtype=object)
    alphabetical = np.argsort(vocabulary.astype(str), kind="stable")
    rank = np.empty(len(alphabetical), dtype=np.int64)
    rank[alphabetical] = np.arange(len(alphabetical))
    word_ids = rank[codes]
    order = np.lexsort((pairs["node"].to_numpy(), word_ids))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(word_ids, minlength=len(vocabulary)))]).astype(np.int64)
    return vocabulary[alphabetical].tolist(), indptr, pairs["node"].to_numpy()[order]
