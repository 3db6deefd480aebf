"""graphrec.fs: atomic writes, the directory swap, the lock, checksums and OS-error sentences."""

from __future__ import annotations

import errno
import hashlib
import json
import os

import numpy as np
import pytest

from graphrec import fs
from graphrec.errors import UsageError


def test_atomic_writes_replace_the_file_and_leave_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    fs.write_json_atomic(target, {"path": tmp_path, "n": np.int64(3)})
    assert json.loads(target.read_text()) == {"path": str(tmp_path), "n": 3}
    fs.write_text_atomic(tmp_path / "a.txt", "été\n")
    fs.write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "été\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "out.json"]


def test_atomic_write_keeps_the_suffix_for_writers_that_look_at_it(tmp_path):
    fs.atomic_write(tmp_path / "m.npy", lambda tmp: np.save(tmp, np.arange(3)))
    assert np.load(tmp_path / "m.npy").tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["m.npy"]


def test_a_failed_atomic_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        fs.atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_swap_into_place_replaces_a_directory(tmp_path):
    new, out = tmp_path / "new", tmp_path / "out"
    new.mkdir()
    (new / "x").write_text("new")
    out.mkdir()
    (out / "x").write_text("old")
    fs.swap_into_place(new, out)
    assert (out / "x").read_text() == "new" and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_lock_is_held_until_closed(tmp_path):
    lock = tmp_path / "lock"
    assert fs.lock_is_free(lock) is None
    fd = fs.hold_lock(lock)
    try:
        assert fs.lock_is_free(lock) is False
    finally:
        os.close(fd)
    assert fs.lock_is_free(lock) is True


def test_sha256_file(tmp_path):
    data = os.urandom(3 << 20)
    (tmp_path / "f").write_bytes(data)
    assert fs.sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_progress_bar_is_disabled_when_quiet():
    assert fs.progress_bar(quiet=True).disable


@pytest.mark.parametrize("code, words", [(errno.EACCES, "permission denied"), (errno.EISDIR, "is a directory"),
                                          (errno.ENOTDIR, "regular file"), (errno.ENOSPC, "disk is full")])
def test_os_errors_become_one_sentence_naming_the_path(code, words):
    message = fs.os_error_message(OSError(code, os.strerror(code), "/some/where"))
    assert message.startswith("cannot use /some/where: ") and words in message and "\n" not in message


def test_user_path_turns_os_errors_into_usage_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="cannot use .*file/out"):
        with fs.user_path(blocker / "out") as path:
            path.mkdir(parents=True)
