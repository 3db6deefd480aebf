"""The features pass of a build: rows of the kept products streamed from a McAuley ``.b``
file into ``features.npy`` (first record of an ASIN wins, node order = order in the file),
and the features file's JSON sidecar (``<features>.json``, written by extract-features).

``features.npy`` is appended through a plain file handle, not a memory map, so resident
memory does not grow with the matrix (see :class:`NpyRowWriter`).
"""

from __future__ import annotations

import json
import struct
from array import array
from pathlib import Path

import numpy as np
import torch

from graphrec.errors import DataError
from graphrec.graph.catalogue import KEPT

__all__ = ["DTYPES", "NpyRowWriter", "check_features_finished", "read_sidecar", "write_features"]

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
        self.handle = open(path, "wb")
        self.handle.write(self._header(capacity))

    def _header(self, rows: int, length: int | None = None) -> bytes:
        body = repr({"descr": self.dtype.str, "fortran_order": False, "shape": (rows, self.dim)}).encode("latin1")
        total = length or -(-(10 + len(body) + 1) // 64) * 64
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", total - 10) + body + b" " * (total - 11 - len(body)) + b"\n"

    def write(self, rows: np.ndarray) -> None:
        self.handle.write(np.ascontiguousarray(rows, dtype=self.dtype).data)
        self.rows += len(rows)

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


def _convert(reader, chunk, take: list[int], dtype: np.dtype) -> np.ndarray:
    """The kept records of ``chunk`` in the stored dtype; a DataError when float16 overflows."""
    values = chunk.values if len(take) == len(chunk.asins) else chunk.values[take]
    # torch converts float32 -> float16 several times faster than numpy (same rounding)
    aligned = np.array(values, dtype=np.float32, order="C")  # records are 2-byte aligned only
    rows = torch.from_numpy(aligned).to(_TORCH_DTYPES[dtype.name]).numpy()
    if dtype == np.float16 and not np.isfinite(rows).all():
        bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))[0]
        raise DataError(
            f"{reader.path}: ASIN {chunk.asins[take[bad]]} has values beyond the float16 range (±65504); "
            "rebuild with --dtype float32."
        )
    return rows


def write_features(reader, catalogue, path: Path, dtype: np.dtype, strict: bool, progress):
    """Stream ``reader`` (a BinaryFeatureReader) into ``path`` keeping rows of kept products.

    Returns ``(node_ids, dropped counts, unused records)``: ``node_ids[i]`` is the
    interned id of node ``i``.
    """
    has_row = bytearray(len(catalogue.status))
    node_ids = array("i")
    duplicates = unused = 0
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
                writer.write(_convert(reader, chunk, take, dtype))
            if len(chunk.offsets):
                progress.update(task, completed=int(chunk.offsets[-1]) // reader.dtype.itemsize + 1)
        progress.update(task, completed=reader.num_records)
    finally:
        torch.set_num_threads(threads)
        writer.close()
    dropped = dict(reader.dropped)
    dropped["duplicate_feature_asins"] = duplicates
    return np.frombuffer(node_ids, dtype=np.int32).astype(np.int64), dropped, unused


def read_sidecar(features: str | Path) -> dict | None:
    """The JSON sidecar of a features file (``<features>.json``), or None when absent."""
    path = Path(str(features) + ".json")
    if not path.is_file():
        return None
    try:
        sidecar = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not valid JSON ({error}); fix it or delete it (it only describes the extractor).") from None
    if not isinstance(sidecar, dict):
        raise DataError(f"{path} should hold a JSON object describing the extractor; fix it or delete it.")
    return sidecar


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


