"""``<run>/.lock``: at most one process trains in a run folder at a time.

Light to import (no torch): the run registry asks whether a run's lock is held.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from rl_lightning.errors import ConfigError

try:
    import fcntl
except ImportError:  # not POSIX: the lock file is written, but nothing is locked
    fcntl = None  # type: ignore[assignment]

FILENAME = ".lock"
_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)


class RunLock:
    """An advisory lock on a run folder, held while a process trains in it.

    ``<run>/.lock`` is locked with ``flock`` and records the holder's pid, host and start
    time. The operating system releases the lock when its process dies, so a lock file left
    by a dead process is taken over by the next process; :meth:`release` removes the file.

    Args:
        run_dir: the run folder.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / FILENAME
        self._fd: int | None = None

    def acquire(self, attempts: int = 20) -> RunLock:
        """Take the lock, or raise ``ConfigError`` naming the run and the process holding it.

        A few short retries let a brief check by ``runs list``/``runs clean`` pass."""
        for _ in range(attempts):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd, exclusive=True):
                os.close(fd)
                time.sleep(0.05)
                continue
            if not _same_file(fd, self.path):  # its previous holder removed it after we opened it
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                         "since": time.time()}).encode())
            except OSError:
                os.close(fd)
                raise
            self._fd = fd
            return self
        holder = read_holder(self.path)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"])) if holder.get("since") else "?"
        raise ConfigError(
            f"run {self.run_dir} is in use by process {holder.get('pid', '?')} on host {holder.get('host', '?')} "
            f"(since {since}, lock file {self.path}): wait for that process to end or stop it, then resume; "
            "two processes training in one run folder would mix their checkpoints and metrics."
        )

    def release(self) -> None:
        """Remove the lock file and release the lock (nothing if not held)."""
        if self._fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None


def read_holder(path: str | os.PathLike) -> dict[str, Any]:
    """The pid, host and start time recorded in a lock file (empty if unreadable)."""
    try:
        data = json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def lock_holder(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The holder (``pid``, ``host``, ``since``) of the run's lock, or ``None`` if no process
    holds it (no lock file, or one left by a process that died)."""
    path = Path(run_dir) / FILENAME
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if _try_lock(fd, exclusive=False):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
    finally:
        os.close(fd)
    return {"pid": None, "host": None, "since": None, **read_holder(path)}


def _try_lock(fd: int, exclusive: bool) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        return True
    except OSError as err:
        if err.errno in _BUSY:
            return False
        raise


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True
