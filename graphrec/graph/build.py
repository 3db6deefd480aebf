"""``build_graph``: Amazon metadata (and optionally a McAuley ``.b`` features file) to a
GRAPH_DIR, as a short pipeline of named passes over one :class:`_Build` state:

1. ``metadata``  stream the metadata once; ASINs become int ids as they are read and
   related lists int32 arrays per relation (graphrec.graph.catalogue); with ``edges``
   (a plain edge list) the relations come from that file instead and the metadata, if
   any, only gives the products (graphrec.graph.edgelist);
2. ``features``  stream the features file once, appending rows of the products kept to
   features.npy as they arrive (graphrec.graph.features);
3. ``edges``     turn the id arrays into canonical edge lists (graphrec.graph.edges);
4. ``products``  the products table in node order, with local image paths;
5. ``manifest``  counts, sources, options and every drop;
6. ``write``     graph.pt, products.parquet and manifest.json.

Node order: first appearance in the features file when features are given (so they are
written in one sequential pass), otherwise first appearance in the metadata. Everything
is written to a temporary directory beside the output and renamed into place at the end
(graphrec.graph.builddir).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from graphrec.errors import DataError, UsageError, choose
from graphrec.fs import progress_bar, sha256_file, write_json_atomic
from graphrec.graph.builddir import clean_stale_builds, prepare_target, staging
from graphrec.graph.catalogue import Catalogue
from graphrec.graph.categories import split_category
from graphrec.graph.edgelist import edge_list_source, read_edges_into
from graphrec.graph.edges import empty_edges, relation_edges
from graphrec.graph.features import DTYPES, check_features_finished, write_features
from graphrec.graph.store import FORMAT_VERSION
from graphrec.io.features import read_sidecar
from graphrec.io.images import find_images

__all__ = ["BuildResult", "build_graph"]


@dataclass
class BuildResult:
    """What :func:`build_graph` did: where the graph is, its manifest, messages for the user."""

    path: Path
    manifest: dict
    warnings: list[str] = field(default_factory=list)  # first few bad lines / records
    notes: list[str] = field(default_factory=list)  # e.g. "this graph has no features"
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per pass


@dataclass
class _Options:
    """The checked options of one build."""

    category: str | None
    wanted: list[str] | None  # the category path, split
    relations: tuple[str, ...] | None
    meta_format: str | None
    feature_dim: int
    dtype: str
    images: Path | None
    strict: bool
    force: bool
    quiet: bool
    keep_extreme: bool


@dataclass
class _Build:
    """The state passed from pass to pass (each pass fills its fields and frees what later
    passes no longer need)."""

    meta: Path
    features: Path | None
    options: _Options
    tmp: Path
    reader: Any  # MetadataReader
    feature_reader: Any  # BinaryFeatureReader or None
    sidecar: dict | None
    progress: Any
    edges_file: Path | None = None  # a plain edge list giving the relations (--edges)
    relation_names: dict[str, str] | None = None
    edge_list: Any = None  # its EdgeList (counts and messages)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    catalogue: Catalogue | None = None
    kept: int = 0
    id_to_row: np.ndarray | None = None
    node_ids: np.ndarray | None = None
    dropped_features: dict[str, int] = field(default_factory=dict)
    feature_info: dict | None = None
    edges: dict[str, torch.Tensor] = field(default_factory=dict)
    dangling: dict[str, int] = field(default_factory=dict)
    listed: dict[str, int] = field(default_factory=dict)
    self_loops: int = 0
    duplicates: int = 0
    outside: int = 0
    table: pd.DataFrame | None = None
    manifest: dict | None = None

    @property
    def num_nodes(self) -> int:
        return len(self.node_ids)


def _metadata_pass(build: _Build) -> None:
    if build.edges_file is not None:
        return _edge_list_pass(build)
    reader, catalogue = build.reader, Catalogue(build.options.relations)
    task = build.progress.add_task(f"metadata {build.meta.name}", total=reader.size)
    for count, product in enumerate(reader, start=1):
        catalogue.add(product, build.options.wanted)
        if not count & 4095:
            build.progress.update(task, completed=reader.bytes_read)
    build.progress.update(task, completed=reader.size)
    build.warnings.extend(reader.messages)
    build.kept = len(catalogue.product_ids)
    if build.kept == 0:
        raise _empty(build.meta, reader, catalogue, build.options.category)
    build.id_to_row = np.full(len(catalogue.ids), -1, dtype=np.int64)
    build.id_to_row[np.frombuffer(catalogue.product_ids, dtype=np.int32)] = np.arange(build.kept)
    build.catalogue = catalogue


def _edge_list_pass(build: _Build) -> None:
    """``--edges``: the metadata (when given) gives the products, the edge list the relations."""
    catalogue = None
    if build.reader is not None:
        catalogue = Catalogue(())  # products only: the metadata's related lists are not read
        for product in build.reader:
            catalogue.add(product, build.options.wanted)
        build.warnings.extend(build.reader.messages)
        if not catalogue.product_ids:
            raise _empty(build.meta, build.reader, catalogue, build.options.category)
    catalogue, build.edge_list = read_edges_into(catalogue, build.edges_file, build.options.relations,
                                                 build.relation_names, build.options.strict)
    build.warnings.extend(build.edge_list.messages)
    build.notes.extend(build.edge_list.notes)
    build.kept = len(catalogue.product_ids)
    build.id_to_row = np.full(len(catalogue.ids), -1, dtype=np.int64)
    build.id_to_row[np.frombuffer(catalogue.product_ids, dtype=np.int32)] = np.arange(build.kept)
    build.catalogue = catalogue


def _features_pass(build: _Build) -> None:
    """Node ids in features-file order (or metadata order without features)."""
    reader = build.feature_reader
    if reader is None:
        build.node_ids = np.frombuffer(build.catalogue.product_ids, dtype=np.int32).astype(np.int64)
        return
    build.node_ids, build.dropped_features, unused, extremes = write_features(
        reader, build.catalogue, build.tmp / "features.npy", np.dtype(build.options.dtype), build.options.strict,
        build.progress, keep_extreme=build.options.keep_extreme,
    )
    build.warnings.extend(reader.messages)
    if len(extremes.rows):
        build.warnings.append(_extreme_message(build, extremes))
    if build.num_nodes == 0:
        raise DataError(
            f"none of the {build.kept:,} products kept from {build.meta} has a record in {build.features} "
            f"({reader.num_records:,} records); check that both files are for the same category."
        )
    sidecar = build.sidecar or {}
    build.feature_info = {
        "path": str(build.features.resolve()),
        "dim": build.options.feature_dim,
        "dtype": build.options.dtype,
        "extractor": sidecar.get("extractor"),
        "images_dir": sidecar.get("images_dir"),
        "image_manifest": sidecar.get("image_manifest"),
        "records": reader.num_records,
        "unused_records": unused,
        "extreme_rows": {"count": int(len(extremes.rows)), "kept": build.options.keep_extreme,
                         "threshold": extremes.threshold if np.isfinite(extremes.threshold) else None,
                         "reference": extremes.reference},
    }


def _extreme_message(build: _Build, extremes) -> str:
    what = "kept (--keep-extreme)" if build.options.keep_extreme else "dropped like NaN rows (--keep-extreme keeps them)"
    return (
        f"{build.features}: {len(extremes.rows):,} feature record(s) have values far beyond the rest (largest absolute "
        f"value above {extremes.threshold:.4g}, 1000 times the typical row's {extremes.reference:.4g}); {what}."
    )


def _edges_pass(build: _Build) -> None:
    catalogue, num_nodes = build.catalogue, build.num_nodes
    id_to_node = np.full(len(catalogue.ids), -1, dtype=np.int64)
    id_to_node[build.node_ids] = np.arange(num_nodes)
    task = build.progress.add_task("edges", total=len(catalogue.present))
    build.edges, build.dangling, build.self_loops, build.listed = relation_edges(
        catalogue, id_to_node, num_nodes, lambda: build.progress.advance(task)
    )
    for name in build.options.relations or ():
        if name not in build.edges:
            build.notes.append(f"relation {name} does not occur in {build.meta or build.edges_file}; its edge set is empty.")
            build.edges[name] = empty_edges()
            build.dangling[name], build.listed[name] = 0, 0


def _images_dir(build: _Build) -> Path | None:
    """``--images``, else the features sidecar's images folder when it still exists."""
    if build.options.images is not None:
        return build.options.images
    recorded = (build.sidecar or {}).get("images_dir")
    if not recorded:
        return None
    if not Path(recorded).is_dir():
        build.notes.append(f"the images directory {recorded} named in {build.features}.json no longer exists; image_path is empty.")
        return None
    return Path(recorded)


