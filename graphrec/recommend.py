"""Recommendations from a trained run: "what goes with this product (or this photo)?"

>>> rec = Recommender.load("graphrec-sample/runs/mahalanobis-k10")
>>> rec.neighbours("B000ASIN42", top=5, category="Clothing, Shoes & Jewelry|Women")
>>> rec.neighbours_for_image("my_new_shoe.jpg", top=5)

Metric decoders (mahalanobis, wnn, euclidean): every product is embedded into the
style space once (cached in ``RUN_DIR/index/``), indexed with faiss
(:mod:`graphrec.index`), and a query returns its nearest products by
``d = ||s_q - s_j||^2``; its probability comes from the model's distance decoder, the
same as ``predict_proba`` for that pair. The query itself is never returned.

Non-metric decoders (FM) have no style space: each candidate (all products, or the
category subset) is scored with ``predict_proba`` in batches and the most probable are
returned, with ``distance`` NaN.

Results are pandas DataFrames with columns ``rank, asin, title, brand, price,
distance, probability`` (and ``query`` first for batches).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from graphrec.errors import DataError, GraphrecWarning, UsageError
from graphrec.fs import progress_bar
from graphrec.graph import Graph
from graphrec.graph.categories import existing_below
from graphrec.index import StyleIndex, cache_key, cached_style_index
from graphrec.io import read_text
from graphrec.io.ids import normalize_asins
from graphrec.runs import MODEL, Run, graph_checksum, load_run

__all__ = ["COLUMNS", "Recommender", "category_mask", "read_asin_file", "recommend", "to_json"]

COLUMNS = ["rank", "asin", "title", "brand", "price", "distance", "probability"]
EMBED_CHUNK = 4096  # products embedded at once
SCORE_CHUNK = 262_144  # candidate pairs scored at once for non-metric models


def category_mask(graph: Graph, prefix: str) -> np.ndarray:
    """Products with any category path starting with the ``|``-separated ``prefix``
    (:meth:`Graph.category_mask`); a graph that records no categories is a UsageError."""
    if "categories" not in graph.products:
        raise UsageError(f"the graph {graph.path} records no categories, so --category cannot be used with it.")
    return graph.category_mask(prefix)


def read_asin_lines(path: str | os.PathLike) -> list[tuple[str, int]]:
    """(ASIN, line number) pairs from a text file: one ASIN per line (or whitespace
    separated); ``#`` starts a comment."""
    file = Path(path)
    if not file.exists():
        raise UsageError(f"--from-file {file} does not exist; give a text file with one ASIN per line.")
    asins = []
    lines = read_text(file, "--from-file").splitlines()  # BOM skipped, compressed files read, FIFOs refused
    for number, line in enumerate(lines, start=1):
        asins.extend((asin, number) for asin in normalize_asins(line.split("#", 1)[0].split()))
    if not asins:
        raise UsageError(f"--from-file {file} holds no ASIN; give one ASIN per line.")
    return asins


def read_asin_file(path: str | os.PathLike) -> list[str]:
    """ASINs from a text file: one per line (or whitespace separated); ``#`` starts a comment."""
    return [asin for asin, _ in read_asin_lines(path)]


def _known_file_asins(graph: Graph, path: str | os.PathLike, lines: list[tuple[str, int]], strict: bool) -> list[str]:
    """The ASINs of ``lines`` (:func:`read_asin_lines` of ``path``) that are in ``graph``; each
    unknown one is a warning naming its line (and the closest ASINs) and is skipped, or with
    ``strict`` the error."""
    known = []
    for asin, line in lines:
        if asin in graph.asin_to_index:
            known.append(asin)
            continue
        try:
            graph.index_of(asin)
        except UsageError as error:
            if strict:
                raise UsageError(f"{path}, line {line}: {error} (without --strict unknown ASINs are skipped)") from None
            warnings.warn(f"{path}, line {line}: {error} Skipped (--strict stops instead).", GraphrecWarning, stacklevel=3)
    if not known:
        raise UsageError(f"none of the ASINs in --from-file {path} is in the graph {graph.path}.")
    return known


def resolve_top(top: int | None, k: int | None, default: int = 10) -> int:
    """The result count of a query: ``top``, or the deprecated ``k=`` alias (a
    :class:`DeprecationWarning`); giving both with different values is a UsageError."""
    if k is None:
        return default if top is None else top
    warnings.warn("k= is deprecated for result counts; use top= (as the command line's --top).", DeprecationWarning, stacklevel=3)
    if top is not None and top != k:
        raise UsageError(f"give the result count once: top={top} and the deprecated k={k} differ.")
    return k


