"""The metadata pass of a build: products as they stream out of the reader, with ASINs
interned as int ids (a related list becomes two int32 arrays per relation instead of
millions of strings) and the per-product columns of the products table."""

from __future__ import annotations

import json
from array import array

from graphrec.graph.categories import join_category, matches_prefix

__all__ = ["KEPT", "FILTERED", "Catalogue"]

KEPT, FILTERED = 1, 2  # per-ASIN status; 0 = only seen in someone's related list


class Catalogue:
    """Products of the metadata pass, with ASINs interned as int ids."""

    def __init__(self, relations: tuple[str, ...] | None) -> None:
        self.ids: dict[str, int] = {}
        self.status = bytearray()
        self.relations = relations  # None: every relation present
        self.present: set[str] = set()
        self.src: dict[str, array] = {}
        self.dst: dict[str, array] = {}
        self.product_ids = array("i")  # id of row r
        self.titles: list = []
        self.brands: list = []
        self.prices = array("d")
        self.category: list[str] = []
        self.categories: list[str] = []
        self.image_urls: list = []
        self.duplicates = 0
        self.outside = 0
        self.top_categories: dict[str, int] = {}

    def intern(self, asin: str) -> int:
        """The int id of ``asin``, a new one on first sight."""
        ids = self.ids
        index = ids.setdefault(asin, len(ids))
        if index == len(self.status):
            self.status.append(0)
        return index

    def add(self, product, wanted: list[str] | None) -> None:
        """Record ``product`` (a reader's Product): a repeated ASIN counts as a duplicate,
        one outside the category path ``wanted`` as filtered; a kept product gets a row."""
        pid = self.intern(product.asin)
        if self.status[pid]:
            self.duplicates += 1
            return
        paths = product.categories
        if paths:
            top = paths[0][0]
            self.top_categories[top] = self.top_categories.get(top, 0) + 1
        primary = paths[0] if paths else None
        if wanted is not None:
            matching = [path for path in paths if matches_prefix(path, wanted)]
            if not matching:
                self.status[pid] = FILTERED
                self.outside += 1
                return
            primary = matching[0]
        self.status[pid] = KEPT
        self.product_ids.append(pid)
        self.titles.append(product.title)
        self.brands.append(product.brand)
        self.prices.append(product.price)
        self.category.append(join_category(primary) if primary else "")
        self.categories.append(json.dumps([join_category(path) for path in paths], ensure_ascii=False))
        self.image_urls.append(product.image_url)
        self._add_related(pid, product.related)

    def _add_related(self, pid: int, related: dict[str, list[str]]) -> None:
        """Append the pairs (pid, listed ASIN id) of each wanted relation."""
        ids, setdefault = self.ids, self.ids.setdefault
        for name, listed in related.items():
            if self.relations is not None and name not in self.relations:
                continue
            self.present.add(name)
            if not listed:
                continue
            targets = list(map(ids.get, listed))  # most listed ASINs are already known
            if None in targets:
                targets = [setdefault(asin, len(ids)) for asin in listed]
                self.status.extend(bytes(len(ids) - len(self.status)))
            if name not in self.dst:
                self.src[name], self.dst[name] = array("i"), array("i")
            self.dst[name].extend(targets)
            self.src[name].extend(array("i", [pid]) * len(targets))


