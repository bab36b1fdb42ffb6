"""Benchmark of exact + MinHash dedup against datasketch and rensa, on a planted corpus.

    python -m bench.dedup_bench --n 100000                       # everything, ~15 min on 2 cores
    python -m bench.dedup_bench --n 100000 --only kernel,loop    # parts: kernel, loop, pipeline

Each measurement runs in its own subprocess (clean peak RSS) and prints one JSON line; the
results are appended to ``bench/work/dedup_runs.jsonl``. Throughput is reported per CPU-second
(user + system of every process involved) as well as per wall-second: this box has 2 shared
cores, and CPU time is what "per core" means when other jobs compete for them.

* kernel   — signatures only, from the same shingles: ours (sha1, xxh32), datasketch MinHash
             (``update_batch``), rensa ``RMinHash`` (its own hash; a kernel, not compatible).
* loop     — the usual datasketch dedup loop: MinHash + MinHashLSH(threshold 0.7, 128 perms),
             query then insert, over the records (same shingling as ours); quality scored.
* pipeline — ``Deduplicate`` on the FnApiRunner (what DirectRunner runs offline): in-process
             and multi-process (2 workers); read Parquet, write removed rows; quality scored.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
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
    for hf in ("sha1", "poly32"):
        hasher = minhash.MinHasher(128, 1, hash_function=hf)
        t = time.process_time()
        for batch in spans:
            hasher.batch_signatures(batch)
        d = time.process_time() - t
        out.append(
            {
                "what": f"ours signatures from span batches ({hf})",
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


def part_loop(n: int) -> list[dict]:
    from datasketch import MinHash, MinHashLSH

    from transforms import minhash
    from transforms.dedup import normalized_fields
    from transforms.dedup_config import DedupConfig

    config = DedupConfig()
    records = _records(n)
    minhash.tokenize_normalized("")
    t0, c0 = time.perf_counter(), _cpu()
    lsh = MinHashLSH(threshold=0.7, num_perm=128)
    removed = []
    for r in records:
        shingles = minhash.shingle_set(normalized_fields(r, config.fields), 5, 5)
        m = MinHash(num_perm=128, seed=1)
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
            "what": "datasketch MinHash + MinHashLSH loop",
            "records": n,
            "wall_s": wall,
            "cpu_s": cpu,
            "rec_per_cpu_s": n / cpu,
            "rec_per_wall_s": n / wall,
            "peak_rss_mb": _peak_mb()[0],
            **planted.score(pairs, truth),
        }
    ]


def part_pipeline(
    n: int, workers: int, hash_function: str = "sha1", read_only: bool = False
) -> list[dict]:
    import apache_beam as beam
    import pyarrow.parquet as pq
    from apache_beam.options.pipeline_options import PipelineOptions

    from transforms.dedup import Deduplicate
    from transforms.dedup_config import DedupConfig
    from transforms.schema import REMOVED_SCHEMA

    corpus, _ = planted.write(n)
    out_dir = planted.WORK / f"out_{n}_{workers}_{hash_function}"
    args = ["--runner=FnApiRunner"]
    if workers > 1:
        args += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    config = DedupConfig(hash_function=hash_function)
    t0, c0 = time.perf_counter(), _cpu()
    with beam.Pipeline(options=PipelineOptions(args)) as p:
        records = p | "Read" >> beam.io.ReadFromParquet(str(corpus))
        if read_only:
            _ = records | "Count" >> beam.combiners.Count.Globally()
        else:
            out = records | "Dedup" >> Deduplicate(config=config)
            _ = out["removed"] | "WriteRemoved" >> beam.io.WriteToParquet(
                str(out_dir / "removed"), REMOVED_SCHEMA, file_name_suffix=".parquet"
            )
            _ = out["kept"] | "CountKept" >> beam.combiners.Count.Globally()
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    runner_mb, worker_mb = _peak_mb()
    row = {
        "what": f"pipeline {'read only' if read_only else 'Deduplicate'} "
        f"({workers} worker{'s' if workers > 1 else ''}, {hash_function})",
        "records": n,
        "wall_s": wall,
        "cpu_s": cpu,
        "rec_per_cpu_s": n / cpu,
        "rec_per_wall_s": n / wall,
        "peak_rss_runner_mb": runner_mb,
        "peak_rss_worker_mb": worker_mb if workers > 1 else None,
    }
    if not read_only:
        removed = pq.read_table(str(out_dir)).to_pylist()
        row.update(planted.score([(r["id"], r["survivor_id"]) for r in removed], _truth(n)))
        row["removed_by_stage"] = {
            s: sum(r["stage"] == s for r in removed) for s in ("exact", "minhash")
        }
    return [row]


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def _child(part: str, n: int, extra: list[str]) -> None:
    if part == "kernel":
        rows = part_kernel(n)
    elif part == "loop":
        rows = part_loop(n)
    elif part == "pipeline":
        workers, hf, read_only = int(extra[0]), extra[1], extra[2] == "1"
        rows = part_pipeline(n, workers, hf, read_only)
    else:
        raise SystemExit(f"unknown part {part}")
    for row in rows:
        print("RESULT " + json.dumps(row), flush=True)


def _spawn(part: str, n: int, *extra: str) -> list[dict]:
    cmd = [sys.executable, "-m", "bench.dedup_bench", "--child", part, "--n", str(n), *extra]
    proc = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True)
    rows = [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not rows:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{part} failed")
    with open(RUNS, "a") as f:
        for row in rows:
            row.update(
                machine=f"{os.cpu_count()} cores",
                load=os.getloadavg()[0],
                at=time.strftime("%Y-%m-%d %H:%M:%S"),
            )
            f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--only", default="kernel,loop,pipeline")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--hash", default="sha1")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args, extra = parser.parse_known_args(argv)
    if args.child:
        return _child(args.child, args.n, extra)
    planted.write(args.n)
    parts = args.only.split(",")
    if "kernel" in parts:
        _spawn("kernel", args.n)
    if "loop" in parts:
        _spawn("loop", args.n)
    if "pipeline" in parts:
        _spawn("pipeline", args.n, "1", args.hash, "1")
        for workers in args.workers.split(","):
            _spawn("pipeline", args.n, workers, args.hash, "0")


if __name__ == "__main__":
    main()
