"""ROUGE-L instruction filter kernels: tokens, exact scores, candidates, the greedy decision.

Pure functions over plain Python values and numpy arrays, no Beam: ``transforms/rouge_filter.py``
wraps them. The filter is Self-Instruct's: an instruction is kept only if its ROUGE-L F1 with
every instruction kept before it is <= the threshold (0.7). Done naively that is O(N²) scores;
here it is

1. **tokens** — ``rouge_score_tokens`` (exactly ``rouge_score``'s tokenizer, no stemming) or
   ``unicode_tokens`` (``transforms.text.tokens``: words, and characters for CJK/Thai);
2. **candidates** — pairs that *could* score above the threshold. ``LCS <= multiset overlap``,
   so F1 > t needs overlap >= ``required_lcs(m, n, t)`` (multiset Jaccard > t/(2-t) and length
   ratio > t/(2-t) follow). Two generators over occurrence-indexed unigrams ("the", "the#2", ...
   so that sets are multisets):

   * ``prefix`` (default, exact): with tokens sorted rarest first, two units whose overlap
     reaches ``a`` share their ``l`` rarest common tokens inside their first ``len - a + l``
     tokens. Every unit emits each pair of its non-hapax prefix tokens (``l = 2``) as a key; a
     true pair always meets in at least one key, so recall is 100% by construction, not by
     probability. A positional bound prunes pairs that cannot reach the overlap.
   * ``lsh``: MinHash banding at Jaccard t/(2-t) with (rows, bands) chosen for a miss
     probability below ``max_miss``. Measured in ``bench/results/rouge.md``: at this low
     threshold LSH produces 10-100x more candidates than prefix keys and is kept for comparison.
3. **exact scores** — LCS of each candidate pair (``rapidfuzz`` when installed, else a
   bit-parallel LCS in Python), F1 with ``rouge_score``'s own arithmetic: equal to
   ``rouge_scorer.RougeScorer(["rougeL"]).score(a, b)["rougeL"].fmeasure`` bit for bit;
4. **the greedy** — within each connected group of pairs scoring above the threshold, units in
   the reference's order; a unit is dropped iff a unit already *kept* scores above it
   (``greedy_decisions``). Dropped units suppress nothing. Groups are independent, so the kept
   set equals the O(N²) reference's.

What the compatible tokenizer does to non-Latin text (quotable for the README):
    ``rouge_score`` lower-cases, replaces every character outside ``[a-z0-9]`` by a space and
    splits, so a Hindi, Chinese, Russian or Thai instruction has no tokens at all, and the
    accents of Latin letters split words ("café" → "caf"). ROUGE-L against an empty token list
    is 0 by definition, so in ``rouge_score`` mode every instruction without ASCII letters or
    digits is kept — even exact copies of each other — and cannot suppress anything; mixed text
    is compared on its ASCII words only (numbers, Latin names, code). Those records are kept and
    counted (``kept:empty_tokens``). Use ``tokenizer="unicode"`` for multilingual corpora: words
    for space-delimited scripts, one token per character for Chinese, Japanese and Thai.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from transforms.text import tokens as _unicode_tokens

try:  # optional: ~15x faster LCS for candidate verification (C++, bit-parallel)
    from rapidfuzz.distance import LCSseq as _LCSseq
    from rapidfuzz.process import cpdist as _cpdist
except ImportError:  # pragma: no cover - exercised by forcing ``use_rapidfuzz=False``
    _LCSseq = None
    _cpdist = None

TOKENIZERS = ("rouge_score", "unicode")
CANDIDATE_METHODS = ("prefix", "lsh")

# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------

# rouge_score.tokenize: lower(); [^a-z0-9]+ -> " "; split on \s+; keep ^[a-z0-9]+$. The result
# is exactly the maximal [a-z0-9] runs of the lower-cased text (tested against rouge_score).
_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")


def rouge_score_tokens(text: str) -> list[str]:
    """``rouge_score``'s default tokens (``use_stemmer=False``): ASCII letters and digits only."""
    return _ROUGE_TOKEN.findall(text.lower())


def unicode_tokens(text: str) -> list[str]:
    """Words of space-delimited scripts, single characters of CJK/Thai (``text.tokens``)."""
    return _unicode_tokens(text)


def tokenizer(name: str) -> Callable[[str], list[str]]:
    """The tokenizer called ``name`` (one of ``TOKENIZERS``)."""
    if name == "rouge_score":
        return rouge_score_tokens
    if name == "unicode":
        return unicode_tokens
    raise ValueError(f"unknown tokenizer {name!r}; expected one of {TOKENIZERS}")


# --------------------------------------------------------------------------------------------
# Exact ROUGE-L
# --------------------------------------------------------------------------------------------


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence (bit-parallel, Allison-Dix/Hyyrö)."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    masks: dict = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        u = v & masks.get(tok, 0)
        v = (v + u) | (v - u)
    return len(a) - (v & full).bit_count()


def f1_from_lcs(lcs: int, target_len: int, prediction_len: int) -> float:
    """ROUGE-L F1 with ``rouge_score._score_lcs``'s arithmetic (so equal bit for bit).

    The value is symmetric in the two lengths, bit for bit: ``2*p*r`` and ``p + r`` are exact
    reorderings under IEEE rounding (``2*p`` is exact).
    """
    if target_len == 0 or prediction_len == 0:
        return 0.0
    precision = lcs / prediction_len
    recall = lcs / target_len
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def rouge_l_f1(a: Sequence, b: Sequence) -> float:
    """ROUGE-L F1 of two token sequences."""
    return f1_from_lcs(lcs_length(a, b), len(a), len(b))


