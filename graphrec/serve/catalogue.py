"""What the web service knows about a run: a :class:`~graphrec.recommend.Recommender`
loaded once, plus the look-ups the pages need (products, categories, search, images).

Everything here is read-only after :meth:`Catalogue.__init__`, so request threads share
it freely: faiss answers concurrent searches on one index, and the state the
recommender builds lazily (the ASIN dictionary, the training partners for
``exclude_known``) is built here once before the first request. Category masks are
kept per prefix (:class:`CategoryMasks`). The one part that is
not shared is the photo network: uploads are embedded one at a time under a lock, which
also bounds the memory a burst of uploads can take. At most one recommendation per CPU
core runs at a time: more would only make the scans of the index evict each other from
the caches (the other request threads wait without using the CPU).

Every refusal is a :class:`ServeError` carrying its HTTP status and one sentence that
names what was wrong and never a path on the server.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from graphrec.errors import DataError, GraphrecError, UsageError
from graphrec.graph import Graph
from graphrec.io.images import MAX_PIXELS, ImageTooLarge
from graphrec.recommend import Recommender, to_json
from graphrec.serve.search import ProductSearch

__all__ = ["MAX_K", "MAX_UPLOAD_BYTES", "Catalogue", "CategoryMasks", "ServeError"]

MAX_K = 100  # recommendations per request
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
SAMPLE_SIZE = 24  # products on the front page
COPY_CHUNK = 1024 * 1024


DEFAULT_CACHE = 4096  # distinct neighbour answers kept (graphrec serve --cache): ~8 MB at k = 10, ~80 MB at k = 100


class AnswerCache:
    """The last ``size`` answers by query, least recently used dropped first; thread-safe,
    and :meth:`get` never computes, so the event loop may look up without blocking."""

    def __init__(self, size: int) -> None:
        self.size, self.hits, self.misses = int(size), 0, 0
        self._items: OrderedDict[tuple, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> str | None:
        with self._lock:
            body = self._items.get(key)
            if body is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return body

    def put(self, key: tuple, body: str) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = body
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class ServeError(GraphrecError):
    """A request the service refuses: an HTTP ``status`` and a one-sentence message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Category:
    path: str  # "|"-joined, e.g. "Clothing, Shoes & Jewelry|Women"
    products: int

    @property
    def depth(self) -> int:
        return self.path.count("|")


class CategoryMasks:
    """``graph.category_mask(prefix)`` answered from the distinct category lists and kept.

    The graph's own method parses every product's category list on each call (seconds at
    a million products, holding the GIL); a catalogue has a few hundred distinct lists, so
    this runs that same method on a small graph of them and maps the answer back to the
    products. Each prefix's mask is computed once, read-only after. The catalogue installs
    it on the graph it serves, so the recommender's category filter uses it too.
    """

    def __init__(self, graph: Graph) -> None:
        codes, distinct = pd.factorize(graph.products["categories"].fillna("[]"), sort=False)
        self._codes = codes
        names = [str(i) for i in range(len(distinct))]
        self._distinct = Graph.from_arrays(names, {}, products=pd.DataFrame({"asin": names, "categories": list(distinct)}))
        self._masks: dict[str, np.ndarray] = {}

    def __call__(self, prefix: str) -> np.ndarray:
        mask = self._masks.get(prefix)
        if mask is None:
            mask = self._distinct.category_mask(prefix)[self._codes]
            mask.flags.writeable = False
            self._masks[prefix] = mask  # a race computes the same mask twice, harmlessly
        return mask


