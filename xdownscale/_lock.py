"""One writer at a time: a lock file created atomically, taken over when its holder is gone.

Used by the rollout stores (``<store>.lock``) and by a fit's training state
(``<state_dir>/.lock``): two processes writing one of them would interleave their days or
rounds and leave a result that is neither run's.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path


class WriterLock:
    """``path`` created with ``O_CREAT | O_EXCL`` on entry and removed on exit.

    A lock left by a process that is gone (same host, pid not running: ``kill -9``) is taken
    over, so a killed run can still be resumed. A live holder raises ``error`` with a message
    that names it and ``what`` is being written.
    """

    def __init__(self, path: str | os.PathLike, what: str, error: type[Exception]) -> None:
        self.path = Path(path)
        self.what = what
        self.error = error

    def __enter__(self) -> WriterLock:
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "since": time.strftime("%Y-%m-%d %H:%M:%S")})
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._stale():
                    continue
                raise
            with os.fdopen(fd, "w") as fh:
                fh.write(info)
            return self
        raise self.error(f"could not take the lock {self.path}")

    def _stale(self) -> bool:
        try:
            owner = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            owner = {}
        pid, host = owner.get("pid"), owner.get("host")
        alive = True
        if host == socket.gethostname() and isinstance(pid, int):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                alive = False
            except PermissionError:
                alive = True
        if not alive:
            with_pid = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
            try:  # rename first: of two takers, only one wins the stale lock
                os.replace(self.path, with_pid)
                with_pid.unlink()
            except FileNotFoundError:
                pass
            return True
        raise self.error(
            f"{self.what} is being written by another process (pid {pid} on {host} since "
            f"{owner.get('since')}); wait for it to finish or use another one. If that "
            f"process is gone, delete {self.path}."
        )

    def __exit__(self, *exc) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
