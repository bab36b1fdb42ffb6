"""Benchmark of exact + MinHash dedup against datasketch and rensa, on a planted corpus.

    python -m bench.dedup_bench --n 100000                       # everything, ~15 min on 2 cores
    python -m bench.dedup_bench --n 100000 --only kernel,loop    # parts: kernel, loop, pipeline
    python -m bench.dedup_bench --n 300000 --only flink          # worker memory on Flink
    python -m bench.dedup_bench --n 2000000 --only flink --parallelism 4 \
        --flink-args=--sdk_worker_parallelism=4                  # 2M: 500k records per slot
    python -m bench.dedup_bench --n 100000 --only datatrove      # builds its venv once (~2 min)
    python -m bench.dedup_bench --n 100000 --paired 4            # loop | pipeline + read only, side by side
    python -m bench.dedup_bench --n 100000 --paired 3 --workers 2  # the same for 2 worker processes

Each measurement runs in its own subprocess (clean peak RSS) and prints one JSON line; the
results are appended to ``bench/work/dedup/dedup_runs.jsonl``. Throughput is reported per
CPU-second (user + system of every process involved) as well as per wall-second: this box has 2
shared cores, and CPU time is what "per core" means when other jobs compete for them.

* kernel   — signatures only, from the same shingles: ours (sha1, xxh32, poly32), datasketch
             MinHash (``update_batch``), rensa ``RMinHash`` (its own hash; a kernel).
* loop     — the usual datasketch dedup loop: MinHash + MinHashLSH(threshold 0.7, 128 perms),
             query then insert, over the records (same shingling as ours); quality scored.
             Twice: a fresh ``MinHash(num_perm=128)`` per record, as datasketch's README does,
             and with the permutations drawn once and reused (the tuned loop).
* pipeline — ``Deduplicate`` on the FnApiRunner (what DirectRunner runs offline): in-process
             and multi-process (``--workers``); read Parquet, write removed rows; quality scored.
* datatrove — datatrove's MinHash dedup, its four local stages (``bench/datatrove_run.py``)
             in a venv of its own, one task and one worker per stage; quality scored.
* flink    — the same pipeline on the local Flink job server (embedded Flink, which sorts and
             spills GroupByKey data itself) with Python SDK workers from an EXTERNAL worker
             pool, so that the workers are processes of their own whose memory can be read.

Memory: peak RSS of this process (``getrusage``) and of every descendant process, read from
``/proc/PID/status`` (VmHWM: the kernel's high-water mark; VmRSS for the time series) every
0.5 s by ``RssSampler``, labelled by command line (SDK worker, worker pool, Flink JVM).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench import planted

ROOT = Path(__file__).resolve().parents[1]
RUNS = planted.WORK / "dedup_runs.jsonl"


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _peak_mb() -> tuple[float, float]:
    """(this process, largest waited-for descendant) peak RSS in MB."""
    return (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    )


class RssSampler(threading.Thread):
    """Peak and time series of the resident memory of this process's descendants, from /proc.

    ``peaks()`` gives, per process, its label and the largest VmHWM seen (the kernel's own
    high-water mark, so a spike between two samples still counts); ``series`` keeps
    (seconds, MB) of VmRSS per process every ``keep_every`` samples, for the shape over time.
    """

    def __init__(self, interval: float = 0.5, keep_every: int = 4):
        super().__init__(daemon=True)
        self.interval, self.keep_every = interval, keep_every
        self.procs: dict[int, dict] = {}
        self.t0 = time.perf_counter()
        self._stop_event = threading.Event()

    @staticmethod
    def _children() -> dict[int, list[int]]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry))
        return children

    def _descendants(self) -> list[int]:
        children, out, todo = self._children(), [], [os.getpid()]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, ()))
        return out

    @staticmethod
    def _label(pid: int) -> str:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return "?"
        if pid == os.getpid():
            return "bench process (runner / submitter)"
        for key, label in (
            ("sdk_worker_main", "python SDK worker"),
            ("worker_pool_main", "python worker pool"),  # names instructmix-sdk-worker too
            ("instructmix-sdk-worker", "python SDK worker"),  # a worker pool's (Flink)
            ("java", "Flink job server JVM"),
            ("apache_beam", "python SDK worker"),
        ):
            if key in cmd:
                return label
        return cmd[:80]

    def sample(self, keep: bool) -> None:
        now = time.perf_counter() - self.t0
        for pid in self._descendants():
            try:
                with open(f"/proc/{pid}/status") as f:
                    status = dict(line.split(":", 1) for line in f if ":" in line)
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            info = self.procs.get(pid)
            if info is None:
                info = self.procs[pid] = {"label": self._label(pid), "hwm_mb": 0.0, "series": []}
            hwm = int(status.get("VmHWM", "0 kB").split()[0]) / 1024
            rss = int(status.get("VmRSS", "0 kB").split()[0]) / 1024
            info["hwm_mb"] = max(info["hwm_mb"], hwm)
            info["cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            if keep:
                info["series"].append((round(now, 1), round(rss)))

    def run(self) -> None:
        i = 0
        while not self._stop_event.wait(self.interval):
            self.sample(i % self.keep_every == 0)
            i += 1

    def stop(self) -> list[dict]:
        self._stop_event.set()
        self.join()
        self.sample(True)
        return self.peaks()

    def peaks(self) -> list[dict]:
        return [
            {"pid": pid, **info}
            for pid, info in sorted(self.procs.items(), key=lambda kv: -kv[1]["hwm_mb"])
            if info["hwm_mb"] > 50
        ]


def _records(n: int) -> list[dict]:
    import pyarrow.parquet as pq

    corpus, _ = planted.write(n)
    return pq.read_table(corpus).to_pylist()


def _truth(n: int) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(planted.paths(n)[1]).to_pylist()


# --------------------------------------------------------------------------------------------
# Parts (each runs in a fresh subprocess)
# --------------------------------------------------------------------------------------------


def part_kernel(n: int) -> list[dict]:
    import numpy as np
    import rensa
    from datasketch import MinHash

    from transforms import minhash
    from transforms.dedup import normalized_fields
    from transforms.dedup_config import DedupConfig

    config = DedupConfig()
    records = _records(n)[: min(n, 50_000)]
    n = len(records)
    norms = [normalized_fields(r, config.fields) for r in records]
    minhash.tokenize_normalized("")
    out = []

    t = time.process_time()
    batches = [minhash.batch_shingles(norms[i : i + 1024], 5, 5) for i in range(0, n, 1024)]
    shingle_s = time.process_time() - t
    shingles = sum(len(b[0]) for b in batches)
    out.append(
        {
            "what": "shingling (tokens + 5-gram byte slices)",
            "records": n,
            "shingles": shingles,
            "cpu_s": shingle_s,
            "rec_per_cpu_s": n / shingle_s,
        }
    )

    for hf in ("sha1", "xxh32", "poly32"):
        hasher = minhash.MinHasher(128, 1, hash_function=hf)
        t = time.process_time()
        for sh, off in batches:
            hasher.signatures(sh, off)
        d = time.process_time() - t
        out.append(
            {
                "what": f"ours signatures from shingles ({hf})",
                "records": n,
                "cpu_s": d,
                "rec_per_cpu_s": n / d,
            }
        )
    spans = [minhash.shingle_batch(norms[i : i + 1024], 5, 5) for i in range(0, n, 1024)]
    # poly32 twice: the numpy path, and the C kernel batch_signatures takes when it is built.
    paths = [("sha1", "batch_signatures", ""), ("poly32", "_batch_signatures_numpy", ", numpy")]
    if minhash._sigkernel is not None:
        paths.append(("poly32", "batch_signatures", ", C kernel"))
    else:
        print("transforms._sigkernel is not built: no C kernel row", file=sys.stderr)
    for hf, method, label in paths:
        signatures = getattr(minhash.MinHasher(128, 1, hash_function=hf), method)
        t = time.process_time()
        for batch in spans:
            signatures(batch)
        d = time.process_time() - t
        out.append(
            {
                "what": f"ours signatures from span batches ({hf}{label})",
                "records": n,
                "cpu_s": d,
                "rec_per_cpu_s": n / d,
            }
        )
    hasher = minhash.MinHasher(128, 1)
    hashes = [minhash.hash_shingles(sh, "sha1") for sh, _ in batches]
    t = time.process_time()
    for h, (_, off) in zip(hashes, batches):
        hasher.signatures_from_hashes(h, off)
    d = time.process_time() - t
    out.append(
        {
            "what": "ours permutations + min only (numpy)",
            "records": n,
            "cpu_s": d,
            "rec_per_cpu_s": n / d,
        }
    )

    per_record = [sh[off[i] : off[i + 1]] for sh, off in batches for i in range(len(off) - 1)]
    as_str = [[s.decode() for s in x] for x in per_record]
    t = time.process_time()
    for x in as_str:
        m = rensa.RMinHash(128, 1)
        m.update(x)
        m.digest()
    d = time.process_time() - t
    out.append(
        {
            "what": "rensa RMinHash per record (str shingles)",
            "records": n,
            "cpu_s": d,
            "rec_per_cpu_s": n / d,
        }
    )
    t = time.process_time()
    for sh, off in batches:
        rensa.RMinHash.digest_matrix_from_token_byte_sets(
            [sh[off[i] : off[i + 1]] for i in range(len(off) - 1)], 128, 1
        )
    d = time.process_time() - t
    out.append(
        {
            "what": "rensa digest_matrix_from_token_byte_sets (batched)",
            "records": n,
            "cpu_s": d,
            "rec_per_cpu_s": n / d,
        }
    )

    # From token lists (what a user of either library starts from): rensa needs the shingle
    # strings built in Python; ours lays the tokens out in one buffer.
    tokens = [
        [
            (toks, minhash.field_shingle_size(f, 5, 5))
            for f in r
            if (toks := minhash.tokenize_normalized(f))
        ]
        for r in norms
    ]
    hasher = minhash.MinHasher(128, 1, hash_function="poly32")
    t = time.process_time()
    for i in range(0, n, 1024):
        hasher.batch_signatures(minhash.shingle_batch_from_tokens(tokens[i : i + 1024]))
    d = time.process_time() - t
    out.append(
        {"what": "ours from token lists (poly32)", "records": n, "cpu_s": d, "rec_per_cpu_s": n / d}
    )
    hasher = minhash.MinHasher(128, 1)
    t = time.process_time()
    for i in range(0, n, 1024):
        hasher.batch_signatures(minhash.shingle_batch_from_tokens(tokens[i : i + 1024]))
    d = time.process_time() - t
    out.append(
        {"what": "ours from token lists (sha1)", "records": n, "cpu_s": d, "rec_per_cpu_s": n / d}
    )
    t = time.process_time()
    for fields in tokens:
        shingle_strs = []
        for toks, k in fields:
            if len(toks) < k:
                shingle_strs.append(" ".join(toks))
            else:
                shingle_strs += [" ".join(toks[j : j + k]) for j in range(len(toks) - k + 1)]
        m = rensa.RMinHash(128, 1)
        m.update(shingle_strs)
        m.digest()
    d = time.process_time() - t
    out.append(
        {
            "what": "rensa from token lists (shingle strings built in Python)",
            "records": n,
            "cpu_s": d,
            "rec_per_cpu_s": n / d,
        }
    )

    template = MinHash(num_perm=128, seed=1)
    t = time.process_time()
    for x in per_record:
        m = template.copy()
        m.update_batch(x)
    d = time.process_time() - t
    out.append(
        {
            "what": "datasketch MinHash.update_batch (permutations reused)",
            "records": n,
            "cpu_s": d,
            "rec_per_cpu_s": n / d,
        }
    )
    _ = np  # numpy is imported for the side effect of warming it before timing
    return out


def part_loop(n: int, permutations: str = "fresh") -> list[dict]:
    """The datasketch loop. ``fresh``: ``MinHash(num_perm=128)`` per record, as datasketch's
    README does (each one draws its 128 permutations again); ``reused``: the permutations drawn
    once and passed to every ``MinHash`` (``permutations=``, ``scheme=``), the tuned form."""
    from datasketch import MinHash, MinHashLSH

    from transforms import minhash
    from transforms.dedup import normalized_fields
    from transforms.dedup_config import DedupConfig

    config = DedupConfig()
    records = _records(n)
    minhash.tokenize_normalized("")
    t0, c0 = time.perf_counter(), _cpu()
    lsh = MinHashLSH(threshold=0.7, num_perm=128)
    reuse = {}
    if permutations == "reused":
        first = MinHash(num_perm=128, seed=1)
        reuse = {"permutations": first.permutations, "scheme": first.scheme}
    elif permutations != "fresh":
        raise SystemExit(f"loop: permutations must be fresh or reused, not {permutations!r}")
    removed = []
    for r in records:
        shingles = minhash.shingle_set(normalized_fields(r, config.fields), 5, 5)
        m = MinHash(num_perm=128, seed=1, **reuse)
        m.update_batch(list(shingles))
        hits = lsh.query(m)
        if hits:
            removed.append((r["id"], hits))
        else:
            lsh.insert(r["id"], m)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    truth = _truth(n)
    cluster = {t["id"]: t["cluster"] for t in truth}
    # benefit of the doubt: the survivor is a hit of the same cluster whenever there is one
    pairs = [
        (rid, next((h for h in hits if cluster[h] == cluster[rid]), min(hits)))
        for rid, hits in removed
    ]
    return [
        {
            "what": "datasketch MinHash + MinHashLSH loop"
            + (", permutations reused" if reuse else ""),
            "records": n,
            "wall_s": wall,
            "cpu_s": cpu,
            "rec_per_cpu_s": n / cpu,
            "rec_per_wall_s": n / wall,
            "peak_rss_mb": _peak_mb()[0],
            **planted.score(pairs, truth),
        }
    ]


def _pass_through_fn():
    from transforms.worker import FrozenHeapDoFn

    class PassThrough(FrozenHeapDoFn):
        def process(self, element):
            yield element

    return PassThrough()


def _build(p, corpus: Path, out_dir: Path, config, read_only: bool, spread_read=False) -> None:
    """Read the corpus; dedup it and write the removed rows (or only count, ``read_only``).

    ``spread_read``: the file's byte ranges are reshuffled before they are read, so that every
    subtask reads a share. On Flink (batch) a subtask's share of a stage is one bundle whose
    output the runner holds until the bundle ends; read by one subtask, 2M records stall there.
    """
    import apache_beam as beam

    from transforms.dedup import Deduplicate
    from transforms.schema import REMOVED_SCHEMA

    if spread_read:
        records = p | "Corpus" >> beam.Create([str(corpus)]) | beam.io.ReadAllFromParquet()
    else:
        records = p | "Read" >> beam.io.ReadFromParquet(str(corpus))
    if read_only:
        # Under the same collector settings as Deduplicate's stages: a DoFn of the read's stage
        # freezes the worker's long-lived objects first (worker.FrozenHeapDoFn).
        _ = (
            records
            | "FreezeLongLived" >> beam.ParDo(_pass_through_fn())
            | "Count" >> beam.combiners.Count.Globally()
        )
        return
    out = records | "Dedup" >> Deduplicate(config=config)
    _ = out["removed"] | "WriteRemoved" >> beam.io.WriteToParquet(
        str(out_dir / "removed"), REMOVED_SCHEMA, file_name_suffix=".parquet"
    )
    _ = out["kept"] | "CountKept" >> beam.combiners.Count.Globally()


def _config(overrides: str):
    """(DedupConfig with the JSON overrides, a short label of them)."""
    from transforms.dedup_config import DedupConfig

    values = json.loads(overrides)
    label = ", ".join(f"{v}" if k == "hash_function" else f"{k}={v}" for k, v in values.items())
    return DedupConfig(**values), label


def _scored(row: dict, out_dir: Path, n: int) -> dict:
    import pyarrow.parquet as pq

    removed = pq.read_table(str(out_dir)).to_pylist()
    row.update(planted.score([(r["id"], r["survivor_id"]) for r in removed], _truth(n)))
    row["removed_by_stage"] = {
        s: sum(r["stage"] == s for r in removed) for s in ("exact", "minhash")
    }
    return row


def _memory(row: dict, procs: list[dict]) -> dict:
    """Peak RSS per kind of process, and every process's peak and (thinned) time series."""
    by_label: dict[str, float] = {}
    for proc in procs:
        by_label[proc["label"]] = max(by_label.get(proc["label"], 0.0), proc["hwm_mb"])
    row["peak_rss_mb_by_process"] = by_label
    row["processes"] = [
        {**proc, "series": proc["series"][:: max(1, len(proc["series"]) // 60)]} for proc in procs
    ]
    return row


def part_pipeline(n: int, workers: int, overrides: str, read_only: bool = False) -> list[dict]:
    import apache_beam as beam

    from pipelines.options import pipeline_options, prepare_process

    corpus, _ = planted.write(n)
    config, label = _config(overrides)
    out_dir = planted.WORK / f"out_{n}_{workers}"
    shutil.rmtree(out_dir, ignore_errors=True)  # a stale shard would be scored
    args = ["--runner=FnApiRunner"]
    if workers > 1:
        args += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    options = pipeline_options(args)  # as `instructmix run` makes them, and prepares:
    prepare_process(options)  # in-process, freed memory is kept
    sampler = RssSampler()
    sampler.start()
    t0, c0 = time.perf_counter(), _cpu()
    with beam.Pipeline(options=options) as p:
        _build(p, corpus, out_dir, config, read_only)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    procs = sampler.stop()
    runner_mb, worker_mb = _peak_mb()
    row = {
        "what": f"pipeline {'read only' if read_only else 'Deduplicate'} "
        f"({workers} worker{'s' if workers > 1 else ''}, {label})",
        "records": n,
        "wall_s": wall,
        "cpu_s": cpu,
        "rec_per_cpu_s": n / cpu,
        "rec_per_wall_s": n / wall,
        "peak_rss_runner_mb": runner_mb,
        "peak_rss_worker_mb": worker_mb if workers > 1 else None,
    }
    _memory(row, procs)
    return [row if read_only else _scored(row, out_dir, n)]


def part_flink(n: int, overrides: str, extra_args: str = "", parallelism: int = 2) -> list[dict]:
    """The pipeline on Flink with EXTERNAL Python workers (separate processes to measure)."""
    import apache_beam as beam

    from bench import dofn_probe
    from pipelines.options import pipeline_options
    from tests.flink_support import flink_job_server, flink_pipeline_args, flink_worker_pool

    dofn_probe.install()  # per-call memory of every DoFn, if INSTRUCTMIX_DOFN_PROBE is set

    corpus, _ = planted.write(n)
    config, label = _config(overrides)
    out_dir = planted.WORK / f"out_{n}_flink"
    shutil.rmtree(out_dir, ignore_errors=True)  # a stale shard would be scored
    # the embedded Flink's slots (jobserver.sh: the cores by default; a job asking for more
    # runs with fewer subtasks)
    os.environ.setdefault("INSTRUCTMIX_FLINK_PARALLELISM", str(parallelism))
    sampler = RssSampler()
    sampler.start()
    with flink_job_server() as endpoint, flink_worker_pool() as pool:
        args = flink_pipeline_args(endpoint, "EXTERNAL", worker_pool=pool, parallelism=parallelism)
        args += extra_args.split()
        t0 = time.perf_counter()
        with beam.Pipeline(options=pipeline_options(args)) as p:
            _build(p, corpus, out_dir, config, read_only=False, spread_read=True)
        wall = time.perf_counter() - t0
        sampler.sample(True)
        workers = [q for q in sampler.procs.values() if q["label"] == "python SDK worker"]
        worker_cpu = sum(q.get("cpu_s", 0.0) for q in workers)
    procs = sampler.stop()
    row = {
        "what": f"pipeline Deduplicate on Flink (EXTERNAL workers, parallelism {parallelism}, "
        f"{label}{', ' + extra_args if extra_args else ''})",
        "records": n,
        "wall_s": wall,
        "rec_per_wall_s": n / wall,
        "python_worker_cpu_s": worker_cpu,
        "rec_per_python_worker_cpu_s": n / worker_cpu if worker_cpu else None,
    }
    _memory(row, procs)
    return [_scored(row, out_dir, n)]


DATATROVE_VENV = planted.WORK / "datatrove-venv"
# datatrove's own imports need regex, tokenizers, orjson (JsonlWriter) and xxhash (its default
# hash; 0.10.1 hashes str, which xxhash 4 refuses), none of them declared as its dependencies.
DATATROVE_PINS = [
    "datatrove==0.10.1",
    "spacy>=3.7,<4",
    "pyarrow>=14",
    "regex",
    "tokenizers",
    "orjson",
    "xxhash<4",
]


def datatrove_python() -> Path:
    """The interpreter of a venv with datatrove, built once under bench/work (not timed)."""
    python = DATATROVE_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DATATROVE_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *DATATROVE_PINS], check=True)
    return python


def _datatrove_pairs(work: Path) -> list[tuple[str, str]]:
    """(removed id, kept id of its cluster) from the documents datatrove wrote."""
    import gzip

    def docs(folder: str):
        for path in sorted((work / folder).glob("*.jsonl.gz")):
            with gzip.open(path, "rt") as f:
                yield from map(json.loads, f)

    survivor = {d["metadata"]["minhash_cluster_id"]: d["id"] for d in docs("kept")}
    survivor.pop(-1, None)  # documents in no cluster
    return [(d["id"], survivor[d["metadata"]["minhash_cluster_id"]]) for d in docs("removed")]


def part_datatrove(n: int) -> list[dict]:
    corpus, _ = planted.write(n)
    work = planted.WORK / f"datatrove_{n}"
    shutil.rmtree(work, ignore_errors=True)
    cmd = [
        str(datatrove_python()),
        str(ROOT / "bench" / "datatrove_run.py"),
        str(corpus),
        str(work),
    ]
    t0, c0 = time.perf_counter(), _cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit("datatrove failed")
    row = {
        "what": "datatrove MinHash dedup (4 local stages, 1 worker, 14 x 9, spaCy words)",
        "records": n,
        "wall_s": wall,
        "cpu_s": cpu,
        "rec_per_cpu_s": n / cpu,
        "rec_per_wall_s": n / wall,
        "peak_rss_mb": _peak_mb()[1],  # the datatrove process, the only waited-for child
    }
    row.update(planted.score(_datatrove_pairs(work), _truth(n)))
    return [row]


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def _child(part: str, n: int, extra: list[str]) -> None:
    if part == "kernel":
        rows = part_kernel(n)
    elif part == "loop":
        rows = part_loop(n, *extra)
    elif part == "pipeline":
        workers, hf, read_only = int(extra[0]), extra[1], extra[2] == "1"
        rows = part_pipeline(n, workers, hf, read_only)
    elif part == "datatrove":
        rows = part_datatrove(n)
    elif part == "flink":
        rows = part_flink(n, extra[0], extra[1], int(extra[2]))
    else:
        raise SystemExit(f"unknown part {part}")
    for row in rows:
        print("RESULT " + json.dumps(row), flush=True)


def _child_command(part: str, n: int, *extra: str) -> tuple[list[str], dict]:
    from transforms.worker import huge_page_heap_env

    cmd = [sys.executable, "-m", "bench.dedup_bench", "--child", part, "--n", str(n), *extra]
    # Every part under the glibc settings `instructmix` restarts itself with (pipelines.cli).
    return cmd, huge_page_heap_env(os.environ) or dict(os.environ)


def _record(rows: list[dict], env: dict, load_start, **extra) -> None:
    with open(RUNS, "a") as f:
        for row in rows:
            row.update(
                machine=f"{os.cpu_count()} cores",
                glibc_tunables=env.get("GLIBC_TUNABLES"),
                load=os.getloadavg()[0],
                load_start_end=[load_start, os.getloadavg()],
                at=time.strftime("%Y-%m-%d %H:%M:%S"),
                **extra,
            )
            f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


def _results(part: str, returncode: int, stdout: str, stderr: str) -> list[dict]:
    rows = [json.loads(line[7:]) for line in stdout.splitlines() if line.startswith("RESULT ")]
    if returncode or not rows:
        sys.stderr.write(stderr[-4000:])
        raise SystemExit(f"{part} failed")
    return rows


def _spawn(part: str, n: int, *extra: str, **recorded) -> list[dict]:
    cmd, env = _child_command(part, n, *extra)
    load_start = os.getloadavg()
    proc = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, env=env)
    rows = _results(part, proc.returncode, proc.stdout, proc.stderr)
    _record(rows, env, load_start, **recorded)
    return rows


