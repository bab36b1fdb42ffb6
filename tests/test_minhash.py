"""MinHash kernels: tokens, shingles, datasketch-identical signatures, banding, verification."""

from __future__ import annotations

import functools
import glob
import importlib
import json
import os
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH
from datasketch.hashfunc import sha1_hash32
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms import minhash
from transforms.dedup_config import DedupConfig
from transforms.text import has_no_space_script, normalize_text, tokens

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _real_texts() -> list[tuple[str, str, str]]:
    """(definition, input, output) of real records: Alpaca en + zh, ShareGPT, P3 prompts."""
    out = []
    for name in ("alpaca/en/alpaca_data-0-3252.json", "alpaca/zh/alpaca_data-0-3252-zh.json"):
        for r in json.loads((DATA / name).read_text(encoding="utf-8")):
            out.append((r["instruction"], r["input"], r["output"]))
    path = DATA / "sharegpt/sharegpt_v3_unfiltered_cleaned_split.sample300.json"
    for r in json.loads(path.read_text(encoding="utf-8")):
        turns = [t["value"] for t in r["conversations"]]
        out.append(("", turns[0] if turns else "", "\n".join(turns[1:])))
    for path in sorted(glob.glob(str(DATA / "p3_t0_gpt3ft/data_per_template/*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    out.append(("", r["prompt"], r.get("completion", "")))
    return out


@pytest.fixture(scope="module")
def real_norms():
    records = _real_texts()
    assert len(records) >= 10_000
    return [[normalize_text(t) for t in r] for r in records]


@pytest.fixture(scope="module")
def real_shingles(real_norms):
    # 10,000 records: all of Alpaca en + zh (6.5k), all of ShareGPT, and P3 prompts.
    norms = real_norms[:10_000]
    shingles, offsets = minhash.batch_shingles(norms, 5, 5)
    return norms, shingles, offsets


# --- tokens and shingles ----------------------------------------------------------------------


def test_tokens_equal_text_tokens_on_real_data(real_norms):
    records = _real_texts()
    # every Alpaca (en, zh) and ShareGPT record, and every 10th P3 prompt
    sample = [i for i in range(len(records)) if i < 6_800 or i % 10 == 0]
    for i in sample:
        raw, norms = records[i], real_norms[i]
        for text, norm in zip(raw, norms):
            assert minhash.tokenize_normalized(norm) == tokens(text)
            assert minhash.has_no_space_script_normalized(norm) == has_no_space_script(norm)
    # the batched numpy tokenizer of non-ASCII text, over all of those texts at once
    others = [norm for i in sample for norm in real_norms[i] if not norm.isascii()]
    joined, has_no_space = minhash.tokenize_non_ascii(others)
    assert len(others) > 3_000
    assert joined == [" ".join(minhash.tokenize_normalized(norm)) for norm in others]
    assert has_no_space.tolist() == [has_no_space_script(norm) for norm in others]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_tokens_equal_text_tokens_on_any_unicode(text):
    norm = normalize_text(text)
    assert minhash.tokenize_normalized(norm) == tokens(text)
    assert minhash.has_no_space_script_normalized(norm) == has_no_space_script(norm)
    joined, has_no_space = minhash.tokenize_non_ascii([norm, "", norm])
    assert joined == [" ".join(tokens(text)), "", " ".join(tokens(text))]
    assert has_no_space.tolist() == [has_no_space_script(norm), False, has_no_space_script(norm)]


def test_chinese_is_shingled_by_characters_not_as_one_word():
    norm = normalize_text("机器学习是人工智能的一个分支")
    shingles = minhash.shingle_set([norm], 5, 5)
    assert len(shingles) == 14 - 5 + 1
    assert "机 器 学 习 是".encode() in shingles


def test_short_field_is_one_shingle_and_fields_do_not_merge():
    a = minhash.shingle_set(["hello world", "one two three four five six"], 5, 5)
    assert a == {b"hello world", b"one two three four five", b"two three four five six"}
    # moving a word across the field boundary changes the shingles
    b = minhash.shingle_set(["hello world one", "two three four five six"], 5, 5)
    assert a != b


def test_batch_shingles_equal_per_record_sets(real_shingles):
    norms, shingles, offsets = real_shingles
    assert len(offsets) == len(norms) + 1
    for i in range(0, len(norms), 7):
        got = set(shingles[offsets[i] : offsets[i + 1]])
        assert got == minhash.shingle_set(norms[i], 5, 5)


def _shingles_in_order(fields: list[str], word_n: int, char_n: int) -> list[bytes]:
    """A record's shingles, in order and with repeats: the plain-Python definition."""
    out = []
    for norm in fields:
        toks = tokens(norm)
        n = char_n if has_no_space_script(norm) else word_n
        if toks:
            out += [" ".join(toks[i : i + n]).encode() for i in range(max(1, len(toks) - n + 1))]
    return out


_FIELD_TEXT = st.text(
    alphabet=st.sampled_from(list("ab9 ,.'-_!\u00e9\u0301\u4e2d\u6587\u0e01\U0001f600\U00020000")),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_FIELD_TEXT, max_size=3), max_size=6), st.sampled_from([(5, 5), (1, 3)]))
def test_batch_shingles_are_the_plain_definition_in_order(records, sizes):
    """ASCII fields take the numpy tokeniser, others the regex one, token lists a third path:
    same shingles, same order."""
    norms = [[normalize_text(f) for f in fields] for fields in records]
    shingles, offsets = minhash.batch_shingles(norms, *sizes)
    from_tokens = minhash.shingle_batch_from_tokens(
        [[(tokens(f), minhash.field_shingle_size(f, *sizes)) for f in fields] for fields in norms]
    )
    assert from_tokens.shingles() == shingles
    assert from_tokens.offsets.tolist() == offsets.tolist()
    for i, fields in enumerate(norms):
        assert shingles[offsets[i] : offsets[i + 1]] == _shingles_in_order(fields, *sizes)


def test_batch_shingles_with_empty_records():
    shingles, offsets = minhash.batch_shingles([["", ""], ["a b"], ["!!!"], []], 5, 5)
    assert shingles == [b"a b"]
    assert offsets.tolist() == [0, 0, 1, 1, 1]


# --- signatures: identical to datasketch ------------------------------------------------------


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
def test_signatures_equal_datasketch_on_10k_real_records(real_shingles, scheme):
    norms, shingles, offsets = real_shingles
    sigs = minhash.MinHasher(128, 1, scheme=scheme).signatures(shingles, offsets)
    template = MinHash(num_perm=128, seed=1, scheme=scheme)
    fresh_checked = 0
    for i in range(len(norms)):
        record_shingles = shingles[offsets[i] : offsets[i + 1]]
        if i % 1000 == 0:  # a few from scratch: same permutations from the same seed
            m = MinHash(num_perm=128, seed=1, scheme=scheme)
            fresh_checked += 1
        else:
            m = template.copy()
        m.update_batch(record_shingles)
        assert np.array_equal(m.hashvalues, sigs[i]), (scheme, i)
    assert fresh_checked == 10


def test_default_config_signatures_equal_datasketch_on_10k_real_records(real_shingles):
    """What Deduplicate computes by default (batched spans, poly32) = datasketch's MinHash."""
    config = DedupConfig()
    norms, _, _ = real_shingles
    batch = minhash.shingle_batch(norms, config.shingle_size, config.char_shingle_size)
    hasher = minhash.MinHasher(
        config.num_perm, config.seed, scheme=config.scheme, hash_function=config.hash_function
    )
    sigs = hasher.batch_signatures(batch)
    shingles = batch.shingles()
    # the plain-Python reference hash, cached: 68% of these shingles repeat
    hashfunc = functools.lru_cache(maxsize=None)(minhash.datasketch_hashfunc(config.hash_function))
    template = MinHash(num_perm=config.num_perm, seed=config.seed, hashfunc=hashfunc)
    for i in range(len(norms)):
        if i % 1000 == 0:  # a few from scratch: same permutations from the same seed
            m = MinHash(num_perm=config.num_perm, seed=config.seed, hashfunc=hashfunc)
        else:
            m = template.copy()
        m.update_batch(shingles[batch.offsets[i] : batch.offsets[i + 1]])
        assert np.array_equal(m.hashvalues, sigs[i]), i
    assert len(norms) == 10_000


def test_datasketch_hashfunc_names_the_functions_datasketch_gets():
    data = [b"", b"a", "机 器 学 习 是".encode(), b"one two three four five"]
    for x in data:
        assert minhash.datasketch_hashfunc("sha1")(x) == sha1_hash32(x)
        assert minhash.datasketch_hashfunc("poly32")(x) == minhash.poly_hash32(x)
    with pytest.raises(ValueError):
        minhash.datasketch_hashfunc("md5")


def test_xxh32_matches_datasketch_hashfunc(real_shingles):
    xxhash = pytest.importorskip("xxhash")
    _, shingles, offsets = real_shingles
    n = 2000
    sigs = minhash.MinHasher(64, 3, hash_function="xxh32").signatures(
        shingles[: offsets[n]], offsets[: n + 1]
    )
    for i in range(0, n, 3):
        m = MinHash(num_perm=64, seed=3, hashfunc=xxhash.xxh32_intdigest)
        m.update_batch(shingles[offsets[i] : offsets[i + 1]])
        assert np.array_equal(m.hashvalues, sigs[i])


@pytest.fixture(params=["c", "numpy"])
def kernel(request, monkeypatch):
    """The path ``batch_signatures`` takes: the C kernel (skipped where it is not built, which
    CI forbids: ``test_c_kernel_is_built_in_ci``) or the numpy fallback, forced."""
    if request.param == "numpy":
        monkeypatch.setattr(minhash, "_sigkernel", None)
    elif minhash._sigkernel is None:
        pytest.skip("transforms._sigkernel is not built (no C compiler at install)")
    return request.param


def test_poly32_vectorised_equals_reference_and_datasketch(real_shingles, kernel):
    norms, _, _ = real_shingles
    batch = minhash.shingle_batch(norms[6000:8000], 5, 5)  # Chinese Alpaca and ShareGPT
    shingles = batch.shingles()
    vectorised = minhash.poly_hash32_spans(batch.buf, batch.starts, batch.ends)
    assert vectorised.tolist() == [minhash.poly_hash32(x) for x in shingles]
    assert np.array_equal(minhash.hash_shingles(shingles, "poly32"), vectorised)
    sigs = minhash.MinHasher(128, 1, hash_function="poly32").batch_signatures(batch)
    for i in range(0, 2000, 25):
        m = MinHash(num_perm=128, seed=1, hashfunc=minhash.poly_hash32)
        m.update_batch(shingles[batch.offsets[i] : batch.offsets[i + 1]])
        assert np.array_equal(m.hashvalues, sigs[i])


def test_repeated_shingles_take_the_dedup_hash_path():
    shingles = [b"same shingle"] * 50 + [b"other"]
    hashes = minhash.hash_shingles(shingles, "sha1")
    m = MinHash(num_perm=16, seed=1)
    m.update_batch(shingles)
    sig = minhash.MinHasher(16, 1).signatures_from_hashes(hashes, np.array([0, 51]))
    assert np.array_equal(sig[0], m.hashvalues)


def test_legacy_arithmetic_wraps_like_numpy_uint64():
    # hash values near 2**32 with a near 2**61: a*h overflows uint64; datasketch relies on the
    # wrap-around, then reduces mod 2**61 - 1 and keeps 32 bits.
    hasher = minhash.MinHasher(256, 5, scheme="legacy")
    hashes = np.array([0, 1, 2**32 - 1, 2**31 + 12345, 3_000_000_000], dtype=np.uint32)
    a, b = hasher.a[:, 0], hasher.b[:, 0]
    want = np.full(256, 2**32 - 1, dtype=np.uint64)
    for h in hashes.astype(np.uint64):
        with np.errstate(over="ignore"):
            want = np.minimum(want, ((a * h + b) % np.uint64(2**61 - 1)) & np.uint64(2**32 - 1))
    got = hasher.signatures_from_hashes(hashes, np.array([0, len(hashes)]))[0]
    assert np.array_equal(got.astype(np.uint64), want)


def test_empty_record_signature_is_datasketch_empty_minhash():
    sig = minhash.MinHasher(32, 1).signatures([], np.array([0, 0]))
    assert np.array_equal(sig[0], MinHash(num_perm=32, seed=1).hashvalues)


def test_estimate_jaccard_equals_datasketch(real_shingles):
    _, shingles, offsets = real_shingles
    sigs = minhash.MinHasher(128, 1).signatures(shingles[: offsets[3]], offsets[:4])
    ms = []
    for i in range(3):
        m = MinHash(num_perm=128, seed=1)
        m.update_batch(shingles[offsets[i] : offsets[i + 1]])
        ms.append(m)
    assert minhash.estimate_jaccard(sigs[0], sigs[1]) == ms[0].jaccard(ms[1])
    assert minhash.estimate_jaccard(sigs[0], sigs[0]) == 1.0


# --- banding ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_perm", "thresholds"),
    [(128, np.arange(0.3, 0.951, 0.05)), (64, [0.5, 0.7, 0.9]), (256, [0.6, 0.8])],
)
def test_optimal_param_equals_datasketch_minhashlsh(num_perm, thresholds):
    for threshold in thresholds:
        lsh = MinHashLSH(threshold=float(threshold), num_perm=num_perm)
        assert minhash.optimal_param(float(threshold), num_perm) == (lsh.b, lsh.r), threshold


