"""Check a kept set decision by decision against ``rouge_score`` itself.

Self-Instruct's greedy keeps ``i`` iff ``max F1(i, j) <= t`` over the instructions ``j < i`` it
kept. A set ``K`` is therefore the reference's output iff, for every ``i``,

    i in K  <=>  max_{j in K, j < i} F1(i, j) <= t

(induction over ``i``: where ``K`` agrees with the reference before ``i``, the reference's pool at
``i`` is ``K ∩ [0, i)``). Each decision can so be checked on its own, without running the
O(N²) loop to the end:

* a removed instruction needs one witness: the kept instruction its audit row names must come
  before it and score above ``t`` (one ``rouge_score`` call; every removed record is checked);
* a kept instruction needs every earlier kept one to score ``<= t`` (``|K ∩ [0, i)|`` calls; a
  random sample is checked, on several processes).

Scores are ``rouge_scorer._score_lcs`` on ``rouge_score``'s own tokenizer: nothing of
``transforms.rouge`` is used here.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from rouge_score import rouge_scorer

# Set in the parent before the pool forks; the workers read them (no pickling of 100k lists).
_TOKENS: list[list[str]] = []
_KEPT: np.ndarray = np.zeros(0, dtype=np.int64)


def reference_tokens(texts: Sequence[str]) -> list[list[str]]:
    """``rouge_score``'s tokens (no stemmer), as Self-Instruct and Alpaca score them."""
    tokenizer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)._tokenizer
    return [tokenizer.tokenize(t) for t in texts]


def _f1(a: list[str], b: list[str]) -> float:
    return rouge_scorer._score_lcs(a, b).fmeasure


@dataclass
class RemovedCheck:
    """Removed records checked against the survivor their audit row names."""

    checked: int = 0
    ok: int = 0  # survivor kept, earlier, and rouge_score F1 > threshold
    score_equal: int = 0  # the reported similarity is rouge_score's F1, bit for bit
    failures: list = field(default_factory=list)  # (i, survivor, reason), first few


def check_removed(
    tokens: Sequence[list[str]],
    kept: Sequence[bool],
    removed: Sequence[tuple[int, int, float]],
    threshold: float = 0.7,
) -> RemovedCheck:
    """Each removed ``(i, survivor, similarity)`` against ``rouge_score``."""
    out = RemovedCheck()
    for i, s, similarity in removed:
        out.checked += 1
        f1 = _f1(tokens[i], tokens[s])
        reason = None
        if kept[i]:
            reason = "also kept"
        elif not kept[s]:
            reason = "survivor not kept"
        elif s >= i:
            reason = "survivor not earlier"
        elif not f1 > threshold:
            reason = f"F1 {f1} <= threshold"
        if reason is None:
            out.ok += 1
        elif len(out.failures) < 10:
            out.failures.append((i, s, reason))
        out.score_equal += f1 == similarity
    return out


def _max_before(i: int) -> tuple[int, float, int, int]:
    """(i, max F1 with a kept j < i, that j or -1, pairs scored)."""
    before = _KEPT[: int(np.searchsorted(_KEPT, i))]
    toks = _TOKENS[i]
    best, best_j = 0.0, -1
    for j in before.tolist():
        f1 = _f1(toks, _TOKENS[j])
        if f1 > best:
            best, best_j = f1, j
    return i, best, best_j, len(before)


@dataclass
class KeptCheck:
    """Sampled kept decisions: every earlier kept instruction scored with ``rouge_score``."""

    sampled: int = 0
    ok: int = 0  # max F1 with earlier kept instructions <= threshold
    max_f1: float = 0.0  # the highest such maximum seen (how close a kept one came)
    pairs: int = 0
    seconds: float = 0.0
    failures: list = field(default_factory=list)  # (i, j, F1), first few


def check_kept(
    tokens: list[list[str]],
    kept: Sequence[bool],
    sample: Sequence[int],
    threshold: float = 0.7,
    processes: int = 2,
) -> KeptCheck:
    """The kept decisions ``sample`` against every earlier kept instruction, on ``processes``."""
    global _TOKENS, _KEPT
    _TOKENS = tokens
    _KEPT = np.flatnonzero(np.asarray(kept, dtype=bool)).astype(np.int64)
    out = KeptCheck()
    t0 = time.perf_counter()
    work = sorted(sample, reverse=True)  # costliest (latest) first: the pool ends together
    try:
        with mp.get_context("fork").Pool(processes) as pool:
            for i, best, j, pairs in pool.imap_unordered(_max_before, work, chunksize=1):
                out.sampled += 1
                out.pairs += pairs
                out.max_f1 = max(out.max_f1, best)
                if kept[i] and best <= threshold:
                    out.ok += 1
                elif len(out.failures) < 10:
                    out.failures.append((i, j, best))
    finally:
        _TOKENS, _KEPT = [], np.zeros(0, dtype=np.int64)
    out.seconds = time.perf_counter() - t0
    return out


def reference_pairs(kept: Sequence[bool]) -> int:
    """Pairs the reference scores on this input: sum over i of |K ∩ [0, i)|."""
    flags = np.asarray(kept, dtype=np.int64)
    before = np.cumsum(flags) - flags
    return int(before.sum())


def sample_reference_pairs(
    kept: Sequence[bool], count: int, seed: int = 0
) -> list[tuple[int, int]]:
    """``count`` pairs (i, j) drawn uniformly from the pairs the reference scores."""
    flags = np.asarray(kept, dtype=np.int64)
    before = np.cumsum(flags) - flags  # |K ∩ [0, i)|
    ends = np.cumsum(before)
    total = int(ends[-1]) if len(ends) else 0
    if total == 0:
        return []
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, total, size=count)
    rows = np.searchsorted(ends, draws, side="right")
    offsets = draws - (ends[rows] - before[rows])
    kept_idx = np.flatnonzero(flags)
    return list(zip(rows.tolist(), kept_idx[offsets].tolist()))


def pair_cost_us(tokens: Sequence[list[str]], pairs: Sequence[tuple[int, int]]) -> float:
    """Mean CPU microseconds of one ``rouge_scorer._score_lcs`` call over ``pairs``.

    CPU time, not wall time: on a shared machine the wall clock also counts other jobs.
    """
    score = rouge_scorer._score_lcs
    t0 = time.process_time()
    for i, j in pairs:
        score(tokens[i], tokens[j])
    return (time.process_time() - t0) / max(len(pairs), 1) * 1e6
