"""Filesystem helpers every command shares: atomic writes, swapping a finished directory
into place, the build lock, file checksums, progress bars, and the one sentence a user
reads when the operating system refuses a path.

Atomic writes go to a temporary name in the destination's folder (same filesystem) and
are renamed over the destination with :func:`os.replace`, so a reader sees the old file
or the new one, never half of one; the temporary file is removed when writing fails.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: a dead build is then only recognised by its age
    fcntl = None

from graphrec.errors import UsageError

__all__ = [
    "atomic_write",
    "write_text_atomic",
    "write_bytes_atomic",
    "write_json_atomic",
    "swap_into_place",
    "hold_lock",
    "lock_is_free",
    "sha256_file",
    "progress_bar",
    "os_error_message",
    "user_path",
    "process_umask",
    "default_mode",
]


def _temporary_name(path: Path) -> Path:
    """A fresh name beside ``path`` that keeps its suffix (``np.save`` and ``savefig``
    look at it): ``.<name>.<pid>-<random>.tmp<suffix>``."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{path.suffix}")


_umask_lock = threading.Lock()
_fallback_umask: list[int] = []  # read once by setting and restoring it, where /proc cannot tell


def process_umask() -> int:
    """The process umask. Linux reports it in ``/proc/self/status`` (read each call, so a
    later ``os.umask`` counts, and without changing it); elsewhere it is read once, under a
    lock, by setting and restoring it (the only portable way, racy against other threads
    creating files at that instant, hence done once)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:
        if not _fallback_umask:
            current = os.umask(0o022)
            os.umask(current)
            _fallback_umask.append(current)
        return _fallback_umask[0]


def default_mode(directory: bool = False) -> int:
    """The mode ``open()`` (0o666) or ``mkdir()`` (0o777) gives under the process umask: what
    a file made private by ``tempfile`` (0o600, 0o700) is set to before it becomes an output."""
    return (0o777 if directory else 0o666) & ~process_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, then rename it onto
    ``path`` with the mode an ordinary ``open()`` would give it (0o666 less the umask, e.g.
    0o644), whatever mode the writer created it with."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    tmp = _temporary_name(path)
    try:
        write(tmp)
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except OSError as error:
        _discard(tmp)
        if error.filename is not None and Path(error.filename) == tmp:  # name the user's path, not ours
            raise type(error)(error.errno, error.strerror, str(path)) from None
        raise
    except BaseException:
        _discard(tmp)
        raise
    return path


def _discard(tmp: Path) -> None:
    try:
        tmp.unlink(missing_ok=True)
    except OSError:  # e.g. a parent that is a regular file: there is nothing to remove
        pass


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def _json_default(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item"):  # numpy and torch scalars
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON (UTF-8, a final newline; paths and numpy scalars allowed) atomically."""
    return write_text_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False, default=_json_default) + "\n")


def swap_into_place(tmp: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Rename the finished directory ``tmp`` to ``out``. An existing ``out`` is first renamed
    aside to ``.<name>.old-*`` and removed only once ``tmp`` is in place, so a crash in
    between leaves the old directory beside ``out``, never nothing."""
    tmp, out = Path(tmp), Path(out)
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rmdir(old)
        os.rename(out, old)
    os.rename(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def hold_lock(path: str | os.PathLike) -> int:
    """Create ``path`` and hold an exclusive ``flock`` on it; returns the descriptor (close it
    to release). The kernel releases the lock when the process dies, even by SIGKILL, so
    :func:`lock_is_free` tells a directory left by a dead process from one still in use."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def lock_is_free(path: str | os.PathLike) -> bool | None:
    """True when nobody holds the lock file ``path``, False when a live process does (or it
    cannot be opened, e.g. another user's), None when it does not exist."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    except OSError:
        return False
    try:
        if fcntl is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True
    finally:
        os.close(fd)  # closing releases a lock we took


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def progress_bar(*columns, quiet: bool = False, transient: bool = True):
    """A ``rich.progress.Progress`` on stderr, disabled when ``quiet`` or stderr is not a
    terminal. ``columns`` default to description, bar, done/total and time remaining."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    columns = columns or (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, console=console, disable=quiet or not console.is_terminal, transient=transient)


_ADVICE = {
    errno.EACCES: "permission denied; fix its permissions or choose a path you may use",
    errno.EPERM: "operation not permitted; fix its permissions or choose a path you may use",
    errno.EROFS: "the filesystem is read-only; choose a location on a writable disk",
    errno.EEXIST: "something is already there, or a folder on the way is a regular file; choose another path",
    errno.ENOTDIR: "a folder on the way is a regular file; choose another path",
    errno.EISDIR: "it is a directory; name a file instead",
    errno.ENOSPC: "the disk is full; free some space or choose another disk",
    errno.EDQUOT: "the disk quota is exhausted; free some space or choose another disk",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter path",
    errno.ENOENT: "it (or a folder on the way) does not exist; check the path",
    errno.ELOOP: "it goes through a symbolic link loop; check the path",
}


def os_error_message(error: OSError, path: str | os.PathLike | None = None) -> str:
    """One sentence for an OS error on a user-named path: the path, what happened, what to do."""
    named = path if path is not None else error.filename
    advice = _ADVICE.get(error.errno, f"{error.strerror or type(error).__name__}; check the path and its permissions")
    if named is None:
        return f"{error.strerror or error}: {advice}."
    return f"cannot use {os.fspath(named)}: {advice}."


@contextmanager
def user_path(path: str | os.PathLike) -> Iterator[Path]:
    """Turn an :class:`OSError` raised while writing the user-named ``path`` into a
    :class:`UsageError` saying so in one sentence."""
    try:
        yield Path(path)
    except OSError as error:
        raise UsageError(os_error_message(error, error.filename or path)) from None