def test_band_keys_collide_exactly_on_equal_bands():
    rng = np.random.default_rng(0)
    sigs = rng.integers(0, 2**32, size=(3, 128), dtype=np.uint64).astype(np.uint32)
    sigs[1, 9:18] = sigs[0, 9:18]  # band 1 (rows 9..17) shared by records 0 and 1
    keys = minhash.band_keys(sigs, 14, 9)
    assert keys.shape == (3, 14) and keys.dtype == np.int64
    assert keys[0, 1] == keys[1, 1]
    assert (keys[0] == keys[1]).sum() == 1
    assert not (keys[0] == keys[2]).any()
    # equal values in different bands never share a key
    same = np.tile(sigs[0, :9], 14)[None, :]
    assert len(set(minhash.band_keys(same, 14, 9)[0].tolist())) == 14


def test_band_keys_are_stable_across_releases():
    # Stored band keys (band_state) are reused by the nightly refresh: this function must not
    # change silently. Update the golden values only together with state_fingerprint().
    sig = np.arange(1, 129, dtype=np.uint32)[None, :] * np.uint32(2654435761)
    keys = minhash.band_keys(sig, 14, 9)[0].tolist()
    assert keys[:3] == [144829203342851093, -6478333602289712205, 3386716157430872753]


# --- verification -----------------------------------------------------------------------------