def products_table(catalogue: Catalogue, node_ids: np.ndarray, rows: np.ndarray, images_dir: Path | None) -> pd.DataFrame:
    """One row per node, in node order (``rows[i]`` is node i's row in the catalogue)."""
    asins = list(catalogue.ids)  # insertion order == interned id
    node_asins = [asins[i] for i in node_ids]
    del asins
    image_paths = [None] * len(node_asins)
    if images_dir is not None:
        found = find_images(images_dir)
        image_paths = [found.get(asin) for asin in node_asins]
    take = rows.tolist()

    def column(values: list) -> pd.Series:
        return pd.Series([values[r] for r in take], dtype=object)

    return pd.DataFrame({
        "asin": pd.Series(node_asins, dtype=object),
        "title": column(catalogue.titles),
        "brand": column(catalogue.brands),
        "price": np.frombuffer(catalogue.prices, dtype=np.float64)[rows] if len(rows) else np.empty(0),
        "category": column(catalogue.category),
        "categories": column(catalogue.categories),
        "image_url": column(catalogue.image_urls),
        "image_path": pd.Series(image_paths, dtype=object),
    })


def _products_pass(build: _Build) -> None:
    catalogue = build.catalogue
    build.table = products_table(catalogue, build.node_ids, build.id_to_row[build.node_ids], _images_dir(build))
    build.duplicates, build.outside = catalogue.duplicates, catalogue.outside
    build.catalogue = build.id_to_row = None  # the largest structures of the build: freed before writing