class Catalogue:
    """A loaded run with the indexes the service answers from."""

    def __init__(self, recommender: Recommender, cache: int = DEFAULT_CACHE, prefill: bool = True) -> None:
        self.rec = recommender
        # a loaded run never changes, so an answer can be kept: the JSON of the last ``cache``
        # distinct neighbour queries (about 2 KB each at k = 10; 0 keeps none)
        self.answers = AnswerCache(cache)
        self.graph = recommender.graph
        self.products = self.graph.products.reset_index(drop=True)
        self.search_index = ProductSearch(self.products)
        self.categories = _category_prefixes(self.products)
        self._category_paths = {c.path.lower(): c.path for c in self.categories}  # matched case-insensitively
        self._images_root = _resolved_dir(recommender.images_dir())
        if "categories" in self.graph.products:
            self.graph.category_mask = CategoryMasks(self.graph)
        self._photo_lock = threading.Lock()
        self._searches = threading.BoundedSemaphore(os.cpu_count() or 1)
        self._warm_up()
        self.prefilled = threading.Event()  # set once every product's default answer is kept (or none will be)
        if 0 < self.graph.num_nodes <= self.answers.size and prefill:
            threading.Thread(target=self._prefill, name="graphrec-prefill", daemon=True).start()
        else:
            self.prefilled.set()

    @classmethod
    def load(cls, run_dir: str | os.PathLike, approx: bool | str = "auto", graph: str | os.PathLike | None = None,
             cache: int = DEFAULT_CACHE) -> "Catalogue":
        """The catalogue of a RUN_DIR (on ``graph`` instead of its recorded GRAPH_DIR when given)."""
        return cls(Recommender.load(run_dir, graph=graph, approx=approx), cache=cache)

    def _prefill(self) -> None:
        """Keep the default answer (``k`` = 10, every category) of every product, in the
        background, when the whole catalogue fits in the answer cache: a small shop's
        service then answers every product page's query from memory. Requests are answered
        meanwhile; a query that fails here is simply not kept."""
        try:
            for asin in self.products["asin"]:
                try:
                    self.neighbours_json(str(asin), 10, None, False)  # kept there unless answered already
                except GraphrecError:
                    continue
        finally:
            self.prefilled.set()

    def _warm_up(self) -> None:
        """Build the recommender's lazy state now, before requests share it."""
        if not self.graph.num_nodes:
            return
        first = str(self.products["asin"].iloc[0])
        self.graph.index_of(first)
        try:
            self.rec.neighbours(first, top=1, exclude_known=True)
        except UsageError:  # a run without a training relation: exclude_known is refused per request
            pass

    # -- products ----------------------------------------------------------------------
    def node(self, asin: str) -> int:
        """Node id of ``asin``; a 404 when the catalogue does not have it."""
        try:
            return self.graph.index_of(asin)
        except UsageError:
            raise ServeError(404, f"ASIN {asin} is not in this catalogue of {self.graph.num_nodes:,} products.") from None

    def product(self, asin: str) -> dict:
        return self.product_at(self.node(asin))

    def product_at(self, node: int) -> dict:
        row = self.products.iloc[int(node)]
        price = row.get("price")
        return {
            "asin": str(row["asin"]),
            "title": _text(row.get("title")),
            "brand": _text(row.get("brand")),
            "price": float(price) if price is not None and price == price else None,
            "category": _text(row.get("category")),
            "categories": json.loads(row["categories"] or "[]") if "categories" in row else [],
            "image": f"/images/{row['asin']}" if _text(row.get("image_path")) else None,
        }

    def search(self, query: str, limit: int) -> list[dict]:
        return [self.product_at(node) for node in self.search_index.search(query, limit)]

    def sample(self, size: int = SAMPLE_SIZE) -> list[dict]:
        """Products spread evenly over the catalogue, the same every time."""
        n = self.graph.num_nodes
        nodes = np.unique(np.linspace(0, n - 1, num=min(size, n)).astype(np.int64)) if n else []
        return [self.product_at(node) for node in nodes]

    def image_file(self, asin: str) -> Path:
        """The product's image, only if it is a file inside the graph's images folder."""
        node = self.node(asin)
        recorded = _text(self.products["image_path"].iloc[node]) if "image_path" in self.products else None
        missing = ServeError(404, f"product {asin} has no image in this catalogue.")
        if recorded is None or self._images_root is None:
            raise missing
        path = Path(recorded)
        resolved = (path if path.is_absolute() else self._images_root / path).resolve()
        if not resolved.is_relative_to(self._images_root) or not resolved.is_file():
            raise missing
        return resolved

    # -- recommendations ---------------------------------------------------------------
    def check(self, k: int, category: str | None) -> str | None:
        """``category`` normalised (None for all) after checking it and ``k``."""
        if not 1 <= k <= MAX_K:
            raise ServeError(422, f"k must be between 1 and {MAX_K} (got {k}).")
        if not category:
            return None
        known = self._category_paths.get(category.lower())
        if known is None:
            raise ServeError(422, f"category {category!r} is not in this catalogue; GET /api/categories lists them.")
        return known

    def neighbours(self, asin: str, k: int = 10, category: str | None = None, exclude_known: bool = False) -> pd.DataFrame:
        """``graphrec neighbours ASIN --json``'s table: a ``query`` column, then the rows."""
        category = self.check(k, category)
        self.node(asin)
        # the batch call is what the command line makes: its table already has the query column
        with self._searches:
            return self._answer(lambda: self.rec.neighbours_batch([asin], top=k, category=category, exclude_known=exclude_known))

    def neighbours_json(self, asin: str, k: int = 10, category: str | None = None, exclude_known: bool = False) -> str:
        """:meth:`neighbours` as the JSON text of ``graphrec neighbours --json``, from
        :attr:`answers` when asked before (errors are raised, never kept)."""
        body = self.answers.get((asin, k, category, exclude_known))
        return body if body is not None else self.answer_json(asin, k, category, exclude_known)

    def answer_json(self, asin: str, k: int = 10, category: str | None = None, exclude_known: bool = False) -> str:
        """Compute the JSON of :meth:`neighbours_json` and keep it (for a caller that has just
        missed :attr:`answers`, such as the API route on the event loop)."""
        body = to_json(self.neighbours(asin, k=k, category=category, exclude_known=exclude_known))
        self.answers.put((asin, k, category, exclude_known), body)
        return body

    def neighbours_for_upload(self, upload: BinaryIO, k: int = 10, category: str | None = None, exclude_known: bool = False) -> pd.DataFrame:
        """Cold start from an uploaded photo (at most 20 MB and :data:`MAX_PIXELS` pixels)."""
        category = self.check(k, category)
        with _saved_upload(upload) as path:
            _check_image(path)
            with self._photo_lock:
                return self._answer(lambda: self.rec.neighbours_for_image(path, top=k, category=category, exclude_known=exclude_known))

    def _answer(self, query) -> pd.DataFrame:
        """Run a recommender query; its user errors become 4xx without server paths."""
        try:
            return query()
        except ImageTooLarge:
            raise _too_many_pixels() from None
        except DataError:
            raise ServeError(415, "the upload could not be decoded as an image (it may be truncated or damaged).") from None
        except UsageError as error:
            raise ServeError(422, self.public_message(str(error))) from None

    def public_message(self, message: str) -> str:
        """``message`` with the run's and graph's folders reduced to their names."""
        for folder in sorted({str(self.rec.run.path), str(self.graph.path)}, key=len, reverse=True):
            message = message.replace(folder, Path(folder).name)
        return message

    # -- about the service -------------------------------------------------------------
    def health(self) -> dict:
        index = self.rec.index
        return {
            "status": "ok",
            "run": self.rec.run.path.name,
            "decoder": self.rec.model.name,
            "k": self.rec.run.config.get("k"),
            "relation": self.rec.relation,
            "graph": self.graph.path.name,
            "products": self.graph.num_nodes,
            "index": index.kind if index is not None else None,
            "photo_queries": self.rec.model.is_metric,
            "answers_kept": len(self.answers),
            "prefilled": self.prefilled.is_set(),
        }