def _sig(rng, base=None, keep=0):
    sig = rng.integers(0, 2**32, size=128, dtype=np.uint64).astype("<u4")
    if base is not None:
        sig[:keep] = base[:keep]
    return sig


def test_bucket_edges_small_bucket_is_all_pairs():
    rng = np.random.default_rng(1)
    a = _sig(rng)
    members = [(0, a.tobytes()), (1, _sig(rng, a, 120).tobytes()), (2, _sig(rng, a, 100).tobytes())]
    members.append((3, _sig(rng).tobytes()))  # unrelated
    edges = sorted(minhash.bucket_edges(members, 8, minhash.min_equal_slots(0.7, 128)))
    assert [(u, v) for u, v, _ in edges] == [(0, 1), (0, 2), (1, 2)]
    assert edges[0][2] == 120 / 128


def test_bucket_edges_giant_bucket_compares_against_hubs_only():
    rng = np.random.default_rng(2)
    a = _sig(rng)
    members = [(i, _sig(rng, a, 110).tobytes()) for i in range(5000)]
    edges = list(minhash.bucket_edges(members[::-1], 4, 90))
    # every member linked to each of the 4 best-ranked members, nothing quadratic
    assert len(edges) == 4 * 3 // 2 + (5000 - 4) * 4
    assert all(u < v and u < 4 for u, v, _ in edges)


