"""One refresh at a time per STATE directory: ``STATE/LOCK``, with stale-lock handling.

The lock file records who holds it (owner, host, pid, start time). A second refresh refuses
with a message naming the holder, unless the lock is stale:

- same owner: a retry of the same scheduled job (Kubernetes restarts a failed attempt in a new
  pod within seconds, while the dead attempt's lock still looks fresh). The owner is
  ``$INSTRUCTMIX_LOCK_OWNER`` (the CronJob sets it to the Job's name), else host:pid;
- same host and the holder's pid is gone: a local run that was killed;
- older than ``stale_after`` seconds: a run that died elsewhere (default 24 h: longer than the
  nightly Job's deadline, so a live run is never taken over).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid

from pipelines import atomic

LOCK = "LOCK"
DEFAULT_STALE_AFTER = 24 * 3600


class LockedError(RuntimeError):
    """Another refresh holds the lock of this STATE directory."""


def default_owner() -> str:
    """$INSTRUCTMIX_LOCK_OWNER, else unique to this run (host, pid and a random part)."""
    return os.environ.get("INSTRUCTMIX_LOCK_OWNER") or (
        f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StateLock:
    """``with StateLock(state_dir):`` — held for the whole refresh, released on any exit."""

    def __init__(self, state: str, owner: str | None = None,
                 stale_after: float = DEFAULT_STALE_AFTER):
        self.path = state.rstrip("/") + "/" + LOCK
        self.owner = owner or default_owner()
        self.stale_after = stale_after
        self.took_over: dict | None = None
        self.token = uuid.uuid4().hex

    def _record(self) -> dict:
        return {"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                "started": time.time(), "token": self.token}

    def _stale_reason(self, holder: dict) -> str | None:
        if holder.get("owner") == self.owner:
            return "held by the same owner (a retried attempt)"
        if holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", 0))):
            return f"its process {holder.get('pid')} is gone"
        age = time.time() - float(holder.get("started", 0))
        if age > self.stale_after:
            return f"it is {age / 3600:.1f} h old (stale after {self.stale_after / 3600:.1f} h)"
        return None

    def __enter__(self) -> StateLock:  # noqa: PYI034
        record = json.dumps(self._record())
        if atomic.create_exclusive(self.path, record):
            return self
        text = atomic.read_text(self.path) or "{}"
        try:
            holder = json.loads(text)
        except json.JSONDecodeError:
            holder = {}  # a lock torn by a crash while being written: nobody holds it
        reason = "unreadable" if not holder else self._stale_reason(holder)
        if reason is None:
            since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(holder.get("started", 0)))
            raise LockedError(
                f"{self.path} is held by {holder.get('owner')} (host {holder.get('host')}, "
                f"pid {holder.get('pid')}, since {since}): another refresh is running on this "
                "state. If it died, remove the lock file."
            )
        self.took_over = dict(holder, reason=reason)
        atomic.write_text(self.path, record)
        return self

    def __exit__(self, *exc) -> None:
        text = atomic.read_text(self.path)
        if text and json.loads(text).get("token") == self.token:
            atomic.delete(self.path)
