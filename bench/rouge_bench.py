"""Benchmark and oracle for the ROUGE-L filter: the O(N²) reference vs ``RougeFilter``.

The reference is Self-Instruct's / Alpaca's loop built on ``rouge_score`` itself
(``reference_greedy``): keep an instruction iff ``rouge_scorer._score_lcs`` F1 with every kept
one is <= 0.7, instructions tokenised once with the scorer's own tokenizer (as Alpaca does).
``exact_greedy`` is the same loop with rapidfuzz's LCS on exact token codes (no candidates, no
hashing; checked equal to the reference) for sizes where ``rouge_score`` takes days.

    python -m bench.rouge_bench real --reference rouge   # real sets: recall, rouge_score reference
    python -m bench.rouge_bench planted --n 5000 --reference rouge rapidfuzz --truth --ref-cost 20000
    python -m bench.rouge_bench beam --n 100000 1000000 --compare --keep-output  # on DirectRunner
    python -m bench.rouge_bench verify --n 20000 --sample 1000 --exact  # Beam's K vs rouge_score
    python -m bench.rouge_bench lsh --n 20000            # LSH vs prefix candidates
    python -m bench.rouge_bench pair-cost                # reference cost per pair
    python -m bench.rouge_bench runner-check --n 1000000 # does the DirectRunner lose records?
    python -m bench.rouge_bench report                   # bench/results/rouge.md from the rows

Every run appends JSON lines to ``bench/work/rouge_results.jsonl``; ``bench/results/rouge.md``
is written from them. Machine: see that file (2 shared cores).
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import rouge_verify
from bench.paraphrases import DATA, generate
from transforms import rouge

WORK = Path(__file__).resolve().parent / "work"
RESULTS = WORK / "rouge_results.jsonl"


# --------------------------------------------------------------------------------------------
# The reference (rouge_score) and the exact brute-force oracle (rapidfuzz)
# --------------------------------------------------------------------------------------------


def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer, rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def reference_greedy(
    instructions: list[str], threshold: float = 0.7
) -> tuple[list[bool], dict[int, tuple[int, float]]]:
    """Self-Instruct's filter with ``rouge_score``: (kept flags, {dropped: (survivor, F1)}).

    O(N x kept) calls of ``rouge_scorer._score_lcs``; the survivor is the kept instruction with
    the highest score (the earliest among equals), as ``RougeFilter`` reports it.
    """
    rouge_scorer, scorer = _scorer()
    kept_tokens: list[list[str]] = []
    kept_index: list[int] = []
    flags: list[bool] = []
    dropped: dict[int, tuple[int, float]] = {}
    for i, inst in enumerate(instructions):
        toks = scorer._tokenizer.tokenize(inst)
        scores = [rouge_scorer._score_lcs(toks, k).fmeasure for k in kept_tokens]
        if scores and max(scores) > threshold:
            best = max(scores)
            dropped[i] = (kept_index[scores.index(best)], best)
            flags.append(False)
            continue
        flags.append(True)
        kept_tokens.append(toks)
        kept_index.append(i)
    return flags, dropped


def _reference_worker(conn, shard: int, shards: int) -> None:
    rouge_scorer, _ = _scorer()
    mine: list[tuple[int, list[str]]] = []
    count = 0
    while True:
        msg = conn.recv()
        if msg is None:
            return
        kind, index, toks = msg
        if kind == "score":
            best, best_i = -1.0, -1
            for j, k in mine:
                s = rouge_scorer._score_lcs(toks, k).fmeasure
                if s > best:
                    best, best_i = s, j
            conn.send((best, best_i))
        else:  # "keep": the n-th kept instruction lives on shard n % shards
            if count % shards == shard:
                mine.append((index, toks))
            count += 1


def reference_greedy_parallel(
    instructions: list[str], threshold: float = 0.7, processes: int = 2
) -> tuple[list[bool], dict[int, tuple[int, float]]]:
    """``reference_greedy`` with the kept pool sharded over processes (same decisions)."""
    _, scorer = _scorer()
    conns, procs = [], []
    ctx = mp.get_context("fork")
    for shard in range(processes):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_reference_worker, args=(child, shard, processes))
        proc.start()
        conns.append(parent)
        procs.append(proc)
    flags: list[bool] = []
    dropped: dict[int, tuple[int, float]] = {}
    try:
        for i, inst in enumerate(instructions):
            toks = scorer._tokenizer.tokenize(inst)
            for c in conns:
                c.send(("score", i, toks))
            answers = [c.recv() for c in conns]
            best = max(answers, key=lambda a: (a[0], -a[1]))
            if best[0] > threshold:
                flags.append(False)
                dropped[i] = (best[1], best[0])
            else:
                flags.append(True)
                for c in conns:
                    c.send(("keep", i, toks))
    finally:
        for c in conns:
            c.send(None)
        for p in procs:
            p.join()
    return flags, dropped


def _codes(token_lists: list[list[str]]) -> list[str]:
    """Exact token → character codes (a dict, no hashing) for rapidfuzz."""
    vocab: dict[str, int] = {}
    out = []
    for toks in token_lists:
        codes = [vocab.setdefault(t, len(vocab)) for t in toks]
        out.append("".join(chr(c + 0x800 if c >= 0xD800 else c) for c in codes))
    return out


def exact_greedy(
    token_lists: list[list[str]], threshold: float = 0.7, block: int = 256, workers: int = 2
) -> list[bool]:
    """The reference loop with rapidfuzz LCS on exact codes, in blocks (no candidates)."""
    from rapidfuzz.distance import LCSseq
    from rapidfuzz.process import cdist

    strings = _codes(token_lists)
    lengths = np.array([len(t) for t in token_lists])
    kept_idx: list[int] = []
    flags = [False] * len(strings)
    for lo in range(0, len(strings), block):
        hi = min(lo + block, len(strings))
        rows = strings[lo:hi]
        if kept_idx:
            ki = np.array(kept_idx)
            lcs = cdist(
                rows,
                [strings[k] for k in kept_idx],
                scorer=LCSseq.similarity,
                dtype=np.int32,
                workers=workers,
            )
            f1 = rouge.f1_from_lcs_array(lcs, lengths[lo:hi, None], lengths[None, ki])
            hit = (f1 > threshold).any(axis=1)
        else:
            hit = np.zeros(hi - lo, dtype=bool)
        inner = cdist(rows, rows, scorer=LCSseq.similarity, dtype=np.int32, workers=workers)
        f_in = (
            rouge.f1_from_lcs_array(inner, lengths[lo:hi, None], lengths[None, lo:hi]) > threshold
        )
        local: list[int] = []
        for r in range(hi - lo):
            if not hit[r] and not any(f_in[r, q] for q in local):
                local.append(r)
                flags[lo + r] = True
        kept_idx.extend(lo + r for r in local)
    return flags


def all_pairs_above(
    token_lists: list[list[str]], threshold: float = 0.7, block: int = 512, workers: int = 2
) -> set[tuple[int, int]]:
    """Every pair (i < j) with ROUGE-L F1 > threshold, by brute force (rapidfuzz, exact codes)."""
    from rapidfuzz.distance import LCSseq
    from rapidfuzz.process import cdist

    strings = _codes(token_lists)
    lengths = np.array([len(t) for t in token_lists])
    out: set[tuple[int, int]] = set()
    for lo in range(0, len(strings), block):
        hi = min(lo + block, len(strings))
        lcs = cdist(
            strings[lo:hi], strings[lo:], scorer=LCSseq.similarity, dtype=np.int32, workers=workers
        )
        f1 = rouge.f1_from_lcs_array(lcs, lengths[lo:hi, None], lengths[None, lo:])
        r, c = np.nonzero(f1 > threshold)
        for i, j in zip((r + lo).tolist(), (c + lo).tolist()):
            if i < j:
                out.add((i, j))
    return out


def pairs_above_for(
    token_lists: list[list[str]], rows: list[int], threshold: float = 0.7, workers: int = 2
) -> set[tuple[int, int]]:
    """Every pair involving one of ``rows`` with F1 > threshold (sampled truth at 1M)."""
    from rapidfuzz.distance import LCSseq
    from rapidfuzz.process import cdist

    strings = _codes(token_lists)
    lengths = np.array([len(t) for t in token_lists])
    out: set[tuple[int, int]] = set()
    for lo in range(0, len(rows), 64):
        chunk = rows[lo : lo + 64]
        lcs = cdist(
            [strings[i] for i in chunk],
            strings,
            scorer=LCSseq.similarity,
            dtype=np.int32,
            workers=workers,
        )
        f1 = rouge.f1_from_lcs_array(lcs, lengths[chunk][:, None], lengths[None, :])
        for r, c in zip(*np.nonzero(f1 > threshold)):
            i, j = chunk[r], int(c)
            if i != j:
                out.add((min(i, j), max(i, j)))
    return out


# --------------------------------------------------------------------------------------------
# Data sets
# --------------------------------------------------------------------------------------------


def _load(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
        return data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def real_sets(data: Path = DATA) -> dict[str, list[str]]:
    """The real instruction lists of ../shared/data, in file order."""
    alpaca = _load(data / "alpaca/en/alpaca_data-0-3252.json")
    seeds = _load(data / "self_instruct/seed_tasks.jsonl")
    dolly = _load(data / "dolly/databricks-dolly-15k.first9.jsonl")
    lima = _load(data / "lima/lima.sample100.json")
    with_input = [r["instruction"] + ("\n" + r["input"] if r.get("input") else "") for r in alpaca]
    return {
        "self_instruct_seeds": [r["instruction"] for r in seeds],
        "alpaca": [r["instruction"] for r in alpaca],
        "alpaca_with_input": with_input,
        "dolly": [r["instruction"] for r in dolly],
        "lima": [r["instruction"] for r in lima],
        "seeds+alpaca+dolly+lima": [r["instruction"] for r in seeds]
        + [r["instruction"] for r in alpaca]
        + [r["instruction"] for r in dolly]
        + [r["instruction"] for r in lima],
    }


def planted(n: int, seed: int = 0) -> list[str]:
    """``n`` generated instructions with planted paraphrases, cached under bench/work/."""
    WORK.mkdir(exist_ok=True)
    path = WORK / f"rouge_planted_{n}_{seed}.jsonl"
    if path.exists():
        return [json.loads(line)["instruction"] for line in path.open(encoding="utf-8")]
    texts, src = generate(n, seed)
    with path.open("w", encoding="utf-8") as f:
        for i, (text, s) in enumerate(zip(texts, src)):
            f.write(json.dumps({"index": i, "instruction": text, "paraphrase_of": s}) + "\n")
    return texts


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


# The files whose code the Beam stage runs: rows record a hash of them, so the report can tell
# which figures were measured with the current code.
STAGE_FILES = ("rouge.py", "rouge_filter.py", "rouge_config.py", "text.py")


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _machine() -> dict:
    from importlib.metadata import version

    load = _loadavg()
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "beam": version("apache-beam"),
        "numpy": np.__version__,
        "rapidfuzz": version("rapidfuzz"),
        "rouge_score": version("rouge-score"),
        "load1": load[0],
        "load": load,  # 1, 5 and 15 minutes, when the row is written (the run's end)
    }


def _cpu() -> float:
    """CPU seconds (user + system) of this process and of its reaped children so far."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def stage_hash() -> str:
    """Short hash of the stage's source files (``STAGE_FILES`` under transforms/)."""
    root = Path(__file__).resolve().parents[1] / "transforms"
    digest = hashlib.sha256()
    for name in STAGE_FILES:
        digest.update((root / name).read_bytes())
    return digest.hexdigest()[:12]


