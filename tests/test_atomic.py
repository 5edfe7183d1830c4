"""The one atomic write (vae_core.atomic): all or nothing, ordinary permissions, and temp files of killed writes
cleaned while a live write's is left alone. Checkpoints' use of it, a writer killed mid-save included, is in
test_checkpoint.py."""
from __future__ import annotations

import errno
import os

import pytest

import vae_core.atomic as atomic


def test_a_write_replaces_the_target_whole_with_ordinary_permissions(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    assert atomic.write_atomic(path, b"new bytes") == path
    assert path.read_bytes() == b"new bytes" and [p.name for p in tmp_path.iterdir()] == ["a.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_failed_write_raises_as_it_came_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")

    def full(fd, data):
        os.write(fd, bytes(data[:2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "_write_all", full)
    with pytest.raises(OSError) as caught:
        atomic.write_atomic(path, b"new bytes")
    assert caught.value.errno == errno.ENOSPC
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_stale_temp_files_of_the_same_suffix_are_removed_and_others_kept(tmp_path):
    stale, other = tmp_path / ".m.pt.abcdefgh.tmp", tmp_path / ".e.npz.abcdefgh.tmp"
    stale.write_bytes(b"partial")
    other.write_bytes(b"partial")
    atomic.write_atomic(tmp_path / "n.pt", b"x")
    assert not stale.exists() and other.exists()
    assert atomic.remove_stale_temp_files(tmp_path, ".npz") == [other] and not other.exists()


def test_a_temp_file_removed_by_a_cleaner_before_it_was_locked_is_replaced(tmp_path, monkeypatch):
    real_flock, taken = atomic.fcntl.flock, []

    def flock_after_a_cleaner(fd, operation):
        if not taken:  # the cleaner wins the race between mkstemp and flock once
            taken.extend(tmp_path.glob(".m.pt.*.tmp"))
            taken[0].unlink()
        real_flock(fd, operation)

    monkeypatch.setattr(atomic.fcntl, "flock", flock_after_a_cleaner)
    path = atomic.write_atomic(tmp_path / "m.pt", b"weights")
    assert len(taken) == 1 and path.read_bytes() == b"weights"
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_writing_works_where_the_filesystem_has_no_locks(tmp_path, monkeypatch):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(atomic.fcntl, "flock", no_locks)
    path = atomic.write_atomic(tmp_path / "m.pt", b"weights")
    assert path.read_bytes() == b"weights" and [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    stale = tmp_path / ".m.pt.abcdefgh.tmp"
    stale.write_bytes(b"partial")
    assert atomic.remove_stale_temp_files(tmp_path, ".pt") == [] and stale.exists()  # unprovable as stale, so kept