def test_pair_edges_are_bucket_edges_of_two_member_buckets():
    rng = np.random.default_rng(3)
    pairs = {}
    for i in range(300):  # equal values around the threshold (90 of 128), and unrelated pairs
        a = _sig(rng)
        keep = int(rng.integers(80, 129)) if i % 3 else 0
        pairs[2 * i, 2 * i + 1] = a.tobytes(), _sig(rng, a, keep).tobytes()
    min_equal = minhash.min_equal_slots(0.7, 128)
    expected = {
        (u, v): sim
        for (x, y), (sx, sy) in pairs.items()
        for u, v, sim in minhash.bucket_edges([(x, sx), (y, sy)], 8, min_equal)
    }
    assert dict(minhash.pair_edges(pairs, min_equal)) == expected
    assert 50 < len(expected) < 200
    assert list(minhash.pair_edges({}, min_equal)) == []


def test_min_equal_slots_is_an_exact_integer_threshold():
    assert minhash.min_equal_slots(0.7, 128) == 90  # 89.6 -> 90
    assert minhash.min_equal_slots(0.75, 128) == 96  # exactly 96, float fuzz ignored
    assert minhash.min_equal_slots(1.0, 128) == 128


# --- the C kernel (transforms._sigkernel): the numpy path's values, bit for bit ----------------


