"""Process-wide settings of a Beam worker for the dedup's allocation pattern.

The dedup's DoFns unpickle and build millions of small objects per shard, and the runner moves
its shuffles as large byte buffers. Seven process-wide defaults then cost more CPU than the
work they manage, or memory that grows with the input (``bench/results/dedup.md``):

* CPython's cyclic collector walks every object the worker holds at each full collection, and
  walks young objects each 700 allocations: ``paused_gc`` and ``gc.freeze``.
* glibc gives every allocation above 32 MB (and, until its threshold adapts, above 128 KB) its
  own ``mmap`` and returns it to the kernel when freed. The in-process runner moves each
  shuffle as one buffer of up to hundreds of MB, so each is faulted in page by page again:
  ~0.9M page faults and ~1.6 s of system CPU at 100k records. ``hold_freed_memory`` serves
  them from the heap and keeps freed memory for reuse.
* A worker fed by a runner in another process (Flink, the FnApiRunner's worker processes)
  receives its input as byte buffers of many sizes. Once glibc's adaptive mmap threshold has
  risen (to up to 32 MB), they come from the heap too, and the free gaps they leave between
  live objects stay resident: a worker grows with a bundle's input even when its DoFn keeps
  nothing. ``return_freed_memory`` hands those pages back every second, and what is freed
  at the end of a heap at once beyond 16 MB.
* Beam's data plane lets a worker queue up to 100 MB of output in each of two send queues
  while the runner is slower to take it: on Flink at 1M records, 90-170 MB sat in them in the
  busiest workers. ``bound_data_plane_queues`` caps them at 16 MB, and says so (then fails
  the bundle) when the runner stops taking them: on Flink's batch mode a subtask whose share
  of a stage outputs more than the runner holds per bundle (~1-2.5 GB) waits for good.
* A worker keeps the processor of each finished bundle for reuse, and with it the closed
  output stream of each of its outputs: a buffer grown to the bundle's largest flush (up to
  ~10 MB and more). On Flink one worker runs the ~25 stages of the connected-components
  rounds, so at 1M records ~200 MB sat in finished bundles' buffers.
  ``release_output_buffers`` drops each stream when its bundle closes it.
* gRPC widens a stream's receive window as it measures the link, and the window is what the
  runner may send before the worker reads it. A Flink worker's data stream lasts the job,
  and a shuffle's group arrives as one message (~28 MB for a shard of 20,000 records), so
  gRPC's core came to hold two or three unread groups: more, the longer the stream ran.
  ``fix_receive_window`` keeps the window at gRPC's initial size (at worker start).

* The kernel backs memory with 4 KB pages, each faulted in at first touch: 0.4M faults and
  3.8 s of system CPU for a 100k-record dedup in one process, and 3.5M faults (16 of 43
  CPU-s) with two worker processes, the runner among them. glibc asks for transparent huge
  pages for its heap when started with ``HUGE_PAGE_TUNABLE`` (a process-start setting:
  ``huge_page_heap_env``, which the ``instructmix`` command restarts itself with).

Every dedup DoFn derives from ``FrozenHeapDoFn``, so a worker bounds its data plane, lets
finished bundles' output buffers go, freezes, and (unless it is the in-process runner's
worker) starts returning freed memory, before it runs any of them. gRPC's receive window is
set before the worker's first channel opens, earlier than any ``setup``:
``pipelines.worker_start``.
``hold_freed_memory`` is for in-process runs only (``pipelines.options``): on Flink it
saved no CPU, and a worker that hosts several stages kept their memory (largest worker 772 ->
1,120 MB at 250k records). ``INSTRUCTMIX_MALLOC_DEFAULTS=1`` keeps glibc's defaults everywhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import threading
import time
from collections.abc import Mapping

import apache_beam as beam

# mallopt(3) parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
_LARGEST_INT = 2**31 - 1
MALLOC_DEFAULTS_ENV = "INSTRUCTMIX_MALLOC_DEFAULTS"
TRIM_EVERY_SECONDS = 1.0
ARENA_TOP_KEPT_BYTES = 16 << 20  # free at a heap's end, kept (glibc: up to 64 MB)
MMAP_THRESHOLD_BYTES = 32 << 20  # where glibc's adaptive mmap threshold stops rising (64-bit)
DATA_PLANE_QUEUE_BYTES = 16 << 20  # what a dedup worker queues; Beam's default:
BEAM_DATA_PLANE_QUEUE_BYTES = 100 << 20  # per queue
SEND_STALL_WARN_SECONDS = 60.0  # the runner has taken none of a worker's output: warn,
SEND_STALL_WARN_EVERY_SECONDS = 300.0  # and again every 5 minutes,
SEND_STALL_FAIL_SECONDS = 1800.0  # then fail the bundle (default of SEND_STALL_ENV)
SEND_STALL_ENV = "INSTRUCTMIX_SEND_STALL_SECONDS"  # 0: wait for good
NO_WINDOW_GROWTH = ("grpc.http2.bdp_probe", 0)  # gRPC channel argument: no BDP probing
HUGE_PAGE_TUNABLE = "glibc.malloc.hugetlb=1"  # glibc >= 2.35; others ignore GLIBC_TUNABLES


@contextlib.contextmanager
def paused_gc():
    """Pause the cyclic garbage collector for a burst of allocations, then restore it.

    Building or unpickling thousands of records allocates millions of small containers; each
    700 of them trigger a collection that walks the young heap, and every few a full one that
    walks everything the worker holds (measured: ~25% of dedup's CPU at 100k records). The
    objects made here hold no reference cycles, so nothing is lost by collecting later.

    Restoring the collector costs one collection of the young objects still alive. Around a
    DoFn's computation, yielding after: fine when the outputs are a few pickled blobs. A DoFn
    whose outputs are many small objects yields inside instead (downstream code then runs
    paused too, for one element), so that they are consumed before that collection walks them.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def freeze_long_lived() -> None:
    """Collect, then move every object the process holds now out of the cyclic collector's
    reach (``gc.freeze``).

    At a worker's first setup those are its modules, the runner's own state and the pipeline:
    they live as long as the process. Until frozen, every full collection walks all of them
    again (measured: ~200k objects, 80-95 ms per full collection, ~1 s of a 100k dedup run).
    Objects freed by reference counting are freed as before; only a reference cycle among the
    frozen objects would outlive its use.
    """
    gc.collect()
    gc.freeze()


def hold_freed_memory() -> bool:
    """glibc only: no ``mmap`` per allocation, and freed memory kept for reuse (``mallopt``).

    The process's resident memory then stays at its high-water mark instead of shrinking; the
    peak of a 100k-record dedup in one process grew by 5-13%. Returns False where there is no
    glibc ``mallopt`` (nothing changes there).
    """
    global _HOLDING
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    held = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _LARGEST_INT))
    _HOLDING = _HOLDING or held
    return held


