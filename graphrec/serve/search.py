"""Finding products by what a person types: an ASIN prefix, or the first letters of words
in the title or brand ("red sh" finds "Red Shoes" and "Shirt by Redwood").

Built once when the server starts, in a few vectorised passes over the product table
(a second or two at a million products), then answered by binary search:

* ASINs are kept sorted (lower case), so an ASIN prefix is one ``bisect`` range;
* every distinct word of the titles and brands is kept in a sorted vocabulary with the
  products it occurs in (a compressed posting list), so a word prefix is a ``bisect``
  range of the vocabulary. With several words, the rarest one's products are the
  candidates, and each other word keeps those that have a word in its range (looked up
  in each candidate's own word list, so a common word never expands its postings).

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
        self._vocabulary, self._indptr, self._postings, self._node_indptr, self._node_words = _word_postings(products)

    def search(self, query: str, limit: int = 20) -> list[int]:
        """Node ids matching ``query`` (an ASIN prefix, or every word as a word prefix)."""
        text = query.strip().lower()
        if not text or limit < 1:
            return []
        hits = np.sort(self._asin_prefix(text)).tolist() if " " not in text else []
        ranges = [self._word_range(word) for word in WORD.findall(text)]
        if ranges and all(start < stop for start, stop in ranges):
            # the rarest word gives the candidates; each other word filters them
            ranges.sort(key=lambda r: self._indptr[r[1]] - self._indptr[r[0]])
            start, stop = ranges[0]
            nodes = self._postings[self._indptr[start] : self._indptr[stop]]
            nodes = nodes if stop - start == 1 else np.unique(nodes)
            for start, stop in ranges[1:]:
                nodes = nodes[self._has_word_in(nodes, start, stop)]
            seen = set(hits)
            hits.extend(int(node) for node in nodes[: limit + len(hits)] if node not in seen)
        return hits[:limit]

    def _asin_prefix(self, text: str) -> np.ndarray:
        start = bisect.bisect_left(self._asins, text)
        stop = bisect.bisect_left(self._asins, text + "\U0010ffff")
        return self._asin_nodes[start:stop]

    def _word_range(self, word: str) -> tuple[int, int]:
        """Vocabulary ids ``[start, stop)`` of the words starting with ``word``."""
        return bisect.bisect_left(self._vocabulary, word), bisect.bisect_left(self._vocabulary, word + "\U0010ffff")

    def _has_word_in(self, nodes: np.ndarray, start: int, stop: int) -> np.ndarray:
        """For each node, whether one of its words has a vocabulary id in ``[start, stop)``."""
        if not len(nodes):
            return np.zeros(0, dtype=bool)
        first, last = self._node_indptr[nodes], self._node_indptr[nodes + 1]
        counts = last - first
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        positions = np.arange(counts.sum()) - np.repeat(offsets - first, counts)
        words = self._node_words[positions]
        inside = ((words >= start) & (words < stop)).astype(np.int64)
        found = np.add.reduceat(inside, offsets) if len(words) else np.zeros(len(nodes), np.int64)
        return found > 0  # candidates come from postings, so each has at least one word


def _word_postings(products: pd.DataFrame):
    """Sorted vocabulary of title and brand words; for word ``w`` the sorted node ids
    ``postings[indptr[w] : indptr[w + 1]]`` whose title or brand contains it; and for node
    ``i`` its word ids ``node_words[node_indptr[i] : node_indptr[i + 1]]``."""
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
    word_ids, nodes = rank[codes], pairs["node"].to_numpy()
    by_word = np.lexsort((nodes, word_ids))
    by_node = np.lexsort((word_ids, nodes))
    indptr = _offsets(word_ids, len(vocabulary))
    node_indptr = _offsets(nodes, len(products))
    return vocabulary[alphabetical].tolist(), indptr, nodes[by_word], node_indptr, word_ids[by_node]


def _offsets(keys: np.ndarray, size: int) -> np.ndarray:
    """CSR offsets of ``keys`` (values in ``[0, size)``) once sorted."""
    return np.concatenate([[0], np.cumsum(np.bincount(keys, minlength=size))]).astype(np.int64)