def _dropped(build: _Build) -> dict:
    counts, edge_list = build.dropped_features, build.edge_list
    return {
        "bad_lines": (build.reader.bad_lines if build.reader is not None else 0),
        **({"bad_edge_lines": edge_list.bad_lines} if edge_list is not None else {}),
        "duplicate_asins": build.duplicates,
        "outside_category": build.outside,
        "no_features": (build.kept - build.num_nodes) if build.feature_reader is not None else 0,
        "self_loops": build.self_loops + (edge_list.self_loops if edge_list is not None else 0),
        "dangling": build.dangling,
        **{name: counts.get(name, 0) for name in ("bad_asin", "non_finite", "duplicate_feature_asins", "extreme_values")},
    }


def _source(path: Path, **extra) -> dict:
    return {"path": str(path.resolve()), "size": path.stat().st_size, **extra}


def _manifest_pass(build: _Build) -> None:
    from graphrec import __version__
    from graphrec.stats import graph_stats

    options, reader, with_features = build.options, build.reader, build.feature_reader is not None
    build.manifest = {
        "format_version": FORMAT_VERSION,
        "graphrec_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "num_nodes": build.num_nodes,
        "feature_dim": options.feature_dim if with_features else None,
        "node_order": "features file" if with_features else "metadata" if reader is not None else "edge list",
        "relations": {name: {"num_edges": int(index.shape[1]), "listed": build.listed[name]} for name, index in build.edges.items()},
        "dropped": _dropped(build),
        "features": build.feature_info,
        "sources": {
            "metadata": _source(build.meta, format=reader.format, lines=reader.lines, sha256=sha256_file(build.meta),
                                other_format_lines=reader.other_format_lines,
                                bad_related=reader.bad_related,  # records kept, malformed relation lists ignored
                                bad_fields=reader.bad_fields) if reader is not None else None,  # an unreadable field (a price) left empty
            **({"edges": edge_list_source(build.edge_list, sha256_file(build.edges_file))} if build.edge_list is not None else {}),
            "features": _source(build.features, sha256=build.feature_reader.sha256) if with_features else None,
        },
        "options": {
            "category": options.category,
            "relations": list(options.relations) if options.relations else None,
            "format": options.meta_format or "auto",
            "feature_dim": options.feature_dim,
            "dtype": options.dtype,
            "images": str(options.images.resolve()) if options.images is not None else None,
            "strict": options.strict,
            "keep_extreme": options.keep_extreme,
            **({"relation_names": build.relation_names or None} if build.edges_file is not None else {}),
        },
        "stats": graph_stats(build.num_nodes, build.edges),
    }


