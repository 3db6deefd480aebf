"""The features pass of a build: rows of the kept products streamed from a McAuley ``.b``
file into ``features.npy`` (first record of an ASIN wins, node order = order in the file),
and the features file's JSON sidecar (``<features>.json``, written by extract-features).

``features.npy`` is appended through a plain file handle, not a memory map, so resident
memory does not grow with the matrix (see :class:`NpyRowWriter`).
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from graphrec.errors import DataError
from graphrec.graph.catalogue import KEPT
from graphrec.graph.outliers import extreme_threshold, row_peaks

__all__ = ["DTYPES", "NpyRowWriter", "check_features_finished", "write_features"]

DTYPES = ("float16", "float32")
_TORCH_DTYPES = {"float16": torch.float16, "float32": torch.float32}


class NpyRowWriter:
    """Append rows to a ``.npy`` file through a plain file handle (no memory map, so
    resident memory does not grow with the matrix); the header's row count is
    reserved for ``capacity`` rows and rewritten on :meth:`close`."""

    def __init__(self, path: Path, capacity: int, dim: int, dtype: np.dtype) -> None:
        self.path, self.dim, self.dtype = path, dim, np.dtype(dtype)
        self.header_len = len(self._header(capacity))
        self.rows = 0
        self.handle = open(path, "w+b")
        self.handle.write(self._header(capacity))

    def _header(self, rows: int, length: int | None = None) -> bytes:
        body = repr({"descr": self.dtype.str, "fortran_order": False, "shape": (rows, self.dim)}).encode("latin1")
        total = length or -(-(10 + len(body) + 1) // 64) * 64
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", total - 10) + body + b" " * (total - 11 - len(body)) + b"\n"

    def write(self, rows: np.ndarray) -> None:
        self.handle.write(np.ascontiguousarray(rows, dtype=self.dtype).data)
        self.rows += len(rows)

    def drop(self, rows: np.ndarray, block_bytes: int = 64 << 20) -> None:
        """Remove the rows at the sorted positions ``rows`` (rows after them move up), in
        place: one sequential pass over the rows after the first one removed."""
        if len(rows) == 0:
            return
        row_bytes = self.dim * self.dtype.itemsize
        keep = np.ones(self.rows, dtype=bool)
        keep[rows] = False
        target = int(rows[0])
        per_block = max(1, block_bytes // max(row_bytes, 1))
        kept = np.flatnonzero(keep[target:]) + target
        for start in range(0, len(kept), per_block):  # kept rows only move towards the start
            batch = kept[start:start + per_block]
            for run in np.split(batch, np.flatnonzero(np.diff(batch) != 1) + 1):
                self.handle.seek(self.header_len + int(run[0]) * row_bytes)
                data = self.handle.read(len(run) * row_bytes)
                self.handle.seek(self.header_len + target * row_bytes)
                self.handle.write(data)
                target += len(run)
        self.rows = target
        self.handle.seek(self.header_len + self.rows * row_bytes)

    def close(self) -> None:
        self.handle.seek(0)
        self.handle.write(self._header(self.rows, self.header_len))
        self.handle.truncate(self.header_len + self.rows * self.dim * self.dtype.itemsize)
        self.handle.close()


def _select(chunk_asins, ids: dict, status: bytearray, has_row: bytearray, node_ids: array) -> tuple[list[int], int, int]:
    """Positions in a chunk of the records to keep: a kept product's first record. Appends
    their interned ids to ``node_ids``; returns ``(positions, duplicates, unused)``."""
    take: list[int] = []
    duplicates = unused = 0
    for i, asin in enumerate(chunk_asins):
        index = ids.get(asin)
        if index is None or status[index] != KEPT:
            unused += 1
        elif has_row[index]:
            duplicates += 1
        else:
            has_row[index] = 1
            node_ids.append(index)
            take.append(i)
    return take, duplicates, unused


def _convert(chunk, take: list[int], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The kept records of ``chunk`` in the stored dtype, each row's largest absolute value,
    and the positions in ``take`` of rows that overflow float16."""
    values = chunk.values if len(take) == len(chunk.asins) else chunk.values[take]
    # torch converts float32 -> float16 several times faster than numpy (same rounding)
    aligned = np.array(values, dtype=np.float32, order="C")  # records are 2-byte aligned only
    rows = torch.from_numpy(aligned).to(_TORCH_DTYPES[dtype.name]).numpy()
    overflow = []
    if dtype == np.float16 and not np.isfinite(rows).all():
        overflow = np.flatnonzero(~np.isfinite(rows).all(axis=1)).tolist()
    return rows, row_peaks(aligned), overflow