def return_freed_memory(every_seconds: float = TRIM_EVERY_SECONDS) -> bool:
    """glibc only: a daemon thread returns the free pages of every heap to the kernel
    (``malloc_trim(0)``) every ``every_seconds``, and memory freed at the end of a heap goes
    back at once beyond ``ARENA_TOP_KEPT_BYTES``.

    Measured on Flink at 1M records: the thread made the largest worker 11-19% smaller at the
    same CPU. Between its rounds, glibc keeps what is freed at the end of each heap up to its
    trim threshold, which rises with its adaptive mmap threshold to 64 MB; a worker that runs
    many bundles at once (Flink opens ~30) allocates from up to 8 heaps (arenas) per core.
    Both thresholds are therefore fixed: the trim threshold at ``ARENA_TOP_KEPT_BYTES``, the
    mmap threshold where glibc's adaptation stops, so that large buffers still come from the
    heap (a fixed low one cost 16-29% more Python CPU: every buffer faulted in again). On
    Flink at 1M the median of the largest worker went 843 -> 718 MB, of the second largest
    814 -> 648 MB; a 4 MB threshold did about as much (743 / 634 MB) for 4-8% more CPU.
    Returns False where there is no glibc ``malloc_trim`` (nothing changes).
    """
    try:
        libc = ctypes.CDLL(None)
        trim, mallopt = libc.malloc_trim, libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    mallopt(_M_TRIM_THRESHOLD, ARENA_TOP_KEPT_BYTES)

    def trim_forever():
        while True:
            time.sleep(every_seconds)
            trim(0)

    threading.Thread(target=trim_forever, name="instructmix-malloc-trim", daemon=True).start()
    return True


class RunnerStalledError(RuntimeError):
    """The runner took none of a worker's output for ``send_stall_limit()`` seconds."""