def f1_from_lcs_array(lcs: np.ndarray, m: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``f1_from_lcs`` over arrays, with the same IEEE operations in the same order."""
    lcs = np.asarray(lcs, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = lcs / n
        recall = lcs / m
        denom = precision + recall
        f1 = 2 * precision * recall / denom
    return np.where((m > 0) & (n > 0) & (denom > 0), f1, 0.0)


def multiset_jaccard(a: Sequence, b: Sequence) -> float:
    """Jaccard of the token multisets (= set Jaccard of occurrence-indexed tokens)."""
    from collections import Counter

    ca, cb = Counter(a), Counter(b)
    inter = sum((ca & cb).values())
    union = len(a) + len(b) - inter
    return inter / union if union else 0.0


def jaccard_bound(threshold: float) -> float:
    """F1 > t implies multiset Jaccard > t/(2-t) (and length ratio > t/(2-t))."""
    return threshold / (2.0 - threshold)


# --------------------------------------------------------------------------------------------
# How much overlap a pair needs
# --------------------------------------------------------------------------------------------


def required_lcs(m, n, threshold: float) -> np.ndarray:
    """Smallest LCS length whose F1 (float arithmetic above) exceeds ``threshold``.

    Arrays in, array out; ``min(m, n) + 1`` where no LCS can exceed it (the pair is infeasible
    by length alone). A pair can only score above ``threshold`` if its LCS, hence its multiset
    overlap, reaches this value: every bound below is exact for the float comparison used by
    the reference, not only for the real-number formula.
    """
    m = np.asarray(m, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    cap = np.minimum(m, n)
    base = np.floor(threshold * (m + n) / 2.0).astype(np.int64) - 1
    out = cap + 1
    for step in range(4, -1, -1):  # smallest passing candidate wins
        cand = np.maximum(base + step, 0)
        ok = (cand <= cap) & (f1_from_lcs_array(cand, m, n) > threshold)
        out = np.where(ok, cand, out)
    return out


@dataclass(frozen=True)
class Thresholds:
    """Tables of ``required_lcs`` for lengths below ``size``, built once per worker.

    Lengths at or above ``size`` (rare: instructions of 512+ tokens) are computed on demand
    with the same function, so the tables are a cache, never an approximation.
    """

    threshold: float
    size: int
    table: np.ndarray  # [m, n] -> required LCS; > min(m, n) means infeasible
    flat: np.ndarray  # table.ravel() as int32, for one-gather lookups
    # Per length m (only for m whose feasible partners all fit in the table):
    min_overlap: np.ndarray  # least required LCS over all feasible partner lengths
    min_overlap_longer: np.ndarray  # least required LCS over feasible partners n >= m
    max_partner: np.ndarray  # longest feasible partner length

    @classmethod
    def build(cls, threshold: float, size: int = 512) -> Thresholds:
        m = np.arange(size)[:, None]
        n = np.arange(size)[None, :]
        table = required_lcs(m, n, threshold)
        feasible = table <= np.minimum(m, n)
        huge = np.iinfo(np.int32).max
        masked = np.where(feasible, table, huge)
        min_overlap = masked.min(axis=1)
        longer = np.where(n >= m, masked, huge).min(axis=1)
        max_partner = np.where(feasible, n, -1).max(axis=1)
        # Per-length tables are exact only where every feasible partner fits in the table.
        bound = jaccard_bound(threshold)
        fits = int(np.searchsorted(np.ceil(np.arange(size) / bound) + 2 >= size, True))
        min_overlap, longer, max_partner = min_overlap[:fits], longer[:fits], max_partner[:fits]
        return cls(
            threshold,
            size,
            table,
            table.astype(np.int32).ravel(),
            min_overlap,
            longer,
            max_partner,
        )

    def required(self, m: np.ndarray, n: np.ndarray) -> np.ndarray:
        """``required_lcs`` elementwise, from the table where possible."""
        m = np.asarray(m, dtype=np.int64)
        n = np.asarray(n, dtype=np.int64)
        mb, nb = np.broadcast_arrays(m, n)
        small = (mb < self.size) & (nb < self.size)
        if small.all():
            return self.flat[mb * self.size + nb].astype(np.int64)
        out = np.empty(mb.shape, dtype=np.int64)
        out[small] = self.flat[mb[small] * self.size + nb[small]]
        out[~small] = required_lcs(mb[~small], nb[~small], self.threshold)
        return out

    def _per_length(self, m: np.ndarray, table: np.ndarray, compute) -> np.ndarray:
        m = np.asarray(m, dtype=np.int64)
        if m.size == 0 or m.max() < len(table):
            return table[m].astype(np.int64)
        out = np.empty(m.shape, dtype=np.int64)
        small = m < len(table)
        out[small] = table[m[small]]
        big = m[~small]
        distinct = sorted_unique(big)
        out[~small] = compute(distinct)[np.searchsorted(distinct, big)]
        return out

    def _scan(self, m: np.ndarray, lo: np.ndarray, hi: np.ndarray):
        """(least feasible requirement, longest feasible partner) scanning n in [lo, hi]."""
        best = np.full(m.shape, np.iinfo(np.int64).max)
        longest = np.full(m.shape, -1)
        for k in range(int((hi - lo).max()) + 1 if len(m) else 0):
            n = lo + k
            live = n <= hi
            req = required_lcs(m, n, self.threshold)
            ok = live & (req <= np.minimum(m, n))
            best = np.where(ok, np.minimum(best, req), best)
            longest = np.where(ok, np.maximum(longest, n), longest)
        return best, longest

    def _window(self, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bound = jaccard_bound(self.threshold)
        lo = np.maximum(np.floor(m * bound).astype(np.int64) - 2, 1)
        hi = np.ceil(m / bound).astype(np.int64) + 2
        return lo, hi

    def min_partner_overlap(self, m: np.ndarray) -> np.ndarray:
        """Least overlap a unit of length ``m`` needs with any partner (huge when none works)."""
        return self._per_length(
            m, self.min_overlap, lambda big: self._scan(big, *self._window(big))[0]
        )

    def min_longer_partner_overlap(self, m: np.ndarray) -> np.ndarray:
        """Least overlap a unit of length ``m`` needs with a partner at least as long."""

        def compute(big):
            _, hi = self._window(big)
            return self._scan(big, big, hi)[0]

        return self._per_length(m, self.min_overlap_longer, compute)

    def max_partner_length(self, m: np.ndarray) -> np.ndarray:
        """Longest partner length that can still score above the threshold with length ``m``."""
        return self._per_length(
            m, self.max_partner, lambda big: self._scan(big, *self._window(big))[1]
        )


# --------------------------------------------------------------------------------------------
# Token hashes, occurrence tokens, vocabulary
# --------------------------------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a bijection of uint64 that scrambles every bit."""
    with np.errstate(over="ignore"):
        x = np.asarray(x, dtype=np.uint64) + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def token_hash(token: str) -> int:
    """Stable 64-bit hash of one token (BLAKE2b; identical on every worker and runner)."""
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")


class TokenHasher:
    """``token_hash`` with a bounded per-worker memo (instruction vocabularies repeat a lot)."""

    def __init__(self, max_size: int = 1 << 20) -> None:
        self._memo: dict[str, int] = {}
        self._max = max_size

    def __call__(self, token: str) -> int:
        h = self._memo.get(token)
        if h is None:
            h = token_hash(token)
            if len(self._memo) >= self._max:
                self._memo.clear()
            self._memo[token] = h
        return h


@dataclass(frozen=True)
class UnitBatch:
    """Token sequences of many units as flat arrays (one unit = one distinct instruction).

    ``word[offsets[i]:offsets[i+1]]`` are the token hashes of unit ``i`` in text order and
    ``occ`` the hashes of the occurrence-indexed tokens (k-th "the" ≠ (k+1)-th "the"), so that a
    set of ``occ`` values is the unit's token multiset.
    """

    node: np.ndarray  # uint64 unit ids
    offsets: np.ndarray  # int64, len(node) + 1
    word: np.ndarray  # uint64 token hashes
    occ: np.ndarray  # uint64 occurrence-token hashes

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.node)

    @classmethod
    def build(
        cls,
        nodes: Sequence[int],
        token_lists: Sequence[Sequence[str]],
        hasher: Callable[[str], int] | None = None,
    ) -> UnitBatch:
        hasher = hasher or token_hash
        lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(token_lists))
        offsets = np.zeros(len(token_lists) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = [tok for toks in token_lists for tok in toks]
        word = np.fromiter(map(hasher, flat), dtype=np.uint64, count=len(flat))
        occ = occurrence_hashes(word, offsets)
        return cls(np.asarray(nodes, dtype=np.uint64), offsets, word, occ)

    def take(self, idx: np.ndarray) -> UnitBatch:
        """The sub-batch of units ``idx`` (in that order)."""
        idx = np.asarray(idx, dtype=np.int64)
        starts, ends = self.offsets[idx], self.offsets[idx + 1]
        lengths = ends - starts
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = _ranges(starts, lengths)
        return UnitBatch(self.node[idx], offsets, self.word[flat], self.occ[flat])

    @staticmethod
    def concat(batches: Sequence[UnitBatch]) -> UnitBatch:
        batches = [b for b in batches if len(b)]
        if not batches:
            return UnitBatch.empty()
        lengths = np.concatenate([b.lengths for b in batches])
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return UnitBatch(
            np.concatenate([b.node for b in batches]),
            offsets,
            np.concatenate([b.word for b in batches]),
            np.concatenate([b.occ for b in batches]),
        )

    @staticmethod
    def empty() -> UnitBatch:
        z = np.zeros(0, dtype=np.uint64)
        return UnitBatch(z, np.zeros(1, dtype=np.int64), z, z)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + l)`` for every (s, l)."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    run_start = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + (np.arange(total) - run_start)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting (numpy 2.x's hash-based unique is far slower on big arrays)."""
    v = np.sort(np.asarray(values))
    if len(v) == 0:
        return v
    return v[np.r_[True, v[1:] != v[:-1]]]