@contextmanager
def _saved_upload(upload: BinaryIO) -> Iterator[str]:
    """The upload copied to a private temporary file (refused past 20 MB), removed afterwards."""
    handle, path = tempfile.mkstemp(prefix="graphrec-upload-", suffix=".img")
    try:
        with os.fdopen(handle, "wb") as out:
            size = 0
            while chunk := upload.read(COPY_CHUNK):
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise ServeError(413, f"the photo is larger than {MAX_UPLOAD_BYTES // 2**20} MB; send a smaller one.")
                out.write(chunk)
        if size == 0:
            raise ServeError(400, "the upload is empty; choose a photo file (JPEG, PNG or WebP).")
        yield path
    finally:
        Path(path).unlink(missing_ok=True)


def _check_image(path: str) -> None:
    """Refuse a file that is not an image, or declares too many pixels, before decoding it."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        raise _too_many_pixels() from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise ServeError(415, "the upload is not an image that can be read; send a JPEG, PNG or WebP photo.") from None
    if width * height > MAX_PIXELS:
        raise _too_many_pixels()


def _too_many_pixels() -> ServeError:
    return ServeError(413, f"the photo has more than {MAX_PIXELS:,} pixels (a possible decompression bomb); send a smaller one.")


def _category_prefixes(products: pd.DataFrame) -> list[Category]:
    """Every prefix of every category path, with how many products it covers, sorted."""
    if "categories" not in products:
        return []
    counts: dict[str, int] = {}
    for raw, times in products["categories"].fillna("[]").value_counts().items():
        prefixes = set()
        for path in json.loads(raw):
            parts = path.split("|")
            prefixes.update("|".join(parts[: depth + 1]) for depth in range(len(parts)))
        for prefix in prefixes:
            counts[prefix] = counts.get(prefix, 0) + int(times)
    return [Category(path, counts[path]) for path in sorted(counts)]


def _resolved_dir(folder: str | None) -> Path | None:
    if not folder:
        return None
    path = Path(folder).resolve()
    return path if path.is_dir() else None


def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value)
    return text or None