def _spawn_paired(n: int, overrides: str, repeats: int) -> None:
    """The tuned loop on one core; on the other, the in-process pipeline, then the same
    pipeline reading the corpus only. Each pinned, ``repeats`` times with the cores swapped:
    both sides see the same neighbours (this box is shared, and CPU-seconds of one part drift
    by 30-40% over minutes), so each pair's ratio compares like with like. The loop starts
    from records in memory; the pipeline minus its read-only twin (the same read and Beam
    start-up, no dedup) is the dedup stage alone. Needs 2 cores."""
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("--paired needs 2 cores")
    cores = sorted(os.sched_getaffinity(0))[:2]
    sides = [
        [("loop", ("reused",))],
        [("pipeline", ("1", overrides, "0")), ("pipeline", ("1", overrides, "1"))],
    ]
    for repeat in range(repeats):
        pair = f"{time.strftime('%Y%m%dT%H%M%S')}-{repeat}"
        failures: list[BaseException] = []
        rows: list[dict] = []
        threads = [
            threading.Thread(target=_run_pinned, args=(parts, core, n, pair, rows, failures))
            for parts, core in zip(sides, cores if repeat % 2 == 0 else cores[::-1])
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
        if len(rows) != 3:
            raise SystemExit(f"pair {pair}: {len(rows)} of 3 parts reported")
        print(json.dumps(paired_ratios(rows)), flush=True)


def _spawn_alternating(n: int, overrides: str, repeats: int, workers: str) -> None:
    """As ``_spawn_paired`` for a pipeline of several worker processes, which needs every
    core: the tuned loop, the pipeline, then its read-only twin (the same read, runner and
    worker start-up, no dedup), one after another, ``repeats`` times. The ratios count every
    process of the pipeline: the runner's and both sides of its data plane."""
    for repeat in range(repeats):
        pair = f"{time.strftime('%Y%m%dT%H%M%S')}-{repeat}"
        rows: list[dict] = []
        for part, extra in [
            ("loop", ("reused",)),
            ("pipeline", (workers, overrides, "0")),
            ("pipeline", (workers, overrides, "1")),
        ]:
            rows += _spawn(part, n, *extra, paired=pair)
        print(json.dumps(paired_ratios(rows)), flush=True)


def paired_ratios(rows: list[dict]) -> dict:
    """One pair's CPU-second ratios: the loop against the whole pipeline run, and against the
    dedup stage alone (the pipeline minus its read-only twin)."""
    loop = next(r["cpu_s"] for r in rows if r["what"].startswith("datasketch"))
    whole = next(r["cpu_s"] for r in rows if r["what"].startswith("pipeline Deduplicate"))
    read = next(r["cpu_s"] for r in rows if r["what"].startswith("pipeline read only"))
    return {
        "paired": rows[0]["paired"],
        "loop_cpu_s": loop,
        "pipeline_cpu_s": whole,
        "read_only_cpu_s": read,
        "ratio_whole_run": loop / whole,
        "ratio_dedup_stage": loop / (whole - read),
    }


_RECORD_LOCK = threading.Lock()


def _run_pinned(parts: list, core: int, n: int, pair: str, rows: list, failures: list) -> None:
    """Run ``parts`` one after another on ``core``, recording each row with its pair."""
    try:
        for part, extra in parts:
            cmd, env = _child_command(part, n, *extra)
            load_start = os.getloadavg()
            proc = subprocess.run(
                ["taskset", "-c", str(core), *cmd],
                cwd=ROOT,
                env=env,
                text=True,
                capture_output=True,
                check=False,
            )
            part_rows = _results(part, proc.returncode, proc.stdout, proc.stderr)
            with _RECORD_LOCK:
                _record(part_rows, env, load_start, paired=pair, core=core)
                rows.extend(part_rows)
    except SystemExit as failure:  # a part failed (_results): re-raised by the caller
        failures.append(failure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--only", default="kernel,loop,pipeline")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--loops", default="fresh,reused", help="datasketch loops to run")
    parser.add_argument("--hash", default=None, help="default: DedupConfig's hash_function")
    parser.add_argument("--config", default="{}", help="JSON of other DedupConfig overrides")
    parser.add_argument("--flink-args", default="", help="extra pipeline options for Flink")
    parser.add_argument(
        "--parallelism",
        type=int,
        default=2,
        help="Flink parallelism (above 4, also set INSTRUCTMIX_FLINK_PARALLELISM for the slots)",
    )
    parser.add_argument(
        "--paired",
        type=int,
        default=0,
        metavar="R",
        help="run the tuned loop and the in-process pipeline (then its read-only twin) side by "
        "side, R times; with --workers W (one number above 1), one after another",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args, extra = parser.parse_known_args(argv)
    if args.child:
        return _child(args.child, args.n, extra)
    if args.paired and not (args.workers.isdigit() or args.workers == parser.get_default("workers")):
        raise SystemExit(f"--paired takes one --workers count, not {args.workers!r}")
    if args.hash is None:
        from transforms.dedup_config import DedupConfig

        args.hash = DedupConfig().hash_function
    overrides = json.dumps({**json.loads(args.config), "hash_function": args.hash})
    planted.write(args.n)
    if args.paired and args.workers.isdigit() and int(args.workers) > 1:
        return _spawn_alternating(args.n, overrides, args.paired, args.workers)
    if args.paired:
        return _spawn_paired(args.n, overrides, args.paired)
    parts = args.only.split(",")
    if "kernel" in parts:
        _spawn("kernel", args.n)
    if "loop" in parts:
        for permutations in args.loops.split(","):
            _spawn("loop", args.n, permutations)
    if "pipeline" in parts:
        _spawn("pipeline", args.n, "1", overrides, "1")
        for workers in args.workers.split(","):
            _spawn("pipeline", args.n, workers, overrides, "0")
    if "datatrove" in parts:
        datatrove_python()  # install before the timed child
        _spawn("datatrove", args.n)
    if "flink" in parts:
        _spawn("flink", args.n, overrides, args.flink_args, str(args.parallelism))


if __name__ == "__main__":
    main()
