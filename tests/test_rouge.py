"""Kernels of the ROUGE-L filter against rouge_score and brute force (no Beam here)."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer, tokenize

from bench.rouge_bench import all_pairs_above, reference_greedy
from transforms import rouge

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

# Text that stresses the tokenizer: ASCII, Latin-1, ligatures, Turkish I, Kelvin sign, CJK,
# Devanagari, digits and punctuation.
_ALPHABET = st.sampled_from(
    list("abcXYZ 019_-.,!?\n\tçéßİıK\u212a\ufb01中文हिंदी  ") + ["ab", "the "]
)
TEXT = st.lists(_ALPHABET, max_size=40).map("".join)
TOKENS = st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f"]), max_size=14)


def _reference_f1(a: str, b: str) -> float:
    return SCORER.score(a, b)["rougeL"].fmeasure


def _load(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def real(shared_data) -> dict[str, list[str]]:
    alpaca = _load(shared_data / "alpaca/en/alpaca_data-0-3252.json")
    return {
        "seeds": [r["instruction"] for r in _load(shared_data / "self_instruct/seed_tasks.jsonl")],
        "dolly": [
            r["instruction"] for r in _load(shared_data / "dolly/databricks-dolly-15k.first9.jsonl")
        ],
        "alpaca": [r["instruction"] for r in alpaca],
        "alpaca_with_input": [
            r["instruction"] + ("\n" + r["input"] if r["input"] else "") for r in alpaca
        ],
        "alpaca_zh": [
            r["instruction"] for r in _load(shared_data / "alpaca/zh/alpaca_data-0-3252-zh.json")
        ],
    }


# ------------------------------------------------------------------------------------------
# Tokens and scores equal rouge_score's
# ------------------------------------------------------------------------------------------


@given(TEXT)
def test_rouge_score_tokens_equal_the_reference_tokenizer(text):
    assert rouge.rouge_score_tokens(text) == tokenize.tokenize(text, None)


def test_compatible_tokens_drop_non_latin_text_and_unicode_tokens_keep_it():
    assert rouge.rouge_score_tokens("写一首关于秋天的诗") == []
    assert rouge.rouge_score_tokens("एक कविता लिखें") == []
    assert rouge.rouge_score_tokens("Café au lait, 2 cups") == ["caf", "au", "lait", "2", "cups"]
    assert rouge.unicode_tokens("写一首诗") == ["写", "一", "首", "诗"]
    assert rouge.unicode_tokens("एक कविता लिखें") == ["एक", "कविता", "लिखें"]
    assert rouge.unicode_tokens("Café au lait") == ["café", "au", "lait"]


@given(TEXT, TEXT)
@settings(max_examples=300)
def test_f1_equals_rouge_scorer_bit_for_bit_and_is_symmetric(a, b):
    ta, tb = rouge.rouge_score_tokens(a), rouge.rouge_score_tokens(b)
    assert rouge.rouge_l_f1(ta, tb) == _reference_f1(a, b)
    assert rouge.rouge_l_f1(tb, ta) == rouge.rouge_l_f1(ta, tb)


@given(TOKENS, TOKENS)
def test_bit_parallel_lcs_equals_the_dynamic_programme(a, b):
    expected = rouge_scorer._lcs_table(a, b)[-1][-1] if a and b else 0
    assert rouge.lcs_length(a, b) == expected
    assert rouge.lcs_many([a], [b], use_rapidfuzz=True)[0] == expected
    assert rouge.lcs_many([a], [b], use_rapidfuzz=False)[0] == expected


def test_array_f1_uses_the_same_arithmetic():
    rng = np.random.default_rng(0)
    m = rng.integers(0, 80, 5000)
    n = rng.integers(0, 80, 5000)
    lcs = np.minimum(rng.integers(0, 80, 5000), np.minimum(m, n))
    arr = rouge.f1_from_lcs_array(lcs, m, n)
    assert arr.tolist() == [rouge.f1_from_lcs(a, b, c) for a, b, c in zip(lcs, m, n)]


@given(TOKENS, TOKENS)
def test_f1_above_threshold_implies_the_jaccard_and_length_bounds(a, b):
    t = 0.7
    if rouge.rouge_l_f1(a, b) > t:
        bound = rouge.jaccard_bound(t)
        assert rouge.multiset_jaccard(a, b) > bound
        assert min(len(a), len(b)) / max(len(a), len(b)) > bound


@pytest.mark.parametrize("t", [0.5, 0.7, 0.75, 0.9])
def test_required_lcs_and_length_bounds_are_exact(t):
    th = rouge.Thresholds.build(t, size=24)  # small table: lengths >= 24 use the fallback
    m = np.arange(60)[:, None]
    n = np.arange(200)[None, :]
    brute = np.full((60, 200), -1)
    for k in range(60, -1, -1):  # least k whose float F1 exceeds t, as rouge_score computes it
        passes = (k <= np.minimum(m, n)) & (rouge.f1_from_lcs_array(k, m, n) > t)
        brute = np.where(passes, k, brute)
    brute = np.where(brute < 0, np.minimum(m, n) + 1, brute)
    got = th.required(np.broadcast_to(m, brute.shape), np.broadcast_to(n, brute.shape))
    assert (got == brute).all()
    feasible = brute <= np.minimum(m, n)
    for length in range(1, 40):
        ok = feasible[length]
        if not ok.any():
            continue
        lengths = np.array([length])
        assert th.min_partner_overlap(lengths)[0] == brute[length][ok].min()
        longer = ok & (np.arange(200) >= length)
        assert th.min_longer_partner_overlap(lengths)[0] == brute[length][longer].min()
        assert th.max_partner_length(lengths)[0] == np.flatnonzero(ok).max()


# ------------------------------------------------------------------------------------------
# Vocabulary and occurrence tokens
# ------------------------------------------------------------------------------------------


def test_occurrence_tokens_make_multisets_and_hapax_have_no_rank():
    batch = rouge.UnitBatch.build([0, 1, 2], [["a", "b", "a"], ["a", "a", "c"], ["b"]])
    occ = batch.occ.tolist()
    assert occ[0] == occ[3] and occ[2] == occ[4]  # a#1, a#2 equal across units
    assert occ[0] != occ[2]  # a#1 != a#2
    vocab = rouge.Vocabulary.from_counts(*rouge.count_hashes(batch.occ))
    ranks = vocab.rank(batch.occ).tolist()
    assert ranks[5] == -1  # "c" occurs in one unit only
    assert ranks[1] == ranks[6] >= 0
    # rarest first: b and a#2 (2 units) before a#1 (2 units) ties broken by hash; all < ...
    assert len(vocab) == 3


def test_merged_partial_counts_equal_counts_of_everything():
    rng = np.random.default_rng(1)
    values = rng.integers(0, 50, 1000).astype(np.uint64)
    parts = [rouge.count_hashes(values[i : i + 100]) for i in range(0, 1000, 100)]
    h, c = rouge.merge_counts(parts)
    h2, c2 = rouge.count_hashes(values)
    assert h.tolist() == h2.tolist() and c.tolist() == c2.tolist()


# ------------------------------------------------------------------------------------------
# Candidates: every pair above the threshold is found (prefix: by construction)
# ------------------------------------------------------------------------------------------


@functools.cache
def _thresholds(t: float = 0.7) -> rouge.Thresholds:
    return rouge.Thresholds.build(t)


def _edges(token_lists, method="prefix", use_rapidfuzz=True):
    nodes = np.arange(len(token_lists), dtype=np.uint64)
    batch = rouge.UnitBatch.build(nodes, token_lists)
    vocab = rouge.Vocabulary.from_counts(*rouge.count_hashes(batch.occ))
    th = _thresholds()
    if method == "prefix":
        post = rouge.prefix_postings(batch, vocab, th)
    else:
        post = rouge.lsh_postings(batch, rouge.lsh_params(0.7))
    u, v, s, _ = rouge.local_join(batch, post, vocab, th, use_rapidfuzz=use_rapidfuzz)
    return {(a, b): x for a, b, x in zip(u.tolist(), v.tolist(), s.tolist())}


def _brute_force(token_lists, t=0.7):
    out = {}
    for i in range(len(token_lists)):
        for j in range(i + 1, len(token_lists)):
            s = rouge.rouge_l_f1(token_lists[i], token_lists[j])
            if s > t:
                out[(i, j)] = s
    return out


@given(
    st.lists(
        st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]), max_size=12), max_size=40
    )
)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_prefix_candidates_find_every_pair_above_threshold(token_lists):
    assert _edges(token_lists) == _brute_force(token_lists)


def test_python_lcs_path_gives_the_same_edges():
    rng = random.Random(3)
    words = ["write", "a", "poem", "about", "the", "sea", "in", "summer", "short", "long", "story"]
    lists = [[rng.choice(words) for _ in range(rng.randint(3, 9))] for _ in range(300)]
    assert _edges(lists, use_rapidfuzz=False) == _edges(lists) == _brute_force(lists)


def test_lsh_parameters_meet_the_miss_target_and_find_the_pairs():
    params = rouge.lsh_params(0.7, 1e-6)
    assert params.miss_probability(rouge.jaccard_bound(0.7)) <= 1e-6
    rng = random.Random(5)
    words = [f"w{i}" for i in range(40)]
    lists = [[rng.choice(words) for _ in range(rng.randint(4, 10))] for _ in range(200)]
    lists += [x[:-1] + ["zz"] for x in lists[:100]]  # planted near-duplicates
    truth = _brute_force(lists)
    assert len(truth) >= 50
    assert _edges(lists, method="lsh") == truth


# ------------------------------------------------------------------------------------------
# The greedy: dropped instructions suppress nothing
# ------------------------------------------------------------------------------------------


def test_a_dropped_instruction_does_not_suppress_later_ones():
    # 0 ~ 1 and 1 ~ 2, but 0 !~ 2: the reference keeps 0, drops 1 (by 0), keeps 2.
    texts = [
        "write a short poem about the sea",
        "write a short poem about the sea and the sky",
        "a short poem about the sea and the sky at night",
    ]
    toks = [rouge.rouge_score_tokens(t) for t in texts]
    assert rouge.rouge_l_f1(toks[0], toks[1]) > 0.7
    assert rouge.rouge_l_f1(toks[1], toks[2]) > 0.7
    assert rouge.rouge_l_f1(toks[0], toks[2]) <= 0.7
    kept, dropped, _ = rouge.greedy_filter(toks)
    assert kept == [True, False, True] == reference_greedy(texts)[0]
    assert dropped == {1: (0, rouge.rouge_l_f1(toks[0], toks[1]))}
    # In the other order, 1 comes first and suppresses both.
    order = [1, 0, 2]
    kept2, _, _ = rouge.greedy_filter([toks[i] for i in order])
    assert kept2 == [True, False, False] == reference_greedy([texts[i] for i in order])[0]


def test_survivor_is_the_best_scoring_kept_instruction():
    edges = [("x", "a", 0.8), ("x", "b", 0.9), ("x", "c", 0.9), ("b", "c", 0.75)]
    order = {"a": 1, "b": 2, "c": 3, "x": 4}
    # c is dropped by b, so x collides with a (0.8) and b (0.9): survivor b.
    assert rouge.greedy_decisions(order, edges) == {"c": ("b", 0.75), "x": ("b", 0.9)}


def test_empty_instructions_are_kept_as_in_the_reference():
    texts = ["写一首诗", "写一首诗", "", "Write a poem.", "write a poem!"]
    toks = [rouge.rouge_score_tokens(t) for t in texts]
    kept, _, _ = rouge.greedy_filter(toks)
    assert kept == reference_greedy(texts)[0] == [True, True, True, True, False]


# ------------------------------------------------------------------------------------------
# Connected components
# ------------------------------------------------------------------------------------------


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=60))
@settings(max_examples=100, deadline=None)
def test_star_rounds_and_local_components_equal_union_find(pairs):
    u = np.array([a for a, _ in pairs], dtype=np.uint64)
    v = np.array([b for _, b in pairs], dtype=np.uint64)
    expected = {k: w for k, w in rouge.union_find_labels(u.tolist(), v.tolist()).items()}
    node, label = rouge.local_components(u, v)
    got = dict(zip(node.tolist(), label.tolist()))
    expected = {k: w for k, w in expected.items() if any(k in p and p[0] != p[1] for p in pairs)}
    assert got == expected


# ------------------------------------------------------------------------------------------
# Real data: identical to the rouge_score reference
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, limit",
    [("seeds", None), ("dolly", None), ("alpaca", 300), ("alpaca_with_input", 150)],
)
def test_kept_set_equals_the_rouge_score_reference_on_real_sets(real, name, limit):
    texts = real[name][:limit]
    toks = [rouge.rouge_score_tokens(t) for t in texts]
    kept, dropped, _ = rouge.greedy_filter(toks)
    ref_kept, ref_dropped = reference_greedy(texts)
    assert kept == ref_kept
    assert dropped == ref_dropped  # same survivors, scores equal bit for bit


@pytest.mark.parametrize("name", ["alpaca", "alpaca_with_input"])
def test_all_pairs_above_threshold_found_on_full_alpaca(real, name):
    toks = [rouge.rouge_score_tokens(t) for t in real[name]]
    truth = all_pairs_above(toks, 0.7, workers=1)
    assert set(_edges(toks)) == truth
    # and the scores of a sample of edges are rouge_score's
    for (i, j), s in list(_edges(toks).items())[:50]:
        assert s == _reference_f1(real[name][i], real[name][j])


def test_unicode_mode_compares_chinese_instructions(real):
    zh = real["alpaca_zh"][:800]
    compat = [rouge.rouge_score_tokens(t) for t in zh]
    assert sum(1 for t in compat if not t) > 600  # nothing left of most Chinese instructions
    uni = [rouge.unicode_tokens(t) for t in zh]
    assert set(_edges(uni)) == all_pairs_above(uni, 0.7, workers=1)