def _commit() -> str | None:
    proc = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or None


def _record(row: dict) -> dict:
    WORK.mkdir(exist_ok=True)
    row = {
        **row,
        "machine": _machine(),
        "code": {"commit": _commit(), "stage": stage_hash()},
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    with RESULTS.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
    return row


def _kernel(texts: list[str], threshold: float, method: str = "prefix") -> dict:
    t0 = time.perf_counter()
    toks = [rouge.rouge_score_tokens(t) for t in texts]
    kept, dropped, stats = rouge.greedy_filter(toks, threshold, method=method)
    return {
        "kept": kept,
        "dropped": dropped,
        "seconds": time.perf_counter() - t0,
        "stats": stats.__dict__,
        "tokens": toks,
    }


def run_real(args) -> None:
    """Real sets: kernel, brute-force recall and, with ``--reference rouge``, the reference."""
    for name, texts in real_sets().items():
        if args.sets and name not in args.sets:
            continue
        load_start = _loadavg()
        ours = _kernel(texts, args.threshold)
        truth = all_pairs_above(ours["tokens"], args.threshold)
        found = {(min(a, b), max(a, b)) for a, b in _edges(ours)}
        row = {
            "run": "real",
            "set": name,
            "n": len(texts),
            "load_start": load_start,
            "kept": sum(ours["kept"]),
            "pairs_above": len(truth),
            "recall": _recall(found, truth),
            "ours_s": round(ours["seconds"], 3),
        }
        if "rouge" in args.reference:
            t0 = time.perf_counter()
            ref, ref_dropped = reference_greedy_parallel(texts, args.threshold, args.processes)
            row["reference_s"] = round(time.perf_counter() - t0, 3)
            row["reference_processes"] = args.processes
            row["identical_kept_set"] = ours["kept"] == ref
            row["identical_survivors"] = ours["dropped"] == ref_dropped
            row["max_abs_score_diff"] = _score_diff(ours["dropped"], ref_dropped)
        _record(row)


def _edges(result: dict):
    toks = result["tokens"]
    nodes = np.arange(len(toks), dtype=np.uint64)
    batch = rouge.UnitBatch.build(nodes, toks)
    vocab = rouge.Vocabulary.from_counts(*rouge.count_hashes(batch.occ))
    th = rouge.Thresholds.build(0.7)
    post = rouge.prefix_postings(batch, vocab, th)
    u, v, _, _ = rouge.local_join(batch, post, vocab, th)
    return zip(u.tolist(), v.tolist())


def _recall(found: set, truth: set) -> float | None:
    if not truth:
        return None
    return len(found & truth) / len(truth)


def _score_diff(a: dict, b: dict) -> float:
    common = set(a) & set(b)
    return max((abs(a[k][1] - b[k][1]) for k in common), default=0.0)


def run_planted(args) -> None:
    for n in args.n:
        texts = planted(n, args.seed)
        load_start = _loadavg()
        ours = _kernel(texts, args.threshold)
        row = {
            "run": "planted",
            "n": n,
            "load_start": load_start,
            "kept": sum(ours["kept"]),
            "ours_kernel_s": round(ours["seconds"], 2),
            "stats": ours["stats"],
            # What the O(N^2) reference scores on this input (its kept set is ours: verified).
            "reference_pairs": rouge_verify.reference_pairs(ours["kept"]),
        }
        if args.ref_cost:
            row.update(_reference_cost(texts, ours["kept"], args.ref_cost, args.processes))
        if "rouge" in args.reference:
            t0, cpu0 = time.perf_counter(), _cpu()
            ref, ref_dropped = reference_greedy_parallel(texts, args.threshold, args.processes)
            row["reference_rouge_s"] = round(time.perf_counter() - t0, 1)
            row["reference_rouge_cpu_s"] = round(_cpu() - cpu0, 1)
            row["identical_to_rouge_reference"] = ours["kept"] == ref
            row["identical_survivors"] = ours["dropped"] == ref_dropped
            row["max_abs_score_diff"] = _score_diff(ours["dropped"], ref_dropped)
        if "rapidfuzz" in args.reference:
            t0 = time.perf_counter()
            exact = exact_greedy(ours["tokens"], args.threshold)
            row["exact_greedy_s"] = round(time.perf_counter() - t0, 1)
            row["identical_to_exact_greedy"] = ours["kept"] == exact
        if args.truth:
            t0 = time.perf_counter()
            truth = all_pairs_above(ours["tokens"], args.threshold)
            row["all_pairs_s"] = round(time.perf_counter() - t0, 1)
            found = {(min(a, b), max(a, b)) for a, b in _edges(ours)}
            row["pairs_above"] = len(truth)
            row["recall"] = _recall(found, truth)
            row["found_not_true"] = len(found - truth)
        if args.sample_truth:
            rng = random.Random(args.seed)
            rows = rng.sample(range(n), args.sample_truth)
            t0 = time.perf_counter()
            truth = pairs_above_for(ours["tokens"], rows, args.threshold)
            row["sampled_rows"] = len(rows)
            row["sample_truth_s"] = round(time.perf_counter() - t0, 1)
            found = {(min(a, b), max(a, b)) for a, b in _edges(ours)}
            sel = set(rows)
            found = {p for p in found if p[0] in sel or p[1] in sel}
            row["sampled_pairs_above"] = len(truth)
            row["sampled_recall"] = _recall(found, truth)
        _record(row)


def _reference_cost(texts: list[str], kept: list[bool], count: int, processes: int) -> dict:
    """The reference's cost on this input, from ``count`` of the pairs it would score.

    Pairs are drawn uniformly from those the reference scores (i, and j kept before i) and
    ``rouge_scorer._score_lcs`` is timed on them in CPU seconds; the estimate is tokenising +
    pairs x that cost in CPU seconds, and that divided by the processes of
    ``reference_greedy_parallel`` for the wall time on idle cores (ideal split).
    """
    t0 = time.process_time()
    tokens = rouge_verify.reference_tokens(texts)
    tokenize_s = time.process_time() - t0
    pairs = rouge_verify.sample_reference_pairs(kept, count, seed=1)
    per_pair = rouge_verify.pair_cost_us(tokens, pairs)
    total = rouge_verify.reference_pairs(kept)
    return {
        "ref_cost_sampled_pairs": len(pairs),
        "ref_pair_us": round(per_pair, 2),
        "ref_tokenize_s": round(tokenize_s, 2),
        "reference_estimate_s": round(tokenize_s + total * per_pair * 1e-6 / processes, 1),
        "reference_estimate_cpu_s": round(tokenize_s + total * per_pair * 1e-6, 1),
        "reference_estimate_processes": processes,
    }


def run_verify(args) -> None:
    """The Beam stage's kept set (``beam --keep-output``) checked against rouge_score.

    Every removed record: its named survivor is kept, earlier, and scores above the threshold.
    A random sample of kept records: no earlier kept record scores above it. With ``--exact``,
    all decisions against ``exact_greedy`` on rouge_score's tokens. See ``bench.rouge_verify``.
    """
    samples = args.sample + [args.sample[-1]] * (len(args.n) - len(args.sample))
    for n, k in zip(args.n, samples):
        texts = planted(n, args.seed)
        out = beam_output_dir(n, args.seed)
        beam_run = json.loads((out / "run.json").read_text(encoding="utf-8"))
        load_start = _loadavg()
        kept_ids = [line.strip() for p in out.glob("kept*") for line in p.open()]
        removed_rows = [json.loads(line) for p in out.glob("removed*") for line in p.open()]
        index = {f"p{i}": i for i in range(n)}
        kept = [False] * n
        for rid in kept_ids:
            kept[index[rid]] = True
        removed = [(index[r["id"]], index[r["survivor_id"]], r["similarity"]) for r in removed_rows]
        seen = sorted([index[r] for r in kept_ids] + [i for i, _, _ in removed])
        t0 = time.perf_counter()
        tokens = rouge_verify.reference_tokens(texts)
        removed_check = rouge_verify.check_removed(tokens, kept, removed, args.threshold)
        removed_s = time.perf_counter() - t0
        rng = random.Random(args.seed)
        sample = rng.sample([i for i in range(n) if kept[i]], min(k, sum(kept)))
        kept_check = rouge_verify.check_kept(tokens, kept, sample, args.threshold, args.processes)
        row = {
            "run": "verify",
            "n": n,
            "load_start": load_start,
            "beam_run": {key: beam_run.get(key) for key in ("time", "code", "mode", "wall_s")},
            "every_record_once": seen == list(range(n)),
            "kept": sum(kept),
            "removed_checked": removed_check.checked,
            "removed_ok": removed_check.ok,
            "removed_score_equal": removed_check.score_equal,
            "removed_failures": removed_check.failures,
            "removed_s": round(removed_s, 1),
            "kept_sampled": kept_check.sampled,
            "kept_ok": kept_check.ok,
            "kept_max_f1": kept_check.max_f1,
            "kept_pairs_scored": kept_check.pairs,
            "kept_s": round(kept_check.seconds, 1),
            "kept_failures": kept_check.failures,
            "processes": args.processes,
        }
        row.update(_controls(tokens, kept, removed, args, rng))
        if args.exact:
            t0 = time.perf_counter()
            exact = exact_greedy(tokens, args.threshold)
            row["exact_greedy_s"] = round(time.perf_counter() - t0, 1)
            row["exact_greedy_identical"] = exact == kept
            row["exact_greedy_differences"] = sum(a != b for a, b in zip(exact, kept))
        _record(row)


def _controls(tokens, kept, removed, args, rng: random.Random) -> dict:
    """Negative controls: the checks must fail on wrong decisions.

    ``args.controls`` removed records are flipped to kept (the kept check must reject each),
    and the same number of audit rows get a wrong survivor, a random earlier kept record (the
    removed check must reject nearly all: a random pair rarely scores above the threshold).
    """
    picks = rng.sample(removed, min(args.controls, len(removed)))
    flipped = list(kept)
    for i, _, _ in picks:
        flipped[i] = True
    caught = rouge_verify.check_kept(
        tokens, flipped, [i for i, _, _ in picks], args.threshold, args.processes
    )
    kept_idx = [j for j in range(len(kept)) if kept[j]]
    wrong = []
    for i, s, sim in picks:
        before = kept_idx[: bisect.bisect_left(kept_idx, i)]
        if len(before) > 1:
            wrong.append((i, rng.choice([j for j in before[-1000:] if j != s]), sim))
    rejected = rouge_verify.check_removed(tokens, kept, wrong, args.threshold)
    return {
        "control_flipped": caught.sampled,
        "control_flipped_rejected": caught.sampled - caught.ok,
        "control_wrong_survivor": rejected.checked,
        "control_wrong_survivor_rejected": rejected.checked - rejected.ok,
    }


def run_lsh(args) -> None:
    for n in args.n:
        texts = planted(n, args.seed)
        toks = [rouge.rouge_score_tokens(t) for t in texts]
        truth = all_pairs_above(toks, args.threshold)
        for method in ("prefix", "lsh"):
            t0 = time.perf_counter()
            kept, _, stats = rouge.greedy_filter(toks, args.threshold, method=method)
            secs = time.perf_counter() - t0
            nodes = np.arange(len(toks), dtype=np.uint64)
            batch = rouge.UnitBatch.build(nodes, toks)
            vocab = rouge.Vocabulary.from_counts(*rouge.count_hashes(batch.occ))
            th = rouge.Thresholds.build(args.threshold)
            params = rouge.lsh_params(args.threshold)
            post = (
                rouge.prefix_postings(batch, vocab, th)
                if method == "prefix"
                else rouge.lsh_postings(batch, params)
            )
            u, v, _, _ = rouge.local_join(batch, post, vocab, th)
            found = set(zip(u.tolist(), v.tolist()))
            _record(
                {
                    "run": "lsh",
                    "n": n,
                    "method": method,
                    "lsh": params.__dict__ if method == "lsh" else None,
                    "seconds": round(secs, 2),
                    "stats": stats.__dict__,
                    "pairs_above": len(truth),
                    "recall": _recall(found, truth),
                    "kept": sum(kept),
                }
            )


def run_pair_cost(args) -> None:
    """Reference cost per pair: rouge_scorer.score (Self-Instruct) and _score_lcs (Alpaca)."""
    rouge_scorer, scorer = _scorer()
    texts = planted(20000, args.seed)
    rng = random.Random(1)
    pairs = [(rng.choice(texts), rng.choice(texts)) for _ in range(20000)]
    t0 = time.perf_counter()
    for a, b in pairs:
        scorer.score(a, b)
    score_us = (time.perf_counter() - t0) / len(pairs) * 1e6
    toks = [(scorer._tokenizer.tokenize(a), scorer._tokenizer.tokenize(b)) for a, b in pairs]
    t0 = time.perf_counter()
    for a, b in toks:
        rouge_scorer._score_lcs(a, b)
    lcs_us = (time.perf_counter() - t0) / len(pairs) * 1e6
    _record({"run": "pair_cost", "score_us": round(score_us, 2), "score_lcs_us": round(lcs_us, 2)})


SHARDS = 16


def _records_dir(n: int, seed: int, texts: list[str]) -> Path:
    """The generated set as record dicts in ``SHARDS`` JSONL files (one source file, in order)."""
    from transforms.schema import new_record

    path = WORK / f"rouge_records_{n}_{seed}"
    if path.is_dir():
        return path
    path.mkdir(parents=True)
    files = [(path / f"part-{k:05d}.jsonl").open("w", encoding="utf-8") for k in range(SHARDS)]
    for i, t in enumerate(texts):
        rec = new_record(
            id=f"p{i}",
            source="alpaca",
            source_file="planted.jsonl",
            source_index=i,
            definition=t,
            input="",
            output="",
        )
        files[i * SHARDS // len(texts)].write(json.dumps(rec) + "\n")
    for f in files:
        f.close()
    return path


def run_beam(args) -> None:
    """RougeFilter on the DirectRunner over sharded JSONL files of generated records."""
    for n in args.n:
        texts = planted(n, args.seed)
        path = _records_dir(n, args.seed, texts)
        if args.keep_output:  # for ``verify``: a fixed place, replaced by each run
            out = beam_output_dir(n, args.seed)
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
        else:
            out = Path(tempfile.mkdtemp(prefix="rouge_beam_", dir=WORK))
        load_start = _loadavg()
        cmd = [
            sys.executable,
            "-m",
            "bench.rouge_bench",
            "_beam_child",
            str(path),
            str(out),
            "--mode",
            args.mode,
            "--partitions",
            str(args.partitions),
        ]
        t0, cpu0 = time.perf_counter(), _cpu()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        secs = time.perf_counter() - t0
        cpu_s = _cpu() - cpu0  # the child and the workers it reaped
        if proc.returncode != 0:
            print(proc.stderr[-4000:], file=sys.stderr)
            raise SystemExit(proc.returncode)
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        kept_ids: list[str] = []
        for p in out.glob("kept*"):
            kept_ids.extend(line.strip() for line in p.open())
        removed_ids: list[str] = []
        for p in out.glob("removed*"):
            removed_ids.extend(json.loads(line)["id"] for line in p.open())
        row = {"run": "beam", "n": n, "mode": args.mode, "wall_s": round(secs, 1), **child}
        row["load_start"] = load_start
        row["cpu_s"] = round(cpu_s, 1)
        row["kept_rows"], row["removed_rows"] = len(kept_ids), len(removed_ids)
        row["rows_reconcile"] = sorted(kept_ids + removed_ids) == sorted(f"p{i}" for i in range(n))
        if args.compare:
            ours = _kernel(texts, 0.7)
            expect = {f"p{i}" for i, k in enumerate(ours["kept"]) if k}
            row["identical_to_kernel"] = expect == set(kept_ids)
            row["kernel_only_kept"] = len(expect - set(kept_ids))
            row["beam_only_kept"] = len(set(kept_ids) - expect)
        if args.keep_output:
            row["output"] = str(out)
        elif row.get("identical_to_kernel", True) and row["rows_reconcile"]:
            shutil.rmtree(out)
        else:
            row["outputs_kept_in"] = str(out)
        row = _record(row)
        if args.keep_output:
            (out / "run.json").write_text(json.dumps(row), encoding="utf-8")


def beam_output_dir(n: int, seed: int) -> Path:
    """Where ``beam --keep-output`` leaves the stage's kept ids and removed rows."""
    return WORK / f"rouge_beam_out_{n}_{seed}"


def _read_jsonl(path: str):
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def _beam_child(argv: list[str]) -> None:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from transforms.rouge_config import RougeConfig
    from transforms.rouge_filter import RougeFilter

    parser = argparse.ArgumentParser()
    parser.add_argument("src")
    parser.add_argument("out")
    parser.add_argument("--mode", default="multi_processing")
    parser.add_argument("--partitions", type=int, default=32)
    args = parser.parse_args(argv)
    opts = ["--runner=FnApiRunner"]
    if args.mode == "multi_processing":
        opts += ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    cfg = RougeConfig(num_partitions=args.partitions)
    files = sorted(str(f) for f in Path(args.src).glob("part-*.jsonl"))
    t0 = time.perf_counter()
    p = beam.Pipeline(options=PipelineOptions(opts))
    # Shards through Create + FlatMap, not ReadFromText: see ``runner_check`` (record loss).
    res = (
        p
        | "Shards" >> beam.Create(files)
        | "Spread" >> beam.Reshuffle()
        | "Read" >> beam.FlatMap(_read_jsonl)
        | "Rouge" >> RougeFilter(cfg)
    )
    (
        res["kept"]
        | "Ids" >> beam.Map(lambda r: r["id"])
        | "WriteKept" >> beam.io.WriteToText(args.out + "/kept")
    )
    (
        res["removed"]
        | "Json" >> beam.Map(json.dumps)
        | "WriteRemoved" >> beam.io.WriteToText(args.out + "/removed")
    )
    result = p.run()
    result.wait_until_finish()
    secs = time.perf_counter() - t0
    from apache_beam.metrics.metric import MetricsFilter

    counters: dict[str, int] = {}
    for c in result.metrics().query(MetricsFilter().with_namespace("instructmix.rouge"))[
        "counters"
    ]:
        counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + c.committed
    print(json.dumps({"pipeline_s": round(secs, 1), "counters": counters}))


def _route_check(rec, total):
    """Sends every 7th record through a GroupByKey, the rest straight on (as RougeFilter's
    routing does); the side input only makes the stage wait for a global result.

    A plain function: Beam wraps a callable *object* given to FlatMap in a one-argument
    lambda, so it could not take the side input.
    """
    import apache_beam as beam

    if rec["source_index"] % 7 == 0:
        return [rec]
    return [beam.pvalue.TaggedOutput("direct", rec)]


def _runner_check_once(source: str, files: list[str], single: str) -> dict:
    import glob as globlib

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    out = Path(tempfile.mkdtemp(prefix="rouge_check_", dir=WORK))
    opts = ["--runner=FnApiRunner", "--direct_num_workers=2"]
    opts += ["--direct_running_mode=multi_processing"]
    t0 = time.perf_counter()
    with beam.Pipeline(options=PipelineOptions(opts)) as p:
        if source == "read_from_text":
            recs = p | beam.io.ReadFromText(single) | beam.Map(json.loads)
        else:
            recs = p | beam.Create(files) | beam.Reshuffle() | beam.FlatMap(_read_jsonl)
        total = beam.pvalue.AsSingleton(
            recs | "One" >> beam.Map(lambda r: 1) | beam.CombineGlobally(sum)
        )
        routed = recs | beam.FlatMap(_route_check, total).with_outputs("direct", main="main")
        grouped = (
            routed.main
            | "Key" >> beam.Map(lambda r: (r["id"], r))
            | beam.GroupByKey()
            | "First" >> beam.Map(lambda kv: next(iter(kv[1])))
        )
        (
            (grouped, routed.direct)
            | beam.Flatten()
            | "Id" >> beam.Map(lambda r: r["id"])
            | beam.io.WriteToText(str(out / "ids"))
        )
    lines = 0
    for name in globlib.glob(str(out / "ids*")):
        with open(name, encoding="utf-8") as f:
            lines += sum(1 for _ in f)
    shutil.rmtree(out)
    return {"source": source, "lines": lines, "seconds": round(time.perf_counter() - t0, 1)}


def run_runner_check(args) -> None:
    """Is the multi-process DirectRunner losing records? Same pipeline, two sources.

    Observed earlier on Beam 2.77 (2 cores, 1M records; not recorded as rows, and with an
    earlier form of this check): with ReadFromText, 2 of 5 runs wrote 1.3% and 14% fewer
    records than they read, without any error; with Create(shards) + FlatMap, 0 of 3. Not
    reproduced for bench/results/rouge.md: 0 of 3 runs of each lost a record. RougeFilter is
    not involved (plain Beam transforms).
    """
    n = args.n[0]
    path = _records_dir(n, args.seed, planted(n, args.seed))
    files = sorted(str(f) for f in path.glob("part-*.jsonl"))
    single = WORK / f"rouge_runner_check_{n}.jsonl"
    with single.open("w", encoding="utf-8") as out:
        for f in files:
            out.write(Path(f).read_text(encoding="utf-8"))
    try:
        for _ in range(args.repeat):
            for source in ("read_from_text", "create_shards"):
                load_start = _loadavg()
                row = _runner_check_once(source, files, str(single))
                row["load_start"] = load_start
                _record({"run": "runner_check", "n": n, **row, "lost": n - row["lines"]})
    finally:
        single.unlink()


def run_report(args) -> None:
    from bench.rouge_report import write_report

    print(write_report(RESULTS, stage_hash()))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_beam_child":
        _beam_child(argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what",
        choices=["real", "planted", "beam", "verify", "lsh", "pair-cost", "runner-check", "report"],
    )
    parser.add_argument("--n", type=int, nargs="+", default=[5000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--reference", nargs="*", default=[], choices=["rouge", "rapidfuzz"])
    parser.add_argument("--truth", action="store_true", help="all-pairs truth for recall")
    parser.add_argument("--sample-truth", type=int, default=0, help="rows of sampled truth")
    parser.add_argument("--mode", default="multi_processing")
    parser.add_argument("--partitions", type=int, default=32)
    parser.add_argument("--compare", action="store_true", help="beam: compare with the kernel")
    parser.add_argument(
        "--keep-output", action="store_true", help="beam: keep kept ids and removed rows (verify)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runner-check: runs per source")
    parser.add_argument(
        "--ref-cost", type=int, default=0, help="planted: pairs sampled to time the reference"
    )
    parser.add_argument(
        "--sample", type=int, nargs="+", default=[1000], help="verify: kept decisions per --n"
    )
    parser.add_argument("--exact", action="store_true", help="verify: also exact_greedy")
    parser.add_argument("--controls", type=int, default=10, help="verify: negative controls")
    parser.add_argument("--sets", nargs="*", default=[], help="real: only these sets")
    args = parser.parse_args(argv)
    {
        "real": run_real,
        "planted": run_planted,
        "beam": run_beam,
        "verify": run_verify,
        "lsh": run_lsh,
        "pair-cost": run_pair_cost,
        "runner-check": run_runner_check,
        "report": run_report,
    }[args.what](args)


if __name__ == "__main__":
    main()
