"""What a Beam SDK worker's memory is made of, every 2 s: a probe, loaded by Python at start-up.

    INSTRUCTMIX_MEMORY_PROBE=/tmp/memlogs PYTHONPATH=bench/probes/worker_memory \
        python -m bench.dedup_bench --n 1000000 --only pipeline --workers 2   # or --only flink

Every process whose command line names ``sdk_worker`` or ``instructmix-sdk-worker`` (the
FnApiRunner's worker processes, the workers a Flink worker pool starts) appends to
``$INSTRUCTMIX_MEMORY_PROBE/<pid>.log``:
its RSS; glibc's ``mallinfo2`` (bytes in use, free, in mmapped chunks); Python's allocator
(arenas, bytes in blocks); resident memory by kind of mapping (``/proc/self/smaps``); bytes
waiting in Beam's data-plane queues; and the stages of the bundles in flight (``stages=``, the
latest first), plus a START and END line (with RSS) around every bundle.
``bench/results/dedup.md`` (thirteenth and fifteenth passes) reads it. Costs a
``gc.get_objects()`` walk per sample; not for timing runs. Optional settings:

* ``INSTRUCTMIX_MEMORY_PROBE_EVERY``: seconds between samples (default 2).
* ``INSTRUCTMIX_MEMORY_PROBE_TRIM=1``: after each sample, return glibc's free pages
  (``malloc_trim(0)``) and log RSS and resident memory again (``trimmed:``): what of the free
  resident memory a trim can hand back, and what is fragments it cannot.
* ``INSTRUCTMIX_MEMORY_PROBE_TRACE=N`` with ``INSTRUCTMIX_MEMORY_PROBE_TRACE_STAGE=TEXT``: from
  the first bundle whose stage name contains TEXT, trace Python's allocations (``tracemalloc``,
  N frames; it slows the worker several times) and log the largest live allocation sites,
  oldest frame first, at each new high of traced memory (by 50 MB). Memory allocated outside
  Python's allocator (gRPC's core, protobuf's parser) is not traced.
"""

import os
import sys


def _command_line() -> bytes:
    with open("/proc/self/cmdline", "rb") as f:
        return f.read()


def _rss_mb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return -1


def _python_allocator() -> str:
    """Arenas and bytes in blocks from ``sys._debugmallocstats`` (it prints to fd 2)."""
    import re

    read, write = os.pipe()
    saved = os.dup(2)
    os.dup2(write, 2)
    try:
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(write)
    chunks = []
    while chunk := os.read(read, 1 << 16):
        chunks.append(chunk)
    os.close(read)
    text = b"".join(chunks)
    arenas = re.search(rb"# arenas allocated current\s*=\s*([\d,]+)", text)
    blocks = re.search(rb"# bytes in allocated blocks\s*=\s*([\d,]+)", text)
    if not (arenas and blocks):
        return "py_arenas=? py_blocks_mb=?"
    arena_count, block_bytes = (int(m.group(1).replace(b",", b"")) for m in (arenas, blocks))
    return f"py_arenas={arena_count} py_blocks_mb={block_bytes >> 20}"