needs_kernel = pytest.mark.skipif(
    minhash._sigkernel is None, reason="transforms._sigkernel is not built (no C compiler)"
)


def test_c_kernel_is_built_in_ci():
    """``setup.py`` builds the kernel as optional: in CI a broken build must fail, not fall
    back to numpy unnoticed."""
    if not os.environ.get("CI"):
        pytest.skip("CI unset: locally the kernel may be missing (numpy fallback)")
    importlib.import_module("transforms._sigkernel")  # the ImportError itself, if any
    assert minhash._sigkernel is not None


@needs_kernel
def test_c_kernel_equals_numpy_on_all_real_records(real_norms):
    """Every real record (Alpaca en + zh, ShareGPT, P3: char shingles, multi-byte UTF-8) and
    a record without text every 1000, in batches as ``Deduplicate`` makes them, under two
    (num_perm, seed)."""
    assert len(real_norms) >= 10_000
    norms = []
    for i, record in enumerate(real_norms):
        norms.append(record)
        if i % 1000 == 0:
            norms.append(["", "!"])  # no tokens, no shingles
    batches = [minhash.shingle_batch(norms[i : i + 1024], 5, 5) for i in range(0, len(norms), 1024)]
    assert sum(not b.buf.isascii() for b in batches) >= 5
    assert sum((np.diff(b.offsets) == 0).sum() for b in batches) >= 10
    for num_perm, seed in ((128, 1), (64, 7)):
        hasher = minhash.MinHasher(num_perm, seed, hash_function="poly32")
        for batch in batches:
            got = hasher.batch_signatures(batch)
            assert got.dtype == np.uint32 and got.flags.c_contiguous
            assert np.array_equal(got, hasher._batch_signatures_numpy(batch))


@st.composite
def _span_batches(draw):
    """Arbitrary spans of random bytes: empty, single-byte and long (> the kernel's 256-entry
    power table) shingles, overlapping, repeated; records without shingles."""
    buf = draw(st.binary(max_size=3000))
    span = st.integers(0, len(buf)).flatmap(
        lambda s: st.tuples(
            st.just(s), st.one_of(st.integers(s, min(len(buf), s + 2)), st.integers(s, len(buf)))
        )
    )
    records = draw(st.lists(st.lists(span, max_size=12), max_size=8))
    spans = [x for record in records for x in record]
    offsets = np.cumsum([0] + [len(record) for record in records]).astype(np.int64)
    starts = np.array([s for s, _ in spans], dtype=np.int64)
    ends = np.array([e for _, e in spans], dtype=np.int64)
    return minhash.ShingleBatch(buf, starts, ends, offsets)


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(_span_batches(), st.sampled_from([1, 7, 128, 256]), st.integers(0, 2**32 - 1))
def test_c_kernel_equals_numpy_on_any_batch(batch, num_perm, seed):
    hasher = minhash.MinHasher(num_perm, seed, hash_function="poly32")
    got = hasher.batch_signatures(batch)
    assert got.shape == (len(batch.offsets) - 1, num_perm)
    assert np.array_equal(got, hasher._batch_signatures_numpy(batch))