@dataclass
class Recommender:
    """Nearest products in a run's style space (or by model score for non-metric decoders)."""

    run: Run
    index: StyleIndex | None = None
    quiet: bool = True
    _known: sp.csr_matrix | None = field(default=None, repr=False)
    _extractor: object | None = field(default=None, repr=False)
    _columns: dict | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        """``Recommender(Run(...), index flat)``"""
        index = "no index (scores pairs)" if self.index is None else f"index {self.index.kind}"
        return f"Recommender({self.run!r}, {index})"

    # -- construction --------------------------------------------------------------
    @classmethod
    def load(cls, run_dir: str | os.PathLike, graph: Graph | str | os.PathLike | None = None, approx: bool | str = "auto",
             quiet: bool = True, cache: bool = True) -> "Recommender":
        """Load a RUN_DIR and (for metric models) its style index, built once and cached.

        ``approx``: "auto" (exact up to 2M products, approximate above), True / "approx"
        (approximate), False (always exact), or an index kind ("flat", "ivf", "hnsw", "pq").
        """
        run = load_run(run_dir, graph=graph)
        rec = cls(run=run, quiet=quiet)
        if run.model.is_metric:
            kind = {True: "approx", False: "flat"}.get(approx, approx) if isinstance(approx, bool) else approx
            if run.model.encoder.needs_features:
                run.graph.require_features(f"neighbours with the {run.model.name} decoder")
            key = cache_key(run.path / MODEL, _graph_fingerprint(run))
            cache_dir = run.path / "index" if cache else None
            rec.index = cached_style_index(cache_dir, key, rec._embed_all, kind=kind, rows=rec.graph.num_nodes)
        return rec

    @property
    def graph(self) -> Graph:
        return self.run.graph

    @property
    def model(self):
        return self.run.model

    @property
    def relation(self) -> str | None:
        return self.run.config.get("relation")

    @property
    def style(self) -> np.ndarray:
        """Style vectors of every product ``[n, K]`` (metric models only)."""
        if self.index is None:
            raise UsageError(f"the {self.model.name} decoder has no style space (it scores pairs directly).")
        return self.index.vectors

    def _embed_all(self) -> np.ndarray:
        n, model = self.graph.num_nodes, self.model
        if model.encoder.propagates:  # every style depends on the others: one pass over the graph
            return model.styles(self.run.inputs).numpy().astype(np.float32)
        out = np.empty((n, model.embed_dim), dtype=np.float32)
        with progress_bar(quiet=self.quiet) as progress:
            task = progress.add_task("embedding products", total=n)
            for start in range(0, n, EMBED_CHUNK):
                nodes = torch.arange(start, min(n, start + EMBED_CHUNK))
                out[start : start + len(nodes)] = model.styles(self.run.inputs, nodes).numpy()
                progress.advance(task, len(nodes))
        return out

    # -- queries ---------------------------------------------------------------------
    def neighbours(self, asin: str, top: int | None = None, category: str | None = None, exclude_known: bool = False,
                   *, k: int | None = None) -> pd.DataFrame:
        """The ``top`` (default 10) products nearest to ``asin`` (never ``asin`` itself), nearest
        first. ``k=`` is a deprecated alias of ``top=``."""
        top = resolve_top(top, k)
        return self.neighbours_batch([asin], top=top, category=category, exclude_known=exclude_known).drop(columns="query")

    def neighbours_batch(self, asins: Sequence[str], top: int | None = None, category: str | None = None, exclude_known: bool = False,
                         *, k: int | None = None) -> pd.DataFrame:
        """:meth:`neighbours` for several ASINs in one batched search; a ``query`` column first."""
        k = resolve_top(top, k)
        if not len(asins):
            raise UsageError("give at least one ASIN (or --from-file FILE, or --image PHOTO).")
        nodes = np.array([self.graph.index_of(str(a)) for a in asins], dtype=np.int64)
        excluded = [self._excluded(q, exclude_known) for q in nodes]
        if self.model.is_metric:
            self._require_finite(self.style[nodes], [f"ASIN {a}" for a in asins])
            ids, dist = self._search(self.style[nodes], k, category, excluded)
            return self._table(list(asins), nodes, ids, dist)
        ids, prob = self._score(nodes, k, category, excluded)
        return self._table(list(asins), nodes, ids, None, prob)

    def neighbours_for_image(self, path: str | os.PathLike, top: int | None = None, category: str | None = None,
                             exclude_known: bool = False, *, k: int | None = None) -> pd.DataFrame:
        """Cold start: the ``top`` (default 10) products nearest to a photo that need not be in the catalogue.

        The photo goes through the same fc7 network and weights recorded for the graph's
        features, then the model's preprocessing and projection. If the photo is a catalogue
        product's own image file, that product counts as the query and is not returned
        (nor, with ``exclude_known``, its training partners).
        """
        k = resolve_top(top, k)
        if not self.model.is_metric:
            raise UsageError(f"the {self.model.name} decoder does not use images, so --image needs a run with a metric decoder (e.g. mahalanobis).")
        if not self.model.encoder.embeds_photos:
            raise UsageError(f"the {self.model.encoder.name} encoder does not read image features, so --image needs a run "
                             "trained with --encoder linear or hybrid.")
        vector = self.embed_image(path)
        self._require_finite(vector, [f"the photo {path}"])
        own = self._product_with_image(path)
        excluded = [self._excluded(own, exclude_known) if own is not None else np.empty(0, np.int64)]
        ids, dist = self._search(vector, k, category, excluded)
        return self._table([str(path)], np.array([-1 if own is None else own]), ids, dist).drop(columns="query")

    def _require_finite(self, vectors: np.ndarray, queries: Sequence[str]) -> None:
        """A :class:`DataError` for a query whose style vector is NaN or infinite (its
        features were edited after training, or the run's weights are not finite): such a
        query has no neighbours, and an empty answer would look like a valid one."""
        bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
        if len(bad):
            raise DataError(f"the style vector of {queries[int(bad[0])]} in the run {self.run.path} is not finite (NaN or "
                            f"infinite features in {self.graph.path}, or weights of a diverged run); rebuild the graph "
                            "with graphrec build-graph --force and train the run again.")

    def embed_image(self, path: str | os.PathLike) -> np.ndarray:
        """Style vector ``[1, K]`` of an image file (fc7 features -> the model's embedding)."""
        from graphrec.io.images import open_image

        features = self._image_extractor().extract([open_image(path)])
        stored = self.graph.features.dtype if self.graph.features is not None else np.float32
        features = np.asarray(features).astype(stored).astype(np.float32)  # round like the catalogue
        with torch.no_grad():
            return self.model.embed_features(torch.from_numpy(features)).numpy().astype(np.float32)

    def _image_extractor(self):
        if self._extractor is None:
            spec = (self.graph.manifest.get("features") or {}).get("extractor")
            if not spec:
                raise UsageError(
                    f"the graph {self.graph.path} does not record which network made its image features "
                    "(e.g. McAuley's published .b files), so a new photo cannot be embedded the same way; "
                    "extract the features with graphrec extract-features and rebuild the graph."
                )
            from graphrec.vision import Fc7Extractor

            self._extractor = Fc7Extractor.from_spec(spec)
        return self._extractor

    def _product_with_image(self, path: str | os.PathLike) -> int | None:
        if "image_path" not in self.graph.products:
            return None
        target = str(Path(path).resolve())
        paths = self.graph.products["image_path"]
        hits = np.flatnonzero(paths.notna().to_numpy() & (paths.astype(str) == target).to_numpy())
        if not len(hits):  # recorded paths may be relative or not yet resolved
            hits = [i for i, p in enumerate(paths) if isinstance(p, str) and str(Path(p).resolve()) == target]
        return int(hits[0]) if len(hits) else None

    # -- internals -------------------------------------------------------------------
    def _candidates(self, category: str | None) -> np.ndarray | None:
        if category is None:
            return None
        mask = category_mask(self.graph, category)
        if not mask.any():
            below = existing_below(self.graph.products["categories"].value_counts().items(), category)
            raise UsageError(f"no product of the graph {self.graph.path} has a category starting with {category!r} "
                             f"(names joined with '|', case ignored): {below}")
        return mask

    def _excluded(self, node: int, exclude_known: bool) -> np.ndarray:
        """Node ids a query must not return: itself, and its training partners if asked."""
        if not exclude_known:
            return np.array([node], dtype=np.int64)
        if self._known is None:
            relation = self.relation
            if relation is None:
                raise UsageError(f"the run {self.run.path} records no training relation, so --exclude-known cannot be used.")
            edges = self.graph.edge_index(relation).numpy()
            n = self.graph.num_nodes
            ones = np.ones(edges.shape[1], dtype=np.int8)
            adjacency = sp.coo_matrix((ones, (edges[0], edges[1])), shape=(n, n))
            self._known = (adjacency + adjacency.T).tocsr()
        known = self._known.indices[self._known.indptr[node] : self._known.indptr[node + 1]]
        return np.concatenate([[node], known]).astype(np.int64)

    def _search(self, queries: np.ndarray, k: int, category: str | None, excluded: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Index search for k results per query after dropping ``excluded`` ids; exact distances."""
        mask = self._candidates(category)
        subset = np.flatnonzero(mask) if mask is not None else None
        extra = max(len(e) for e in excluded)
        _, found = self.index.search(queries, k + extra, subset=subset)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        dist = np.full((len(queries), k), np.inf, dtype=np.float32)
        for row, (candidates, drop) in enumerate(zip(found, excluded)):
            keep = candidates[(candidates >= 0) & ~np.isin(candidates, drop)]
            # recompute distances exactly as the model does (faiss may expand |a-b|^2)
            diff = self.style[keep] - queries[row]
            exact = np.einsum("ij,ij->i", diff, diff)
            order = np.argsort(exact, kind="stable")[:k]
            ids[row, : len(order)] = keep[order]
            dist[row, : len(order)] = exact[order]
        return ids, dist

    @torch.no_grad()
    def _score(self, nodes: np.ndarray, k: int, category: str | None, excluded: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Non-metric models: score every candidate with ``predict_proba``; the k most probable."""
        mask = self._candidates(category)
        candidates = np.flatnonzero(mask) if mask is not None else np.arange(self.graph.num_nodes)
        ids = np.full((len(nodes), k), -1, dtype=np.int64)
        prob = np.full((len(nodes), k), np.nan, dtype=np.float32)
        for row, (node, drop) in enumerate(zip(nodes, excluded)):
            pool = candidates[~np.isin(candidates, drop)]
            scores = np.empty(len(pool), dtype=np.float32)
            for start in range(0, len(pool), SCORE_CHUNK):
                part = torch.from_numpy(pool[start : start + SCORE_CHUNK])
                pairs = torch.stack([torch.full_like(part, int(node)), part], dim=1)
                scores[start : start + len(part)] = self.model.predict_proba(self.run.inputs, pairs).numpy()
            if np.isnan(scores).all() and len(scores):
                raise DataError(f"the {self.model.name} model of {self.run.path} scores every candidate of {self.graph.asins[node]} "
                                "as NaN (weights of a diverged run, or NaN features); train the run again.")
            top = np.argsort(-scores, kind="stable")[:k]
            ids[row, : len(top)] = pool[top]
            prob[row, : len(top)] = scores[top]
        return ids, prob

    def _table(self, queries: list[str], nodes: np.ndarray, ids: np.ndarray, dist: np.ndarray | None, prob: np.ndarray | None = None) -> pd.DataFrame:
        """The result rows of every query, built column-wise from the cached product columns
        (a row-by-row pandas build was most of a request's time in ``graphrec serve``)."""
        if dist is not None:  # the decoder turns distances into probabilities (float64, like the distances' table)
            with torch.no_grad():
                prob = self.model.decoder.probability_of(torch.from_numpy(dist.astype(np.float64))).numpy()
        valid = ids >= 0
        rows, cols = np.nonzero(valid)  # query by query, nearest first
        picked = ids[rows, cols]
        columns = self._product_columns()
        table = pd.DataFrame({
            "query": np.asarray(queries, dtype=object)[rows],
            "rank": np.cumsum(valid, axis=1)[rows, cols].astype(np.int64),
            **{name: values[picked] for name, values in columns.items()},
            "distance": dist[rows, cols].astype(np.float64) if dist is not None else np.full(len(rows), math.nan),
            "probability": np.asarray(prob)[rows, cols].astype(np.float64),
        })
        return table[["query", *COLUMNS]]

    def _product_columns(self) -> dict[str, np.ndarray]:
        """asin, title, brand (None where missing) and price (NaN where missing) of every product, once."""
        if self._columns is None:
            products, n = self.graph.products, self.graph.num_nodes
            out: dict[str, np.ndarray] = {"asin": products["asin"].to_numpy(dtype=object)}
            for name in ("title", "brand"):
                values = products[name].to_numpy(dtype=object) if name in products else np.full(n, None, dtype=object)
                text = np.array([None if v is None else str(v) for v in values], dtype=object)
                text[pd.isna(values)] = None
                out[name] = text
            price = pd.to_numeric(products["price"], errors="coerce") if "price" in products else pd.Series(np.full(n, math.nan))
            out["price"] = price.to_numpy(dtype=np.float64, na_value=math.nan)
            self._columns = out
        return self._columns

    def image_paths(self, asins: Iterable[str]) -> list[str | None]:
        """Recorded local image path of each ASIN (None when unknown)."""
        column = self.graph.products["image_path"] if "image_path" in self.graph.products else None
        out = []
        for asin in asins:
            value = None if column is None else column.iloc[self.graph.index_of(asin)]
            out.append(value if isinstance(value, str) and value else None)
        return out

    def picture(self, table: pd.DataFrame, out: str | os.PathLike, image: str | os.PathLike | None = None) -> Path:
        """Draw ``table`` (from :meth:`neighbours_batch` or :meth:`neighbours_for_image`) as a
        PNG grid: one row per query, the query's image first, then its recommendations."""
        from graphrec.picture import Tile, render_grid

        if "query" not in table:
            table = table.assign(query=str(image) if image is not None else "query")
        queries = list(dict.fromkeys(table["query"]))
        images_dir = self.images_dir()
        tiles: list[Tile | None] = []
        width = int(table.groupby("query")["rank"].max().max()) + 1 if len(table) else 1
        for query in queries:
            rows = table[table["query"] == query]
            if image is not None:
                own = Tile(image, Path(str(image)).name, "your photo", label="query")
            else:
                own = Tile(self.image_paths([query])[0], query, self._title(query), label="query")
            tiles.append(own)
            paths = self.image_paths(rows["asin"])
            tiles.extend(Tile(p, r.asin, r.title, r.probability) for p, r in zip(paths, rows.itertuples()))
            tiles.extend([None] * (width - 1 - len(rows)))
        columns = width if len(queries) > 1 else None
        # the user's own photo is read from where they gave it; catalogue images only from the images folder
        return render_grid(tiles, out, images_dir=images_dir, columns=columns, trusted={str(image)} if image is not None else None)

    def _title(self, asin: str) -> str | None:
        return _text(self.graph.products["title"].iloc[self.graph.index_of(asin)]) if "title" in self.graph.products else None

    def images_dir(self) -> str | None:
        """The images folder recorded at build time (pictures only read files inside it)."""
        return self.graph.images_dir


def recommend(
    run_dir: str | os.PathLike,
    asins: Sequence[str] = (),
    *,
    from_file: str | os.PathLike | None = None,
    image: str | os.PathLike | None = None,
    top: int | None = None,
    category: str | None = None,
    exclude_known: bool = False,
    approx: bool | str = "auto",
    picture: str | os.PathLike | None = None,
    quiet: bool = True,
    graph: Graph | str | os.PathLike | None = None,
    strict: bool = False,
    k: int | None = None,
) -> pd.DataFrame:
    """What ``graphrec neighbours`` does: load the run (on ``graph`` instead of its recorded
    GRAPH_DIR when given), answer the ASINs (and those listed in ``from_file``) in one batch,
    or the photo ``image``, ``top`` (default 10) results each; optionally draw ``picture``.
    An ASIN of ``from_file`` that the graph lacks is a warning naming its line and is skipped
    (``strict``: the error). Returns the batch table (``query`` column first). ``k=`` is a
    deprecated alias of ``top=``."""
    k = resolve_top(top, k)
    if k < 1:
        raise UsageError(f"--top must be at least 1 (got {k}).")
    if image is not None and (asins or from_file is not None):
        raise UsageError("give either ASINs or --image PHOTO, not both.")
    if image is None and not asins and from_file is None:
        raise UsageError("give at least one ASIN (or --from-file FILE, or --image PHOTO).")
    listed = read_asin_lines(from_file) if from_file is not None else None  # a missing or empty file fails before the run loads
    rec = Recommender.load(run_dir, graph=graph, approx=approx, quiet=quiet)
    queries = list(asins) + (_known_file_asins(rec.graph, from_file, listed, strict) if listed is not None else [])
    if image is not None:
        table = rec.neighbours_for_image(image, top=k, category=category, exclude_known=exclude_known)
        table.insert(0, "query", str(image))
    else:
        table = rec.neighbours_batch(queries, top=k, category=category, exclude_known=exclude_known)
    if picture is not None:
        rec.picture(table, picture, image=image)
    return table


def to_json(table: pd.DataFrame) -> str:
    """The table as a JSON list of records (NaN -> null)."""
    return json.dumps(json.loads(table.to_json(orient="records", double_precision=10)), indent=2)


def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _graph_fingerprint(run: Run) -> str:
    """The graph checksum, or for an in-memory graph its size and ASIN list."""
    checksum = graph_checksum(run.graph)
    if checksum:
        return checksum
    import hashlib

    digest = hashlib.sha256("\n".join(map(str, run.graph.asins)).encode())
    digest.update(str(run.graph.features.shape if run.graph.features is not None else None).encode())
    return "memory-" + digest.hexdigest()
