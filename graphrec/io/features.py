"""McAuley's binary image-feature files (``image_features_*.b``).

A file is a plain sequence of records, each ``10`` ASCII bytes of ASIN followed by
``dim`` little-endian float32 values (``dim`` = 4096 for AlexNet fc7). There is no
header, so the dimension must be known (``--feature-dim``).

How bad input is handled (documented in the README):

* file size not a multiple of the record size -> :class:`DataError` before any
  record is read, naming the byte offset of the incomplete record: the file is
  truncated or ``dim`` is wrong, and guessing would silently misalign every row;
* an ASIN that is not printable ASCII (NUL or space padding is allowed before and after
  it, not inside) -> the record is dropped and counted as ``bad_asin`` (its byte offset is
  in the first few warnings);
* NaN or infinite values -> the record is dropped and counted as ``non_finite``
  (its ASIN is in the first few warnings).

Reading is streamed: at most ``chunk_records`` raw records (about 4 MiB by default)
are held in memory, and the SHA-256 of the bytes read is computed on the way
(``reader.sha256`` once the file has been read to the end). The checksum is computed
by a background thread reading the same file in step (hashlib releases the GIL), so it
costs a second core rather than throughput.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from graphrec.errors import DataError

__all__ = [
    "ASIN_BYTES",
    "DEFAULT_DIM",
    "FeatureChunk",
    "BinaryFeatureReader",
    "BinaryFeatureWriter",
    "guess_dim",
    "read_features",
    "record_dtype",
]

ASIN_BYTES = 10
DEFAULT_DIM = 4096
MAX_WARNINGS = 5
CHUNK_BYTES = 4 * 1024 * 1024  # default size of one raw chunk
_COMMON_DIMS = (4096, 2048, 1024, 512, 256, 128, 64, 32, 16, 8, 4, 3, 2, 1)


def record_dtype(dim: int) -> np.dtype:
    """The numpy dtype of one record: ASIN bytes then ``dim`` float32 (little-endian)."""
    return np.dtype([("asin", f"S{ASIN_BYTES}"), ("x", "<f4", (dim,))])


@dataclass
class FeatureChunk:
    """Consecutive valid records: ``asins[i]`` owns row ``values[i]``."""

    asins: list[str]
    values: np.ndarray  # float32, shape (len(asins), dim)
    offsets: np.ndarray  # byte offset of each record in the file


@dataclass
class BinaryFeatureReader:
    """Iterate over a ``.b`` file chunk by chunk.

    >>> reader = BinaryFeatureReader("image_features_Men.b", dim=4096)
    >>> for chunk in reader:
    ...     handle(chunk.asins, chunk.values)
    >>> reader.dropped            # Counter({'non_finite': 2})
    """

    path: str | os.PathLike
    dim: int = DEFAULT_DIM
    chunk_records: int | None = None  # None: about CHUNK_BYTES per chunk
    dropped: Counter = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)
    copy: bool = True  # False: ``values`` may be a view that the next chunk overwrites
    checksum: bool = True

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.dim <= 0:
            raise DataError(f"{self.path}: feature dimension must be positive, got {self.dim}")
        self.dtype = record_dtype(self.dim)
        if not self.path.is_file():
            raise DataError(f"features file {self.path} not found; check the path given with --features.")
        self.size = self.path.stat().st_size
        record = self.dtype.itemsize
        if self.size % record:
            whole = self.size // record
            guess = guess_dim(self.path)
            hint = f"its records look {guess}-dimensional: pass --feature-dim {guess}" if guess else "set --feature-dim"
            raise DataError(
                f"{self.path}: size {self.size} bytes is not a multiple of the record size "
                f"{record} (10-byte ASIN + {self.dim} float32); the record at byte offset "
                f"{whole * record} is incomplete. The file is truncated, or its dimension is "
                f"not {self.dim} ({hint})."
            )
        self.num_records = self.size // record
        if self.chunk_records is None:
            self.chunk_records = max(1, CHUNK_BYTES // record)
        self.sha256: str | None = None

    def __len__(self) -> int:
        return self.num_records

    def _note(self, reason: str, message: str) -> None:
        self.dropped[reason] += 1
        if len(self.messages) < MAX_WARNINGS:
            self.messages.append(message)
            warnings.warn(message, stacklevel=3)

    def __iter__(self) -> Iterator[FeatureChunk]:
        record = self.dtype.itemsize
        buffer = np.empty(self.chunk_records, dtype=self.dtype)
        raw = buffer.view(np.uint8)
        start = 0
        self.dropped.clear()  # counts are per pass
        self.messages.clear()
        hasher = _BackgroundDigest(self.path) if self.checksum else None
        finished = False
        try:
            yield from self._chunks(buffer, raw, record, start)
            finished = True
        finally:
            if hasher is not None:
                if finished:
                    self.sha256 = hasher.result()
                else:
                    hasher.cancel()

    def _chunks(self, buffer: np.ndarray, raw: np.ndarray, record: int, start: int) -> Iterator[FeatureChunk]:
        with open(self.path, "rb", buffering=0) as handle:
            while True:
                got = handle.readinto(memoryview(raw))
                if not got:
                    break
                while got % record:  # a short read from a pipe or network filesystem
                    more = handle.readinto(memoryview(raw)[got:])
                    if not more:
                        raise DataError(f"{self.path}: file shrank while being read at byte {start + got}")
                    got += more
                n = got // record
                block = buffer[:n]
                offsets = start + record * np.arange(n, dtype=np.int64)
                keep = np.ones(n, dtype=bool)
                asin_bytes = block["asin"]
                # Printable ASCII only (NUL or space padding allowed), and not blank.
                codes = raw[: n * record].reshape(n, record)[:, :ASIN_BYTES]
                pad = (codes == 0) | (codes == 0x20)
                printable = (codes > 0x20) & (codes < 0x7F)
                bad_asin = ~(printable | pad).all(axis=1) | pad.all(axis=1)
                # padding only around the ASIN, never inside it ("AB CD" or "AB\0CD" is no ASIN)
                first = printable.argmax(axis=1)
                last = ASIN_BYTES - 1 - printable[:, ::-1].argmax(axis=1)
                bad_asin |= (last - first + 1) != printable.sum(axis=1)
                for i in np.flatnonzero(bad_asin):
                    keep[i] = False
                    self._note("bad_asin", f"{self.path}: record at byte offset {offsets[i]} has a non-ASCII ASIN {bytes(asin_bytes[i])!r}; dropped")
                finite = np.isfinite(block["x"]).all(axis=1)
                for i in np.flatnonzero(~finite & keep):
                    keep[i] = False
                    name = asin_bytes[i].decode("ascii").strip()
                    self._note("non_finite", f"{self.path}: ASIN {name} (byte offset {offsets[i]}) has NaN or infinite values; dropped")
                if keep.all():
                    asins = [a.decode("ascii").strip("\0 ") for a in asin_bytes]
                    values = block["x"].copy() if self.copy else block["x"]
                else:
                    asins = [a.decode("ascii").strip("\0 ") for a in asin_bytes[keep]]
                    values = block["x"][keep]
                yield FeatureChunk(asins=asins, values=values, offsets=offsets[keep])
                start += got


class _BackgroundDigest:
    """SHA-256 of a file computed by a daemon thread; :meth:`cancel` stops it early."""

    def __init__(self, path: Path, block: int = 1 << 20) -> None:
        self._stop = threading.Event()
        self._digest = hashlib.sha256()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(path, block), daemon=True, name="sha256")
        self._thread.start()

    def _run(self, path: Path, block: int) -> None:
        try:
            buffer = bytearray(block)
            view = memoryview(buffer)
            with open(path, "rb", buffering=0) as handle:
                while not self._stop.is_set():
                    got = handle.readinto(buffer)
                    if not got:
                        break
                    self._digest.update(view[:got])
        except BaseException as error:  # reported by result()
            self._error = error

    def result(self) -> str | None:
        self._thread.join()
        if self._error is not None or self._stop.is_set():
            return None
        return self._digest.hexdigest()

    def cancel(self) -> None:
        self._stop.set()
        self._thread.join()


def guess_dim(path: str | os.PathLike, candidates: Iterable[int] = _COMMON_DIMS) -> int | None:
    """The first candidate dimension under which ``path`` splits into whole records whose
    first two ASINs are printable ASCII, or None (used to suggest ``--feature-dim``)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        for dim in candidates:
            record = ASIN_BYTES + 4 * dim
            if size == 0 or size % record:
                continue
            heads = []
            for offset in (0, record) if size >= 2 * record else (0,):
                handle.seek(offset)
                heads.append(handle.read(ASIN_BYTES))
            if all(head.rstrip(b"\0 ") and all(0x20 < c < 0x7F for c in head.rstrip(b"\0 ")) for head in heads):
                return dim
    return None


