"""Process-wide settings of a worker: glibc (freed memory kept in-process, returned elsewhere),
data plane bounds, finished bundles' output buffers released."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import MULTI_PROCESS
from transforms import worker

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


def _python(program: str, *args: str, **env: str) -> str:
    """What program prints, run in a fresh interpreter (glibc settings are process-wide)."""
    out = subprocess.run(
        [sys.executable, "-c", program, *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )
    return out.stdout.strip()


def _page_faults(mode: str, *beam_args: str, **env: str) -> int:
    return int(_python(_PROGRAM, mode, str(BUFFER), *beam_args, **env))


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


_RSS_MB = """def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS:"))
"""

_TRIM_PROGRAM = """
import sys, time
from transforms import worker
if sys.argv[1] == "trim":
    assert worker.return_freed_memory(0.05)
{rss_mb}
gaps, live = [], []
for _ in range(2000):
    gaps.append(b"x" * 100_000)  # under glibc's 128 KB mmap threshold: from the heap
    live.append(bytearray(600))  # a live object after each: the gap cannot merge with the top
before = rss_mb()
del gaps
time.sleep(0.5)
print(before - rss_mb())
""".replace("{rss_mb}", _RSS_MB)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_freed_gaps_in_the_heap_are_returned_to_the_kernel():
    # 2,000 freed 100 KB gaps between live objects: ~190 MB that glibc keeps resident
    assert int(_python(_TRIM_PROGRAM, "defaults")) < 50
    assert int(_python(_TRIM_PROGRAM, "trim")) > 150


_ARENA_TOP_PROGRAM = """
import sys, threading
from transforms import worker
if sys.argv[1] == "trim":
    assert worker.return_freed_memory(3600)  # the trimming thread's rounds: not in this test
{rss_mb}
large = b"x" * (30 << 20)  # glibc's own mmap; freeing it lifts its thresholds (trim: 60 MB)
del large
def bundle():  # a thread of its own: its allocations come from a thread arena
    before = rss_mb()
    message = b"x" * (24 << 20)  # under the mmap threshold: from the arena's free end, touched
    del message  # back to the arena's free end
    print(rss_mb() - before)  # what the arena kept
thread = threading.Thread(target=bundle)
thread.start()
thread.join()
""".replace("{rss_mb}", _RSS_MB)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_a_threads_arena_returns_its_free_end_when_freed():
    # 24 MB freed at the end of a thread's arena: under the raised trim threshold glibc keeps
    # it resident until the next malloc_trim; with the threshold fixed at 16 MB it goes at once
    assert int(_python(_ARENA_TOP_PROGRAM, "defaults")) > 20
    assert int(_python(_ARENA_TOP_PROGRAM, "trim")) < 5


_SETUP_PROGRAM = """
import sys, threading
from transforms import worker
if sys.argv[1] == "hold":
    assert worker.hold_freed_memory()
worker.FrozenHeapDoFn().setup()
print(any(t.name == "instructmix-malloc-trim" for t in threading.enumerate()))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
@pytest.mark.parametrize(
    "mode, env, trims",
    [
        ("worker", {}, True),  # a worker of another process's runner (Flink, worker processes)
        ("hold", {}, False),  # the in-process runner's worker keeps freed memory instead
        ("worker", {"INSTRUCTMIX_MALLOC_DEFAULTS": "1"}, False),
    ],
)
def test_dofn_setup_starts_returning_memory_only_where_it_is_not_kept(mode, env, trims):
    assert _python(_SETUP_PROGRAM, mode, **env) == str(trims)


_BOUNDS_PROGRAM = """
import sys
import apache_beam as beam
from pipelines.options import pipeline_options
from transforms import worker

class MostQueued(beam.DoFn):  # pickled by value: defined in __main__
    # emits 300 outputs of 1 MB, then the most output bytes its worker's channels queued
    def __init__(self, bounded):
        self.bounded = bounded

    def setup(self):
        if self.bounded:
            worker.FrozenHeapDoFn().setup()  # as any dedup DoFn's first setup in a worker
        from apache_beam.runners.worker import data_plane
        self.most, enqueue = [0], data_plane._GrpcDataChannel._enqueue_to_send
        def enqueue_and_measure(channel, element):
            enqueue(channel, element)
            queued = channel._pending_send.byte_size() + channel._to_send.byte_size()
            self.most[0] = max(self.most[0], queued)
        data_plane._GrpcDataChannel._enqueue_to_send = enqueue_and_measure

    def process(self, n):
        yield from (b"x" * (1 << 20) for _ in range(n))
        yield self.most[0]

with beam.Pipeline(options=pipeline_options(sys.argv[2:])) as p:
    outputs = p | beam.Create([300]) | beam.ParDo(MostQueued(sys.argv[1] == "bounded"))
    most = outputs | beam.Reshuffle() | beam.Filter(lambda m: isinstance(m, int))  # via the runner
    most | beam.Map(lambda m: print(m >> 20, flush=True))
"""


