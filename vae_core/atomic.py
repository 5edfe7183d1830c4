"""Writing a file atomically: a reader sees the old file or the new one, never part of either, and a write that fails
or is killed leaves the target as it was. Every file the app writes for keeps (checkpoints, UMAP embeddings, the
live plane's static cache) goes through `write_atomic`.

The bytes go to a temp file beside the target (a rename within one folder is atomic), named `.NAME.XXXXXXXX.tmp`,
which is fsynced and then renamed over the target. The temp file is locked (fcntl.flock) for as long as its writer
lives, and the kernel drops the lock when the process dies, even by SIGKILL: that is how `remove_stale_temp_files`
tells the leftover of a killed write from a write under way. (filelock does not fit: it locks a lock file of its own
beside the path, so a killed write would leave two files, and it cannot hold the lock on the very file a cleaner
removes while holding it.)
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows has no advisory locks: there, temp files left by killed writes are not cleaned
    fcntl = None

TEMP_SUFFIX = ".tmp"


def temp_glob(suffix: str) -> str:
    """What the temp files of targets ending in `suffix` look like: .NAME{suffix}.XXXXXXXX.tmp"""
    return f".*{suffix}.*{TEMP_SUFFIX}"


def write_atomic(path: str | os.PathLike, data: bytes | memoryview) -> Path:
    """Write `data` to `path` atomically, with the permissions of any new file. On failure the OSError is raised as
    it came, the target is untouched and no temp file is left. Temp files that killed writes of the same kind of
    file (same suffix) left in the folder are removed first."""
    path = Path(path)
    remove_stale_temp_files(path.parent, path.suffix)
    tmp = None
    try:
        fd, tmp = _locked_temp_file(path)
        with os.fdopen(fd, "wb") as fh:  # closing releases the lock, so the rename happens inside this block
            _write_all(fh.fileno(), memoryview(data))
            os.fsync(fh.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; the target should read like any file
            os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _write_all(fd: int, data: memoryview) -> None:
    # os.write rather than a buffered file: a full disk raises ENOSPC here, as it is.
    while data:
        data = data[os.write(fd, data):]


def _locked_temp_file(path: Path) -> tuple[int, str]:
    """A new temp file beside `path`, exclusively locked for as long as the writer lives."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        if fcntl is None:
            return fd, tmp
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a filesystem without locks: cleaners cannot lock there either, so they never take this file
            return fd, tmp
        if os.fstat(fd).st_nlink:
            return fd, tmp
        os.close(fd)  # a cleaner removed it between mkstemp and flock: take a fresh one


def remove_stale_temp_files(folder: str | os.PathLike, suffix: str) -> list[Path]:
    """Delete the temp files that killed writes of `*{suffix}` files left in `folder` (those no live writer holds
    locked); returns them."""
    removed: list[Path] = []
    if fcntl is None:
        return removed
    for tmp in Path(folder).glob(temp_glob(suffix)):
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            tmp.unlink()  # while holding the lock, so a writer that just created it sees st_nlink == 0 and retries
            removed.append(tmp)
        except OSError:  # locked by a live write, or a folder we may not write to
            continue
        finally:
            os.close(fd)
    return removed
