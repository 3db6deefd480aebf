"""Text files as people have them: plain or compressed (gzip, bzip2, xz with the standard
library; zstd when the ``zstandard`` package is installed), recognised by their first
bytes rather than their name, with a UTF-8 byte-order mark skipped; and refused without
blocking when the path is not a regular file (a FIFO, a device, a directory).

:class:`Lines` streams binary lines and knows how far into the file on disk it is (for
progress bars); :func:`open_text_lines` gives ``(line number, text)``;
:func:`read_text` reads a small text file whole.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

from graphrec.errors import DataError

__all__ = ["BOM", "READ_ERRORS", "Lines", "detect_compression", "open_regular", "open_text_lines", "read_text"]

BOM = b"\xef\xbb\xbf"
_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"PK\x03\x04", "zip"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
)


def _read_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error, lzma.LZMAError)
    try:
        import zstandard
    except ImportError:
        return errors
    return (*errors, zstandard.ZstdError)


#: What a damaged or truncated compressed stream raises while it is read.
READ_ERRORS = _read_errors()


def open_regular(path: str | os.PathLike, what: str = "file") -> BinaryIO:
    """``path`` opened for binary reading, only if it is a regular file: a FIFO, socket or
    device is refused at once (opened with ``O_NONBLOCK``, so a FIFO with no writer never
    blocks), with a :class:`DataError` naming the path."""
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise DataError(f"{what} {path} not found; check the path.") from None
    except IsADirectoryError:
        raise DataError(f"{what} {path} is a directory, not a file; name a file.") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "not a regular file"
            raise DataError(f"{what} {path} is {kind}; graphrec reads only regular files. Name a regular file.")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def detect_compression(head: bytes) -> str:
    """``"gzip"``, ``"bzip2"``, ``"xz"``, ``"zstd"``, ``"zip"``, ``"7z"`` or ``"plain"`` from a
    file's first bytes."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "plain"


def _decompressed(raw: BinaryIO, kind: str, path: Path) -> BinaryIO:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw)
    if kind == "bzip2":
        return bz2.BZ2File(raw)
    if kind == "xz":
        return lzma.LZMAFile(raw)
    if kind == "zstd":
        try:
            import zstandard
        except ImportError:
            raise DataError(
                f"{path} is zstd-compressed and the zstandard package is not installed; "
                f"pip install zstandard, or decompress it first (zstd -d {path.name})."
            ) from None
        return zstandard.ZstdDecompressor().stream_reader(raw, closefd=False)
    if kind in ("zip", "7z"):
        raise DataError(f"{path} is a {kind} archive, not a text file; extract the file inside it first.")
    return raw


class Lines:
    """Binary lines of a plain or compressed file (see the module docstring), BOM removed,
    with the bytes of the file on disk read so far. ``kind`` names the compression."""

    def __init__(self, path: str | os.PathLike, what: str = "file") -> None:
        self.path = Path(path)
        self.raw = open_regular(self.path, what)
        try:
            self.kind = detect_compression(self.raw.read(8))
            self.raw.seek(0)
            self.stream = io.BufferedReader(_decompressed(self.raw, self.kind, self.path), buffer_size=1 << 20)
        except BaseException:
            self.raw.close()
            raise

    @property
    def described(self) -> str:
        """``"gzip-compressed file"``, ``"plain text file"``...: for error messages."""
        return "plain text file" if self.kind == "plain" else f"{self.kind}-compressed file"

    def position(self) -> int:
        """Bytes of the file on disk consumed so far (for progress bars)."""
        try:
            return self.raw.tell()
        except (OSError, ValueError):
            return 0

    def __iter__(self) -> Iterator[bytes]:
        lines = iter(self.stream)
        first = next(lines, None)
        if first is None:
            return
        yield first[len(BOM):] if first.startswith(BOM) else first
        yield from lines

    def read(self) -> bytes:
        """The rest of the (decompressed) file, a leading BOM removed."""
        data = self.stream.read()
        return data[len(BOM):] if data.startswith(BOM) else data

    def close(self) -> None:
        self.stream.close()
        self.raw.close()


def open_text_lines(path: str | os.PathLike, what: str = "file") -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` for each line of a plain or compressed UTF-8 text file (a BOM
    skipped, undecodable bytes replaced)."""
    lines = Lines(path, what)
    try:
        for number, raw in enumerate(lines, start=1):
            yield number, raw.decode("utf-8", errors="replace")
    finally:
        lines.close()


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """A whole small text file (UTF-8, plain or compressed, BOM skipped, regular files only)."""
    lines = Lines(path, what)
    try:
        return lines.read().decode("utf-8", errors="replace")
    finally:
        lines.close()