@needs_kernel
def test_c_kernel_long_spans_equal_the_reference_hash():
    """Lengths around the kernel's power table (256) and far beyond, one shingle per record."""
    buf = np.random.default_rng(4).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    lengths = [0, 1, 3, 4, 5, 255, 256, 257, 511, 512, 4099, 20_000]
    batch = minhash.ShingleBatch(
        buf,
        np.zeros(len(lengths), dtype=np.int64),
        np.array(lengths, dtype=np.int64),
        np.arange(len(lengths) + 1, dtype=np.int64),
    )
    hasher = minhash.MinHasher(32, 1, hash_function="poly32")
    sigs = hasher.batch_signatures(batch)
    for i, n in enumerate(lengths):
        m = MinHash(num_perm=32, seed=1, hashfunc=minhash.poly_hash32)
        m.update(buf[:n])
        assert np.array_equal(sigs[i], m.hashvalues), n


def _numpy_shingle_batch(norms, word_n, char_n) -> minhash.ShingleBatch:
    with mock.patch.object(minhash, "_sigkernel", None):  # the fallback, forced
        return minhash.shingle_batch(norms, word_n, char_n)


def _assert_same_batch(got: minhash.ShingleBatch, want: minhash.ShingleBatch) -> None:
    assert got.buf == want.buf
    for name in ("starts", "ends", "offsets"):
        assert getattr(got, name).dtype == np.int64
        assert getattr(got, name).tolist() == getattr(want, name).tolist(), name


@needs_kernel
def test_c_word_shingles_equal_numpy_on_all_real_records(real_norms):
    """The C tokeniser and layout (``_spans_c``) against numpy's (``_spans_numpy``): same
    buffer and spans for every real record, in ``Deduplicate``'s batches, at two sizes."""
    batches = [real_norms[i : i + 1024] for i in range(0, len(real_norms), 1024)]
    for word_n, char_n in ((5, 5), (1, 3)):
        for norms in batches:
            got = minhash.shingle_batch(norms, word_n, char_n)
            _assert_same_batch(got, _numpy_shingle_batch(norms, word_n, char_n))


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(_FIELD_TEXT, max_size=4), max_size=8),
    st.integers(1, 6),
    st.integers(1, 6),
)
def test_c_word_shingles_equal_numpy_on_any_fields(records, word_n, char_n):
    """Empty fields and records, fields of punctuation only, leading and trailing separators,
    fields shorter than the shingle size, non-ASCII (tokenised first), any sizes."""
    norms = [[normalize_text(f) for f in fields] for fields in records]
    got = minhash.shingle_batch(norms, word_n, char_n)
    _assert_same_batch(got, _numpy_shingle_batch(norms, word_n, char_n))


def _word_args(**changes) -> list:
    """Arguments of ``word_shingles`` (2 records: 2 segments and 1), in order."""
    args = {
        "text": b"a b c\n\nd, e",
        "word": minhash._word_table(),
        "field_n": np.array([2, 5, 1], dtype=np.int64),
        "record_fields": np.array([0, 2, 1], dtype=np.int64),
    }
    args.update(changes)
    return list(args.values())


@needs_kernel
def test_c_word_shingles_valid_arguments():
    buf, starts, ends, offsets = minhash._sigkernel.word_shingles(*_word_args())
    spans = zip(np.frombuffer(starts, np.int64).tolist(), np.frombuffer(ends, np.int64).tolist())
    assert buf == b"a b c d e"
    assert [buf[s:e] for s, e in spans] == [b"a b", b"b c", b"d", b"e"]
    assert np.frombuffer(offsets, np.int64).tolist() == [0, 2, 4]


@needs_kernel
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"text": bytearray(b"a b c\n\nd, e")}, "text: expected bytes, got bytearray"),
        ({"word": bytes(255)}, "word: expected 256 bytes"),
        ({"word": b"\x01" * 256}, "zero at b'\\\\n'"),
        ({"field_n": np.array([2, 5, 1], dtype=np.int32)}, "field_n: expected int64"),
        ({"record_fields": [0, 2, 1]}, "record_fields: expected a C-contiguous buffer"),
        ({"record_fields": np.array([1, 2, 1], dtype=np.int64)}, "expected 0, then one count"),
        ({"record_fields": np.array([0, 2, 2], dtype=np.int64)}, "record 1 has 2 segments"),
        ({"record_fields": np.array([0, 2], dtype=np.int64)}, "field_n 3, record_fields 2"),
        ({"text": b"a b c\nd, e"}, "text has 2 segments, field_n 3"),
        ({"field_n": np.array([2, 0, 1], dtype=np.int64)}, "segment 1 has shingle size 0"),
    ],
)
def test_c_word_shingles_rejects_bad_arguments(changes, message):
    with pytest.raises(ValueError, match=message):
        minhash._sigkernel.word_shingles(*_word_args(**changes))


