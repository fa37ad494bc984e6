"""The run's state on disk that several parts share: the ``.ratchet/`` folder and the run lock
(one process per run).

The loop takes the lock; `ratchet try`, the review queue, the reports and the MCP server ask
who holds it. It lives here, below all of them, so that reading a run never imports the loop.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

STATE_DIR = ".ratchet"  # beside .git: the ledger, runs/<run>/{lock,logs,proposer}, worktrees/


class RunError(Exception):
    """The run cannot start or go on (one line for the user)."""


@contextmanager
def run_lock(state_dir: Path, run: str) -> Iterator[None]:
    """One process per run: a second ``ratchet run`` on the same run refuses instead of racing."""
    path = state_dir / "runs" / run / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise RunError(f"run {run!r} is already running (pid {owner}); wait for it or stop it first") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        handle.close()  # closing releases the lock; a killed process releases it too


def run_lock_holder(state_dir: Path, run: str) -> int | None:
    """The pid of the ``ratchet run`` holding the run now (-1 if unknown), or None when free.

    A shared, non-blocking probe: it never waits and never keeps the lock.
    """
    path = state_dir / "runs" / run / "lock"
    try:
        handle = path.open("r")
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


__all__ = ["RunError", "run_lock", "run_lock_holder"]