def _write_pass(build: _Build) -> None:
    torch.save({"format_version": FORMAT_VERSION, "num_nodes": build.num_nodes, "edge_index": build.edges}, build.tmp / "graph.pt")
    build.table.to_parquet(build.tmp / "products.parquet", index=False)
    write_json_atomic(build.tmp / "manifest.json", build.manifest)


PASSES = (
    ("metadata", _metadata_pass),
    ("features", _features_pass),
    ("edges", _edges_pass),
    ("products", _products_pass),
    ("manifest", _manifest_pass),
    ("write", _write_pass),
)


def _empty(meta: Path, reader, catalogue: Catalogue, category: str | None) -> DataError:
    """The error for a metadata pass that kept no product, saying why."""
    if reader.lines == 0 or (reader.bad_lines == 0 and not catalogue.ids):
        return DataError(f"{meta} holds no products; pass an Amazon meta_*.json(.gz) file with --meta.")
    if catalogue.outside:
        top = sorted(catalogue.top_categories.items(), key=lambda item: -item[1])[:5]
        seen = "; ".join(f"{name!r} ({count:,})" for name, count in top) or "none"
        return DataError(
            f"no product of {meta} is in the category {category!r} ({catalogue.outside:,} products outside it); "
            f"top-level categories in the file: {seen}. Use a '|'-separated path starting with one of them."
        )
    return DataError(
        f"{meta} has no readable product ({reader.bad_lines:,} bad lines of {reader.lines:,}); "
        f"check that it is an Amazon 2014 or 2018 metadata file (or pass --format)."
    )


def _check_options(category, relations, meta_format, feature_dim, dtype, images, strict, force, quiet, keep_extreme,
                   from_edges: bool = False) -> _Options:
    from graphrec.io.metadata import RELATIONS as KNOWN

    dtype = choose(dtype, DTYPES, "--dtype")
    if relations is not None:
        relations = tuple(dict.fromkeys(r.strip() for r in relations if r.strip()))
        if not relations:
            raise UsageError(f"--relations names no relation; choose from {', '.join(KNOWN)}.")
        if not from_edges:  # an edge list names its own
            relations = tuple(dict.fromkeys(choose(r, KNOWN, "relation") for r in relations))
    wanted = split_category(category) if category else None
    if category is not None and not wanted:
        raise UsageError(f"--category {category!r} names no category; use a '|'-separated path such as 'Clothing, Shoes & Jewelry|Men'.")
    if images is not None and not Path(images).is_dir():
        raise UsageError(f"images directory {images} not found; pass an existing directory with --images.")
    return _Options(category, wanted, relations, meta_format, feature_dim, dtype,
                    Path(images) if images is not None else None, strict, force, quiet, keep_extreme)