@dataclass
class _Extremes:
    """What the features pass saw of rows far outside the rest (see graphrec.graph.outliers)."""

    peaks: array = field(default_factory=lambda: array("d"))  # per written row, its largest |value|
    overflow: dict[int, str] = field(default_factory=dict)  # written row -> ASIN, beyond float16
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # extreme written rows
    threshold: float = float("inf")
    reference: float = 0.0


def _find_extremes(seen: _Extremes, keep: bool, path: Path) -> None:
    """Mark the extreme rows; a float16 overflow that is not dropped as extreme is an error."""
    peaks = np.frombuffer(seen.peaks, dtype=np.float64)
    seen.threshold, seen.reference = extreme_threshold(peaks)
    seen.rows = np.flatnonzero(peaks > seen.threshold)
    dropped = set() if keep else set(seen.rows.tolist())
    for row, asin in seen.overflow.items():
        if row not in dropped:
            raise DataError(f"{path}: ASIN {asin} has values beyond the float16 range (±65504); rebuild with --dtype float32.")


def write_features(reader, catalogue, path: Path, dtype: np.dtype, strict: bool, progress, keep_extreme: bool = False):
    """Stream ``reader`` (a BinaryFeatureReader) into ``path`` keeping rows of kept products;
    rows far outside the rest are dropped afterwards unless ``keep_extreme``.

    Returns ``(node_ids, dropped counts, unused records, extremes)``: ``node_ids[i]`` is the
    interned id of node ``i``; ``extremes`` describes the extreme rows (see :class:`_Extremes`).
    """
    has_row = bytearray(len(catalogue.status))
    node_ids = array("i")
    duplicates = unused = 0
    seen = _Extremes()
    writer = NpyRowWriter(path, len(catalogue.product_ids), reader.dim, dtype)
    task = progress.add_task(f"features {reader.path.name}", total=reader.num_records)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 4 MiB conversion is memory-bound; extra threads only add sync cost
    try:
        for chunk in reader:
            if strict and reader.dropped:
                raise DataError(f"{reader.messages[0]} (--strict: fix the file or drop --strict to skip such records).")
            take, seen_twice, not_kept = _select(chunk.asins, catalogue.ids, catalogue.status, has_row, node_ids)
            duplicates, unused = duplicates + seen_twice, unused + not_kept
            if take:
                rows, peaks, overflow = _convert(chunk, take, dtype)
                seen.overflow.update({writer.rows + i: chunk.asins[take[i]] for i in overflow})
                seen.peaks.extend(peaks)
                writer.write(rows)
            if len(chunk.offsets):
                progress.update(task, completed=int(chunk.offsets[-1]) // reader.dtype.itemsize + 1)
        progress.update(task, completed=reader.num_records)
        _find_extremes(seen, keep_extreme, reader.path)
        if not keep_extreme:
            writer.drop(seen.rows)
    finally:
        torch.set_num_threads(threads)
        writer.close()
    dropped = dict(reader.dropped)
    dropped["duplicate_feature_asins"] = duplicates
    dropped["extreme_values"] = 0 if keep_extreme else len(seen.rows)
    node_ids = np.frombuffer(node_ids, dtype=np.int32).astype(np.int64)
    if not keep_extreme and len(seen.rows):
        node_ids = np.delete(node_ids, seen.rows)
    return node_ids, dropped, unused, seen


def check_features_finished(features: Path, sidecar: dict | None, records: int) -> None:
    """Refuse a features file that extract-features has not finished writing: its
    ``<file>.parts`` folder still exists, or its sidecar counts other records (a run killed
    after writing the file but before its sidecar), so the recorded network may be wrong."""
    parts = Path(str(features) + ".parts")
    if parts.is_dir():
        raise DataError(
            f"{features} is still being written by extract-features or its run was interrupted ({parts} exists); "
            "run the same extract-features command again to finish it, then build the graph."
        )
    expected = (sidecar or {}).get("num_images")
    if isinstance(expected, int) and expected != records:
        raise DataError(
            f"{features} has {records} records but its sidecar {features}.json describes {expected} images; "
            "the two do not belong together. Run extract-features again, or delete the sidecar if the file is right."
        )


