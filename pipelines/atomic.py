"""Small files that must never be seen half-written: the state log, the LATEST pointer, locks.

Local paths are written to a temporary file and renamed over the target (``os.replace`` is
atomic on POSIX). On object stores (gs://, s3://) one object write is already atomic: readers
see the old object or the new one, never a mix.
"""

from __future__ import annotations

import os
import uuid

from apache_beam.io.filesystems import FileSystems


def is_local(path: str) -> bool:
    return "://" not in path


def read_text(path: str) -> str | None:
    """The file's text, or None if it does not exist."""
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as handle:
        return handle.read().decode("utf-8")


def write_text(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` in one step."""
    data = text.encode("utf-8")
    if not is_local(path):
        with FileSystems.create(path) as handle:
            handle.write(data)
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temp = f"{path}.tmp-{uuid.uuid4().hex}"
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def create_exclusive(path: str, text: str) -> bool:
    """Create ``path`` only if it does not exist; False if it already did.

    Local files use O_EXCL (exact). Object stores have no exclusive create through Beam's
    FileSystems, so there it is check-then-write: two starts within the same second can both
    win; the scheduler's ``concurrencyPolicy: Forbid`` is the guard there (deploy/README.md).
    """
    if is_local(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
        return True
    if FileSystems.exists(path):
        return False
    write_text(path, text)
    return True


def delete(path: str) -> None:
    if FileSystems.exists(path):
        FileSystems.delete([path])