def _kernel_args(**changes) -> list:
    """Arguments of ``poly32_affine32`` (2 records, 3 shingles, 4 permutations), in order."""
    args = {
        "buf": b"hello world",
        "starts": np.array([0, 6, 2], dtype=np.int64),
        "ends": np.array([5, 11, 2], dtype=np.int64),
        "offsets": np.array([0, 2, 3], dtype=np.int64),
        "a": np.array([1, 3, 5, 7], dtype=np.uint32),
        "b": np.array([0, 1, 2, 3], dtype=np.uint32),
        "out": np.zeros((2, 4), dtype=np.uint32),
    }
    args.update(changes)
    return list(args.values())


@needs_kernel
def test_c_kernel_valid_arguments_give_the_numpy_values():
    buf, starts, ends, offsets, a, b, out = _kernel_args()
    minhash._sigkernel.poly32_affine32(buf, starts, ends, offsets, a, b, out)
    hasher = minhash.MinHasher(4, 1, hash_function="poly32")
    hasher.a[:, 0], hasher.b[:, 0] = a, b
    want = hasher._batch_signatures_numpy(minhash.ShingleBatch(buf, starts, ends, offsets))
    assert np.array_equal(out, want)


@needs_kernel
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"starts": np.array([0, 6, 2], dtype=np.int32)}, "starts: expected int64"),
        ({"ends": np.array([5, 11, 2], dtype=np.uint64)}, "ends: expected int64"),
        ({"offsets": [0, 2, 3]}, "offsets: expected a C-contiguous buffer"),
        ({"a": np.array([1, 3, 5, 7], dtype=np.int64)}, "a: expected uint32"),
        ({"b": np.array([0, 1, 2, 3], dtype=np.float32)}, "b: expected uint32"),
        ({"buf": np.zeros(11, dtype=np.uint16)}, "buf: expected bytes"),
        ({"ends": np.array([5, 11], dtype=np.int64)}, "starts and ends differ"),
        ({"b": np.array([0, 1, 2], dtype=np.uint32)}, "a and b differ"),
        ({"offsets": np.array([], dtype=np.int64)}, "offsets: needs at least one"),
        ({"out": np.zeros((2, 5), dtype=np.uint32)}, "out: expected 2 records"),
        ({"out": np.zeros((2, 4), dtype=np.int64)}, "out: expected uint32"),
        ({"out": np.zeros((2, 8), dtype=np.uint32)[:, ::2]}, "out: expected a writable"),
        ({"out": bytes(32)}, "out: expected a writable"),
        ({"ends": np.array([5, 12, 2], dtype=np.int64)}, "shingle 1: span 6:12 outside"),
        ({"starts": np.array([0, -1, 2], dtype=np.int64)}, "shingle 1: span -1:11 outside"),
        ({"starts": np.array([0, 6, 3], dtype=np.int64)}, "shingle 2: span 3:2 outside"),
        ({"offsets": np.array([0, 2, 4], dtype=np.int64)}, "offsets: record 1 owns shingles 2:4"),
        ({"offsets": np.array([0, 3, 2], dtype=np.int64)}, "offsets: record 1 owns shingles 3:2"),
        ({"offsets": np.array([-1, 2, 3], dtype=np.int64)}, "offsets: record 0 owns"),
    ],
)
def test_c_kernel_rejects_bad_buffers(changes, message):
    with pytest.raises(ValueError, match=message):
        minhash._sigkernel.poly32_affine32(*_kernel_args(**changes))


@needs_kernel
def test_c_kernel_rejects_out_sharing_memory_with_an_input():
    ab = np.arange(8, dtype=np.uint32)
    args = _kernel_args(a=ab[:4], b=ab[4:], out=ab.reshape(2, 4))
    with pytest.raises(ValueError, match="out: shares memory with a"):
        minhash._sigkernel.poly32_affine32(*args)
