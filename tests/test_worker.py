"""Worker process settings: freed memory is reused without page faults, and the opt-out works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUFFER = 64 << 20  # above glibc's largest mmap threshold: always its own mmap by default
PAGES = BUFFER // 4096

_PROGRAM = """
import resource, sys
from transforms import worker
if sys.argv[1] == "hold":
    assert worker.hold_freed_memory()
elif sys.argv[1] == "tune":
    worker.tune_worker_process()
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
buffers = [b"x" * %(size)d for _ in range(2)]  # warm up: the heap grows once
del buffers
before = faults()
for _ in range(10):
    buffer = b"x" * %(size)d  # written through: every page it gets is touched
    del buffer
print(faults() - before)
""" % {"size": BUFFER}


def _page_faults(mode: str, **env: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM, mode],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_held_memory_is_reused_without_page_faults():
    # glibc's default: each 64 MB buffer is a fresh mmap, faulted in page by page
    assert _page_faults("defaults") > 9 * PAGES
    assert _page_faults("hold") < PAGES // 10
    assert _page_faults("tune") < PAGES // 10
    assert _page_faults("tune", INSTRUCTMIX_MALLOC_DEFAULTS="1") > 9 * PAGES