_NO_FEATURES_NOTE = (
    "this graph has no image features: commands that need them (train with a visual decoder, neighbours) "
    "will refuse it. Get features with graphrec extract-features (or McAuley's image_features_*.b) and "
    "rebuild with --features FILE.b --force."
)


def build_graph(
    meta: str | Path | None,
    out: str | Path,
    features: str | Path | None = None,
    *,
    edges: str | Path | None = None,
    relation_names: dict[str, str] | None = None,
    category: str | None = None,
    relations: "list[str] | tuple[str, ...] | None" = None,
    meta_format: str | None = None,
    feature_dim: int = 4096,
    dtype: str = "float16",
    images: str | Path | None = None,
    strict: bool = False,
    force: bool = False,
    quiet: bool = False,
    keep_extreme: bool = False,
) -> BuildResult:
    """Build a GRAPH_DIR at ``out`` from Amazon metadata (2014 or 2018 dump) and,
    optionally, a McAuley ``.b`` features file.

    Nodes are the products of ``meta`` (first record of a duplicated ASIN), restricted to
    those with a category path starting with ``category`` and, when ``features`` is
    given, to those with a feature record. One undirected edge set per relation in
    ``relations`` (default: every relation present). Everything is written to a
    temporary directory beside ``out`` and renamed into place at the end; an existing
    ``out`` is replaced only with ``force``. Feature rows far outside the rest (see
    graphrec.graph.outliers) are counted and dropped unless ``keep_extreme``. Raises :class:`DataError` /
    :class:`UsageError` with one clear sentence on bad input.

    ``edges`` (a plain edge list, :mod:`graphrec.io.edges`; ``relation_names`` renames its
    relation labels) gives the relations instead of the metadata's related lists, and
    ``meta`` may then be None: the edge list's ids are the products (graphrec.graph.edgelist).
    """
    from graphrec.io.features import BinaryFeatureReader
    from graphrec.io.metadata import MetadataReader

    if meta is None and edges is None:
        raise UsageError("build-graph needs --meta FILE (Amazon metadata) or --edges FILE (a plain edge list).")
    meta, out = (Path(meta) if meta is not None else None), Path(out)
    features = Path(features) if features is not None else None
    edges = Path(edges) if edges is not None else None
    options = _check_options(category, relations, meta_format, feature_dim, dtype, images, strict, force, quiet, keep_extreme,
                             from_edges=edges is not None)
    if category is not None and meta is None:
        raise UsageError("--category filters by the metadata's categories; pass --meta FILE with it.")
    notes = [f"removed {stale.name}, left by an interrupted build" for stale in clean_stale_builds(out)]
    prepare_target(out, force)
    reader = MetadataReader(meta, format=meta_format, strict=strict) if meta is not None else None  # checks the file
    feature_reader = sidecar = None
    if features is not None:
        feature_reader = BinaryFeatureReader(features, dim=feature_dim, copy=False)
        sidecar = read_sidecar(features)
        check_features_finished(features, sidecar, feature_reader.num_records)
    seconds: dict[str, float] = {}
    with staging(out, force) as tmp:
        with progress_bar(quiet=quiet) as progress, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build = _Build(meta, features, options, tmp, reader, feature_reader, sidecar, progress, notes=notes,
                           edges_file=edges, relation_names=relation_names)
            for name, run_pass in PASSES:
                clock = time.perf_counter()
                run_pass(build)
                seconds[name] = time.perf_counter() - clock
        clock = time.perf_counter()
    seconds["write"] += time.perf_counter() - clock  # the rename into place
    if feature_reader is None:
        build.notes.append(_NO_FEATURES_NOTE)
    return BuildResult(path=out, manifest=build.manifest, warnings=build.warnings, notes=build.notes, seconds=seconds)