@pytest.mark.parametrize("mode", ["bounded", "beam default"])
def test_a_separate_workers_data_plane_queues_are_bounded(mode):
    # the runner takes the worker's 300 MB more slowly than the worker makes them
    most_mb = int(_python(_BOUNDS_PROGRAM, mode, *MULTI_PROCESS).split()[-1])
    # plus the message that passed the check and one that Beam was moving between its queues
    bound_mb = (worker.DATA_PLANE_QUEUE_BYTES >> 20) + 2 * 10  # messages flushed at 10 MB
    assert (most_mb <= bound_mb) == (mode == "bounded"), most_mb


class _Channel:
    """What ``bound_data_plane_queues`` reads of a Beam data channel: its two send queues."""

    def __init__(self, queued_until: float):
        self.queued_until = queued_until  # the runner takes the output at this time
        self._pending_send = self
        self._to_send = self

    def byte_size(self) -> int:  # of each queue: 32 MB until the runner takes them
        return (32 << 20) if time.monotonic() < self.queued_until else 0


@pytest.fixture()
def data_channel_class(monkeypatch):
    """Beam's data channel class with its send recorded; restored afterwards."""
    from apache_beam.runners.worker import data_plane

    sent = []
    channel_class = data_plane._GrpcDataChannel
    monkeypatch.setattr(data_plane, "_DEFAULT_SEND_QUEUE_MAX_BYTES", 100 << 20)
    monkeypatch.setattr(channel_class, "_enqueue_to_send", lambda _, e: sent.append(e))
    return channel_class, sent


def test_a_sender_the_runner_never_takes_from_fails_with_the_reason(data_channel_class, caplog):
    channel_class, sent = data_channel_class
    worker.bound_data_plane_queues(warn_after=0.05, fail_after=0.3)
    with pytest.raises(worker.RunnerStalledError, match="--parallelism"):
        channel_class._enqueue_to_send(_Channel(queued_until=float("inf")), "output")
    assert sent == []
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "64 MB waiting" in warnings[0].getMessage()


def test_a_sender_waits_while_the_runner_is_slow(data_channel_class, caplog):
    channel_class, sent = data_channel_class
    worker.bound_data_plane_queues(warn_after=5, fail_after=10)
    started = time.monotonic()
    channel_class._enqueue_to_send(_Channel(queued_until=started + 0.2), "output")
    assert sent == ["output"] and time.monotonic() - started >= 0.2
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_a_new_bound_replaces_the_last(data_channel_class):
    channel_class, sent = data_channel_class
    worker.bound_data_plane_queues(max_bytes=1 << 20, fail_after=0.2)
    worker.watch_data_plane()  # Beam's 100 MB: a wrapped 1 MB bound would still stall below
    assert worker.data_plane_watched()
    channel_class._enqueue_to_send(_Channel(queued_until=float("inf")), "output")  # 64 MB
    assert sent == ["output"]


@pytest.mark.parametrize("value, limit", [(None, 1800.0), ("90", 90.0), ("0", float("inf"))])
def test_send_stall_limit_from_the_environment(monkeypatch, value, limit):
    if value is None:
        monkeypatch.delenv(worker.SEND_STALL_ENV, raising=False)
    else:
        monkeypatch.setenv(worker.SEND_STALL_ENV, value)
    assert worker.send_stall_limit() == limit


def test_a_send_stall_limit_that_is_no_number_is_named(monkeypatch):
    monkeypatch.setenv(worker.SEND_STALL_ENV, "30m")
    with pytest.raises(ValueError, match="INSTRUCTMIX_SEND_STALL_SECONDS must be a number"):
        worker.send_stall_limit()


_WINDOW_PROGRAM = """
import sys
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from pipelines.options import pipeline_options

from transforms.worker import data_plane_watched, receive_window_fixed

options = pipeline_options if sys.argv[1] == "instructmix" else PipelineOptions
with beam.Pipeline(options=options(sys.argv[2:])) as p:
    # runs in the worker process: what the channels it opened got
    fixed = p | beam.Create(range(8)) | beam.Map(
        lambda _: f"{receive_window_fixed()},{data_plane_watched()}"
    )
    seen = fixed | beam.combiners.Count.PerElement()
    seen | beam.MapTuple(lambda fixed, n: print(fixed, n))
"""
# A worker started as Beam's SDK container starts one (sdk_worker_main, given the job's options)
SDK_WORKER_MAIN = [
    "--runner=PortableRunner",
    "--job_endpoint=embed",
    "--environment_type=beam:env:harness_subprocess_python:v1",
    f"--environment_config={sys.executable} -m apache_beam.runners.worker.sdk_worker_main",
]