def send_stall_limit() -> float:
    """Seconds a worker waits for the runner to take its output before it fails the bundle
    (``INSTRUCTMIX_SEND_STALL_SECONDS``, default 30 minutes; 0 or less: for good)."""
    value = os.environ.get(SEND_STALL_ENV) or SEND_STALL_FAIL_SECONDS
    try:
        limit = float(value)
    except ValueError:
        raise ValueError(f"{SEND_STALL_ENV} must be a number of seconds, not {value!r}") from None
    return limit if limit > 0 else float("inf")


def _stall_message(waited: float, queued: int, fail_after: float) -> str:
    return (
        f"the runner has taken none of this worker's output for {waited:.0f} s "
        f"({queued >> 20} MB waiting). On Flink's batch mode each subtask runs its whole share "
        "of a stage as one bundle, and the runner holds that bundle's output (up to 100 "
        "messages, ~1-2.5 GB) until the bundle ends: a larger share waits here for good. Raise "
        "--parallelism so that each subtask's share of a stage's output stays under ~1 GB "
        + (
            f"(the bundle fails after {fail_after:.0f} s: {SEND_STALL_ENV})."
            if fail_after < float("inf")
            else f"({SEND_STALL_ENV}=0: it waits for good)."
        )
    )


def bound_data_plane_queues(
    max_bytes: int = DATA_PLANE_QUEUE_BYTES,
    warn_after: float = SEND_STALL_WARN_SECONDS,
    fail_after: float | None = None,
) -> None:
    """Cap what this process's Beam data channels queue, either way, at about ``max_bytes``.

    A worker's outputs wait in two send queues of up to 100 MB each, and each bundle's input
    in one of up to 100 MB, until the runner takes them. On Flink the busiest dedup workers
    had 90-170 MB waiting there at 1M records. Beam has no option for it, and a worker may
    have made its channel (at its first bundle, maybe of another stage) before any dedup
    DoFn's ``setup``, with its queues' bounds fixed. So a sender now waits while more than
    ``max_bytes`` wait to be sent, and input queues made from now on take ``max_bytes``. The
    DoFn then waits for the runner, as it already did at 100 MB. Each sending thread may add
    one message (Beam flushes them at 10 MB) past that check, and Beam's forwarding thread
    holds one more, unseen, between its two send queues: up to ``max_bytes`` plus two
    messages for one sender.

    A sender that has waited ``warn_after`` seconds logs why it may be waiting for good (again
    every 5 minutes), and at ``fail_after`` (default ``send_stall_limit()``) it raises
    ``RunnerStalledError``, which fails the bundle, and the job, with that explanation, where
    Beam's own queues would wait silently. On Flink at 2M records on 2 subtasks, the read's
    bundle waited so for good (``bench/results/dedup.md``, seventeenth pass).
    """
    from apache_beam.runners.worker import data_plane

    data_plane._DEFAULT_SEND_QUEUE_MAX_BYTES = max_bytes  # read by each new input queue
    channel_class = data_plane._GrpcDataChannel
    sender = channel_class._enqueue_to_send
    enqueue = getattr(sender, "unbounded", sender)  # called again: a new bound replaces it
    fail_after = send_stall_limit() if fail_after is None else fail_after
    log = logging.getLogger(__name__)

    def enqueue_within_bound(channel, element):
        started, next_warning = time.monotonic(), warn_after
        while (queued := channel._pending_send.byte_size() + channel._to_send.byte_size()) > (
            max_bytes
        ):
            waited = time.monotonic() - started
            if waited >= fail_after:
                raise RunnerStalledError(_stall_message(waited, queued, fail_after))
            if waited >= next_warning:
                log.warning(_stall_message(waited, queued, fail_after))
                next_warning += SEND_STALL_WARN_EVERY_SECONDS
            time.sleep(0.01)
        enqueue(channel, element)

    enqueue_within_bound.unbounded = enqueue
    channel_class._enqueue_to_send = enqueue_within_bound


def watch_data_plane() -> None:
    """Beam's own data plane bounds (``BEAM_DATA_PLANE_QUEUE_BYTES``) with the stall warning
    and error of ``bound_data_plane_queues``, for every stage of a worker (at its start,
    ``pipelines.worker_start``); a dedup DoFn's ``setup`` tightens the bound later."""
    bound_data_plane_queues(BEAM_DATA_PLANE_QUEUE_BYTES)


def data_plane_watched() -> bool:
    """True when this process's Beam data channels wait for the runner under a stall watch."""
    from apache_beam.runners.worker import data_plane

    return hasattr(data_plane._GrpcDataChannel._enqueue_to_send, "unbounded")


