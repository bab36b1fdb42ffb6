"""Keeping freed memory: reused without page faults, in-process runs only, and the opt-out."""

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
from pipelines.options import pipeline_options, prepare_process
from transforms import worker
mode, size = sys.argv[1], int(sys.argv[2])
if mode == "hold":
    assert worker.hold_freed_memory()
elif mode.startswith("prepare"):
    prepare_process(pipeline_options(sys.argv[3:]))
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
buffers = [b"x" * size for _ in range(2)]  # warm up: the heap grows once
del buffers
before = faults()
for _ in range(10):
    buffer = b"x" * size  # written through: every page it gets is touched
    del buffer
print(faults() - before)
"""


def _page_faults(mode: str, *beam_args: str, **env: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM, mode, str(BUFFER), *beam_args],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_freed_memory_is_kept_for_in_process_runs_only():
    # glibc's default: each 64 MB buffer is a fresh mmap, faulted in again (page by page, or
    # per huge page where transparent huge pages are always on)
    defaults = _page_faults("defaults")
    assert defaults >= 10 * PAGES // 512
    assert _page_faults("hold") < defaults // 10
    # the default runner runs in-process: the launcher is the worker
    assert _page_faults("prepare") < defaults // 10
    assert _page_faults("prepare", INSTRUCTMIX_MALLOC_DEFAULTS="1") > defaults // 2
    separate_workers = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    assert _page_faults("prepare", *separate_workers) > defaults // 2
    assert _page_faults("prepare", "--runner=PortableRunner") > defaults // 2