@pytest.mark.parametrize("options, started", [("instructmix", "True,True"), ("beam", "False,False")])
def test_sdk_workers_open_their_channels_with_the_initial_receive_window(options, started):
    # pipeline_options names pipelines.worker_start in --beam_plugins: imported at worker start
    # (it also watches the data plane)
    assert _python(_WINDOW_PROGRAM, options, *SDK_WORKER_MAIN).split() == [started, "8"]


_FINISHED_BUNDLES_PROGRAM = """
import ctypes, sys
import apache_beam as beam
from pipelines.options import pipeline_options
from transforms import worker

class Emit(beam.DoFn):  # pickled by value: defined in __main__
    # 9 outputs of 1 MB: one buffer, below Beam's 10 MB flush, grown to 16 MB
    def __init__(self, release):
        self.release = release

    def setup(self):
        if self.release:
            worker.release_output_buffers()

    def process(self, _):
        yield from ((0, b"x" * (1 << 20)) for _ in range(9))

def heap_in_use_mb(_):  # glibc's mallinfo2: bytes allocated and not freed (uordblks)
    fields = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    info = type("Mallinfo2", (ctypes.Structure,), {"_fields_": [(f, ctypes.c_size_t) for f in fields.split()]})
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = info
    return mallinfo2().uordblks >> 20

with beam.Pipeline(options=pipeline_options(sys.argv[2:])) as p:
    blobs = p | beam.Create([None])
    for stage in range(8):  # each its own bundle: a GroupByKey apart
        blobs = blobs | f"Emit{stage}" >> beam.ParDo(Emit(sys.argv[1] == "released")) | f"Group{stage}" >> beam.GroupByKey()
    blobs | beam.Map(heap_in_use_mb) | beam.Map(print)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallinfo2 is glibc's")
def test_finished_bundles_release_their_output_buffers():
    # one worker process runs 8 stages; each wrote 9 MB to the runner
    one_worker = [
        "--runner=FnApiRunner",
        "--direct_num_workers=1",
        "--direct_running_mode=multi_processing",
    ]
    held = {
        mode: int(_python(_FINISHED_BUNDLES_PROGRAM, mode, *one_worker))
        for mode in ("beam default", "released")
    }
    assert held["beam default"] - held["released"] >= 8 * 9, held


def test_huge_page_heap_env_adds_the_tunable_once():
    assert worker.huge_page_heap_env({})["GLIBC_TUNABLES"] == worker.HUGE_PAGE_TUNABLE
    added = worker.huge_page_heap_env({"GLIBC_TUNABLES": "glibc.malloc.check=0", "A": "1"})
    assert added == {"GLIBC_TUNABLES": f"glibc.malloc.check=0:{worker.HUGE_PAGE_TUNABLE}", "A": "1"}
    assert worker.huge_page_heap_env({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) is None
    assert worker.huge_page_heap_env({worker.MALLOC_DEFAULTS_ENV: "1"}) is None


_RESTART_PROGRAM = """
import os, resource
from pipelines.cli import restart_with_huge_page_heap
restart_with_huge_page_heap()
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
before = faults()
for _ in range(10):
    buffer = b"x" * (64 << 20)  # a fresh mapping each time (glibc's defaults otherwise)
    del buffer
print(os.environ.get("GLIBC_TUNABLES"), faults() - before)
"""


def _transparent_huge_pages() -> str:
    """The kernel's mode: "always", "madvise" or "never" (the bracketed word)."""
    path = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    text = path.read_text() if path.exists() else "[never]"
    return text.split("[")[1].split("]")[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="GLIBC_TUNABLES is glibc's")
def test_the_command_restarts_itself_with_a_huge_page_heap():
    tunables, faults = _python(_RESTART_PROGRAM).split()
    assert tunables == worker.HUGE_PAGE_TUNABLE
    kept, default_faults = _python(_RESTART_PROGRAM, INSTRUCTMIX_MALLOC_DEFAULTS="1").split()
    assert kept == "None"
    assert int(default_faults) >= 10 * PAGES // 512
    if _transparent_huge_pages() == "madvise":
        # 2 MB pages where glibc asks for them: a small fraction of the 4 KB page faults
        assert int(faults) < int(default_faults) // 10
    else:  # "always" gives huge pages either way; "never" gives none to anyone
        assert int(faults) <= 2 * int(default_faults)