def read_features(path: str | os.PathLike, dim: int = DEFAULT_DIM) -> tuple[list[str], np.ndarray]:
    """Read a whole (small) ``.b`` file into memory: ``(asins, float32 array)``."""
    asins: list[str] = []
    blocks: list[np.ndarray] = []
    for chunk in BinaryFeatureReader(path, dim=dim):
        asins.extend(chunk.asins)
        blocks.append(chunk.values)
    values = np.concatenate(blocks) if blocks else np.empty((0, dim), dtype=np.float32)
    return asins, values


class BinaryFeatureWriter:
    """Append records to a ``.b`` file in McAuley's format.

    Use as a context manager; ``write`` may be called with any number of rows.
    """

    def __init__(self, path: str | os.PathLike, dim: int = DEFAULT_DIM, append: bool = False) -> None:
        self.path = Path(path)
        self.dim = dim
        self.dtype = record_dtype(dim)
        self._handle = open(self.path, "ab" if append else "wb")

    def write(self, asins: Iterable[str], values: np.ndarray) -> None:
        asins = list(asins)
        values = np.asarray(values, dtype="<f4")
        if values.shape != (len(asins), self.dim):
            raise ValueError(f"expected values of shape ({len(asins)}, {self.dim}), got {values.shape}")
        block = np.empty(len(asins), dtype=self.dtype)
        encoded = [asin.encode("ascii") for asin in asins]
        for asin, raw in zip(asins, encoded):
            if not 0 < len(raw) <= ASIN_BYTES:
                raise ValueError(f"ASIN {asin!r} does not fit in {ASIN_BYTES} ASCII bytes")
        block["asin"] = [raw.ljust(ASIN_BYTES) for raw in encoded]
        block["x"] = values
        self._handle.write(block.tobytes())

    def flush(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            self._handle.close()

    def __enter__(self) -> "BinaryFeatureWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