def release_output_buffers() -> None:
    """Let each bundle's output streams go when the bundle has closed them.

    Beam's ``DataOutputOperation`` keeps its last stream after ``finish``, and the worker
    caches the bundle's processor for a later bundle of the same stage; the stream's buffer,
    grown by doubling to the largest flush (Beam flushes at 10 MB), stays allocated until
    then. A worker that has finished many stages holds one such buffer per stage output.
    The next bundle sets a new stream before it writes, so nothing reads the dropped one.
    Calling it again changes nothing.
    """
    from apache_beam.runners.worker import bundle_processor

    operation_class = bundle_processor.DataOutputOperation
    finish = operation_class.finish
    if getattr(finish, "releases_stream", False):
        return

    def finish_and_release(operation):
        finish(operation)
        operation.output_stream = None

    finish_and_release.releases_stream = True
    operation_class.finish = finish_and_release


def fix_receive_window() -> None:
    """Beam's gRPC channels opened from now on in this process keep gRPC's initial receive
    window (``NO_WINDOW_GROWTH``: no bandwidth-delay probing).

    With probing, gRPC grows a stream's window while the stream runs, and the runner may
    send that much ahead of what the worker has read. On Flink at 1M records, heaptrack
    found 64-85 MB held in gRPC's core at the peak of the two largest workers (42 MB at 100k):
    two or three ~28 MB groups waiting; without probing, 29-31 MB, the message being
    received, and the largest worker's peak RSS went 772 -> 693 MB (medians of 3).
    A message larger than the window still passes (gRPC widens the window for the message a
    reader waits for), so the 28 MB groups flow as before. Channels opened earlier keep
    Beam's options, so a worker calls it before it connects (``pipelines.worker_start``).
    Calling it again changes nothing.
    """
    from apache_beam.runners.worker.channel_factory import GRPCChannelFactory

    if not receive_window_fixed():
        options = GRPCChannelFactory.DEFAULT_OPTIONS
        GRPCChannelFactory.DEFAULT_OPTIONS = [*options, NO_WINDOW_GROWTH]


def receive_window_fixed() -> bool:
    """True when Beam's gRPC channels opened from now on in this process keep gRPC's initial
    receive window (``fix_receive_window`` ran here)."""
    from apache_beam.runners.worker.channel_factory import GRPCChannelFactory

    return NO_WINDOW_GROWTH in GRPCChannelFactory.DEFAULT_OPTIONS


def huge_page_heap_env(env: Mapping[str, str]) -> dict[str, str] | None:
    """``env`` with glibc's huge-page heap tunable added, or None if there is nothing to add.

    glibc reads ``GLIBC_TUNABLES`` only when a process starts, so it is set for a process's
    children or for a restart of the process itself. With the kernel's transparent huge pages
    in ``madvise`` mode (the usual default), glibc then advises them for its heap: one fault
    per 2 MB instead of per 4 KB. Measured on 100k records: system CPU 3.8 -> 1.9 s in one
    process, 15.9 -> 8.5 s with two worker processes (``bench/results/dedup.md``). None when
    the tunable is already there or the user keeps glibc's defaults.
    """
    tunables = env.get("GLIBC_TUNABLES", "")
    if env.get(MALLOC_DEFAULTS_ENV) == "1" or HUGE_PAGE_TUNABLE.split("=")[0] in tunables:
        return None
    return {**env, "GLIBC_TUNABLES": ":".join(filter(None, (tunables, HUGE_PAGE_TUNABLE)))}


def keeps_malloc_defaults() -> bool:
    """True when the user asked for glibc's defaults (``INSTRUCTMIX_MALLOC_DEFAULTS=1``)."""
    return os.environ.get(MALLOC_DEFAULTS_ENV) == "1"


_HOLDING = False  # this process keeps freed memory (the in-process runner's worker)
_FROZEN = False


class FrozenHeapDoFn(beam.DoFn):
    """A DoFn whose ``setup`` bounds the worker's data plane (``bound_data_plane_queues``,
    ``release_output_buffers``) and freezes its long-lived objects (``freeze_long_lived``),
    once per process.

    Every DoFn of the dedup derives from it: a worker may run any of them first. A worker
    that does not keep freed memory returns it instead (``return_freed_memory``).
    """

    def setup(self):
        global _FROZEN
        if not _FROZEN:
            _FROZEN = True
            bound_data_plane_queues()
            release_output_buffers()
            freeze_long_lived()
            if not _HOLDING and not keeps_malloc_defaults():
                return_freed_memory()
