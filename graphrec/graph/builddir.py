"""Where a build writes: a private temporary directory beside GRAPH_DIR, locked while the
build runs, renamed into place when it is complete; and the clean-up of what interrupted
builds left behind (``.<name>.building-*`` and ``.<name>.old-*``)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from graphrec.errors import UsageError
from graphrec.fs import default_mode, hold_lock, lock_is_free, swap_into_place

__all__ = ["BUILD_LOCK", "STALE_GRACE_SECONDS", "clean_stale_builds", "prepare_target", "staging"]

BUILD_LOCK = ".building.lock"
STALE_GRACE_SECONDS = 600.0


def prepare_target(out: Path, force: bool) -> None:
    """Refuse to replace ``out`` unless ``force``, and never replace what is not a graph."""
    if out.exists() or out.is_symlink():
        if not force:
            raise UsageError(f"{out} already exists; pass --force to replace it, or choose another -o directory.")
        if not out.is_dir() or (any(out.iterdir()) and not (out / "manifest.json").is_file()):
            raise UsageError(f"{out} exists and is not a graph directory; refusing to replace it even with --force. Choose another -o directory.")


@contextmanager
def staging(out: Path, force: bool) -> Iterator[Path]:
    """A temporary directory ``.<name>.building-*`` beside ``out``, holding the build lock.

    When the block ends normally it is renamed to ``out`` (an old graph replaced only with
    ``force``); when it raises (or is interrupted) it is removed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        os.chmod(tmp, default_mode(directory=True))  # mkdtemp makes it private; the graph is an ordinary directory (umask)
        lock = hold_lock(tmp / BUILD_LOCK)  # tells a later build that this directory is in use
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        yield tmp
        prepare_target(out, force)
        swap_into_place(tmp, out)
        (out / BUILD_LOCK).unlink(missing_ok=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(lock)


def _remove_dead_builds(parent: Path, prefix: str, names: list[str], now: float, grace_seconds: float) -> list[Path]:
    """``.<name>.building-*`` folders whose lock is free (their build died) or, lacking a
    lock file, older than ``grace_seconds``: removed, and returned."""
    removed = []
    for name in sorted(names):
        candidate = parent / name
        if not name[len(prefix):].startswith("building-"):
            continue
        free = lock_is_free(candidate / BUILD_LOCK)
        try:
            old_enough = now - candidate.stat().st_mtime >= grace_seconds
        except FileNotFoundError:
            continue
        if free or (free is None and old_enough):
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


def clean_stale_builds(out: str | Path, grace_seconds: float = STALE_GRACE_SECONDS) -> list[Path]:
    """Remove what interrupted builds of ``out`` left beside it; returns the removed paths.

    * ``.<name>.building-*``: removed when its lock is free (its build died) or, lacking a
      lock file, when it is older than ``grace_seconds``; a build still running keeps it.
    * ``.<name>.old-*`` (a previous graph moved aside by ``--force``): when ``out`` is
      missing because the build died between its two renames, the newest complete one
      is renamed back to ``out``; when ``out`` exists, older ones are removed.
    """
    out = Path(out)
    parent = out.parent
    if not parent.is_dir():
        return []
    now = time.time()
    prefix = f".{out.name}."
    with os.scandir(parent) as entries:
        names = [e.name for e in entries if e.name.startswith(prefix) and e.is_dir(follow_symlinks=False)]
    removed = _remove_dead_builds(parent, prefix, names, now, grace_seconds)
    olds = [parent / n for n in names if n[len(prefix):].startswith("old-") and (parent / n / "manifest.json").is_file()]
    if olds and not out.exists() and not out.is_symlink():
        newest = max(olds, key=lambda p: p.stat().st_mtime)
        os.rename(newest, out)
        olds.remove(newest)
    if out.is_dir() and (out / "manifest.json").is_file():
        for old in olds:
            try:
                if now - old.stat().st_ctime >= grace_seconds or grace_seconds <= 0:
                    shutil.rmtree(old, ignore_errors=True)
                    removed.append(old)
            except FileNotFoundError:
                continue
    return removed