def _resident_by_mapping() -> str:
    """Resident MB of the main heap, 64 MB-aligned anonymous maps (glibc's thread arenas),
    other anonymous maps and files."""
    kinds: dict[str, int] = {}
    kind = "anon"
    with open("/proc/self/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                low = int(fields[0].split("-")[0], 16)
                name = fields[5] if len(fields) > 5 else ""
                if name == "[heap]":
                    kind = "heap"
                elif name.startswith("/"):
                    kind = "file"
                elif name:
                    kind = "other"
                else:
                    kind = "glibc_arena" if low % (1 << 26) == 0 else "anon"
            elif fields[0] == "Rss:":
                kinds[kind] = kinds.get(kind, 0) + int(fields[1])
    return " ".join(f"{k}={v >> 10}" for k, v in sorted(kinds.items()))


def _data_plane_queues() -> str:
    import gc

    data_plane = sys.modules.get("apache_beam.runners.worker.data_plane")
    if data_plane is None:
        return ""
    channels = [o for o in gc.get_objects() if isinstance(o, data_plane._GrpcDataChannel)]
    queues = [q for c in channels for q in list(c._received.values())]
    received = sum(q.byte_size() for q in queues)
    to_send = sum(c._to_send.byte_size() + c._pending_send.byte_size() for c in channels)
    return f"recv_queued_mb={received >> 20} send_queued_mb={to_send >> 20}"


def _install(log_dir: str) -> None:
    import ctypes
    import threading
    import time

    class MallInfo2(ctypes.Structure):  # glibc's struct mallinfo2, ten size_t fields
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in (
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            )
        ]

    libc = ctypes.CDLL(None)
    mallinfo2, malloc_trim = libc.mallinfo2, libc.malloc_trim
    mallinfo2.restype = MallInfo2
    trims = os.environ.get("INSTRUCTMIX_MEMORY_PROBE_TRIM") == "1"
    # open for the process's life, line-buffered
    log = open(os.path.join(log_dir, f"{os.getpid()}.log"), "a", buffering=1)  # noqa: SIM115
    every = float(os.environ.get("INSTRUCTMIX_MEMORY_PROBE_EVERY", "2"))
    in_flight: dict[str, str] = {}  # instruction id -> stage, in start order
    frames = int(os.environ.get("INSTRUCTMIX_MEMORY_PROBE_TRACE", "0"))
    traced_stage = os.environ.get("INSTRUCTMIX_MEMORY_PROBE_TRACE_STAGE", "")
    if frames:
        import tracemalloc
    dumped = [0]

    def dump_top_allocations() -> None:
        """At each new high of traced memory (by 50 MB), the largest live allocation sites."""
        traced = tracemalloc.get_traced_memory()[0]
        if traced < dumped[0] + (50 << 20):
            return
        dumped[0] = traced
        stats = tracemalloc.take_snapshot().statistics("traceback")
        log.write(f"TRACED traced_mb={traced >> 20}\n")
        for stat in stats[:12]:
            where = " -> ".join(
                f"{os.path.basename(f.filename)}:{f.lineno}" for f in stat.traceback
            )
            log.write(f"  {stat.size >> 20} MB {stat.count} blocks {where}\n")

    def sample_forever() -> None:
        start = time.time()
        while True:
            time.sleep(every)
            if frames and tracemalloc.is_tracing():
                dump_top_allocations()
            info = mallinfo2()
            line = (
                f"{time.time() - start:7.1f} rss_mb={_rss_mb()} "
                f"glibc_used_mb={info.uordblks >> 20} glibc_free_mb={info.fordblks >> 20} "
                f"glibc_mmapped_mb={info.hblkhd >> 20} {_python_allocator()} "
                f"{_resident_by_mapping()} {_data_plane_queues()} "
            )
            if trims:
                malloc_trim(0)
                line += f"trimmed: rss_mb={_rss_mb()} {_resident_by_mapping()} "
            stages = ",".join(reversed(list(in_flight.values()))) or "-"
            log.write(f"{line}stages={stages}\n")

    from apache_beam.runners.worker import bundle_processor

    process_bundle = bundle_processor.BundleProcessor.process_bundle

    def logged_process_bundle(processor, instruction_id, *args, **kwargs):
        names = [getattr(op.name_context, "step_name", "?") for op in processor.ops.values()]
        name = "|".join(n for n in names if not n.startswith("ref_"))[:120]
        in_flight[instruction_id] = name
        if frames and traced_stage in name and not tracemalloc.is_tracing():
            tracemalloc.start(frames)  # slows the worker several times: one stage only
        log.write(f"START rss_mb={_rss_mb()} {instruction_id} {name}\n")
        try:
            return process_bundle(processor, instruction_id, *args, **kwargs)
        finally:
            in_flight.pop(instruction_id, None)
            log.write(f"END rss_mb={_rss_mb()} {instruction_id} {name}\n")

    bundle_processor.BundleProcessor.process_bundle = logged_process_bundle
    threading.Thread(target=sample_forever, name="memory-probe", daemon=True).start()


_WORKER = (b"sdk_worker", b"instructmix-sdk-worker")  # local runner's, a Flink worker pool's
_CMD = _command_line()
_IS_WORKER = any(w in _CMD for w in _WORKER) and b"worker_pool_main" not in _CMD  # not the pool
if os.environ.get("INSTRUCTMIX_MEMORY_PROBE") and _IS_WORKER:
    _install(os.environ["INSTRUCTMIX_MEMORY_PROBE"])
