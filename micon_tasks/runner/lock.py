"""One process at a time per run folder: an exclusive lock held for the life of a command.

Why: two ``micon`` processes on one ``--output_path`` would both do all the work, and the second one's
record writer would truncate a "torn tail" the first is still appending (fsync'd records were lost in a
stress test). The lock is an OS file lock (``filelock``), so the kernel releases it when its holder dies:
a killed run never blocks its own resume. The holder's PID and host sit beside it, so a refused process
can say who holds the folder. The ranks of one distributed job share it: rank 0 holds it, the others
run inside rank 0's lock (they meet at the job's own barriers).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from micon_tasks.errors import MiconError

__all__ = ["RunLock", "RunFolderBusyError", "LOCK_SUFFIX"]

LOCK_SUFFIX = ".micon.lock"  # beside the run folder (``.<name>.micon.lock``), so --overwrite can remove the folder


class RunFolderBusyError(MiconError):
    """Another process holds the run folder."""


class RunLock:
    """``with RunLock(folder):`` holds ``folder``'s lock or refuses at once, naming the holder."""

    def __init__(self, folder: str | os.PathLike[str], *, enabled: bool = True):
        self.folder = Path(folder)
        self.enabled = enabled
        self.path = self.folder.parent / f".{self.folder.name}{LOCK_SUFFIX}"
        self.holder_path = self.path.with_name(self.path.name + ".json")
        self._lock: FileLock | None = None

    def __enter__(self) -> RunLock:
        if not self.enabled:
            return self
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path), thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise RunFolderBusyError(
                f"{self.folder} is in use by another micon process ({self._holder()}); wait for it to finish, "
                "or work in another output folder"
            ) from None
        self._lock = lock
        holder = {"pid": os.getpid(), "host": socket.gethostname()}
        self.holder_path.write_text(json.dumps(holder) + "\n", "utf-8")
        return self

    def _holder(self) -> str:
        try:
            data = json.loads(self.holder_path.read_text("utf-8"))
            return f"pid {data.get('pid')} on {data.get('host')}"
        except (OSError, ValueError):
            return "holder unknown"

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._lock is not None:
            self.holder_path.unlink(missing_ok=True)
            self._lock.release()
            self._lock = None