def sorted_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, how often each occurs)."""
    v = np.sort(np.asarray(values))
    if len(v) == 0:
        return v, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
    return v[starts], np.diff(np.r_[starts, len(v)]).astype(np.int64)


def occurrence_hashes(word: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Hash of (token, k) for the k-th occurrence of each token within its unit."""
    n = len(word)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    unit = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    order = np.lexsort((np.arange(n), word, unit))  # by unit, token, position
    w, u = word[order], unit[order]
    new_run = np.ones(n, dtype=bool)
    new_run[1:] = (w[1:] != w[:-1]) | (u[1:] != u[:-1])
    run_id = np.cumsum(new_run) - 1
    run_start = np.flatnonzero(new_run)
    k = np.arange(n) - run_start[run_id] + 1  # 1-based occurrence number
    occ = np.empty(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        occ[order] = mix64(w ^ (k.astype(np.uint64) * _GOLDEN))
    return occ


def first_occurrence_hash(word: np.ndarray) -> np.ndarray:
    """The occurrence hash of (token, 1): the code of the token itself in the vocabulary."""
    with np.errstate(over="ignore"):
        return mix64(np.asarray(word, dtype=np.uint64) ^ _GOLDEN)


def count_hashes(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique hashes, counts) of one batch: a partial vocabulary."""
    return sorted_counts(np.asarray(hashes, dtype=np.uint64))


def merge_counts(parts: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Sum partial vocabularies."""
    parts = list(parts)
    if not parts:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    h = np.concatenate([p[0] for p in parts])
    c = np.concatenate([p[1] for p in parts])
    order = np.argsort(h, kind="stable")
    h, c = h[order], c[order]
    if len(h) == 0:
        return h, c
    starts = np.flatnonzero(np.r_[True, h[1:] != h[:-1]])
    return h[starts], np.add.reduceat(c, starts).astype(np.int64)


@dataclass(frozen=True)
class Vocabulary:
    """Occurrence tokens present in >= 2 units, ranked rarest first.

    Tokens seen in a single unit ("hapax") are left out: no other unit can share them, so they
    never make a candidate and never match in an LCS; ``rank`` returns -1 for them.
    """

    hashes: np.ndarray  # sorted uint64
    ranks: np.ndarray  # int64 rank by (count, hash), 0 = rarest

    @classmethod
    def from_counts(cls, hashes: np.ndarray, counts: np.ndarray) -> Vocabulary:
        keep = counts >= 2
        h, c = hashes[keep], counts[keep]
        order = np.lexsort((h, c))
        ranks = np.empty(len(h), dtype=np.int64)
        ranks[order] = np.arange(len(h))
        return cls(h, ranks)

    def rank(self, query: np.ndarray) -> np.ndarray:
        query = np.asarray(query, dtype=np.uint64)
        if len(self.hashes) == 0:
            return np.full(query.shape, -1, dtype=np.int64)
        idx = np.searchsorted(self.hashes, query)
        idx_c = np.minimum(idx, len(self.hashes) - 1)
        found = self.hashes[idx_c] == query
        return np.where(found, self.ranks[idx_c], -1)

    def __len__(self) -> int:
        return len(self.hashes)


# --------------------------------------------------------------------------------------------
# Candidate keys ("postings")
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Postings:
    """One row per (key, unit): two units sharing a key are a candidate pair.

    ``pos`` is the position (in the unit's rarest-first order) of the key's last token, used by
    the positional bound; -1 when the key carries no position (LSH). ``part`` is the
    partitioning value (the key's first token for prefix keys, the key itself for LSH).
    """

    key: np.ndarray  # uint64
    unit: np.ndarray  # int64 index into the UnitBatch
    pos: np.ndarray  # int32
    part: np.ndarray  # uint64

    def __len__(self) -> int:
        return len(self.key)

    def take(self, idx: np.ndarray) -> Postings:
        return Postings(self.key[idx], self.unit[idx], self.pos[idx], self.part[idx])


def sorted_ranks(batch: UnitBatch, vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, occurrence-token ranks sorted rarest first (hapax = -1 first) and positions.

    Returns ``(ranks, unit_of)`` in the sorted layout (same offsets as the batch).
    """
    ranks = vocab.rank(batch.occ)
    unit = np.repeat(np.arange(len(batch)), batch.lengths)
    order = np.lexsort((ranks, unit))
    return ranks[order], unit[order]


def prefix_postings(
    batch: UnitBatch, vocab: Vocabulary, thresholds: Thresholds, ell: int = 2
) -> Postings:
    """Keys = pairs (ell=2) or single tokens (ell=1) of non-hapax tokens in each unit's prefix.

    Prefix length ``m - min_partner_overlap(m) + ell``: if two units' overlap reaches
    ``a >= ell``, their ``ell`` rarest common tokens lie within both prefixes (rarest-first
    order is global), so every pair that can score above the threshold shares at least one key.
    Pairs that need a single common token (``a = 1``: tiny units) get single-token keys.
    """
    if ell not in (1, 2):
        raise ValueError(f"ell must be 1 or 2, got {ell}")
    lengths = batch.lengths
    ranks, unit = sorted_ranks(batch, vocab)
    pos = np.arange(len(ranks)) - np.repeat(batch.offsets[:-1], lengths)
    alpha = thresholds.min_partner_overlap(lengths)
    feasible = alpha <= lengths
    plen = np.where(feasible, np.minimum(lengths, lengths - alpha + ell), 0)
    sel = (pos < plen[unit]) & (ranks >= 0)
    r, u, p = ranks[sel], unit[sel], pos[sel].astype(np.int32)
    if ell == 1:
        key = r.astype(np.uint64)
        return Postings(key, u.astype(np.int64), p, key)
    counts = np.bincount(u, minlength=len(batch))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    left, right = pairs_within_groups(starts, counts)
    a, b = r[left].astype(np.uint64), r[right].astype(np.uint64)  # a < b: rarest first
    key = (a << np.uint64(32)) | b
    pairs = Postings(key, u[left].astype(np.int64), p[right], a)
    # Units so short that one common token can suffice (at t = 0.7: single tokens, which pair
    # only with themselves) also get single-token keys, in a key space of their own.
    tiny = (alpha[unit] < 2) & feasible[unit] & (ranks >= 0)  # prefix m - 1 + 1: all tokens
    if not tiny.any():
        return pairs
    single = ranks[tiny].astype(np.uint64)
    return Postings(
        np.concatenate([pairs.key, single | np.uint64(1 << 63)]),
        np.concatenate([pairs.unit, unit[tiny].astype(np.int64)]),
        np.concatenate([pairs.pos, np.full(len(single), -1, dtype=np.int32)]),
        np.concatenate([pairs.part, single]),
    )


def pairs_within_groups(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs (i, j), i < j, inside each contiguous group [start, start + size)."""
    starts = np.asarray(starts, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    keep = sizes >= 2
    starts, sizes = starts[keep], sizes[keep]
    if len(sizes) == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z
    elem = _ranges(starts, sizes)  # every element of every group
    ends = np.repeat(starts + sizes, sizes)
    partners = ends - elem - 1  # elements after it in its group
    left = np.repeat(elem, partners)
    run_start = np.repeat(np.cumsum(partners) - partners, partners)
    right = left + 1 + (np.arange(len(left)) - run_start)
    return left, right


@dataclass(frozen=True)
class LshParams:
    rows: int
    bands: int
    seed: int = 1

    def miss_probability(self, jaccard: float) -> float:
        return (1.0 - jaccard**self.rows) ** self.bands


def lsh_params(
    threshold: float,
    max_miss: float = 1e-6,
    max_hashes: int = 1024,
    noise_jaccard: float = 0.25,
) -> LshParams:
    """Banding whose miss probability at Jaccard t/(2-t) is <= ``max_miss``, with at most
    ``max_hashes`` hash functions, and the fewest false candidates at ``noise_jaccard`` (the
    overlap of unrelated short instructions sharing function words). At t = 0.7 and 1e-6:
    4 rows x 158 bands; a pair at Jaccard 0.25 still collides with probability 0.46.
    """
    j = jaccard_bound(threshold)
    best = None
    for rows in range(1, 32):
        bands = math.ceil(math.log(max_miss) / math.log1p(-(j**rows)))
        if rows * bands > max_hashes:
            break
        noise = 1.0 - (1.0 - noise_jaccard**rows) ** bands
        if best is None or noise < best[0]:
            best = (noise, rows, bands)
    if best is None:
        raise ValueError(f"no banding reaches miss {max_miss} with {max_hashes} hashes")
    return LshParams(rows=best[1], bands=best[2])


def minhash_signatures(batch: UnitBatch, num_perm: int, seed: int = 1) -> np.ndarray:
    """(units x num_perm) uint64 MinHash of each unit's occurrence-token set (empty -> max)."""
    rng = np.random.default_rng(seed)
    salts = rng.integers(0, np.iinfo(np.int64).max, size=num_perm, dtype=np.int64).astype(np.uint64)
    out = np.full((len(batch), num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
    if not (batch.lengths > 0).any():
        return out
    block = max(1, (1 << 22) // max(num_perm, 1))  # tokens per block: ~32 MB of uint64
    for lo in range(0, len(batch.occ), block):
        hi = min(lo + block, len(batch.occ))
        h = mix64(batch.occ[lo:hi, None] ^ salts[None, :])
        unit = np.searchsorted(batch.offsets, np.arange(lo, hi), side="right") - 1
        cut = np.flatnonzero(np.r_[True, unit[1:] != unit[:-1]])
        mins = np.minimum.reduceat(h, cut, axis=0)
        np.minimum.at(out, unit[cut], mins)
    return out


def lsh_postings(batch: UnitBatch, params: LshParams) -> Postings:
    """One key per (unit, band): the hash of the band's rows of the MinHash signature."""
    sig = minhash_signatures(batch, params.rows * params.bands, params.seed)
    keep = np.flatnonzero(batch.lengths >= 2)  # a one-token unit has no partner (see README)
    sig = sig[keep].reshape(len(keep), params.bands, params.rows)
    key = np.zeros((len(keep), params.bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for r in range(params.rows):
            key = mix64(key ^ sig[:, :, r])
        key = mix64(key ^ np.arange(params.bands, dtype=np.uint64)[None, :])
    unit = np.repeat(keep, params.bands)
    key = key.reshape(-1)
    pos = np.full(len(key), -1, dtype=np.int32)
    return Postings(key, unit.astype(np.int64), pos, key)


# --------------------------------------------------------------------------------------------
# Candidate pairs and verification
# --------------------------------------------------------------------------------------------


def candidate_pairs(
    postings: Postings,
    lengths: np.ndarray,
    thresholds: Thresholds,
    ell: int = 2,
    max_chunk: int = 1 << 22,
) -> tuple[np.ndarray, np.ndarray]:
    """Unit pairs (i < j) sharing a key and passing the length and positional bounds.

    In the group of key K, if K holds the ``ell`` rarest common tokens of i and j, their overlap
    is at most ``ell + min(m_i - 1 - pos_i, m_j - 1 - pos_j)``. A pair pruned in a group where K
    is not its rarest common key is still found in that rarest one, so pruning is safe.

    Members of a group are sorted by length and only pairs whose shorter member has the capacity
    to meet a partner at least as long, within the feasible length window, are enumerated: most
    pruned pairs are never materialised.
    """
    if len(postings) == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z
    # Drop keys held by one unit (most of them), then sort members by (key group, length).
    order = np.argsort(postings.key)
    key = postings.key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    sizes = np.diff(np.r_[starts, len(key)])
    shared = sizes >= 2
    if not shared.any():
        z = np.zeros(0, dtype=np.int64)
        return z, z
    order = order[np.repeat(shared, sizes)]
    group = np.repeat(np.arange(int(shared.sum())), sizes[shared])
    unit = postings.unit[order]
    m = np.asarray(lengths, dtype=np.int64)[unit]
    width = int(m.max()) + 2
    composite = group * width + m
    by_len = np.argsort(composite)
    composite, unit, m = composite[by_len], unit[by_len], m[by_len]
    pos = postings.pos[order[by_len]].astype(np.int64)
    cap = np.where(pos < 0, np.iinfo(np.int32).max, m - 1 - pos + ell)  # overlap still reachable
    group = composite // width
    group_end = np.searchsorted(group, group, side="right")
    # Last member (by length) of the group a member may pair with as the shorter side.
    limit = group * width + np.minimum(thresholds.max_partner_length(m), width - 1)
    hi = np.minimum(np.searchsorted(composite, limit, side="right"), group_end)
    eligible = cap >= thresholds.min_longer_partner_overlap(m)
    n_post = len(unit)
    partners = np.where(eligible, np.maximum(hi - np.arange(n_post) - 1, 0), 0)
    cum = np.cumsum(partners)
    out_l: list[np.ndarray] = []
    out_r: list[np.ndarray] = []
    lo = 0
    while lo < n_post:
        base = cum[lo - 1] if lo else 0
        stop = int(np.searchsorted(cum, base + max_chunk, side="right"))
        stop = min(max(stop, lo + 1), n_post)
        counts = partners[lo:stop]
        total = int(counts.sum())
        if total:
            left = np.repeat(np.arange(lo, stop), counts)
            run_start = np.repeat(np.cumsum(counts) - counts, counts)
            right = left + 1 + (np.arange(total) - run_start)
            req = thresholds.required(m[left], m[right])
            ok = (np.minimum(cap[left], cap[right]) >= req) & (req <= m[left])
            ui, uj = unit[left[ok]], unit[right[ok]]
            diff = ui != uj
            ui, uj = ui[diff], uj[diff]
            out_l.append(np.minimum(ui, uj))
            out_r.append(np.maximum(ui, uj))
        lo = stop
    if not out_l:
        z = np.zeros(0, dtype=np.int64)
        return z, z
    packed = sorted_unique((np.concatenate(out_l) << 32) | np.concatenate(out_r))
    return packed >> 32, packed & 0xFFFFFFFF


def lcs_strings(batch: UnitBatch, vocab: Vocabulary) -> list:
    """Each unit's tokens as one code per token, hapax tokens removed, ready for LCS.

    A hapax token occurs in no other unit, so removing it leaves every LCS between two units
    unchanged (lengths for F1 are still the full token counts). Codes are vocabulary ranks; as
    characters of a ``str`` when they fit in Unicode (fast C comparisons), else lists of ints.
    """
    code = vocab.rank(first_occurrence_hash(batch.word))
    shared = code >= 0
    offsets = np.r_[0, np.cumsum(shared)][batch.offsets]  # shared tokens before each unit
    code = code[shared]
    bounds = offsets.tolist()
    if len(vocab) < 0x10FFFF - 0x800:
        code = np.where(code >= 0xD800, code + 0x800, code)  # skip surrogates
        text = "".join(map(chr, code.tolist()))
        return [text[bounds[i] : bounds[i + 1]] for i in range(len(batch))]
    as_int = code.tolist()  # pragma: no cover - vocabularies beyond 1.1M tokens
    return [as_int[bounds[i] : bounds[i + 1]] for i in range(len(batch))]  # pragma: no cover


def lcs_many(left: Sequence, right: Sequence, use_rapidfuzz: bool = True) -> np.ndarray:
    """LCS length of each pair ``(left[k], right[k])``."""
    if not len(left):
        return np.zeros(0, dtype=np.int64)
    if use_rapidfuzz and _cpdist is not None:
        return _cpdist(left, right, scorer=_LCSseq.similarity, dtype=np.int32).astype(np.int64)
    return np.fromiter(
        (lcs_length(a, b) for a, b in zip(left, right)), dtype=np.int64, count=len(left)
    )


def verify_pairs(
    left: np.ndarray,
    right: np.ndarray,
    strings: Sequence,
    lengths: np.ndarray,
    threshold: float,
    use_rapidfuzz: bool = True,
    chunk: int = 1 << 20,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ROUGE-L F1 of candidate pairs; returns only the pairs scoring above threshold."""
    keep_l, keep_r, keep_s = [], [], []
    for lo in range(0, len(left), chunk):
        li, ri = left[lo : lo + chunk], right[lo : lo + chunk]
        a = [strings[i] for i in li.tolist()]
        b = [strings[j] for j in ri.tolist()]
        lcs = lcs_many(a, b, use_rapidfuzz)
        score = f1_from_lcs_array(lcs, lengths[li], lengths[ri])
        hit = score > threshold
        keep_l.append(li[hit])
        keep_r.append(ri[hit])
        keep_s.append(score[hit])
    if not keep_l:
        z = np.zeros(0, dtype=np.int64)
        return z, z, np.zeros(0)
    return np.concatenate(keep_l), np.concatenate(keep_r), np.concatenate(keep_s)


@dataclass(frozen=True)
class JoinStats:
    """What one local join did (feeds Beam counters and the benchmark)."""

    units: int = 0
    postings: int = 0
    candidates: int = 0
    edges: int = 0


def local_join(
    batch: UnitBatch,
    postings: Postings,
    vocab: Vocabulary,
    thresholds: Thresholds,
    ell: int = 2,
    use_rapidfuzz: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, JoinStats]:
    """Edges (node_u < node_v, score > threshold) among the units of ``batch`` via ``postings``."""
    lengths = batch.lengths
    left, right = candidate_pairs(postings, lengths, thresholds, ell)
    touched = sorted_unique(np.concatenate([left, right]))
    strings: list = [""] * len(batch)
    if len(touched):
        sub = batch.take(touched)
        for i, s in zip(touched.tolist(), lcs_strings(sub, vocab)):
            strings[i] = s
    li, ri, score = verify_pairs(left, right, strings, lengths, thresholds.threshold, use_rapidfuzz)
    u, v = batch.node[li], batch.node[ri]
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    stats = JoinStats(len(batch), len(postings), len(left), len(li))
    return lo, hi, score, stats


# --------------------------------------------------------------------------------------------
# The reference's decisions, component by component
# --------------------------------------------------------------------------------------------


def greedy_decisions(
    order: dict, edges: Iterable[tuple[object, object, float]]
) -> dict[object, tuple[object, float]]:
    """Self-Instruct's greedy on a similarity graph: ``{dropped: (survivor, score)}``.

    ``order`` maps every node of the graph to its sort key (the reference's order; keys must be
    distinct); ``edges`` are the pairs scoring above the threshold (duplicates allowed). Nodes
    are visited in order; a node is dropped iff one of its neighbours visited earlier was *kept*
    — an instruction dropped earlier suppresses nothing, exactly as in the reference loop, which
    compares only with the kept pool. The survivor named is the kept earlier neighbour with the
    highest score (ties: the earliest). Nodes without edges are kept and need not appear.
    """
    edges = list(edges)
    nodes = sorted({x for u, v, _ in edges for x in (u, v)}, key=order.__getitem__)
    rank = {node: i for i, node in enumerate(nodes)}
    ru = np.fromiter((rank[u] for u, _, _ in edges), dtype=np.int64, count=len(edges))
    rv = np.fromiter((rank[v] for _, v, _ in edges), dtype=np.int64, count=len(edges))
    score = np.fromiter((s for _, _, s in edges), dtype=np.float64, count=len(edges))
    survivor, best = greedy_ranks(ru, rv, score, len(nodes))
    return {nodes[i]: (nodes[survivor[i]], float(best[i])) for i in np.flatnonzero(survivor >= 0)}


def greedy_ranks(
    a: np.ndarray, b: np.ndarray, score: np.ndarray, n_nodes: int
) -> tuple[np.ndarray, np.ndarray]:
    """The greedy over nodes 0..n-1 visited in index order; edges (a, b, score) undirected.

    Returns ``(survivor, score)`` per node: survivor -1 for kept nodes, else the index of the
    kept earlier neighbour with the highest score (ties: lowest index). One pass over the edges,
    oriented earlier → later and sorted by the later end.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    early, late = np.minimum(a, b), np.maximum(a, b)
    keep = early != late
    early, late, score = early[keep], late[keep], np.asarray(score, dtype=np.float64)[keep]
    order = np.lexsort((early, late))
    early_l = early[order].tolist()
    late_l = late[order].tolist()
    score_l = score[order].tolist()
    kept = bytearray(b"\x01") * n_nodes
    survivor = [-1] * n_nodes
    best_score = [0.0] * n_nodes
    k, n_edges = 0, len(late_l)
    while k < n_edges:
        node = late_l[k]
        best, best_s = -1, -1.0
        while k < n_edges and late_l[k] == node:
            other = early_l[k]
            if kept[other] and score_l[k] > best_s:  # ascending ``other``: ties keep the earliest
                best, best_s = other, score_l[k]
            k += 1
        if best >= 0:
            kept[node] = 0
            survivor[node] = best
            best_score[node] = best_s
    return np.asarray(survivor, dtype=np.int64), np.asarray(best_score, dtype=np.float64)


def greedy_filter(
    token_lists: Sequence[Sequence[str]],
    threshold: float = 0.7,
    *,
    method: str = "prefix",
    lsh: LshParams | None = None,
    use_rapidfuzz: bool = True,
) -> tuple[list[bool], dict[int, tuple[int, float]], JoinStats]:
    """The whole filter in one process, in list order: (kept flags, {dropped: (survivor, F1)}).

    Same kernels and decisions as the Beam transform; used by tests and the benchmark.
    """
    nodes = np.arange(len(token_lists), dtype=np.uint64)
    batch = UnitBatch.build(nodes, token_lists, TokenHasher())
    vocab = Vocabulary.from_counts(*count_hashes(batch.occ))
    thresholds = Thresholds.build(threshold)
    if method == "prefix":
        postings = prefix_postings(batch, vocab, thresholds, ell=2)
    elif method == "lsh":
        postings = lsh_postings(batch, lsh or lsh_params(threshold))
    else:
        raise ValueError(f"unknown candidate method {method!r}")
    u, v, score, stats = local_join(batch, postings, vocab, thresholds, 2, use_rapidfuzz)
    edges = zip(u.tolist(), v.tolist(), score.tolist())
    nodes_in = set(u.tolist()) | set(v.tolist())
    dropped = greedy_decisions({n: n for n in nodes_in}, edges)
    kept = [True] * len(token_lists)
    for node in dropped:
        kept[node] = False
    return kept, dropped, stats


# --------------------------------------------------------------------------------------------
# Connected components (kernels of the distributed large-star / small-star algorithm)
# --------------------------------------------------------------------------------------------


def star_step(src: np.ndarray, dst: np.ndarray, large: bool) -> tuple[np.ndarray, np.ndarray]:
    """One large-star or small-star step (Kiveris et al., 2014) over directed adjacency rows.

    ``(src, dst)`` must hold, for every ``src`` present, *all* its neighbours (both directions
    of each undirected edge are rows). Returns undirected edges ``(a, b)`` with a > b: large-star
    links every larger neighbour of u to m(u) = min(N(u) ∪ {u}); small-star links u and its
    smaller neighbours to min({u} ∪ smaller neighbours). Both preserve connectivity and
    converge to stars centred on each component's minimum.
    """
    if len(src) == 0:
        z = np.zeros(0, dtype=np.uint64)
        return z, z
    order = np.lexsort((dst, src))
    s, d = src[order], dst[order]
    if not large:
        keep = d < s
        s, d = s[keep], d[keep]
        if len(s) == 0:
            z = np.zeros(0, dtype=np.uint64)
            return z, z
    cut = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    node = s[cut]
    mins = np.minimum(np.minimum.reduceat(d, cut), node)
    m = np.repeat(mins, np.diff(np.r_[cut, len(s)]))
    if large:
        sel = d > s
        a, b = d[sel], m[sel]
    else:
        a = np.concatenate([d, node])
        b = np.concatenate([m, mins])
    keep = a != b
    a, b = a[keep], b[keep]
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    return unique_edges(hi, lo)


def unique_edges(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (a, b) pairs of uint64 node ids, sorted by (a, b)."""
    a = np.asarray(a, dtype=np.uint64)
    b = np.asarray(b, dtype=np.uint64)
    if len(a) == 0:
        return a, b
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    keep = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]
    return a[keep], b[keep]


def star_labels(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per node of the adjacency rows: (node, min of closed neighbourhood, degree)."""
    if len(src) == 0:
        z = np.zeros(0, dtype=np.uint64)
        return z, z, np.zeros(0, dtype=np.int64)
    order = np.argsort(src, kind="stable")
    s, d = src[order], dst[order]
    cut = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    node = s[cut]
    label = np.minimum(np.minimum.reduceat(d, cut), node)
    degree = np.diff(np.r_[cut, len(s)])
    return node, label, degree


def local_components(
    u: np.ndarray, v: np.ndarray, max_rounds: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """(node, component minimum) for every node of an edge list, on one worker (numpy).

    The same large-star / small-star rounds as the distributed version, until every node is a
    star centre or a one-neighbour leaf; union-find if that takes more than ``max_rounds``.
    """
    a, b = unique_edges(np.maximum(u, v), np.minimum(u, v))
    keep = a != b
    a, b = a[keep], b[keep]
    for _ in range(max_rounds):
        src, dst = np.concatenate([a, b]), np.concatenate([b, a])
        node, label, degree = star_labels(src, dst)
        if not ((label != node) & (degree > 1)).any():
            return node, label
        a, b = star_step(src, dst, large=True)
        a, b = star_step(np.concatenate([a, b]), np.concatenate([b, a]), large=False)
    labels = union_find_labels(a.tolist(), b.tolist())  # pragma: no cover - pathological
    node = np.fromiter(labels, dtype=np.uint64, count=len(labels))
    return node, np.fromiter(labels.values(), dtype=np.uint64, count=len(labels))


def union_find_labels(u: Iterable, v: Iterable) -> dict:
    """Component label (the minimum node) of every node in the edge list; plain Python."""
    parent: dict = {}

    def find(x):
        parent.setdefault(x, x)
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for a, b in zip(u, v):
        ra, rb = find(a), find(b)
        if ra != rb:
            if rb < ra:
                ra, rb = rb, ra
            parent[rb] = ra
    return {x: find(x) for x in list(parent)}
