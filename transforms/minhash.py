"""MinHash kernels for near-duplicate detection: shingles, signatures, LSH bands, verification.

Pure functions and one small class, no Beam imports: ``transforms/dedup.py`` wraps them.

Compatibility contract (tested on >= 10,000 real records in ``tests/test_minhash.py``): for a
record's shingle set ``S``, ``MinHasher(num_perm, seed, hash_function=H).signatures(...)`` equals

    m = datasketch.MinHash(num_perm=num_perm, seed=seed, hashfunc=F)  # scheme "affine32"
    m.update_batch(S)                                          # S: UTF-8 bytes of each shingle
    m.hashvalues

where ``F`` is ``minhash.poly_hash32`` for ``"poly32"`` (what ``DedupConfig`` uses by default:
vectorised, the fast one), datasketch's own default ``sha1_hash32`` for ``"sha1"`` (so a plain
``MinHash(num_perm, seed)``; ``MinHasher``'s default, as datasketch's) and
``xxhash.xxh32_intdigest`` for ``"xxh32"``. With ``scheme="legacy"`` it equals
``datasketch.MinHash(..., scheme="legacy")``, the arithmetic of datasketch < 2.0:
``(a*h + b) % (2**61 - 1) & (2**32 - 1)`` on uint64 with numpy's wrap-around.

A shingle is ``n`` consecutive tokens of one field, joined by one space and UTF-8 encoded, where
tokens are exactly ``transforms.text.tokens(field)``: words for space-delimited scripts and single
characters for scripts without spaces; a field containing any character of such a script uses
character n-grams (``char_n``), other fields word n-grams (``word_n``). A field with fewer tokens
than ``n`` gives one shingle of all its tokens. Shingles never cross field boundaries.

Signatures are computed for a batch of records at once (``shingle_batch``): the tokens of the
batch are laid out in one buffer and every shingle is a byte span of it (for ASCII fields, the
C extension ``transforms._sigkernel`` lays them out when it is built, numpy otherwise). The
default ("poly32", "affine32") runs in that extension too (hash, permute and minimum in one
pass, the GIL released); otherwise, and for the other hashes and schemes,
"sha1" and "xxh32" hash each span with one C call, "poly32" hashes all spans with a few numpy
passes, and the permutations and the per-record minimum are numpy operations over blocks of
shingles. Measured against datasketch and rensa in ``bench/results/dedup.md``.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter
from typing import NamedTuple

import numpy as np
import regex

from transforms.text import NO_SPACE_SCRIPTS

try:  # built by setup.py where a C compiler is available (optional: numpy does the same)
    from transforms import _sigkernel
except ImportError:
    _sigkernel = None

SCHEMES = ("affine32", "legacy")
HASH_FUNCTIONS = ("sha1", "xxh32", "poly32")
MAX_HASH = np.uint32(0xFFFFFFFF)  # signature value of an empty shingle set (datasketch's too)

_MERSENNE = np.uint64((1 << 61) - 1)
_BLOCK_SHINGLES = 8192  # shingles per numpy block: (num_perm x block) uint32 = 4 MB at 128


# --------------------------------------------------------------------------------------------
# Tokens: the same tokens as transforms.text.tokens, several times faster.
# --------------------------------------------------------------------------------------------


class _Tokenizer(NamedTuple):
    bmp: re.Pattern  # text without characters beyond U+FFFF (nearly all text)
    full: re.Pattern  # any text
    bmp_no_space: re.Pattern
    full_no_space: re.Pattern
    ascii_table: dict
    classes: np.ndarray  # per code point: _WORD, _NO_SPACE (a token by itself) or 0


_WORD, _NO_SPACE = 1, 2


@functools.lru_cache(maxsize=1)
def _tokenizer() -> _Tokenizer:
    """Stdlib-``re`` patterns with exactly text.py's character classes, and an ASCII table.

    ``transforms.text`` uses the ``regex`` module's Unicode properties; its set-difference class
    costs ~170 ns per character. The same classes, enumerated once over every code point with
    that very ``regex`` module (as runs of consecutive code points) and compiled into stdlib
    character sets, tokenise identically (tested) at a fraction of the cost. sre tests a set of
    BMP characters with one bitmap lookup but scans ranges beyond U+FFFF one by one, so text
    without such characters gets BMP-only patterns. Built once per process (~0.1 s), cached.
    """
    every = np.arange(0x110000, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")
    word_class = r"(?V1)[[\p{L}\p{N}\p{M}]--[" + NO_SPACE_SCRIPTS + "]]+"
    no_space = [m.span() for m in regex.finditer("[" + NO_SPACE_SCRIPTS + "]+", every)]
    word = [m.span() for m in regex.finditer(word_class, every)]

    def ranges(spans: list[tuple[int, int]], lo: int, hi: int) -> str:
        """Character set of the code points of ``spans`` within [lo, hi)."""
        parts = []
        for start, end in spans:
            start, last = max(start, lo), min(end, hi) - 1
            if start < last:
                parts.append(f"\\U{start:08x}-\\U{last:08x}")
            elif start == last:
                parts.append(f"\\U{start:08x}")
        return "[" + "".join(parts) + "]"

    def bmp(spans):
        return ranges(spans, 0, 0x10000)

    def full(spans):
        return f"(?:{bmp(spans)}|{ranges(spans, 0x10000, 0x110000)})"

    # ASCII fast path: every ASCII character that is not a word character becomes a space.
    ascii_word = {c for start, end in word for c in range(start, min(end, 128))}
    ascii_table = str.maketrans({i: " " for i in range(128) if i not in ascii_word})
    classes = np.zeros(0x110000, dtype=np.uint8)
    for spans, label in ((word, _WORD), (no_space, _NO_SPACE)):
        for start, end in spans:
            classes[start:end] = label
    return _Tokenizer(
        re.compile(f"{bmp(no_space)}|{bmp(word)}+"),
        re.compile(f"{full(no_space)}|{full(word)}+"),
        re.compile(bmp(no_space)),
        re.compile(full(no_space)),
        ascii_table,
        classes,
    )


def _bmp_only(text: str) -> bool:
    """No character beyond U+FFFF (one C pass; ``max(text)`` costs ~20x more)."""
    return len(text.encode("utf-16-le", "surrogatepass")) == 2 * len(text)


def tokenize_normalized(norm: str) -> list[str]:
    """Tokens of already-normalised text: ``tokenize_normalized(normalize_text(t)) == tokens(t)``."""
    tok = _tokenizer()
    if norm.isascii():
        return norm.translate(tok.ascii_table).split()
    return (tok.bmp if _bmp_only(norm) else tok.full).findall(norm)


def tokenize_non_ascii(norms: list[str]) -> tuple[list[str], np.ndarray]:
    """``" ".join(tokenize_normalized(t))`` and ``has_no_space_script_normalized(t)`` of many
    normalised texts at once: numpy over their code points, no Python object per token.

    A token is a character of a script without spaces, or a maximal run of other word
    characters (the two classes of ``transforms.text``'s tokenizer, looked up per code point).
    Texts must not contain a newline (normalised text never does): it separates them here.
    """
    if not norms:
        return [], np.zeros(0, dtype=bool)
    text = "\n".join(norms)
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    kind = _tokenizer().classes[points]
    word, single = kind == _WORD, kind == _NO_SPACE
    text_of = np.cumsum(points == 10)  # which text each code point belongs to
    has_no_space = np.bincount(text_of[single], minlength=len(norms)) > 0
    first = np.flatnonzero(single | (word & ~np.concatenate(([False], word[:-1]))))
    stop = np.flatnonzero(single | (word & ~np.concatenate((word[1:], [False])))) + 1
    # The tokens one space apart, a newline (not a space) after each text's last token.
    laid, new_start = _one_space_apart(points, word | single, first, stop, trailing=1)
    owner = text_of[first]
    last_of_text = np.flatnonzero(np.diff(owner, append=-1))
    laid[new_start[last_of_text] + (stop - first)[last_of_text]] = 10
    joined = [""] * len(norms)
    for i, tokens in zip(
        owner[last_of_text].tolist(), laid.tobytes().decode("utf-32-le").split("\n")
    ):
        joined[i] = tokens
    return joined, has_no_space


def _one_space_apart(values, in_token, first, stop, trailing: int = 0):
    """(a new array of the tokens ``values[first[t]:stop[t]]`` one space (32) apart, with
    ``trailing`` more spaces at its end; where each token starts in it).

    ``in_token`` marks exactly the positions of ``values`` inside a token. Token t starts after
    all earlier tokens' values and t separators; one scatter moves every value, no Python object
    per token.
    """
    lengths = stop - first
    starts = np.cumsum(lengths) - lengths + np.arange(len(first))
    size = int(starts[-1] + lengths[-1]) + trailing if len(first) else 0
    laid = np.full(size, 32, dtype=values.dtype)
    laid[np.flatnonzero(in_token) - np.repeat(first - starts, lengths)] = values[in_token]
    return laid, starts


def has_no_space_script_normalized(norm: str) -> bool:
    """Same answer as ``text.has_no_space_script`` (ASCII answered without a search)."""
    if norm.isascii():
        return False
    tok = _tokenizer()
    pattern = tok.bmp_no_space if _bmp_only(norm) else tok.full_no_space
    return pattern.search(norm) is not None


def field_text(value) -> str:
    """The text of one record field: strings as they are, lists joined by newlines.

    Lists of dicts (``messages``, examples) contribute their string values in key order.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(field_text(v) for v in value.values() if v is not None)
    if isinstance(value, (list, tuple)):
        return "\n".join(field_text(v) for v in value)
    return str(value)


# --------------------------------------------------------------------------------------------
# Shingles
# --------------------------------------------------------------------------------------------


def field_shingle_size(norm: str, word_n: int, char_n: int) -> int:
    """Character n-grams for a field with any no-space-script character, word n-grams otherwise."""
    return char_n if has_no_space_script_normalized(norm) else word_n


def shingle_set(normalized_fields: Sequence[str], word_n: int, char_n: int) -> set[bytes]:
    """The shingle set of one record (plain Python; the reference for the batched kernel)."""
    out: set[bytes] = set()
    for norm in normalized_fields:
        toks = tokenize_normalized(norm)
        if not toks:
            continue
        n = field_shingle_size(norm, word_n, char_n)
        if len(toks) < n:
            out.add(" ".join(toks).encode("utf-8"))
        else:
            out.update(" ".join(toks[i : i + n]).encode("utf-8") for i in range(len(toks) - n + 1))
    return out


class ShingleBatch(NamedTuple):
    """Shingles of a batch of records as byte spans of one buffer (no per-shingle objects).

    Shingle ``j`` is ``buf[starts[j]:ends[j]]``; record ``i`` owns shingles
    ``offsets[i]:offsets[i+1]``.
    """

    buf: bytes
    starts: np.ndarray
    ends: np.ndarray
    offsets: np.ndarray

    def shingles(self) -> list[bytes]:
        return list(map(self.buf.__getitem__, map(slice, self.starts.tolist(), self.ends.tolist())))


def shingle_batch(records: Sequence[Sequence[str]], word_n: int, char_n: int) -> ShingleBatch:
    """Shingles of many records (``records[i]``: the normalised field texts of record ``i``).

    ASCII fields (nearly all of them) are tokenised by ``_spans`` with numpy, no Python object
    per token; other fields by ``tokenize_normalized``, whose tokens joined by spaces tokenise
    the same way there.
    """
    segments = [norm for fields in records for norm in fields]
    field_n = np.full(len(segments), word_n, dtype=np.int64)
    others = [j for j, norm in enumerate(segments) if not norm.isascii()]
    joined, has_no_space = tokenize_non_ascii([segments[j] for j in others])
    for j, tokens in zip(others, joined):
        segments[j] = tokens
    field_n[others] = np.where(has_no_space, char_n, word_n)
    record_fields = np.zeros(len(records) + 1, dtype=np.int64)
    record_fields[1:] = [len(fields) for fields in records]
    return _spans(segments, field_n, record_fields)


def shingle_batch_from_tokens(records: Sequence[Sequence[tuple[list[str], int]]]) -> ShingleBatch:
    """Shingles of records given as, per field, (tokens, shingle size).

    Tokens as ``tokenize_normalized`` gives them: runs of word characters, never spaces or
    ASCII punctuation. A record's shingles may repeat (a multiset); MinHash does not care.
    """
    segments = [" ".join(toks) for fields in records for toks, _ in fields]
    field_n = [n for fields in records for _, n in fields]
    record_fields = np.zeros(len(records) + 1, dtype=np.int64)
    record_fields[1:] = [len(fields) for fields in records]
    return _spans(segments, field_n, record_fields, joined_tokens=True)


@functools.lru_cache(maxsize=1)
def _word_bytes() -> np.ndarray:
    """Per UTF-8 byte value: can it be part of a token? ASCII word characters and every byte
    of a multi-byte character (non-ASCII text only reaches ``_spans`` already tokenised)."""
    table = _tokenizer().ascii_table
    return np.array([i >= 128 or i not in table for i in range(256)], dtype=bool)


@functools.lru_cache(maxsize=1)
def _word_table() -> bytes:
    """``_word_bytes`` as the 256 bytes the C kernel takes (built once per process)."""
    return _word_bytes().astype(np.uint8).tobytes()


def _spans(
    segments: list[str], field_n, record_fields: np.ndarray, joined_tokens: bool = False
) -> ShingleBatch:
    """Shingle spans of field texts whose tokens are their maximal runs of word bytes.

    The tokens are first laid out in a new buffer, one space between two tokens (so a shingle
    is exactly its tokens joined by spaces, the string datasketch would hash); fields are
    separated there too, and a shingle never spans two fields. ``record_fields[i + 1]``: the
    number of segments of record ``i``; a field with fewer tokens than its shingle size gives
    one shingle of all its tokens, a field without tokens none. ``joined_tokens``: every
    segment is tokens joined by single spaces, already that layout.
    """
    encoded = "\n".join(segments).encode("utf-8")
    if joined_tokens:
        raw = np.frombuffer(encoded, dtype=np.uint8)
        newlines = np.cumsum(raw == 10)  # segments are joined by newlines, never inside one
        bounds = np.flatnonzero((raw == 32) | (raw == 10))
        tok_start = np.concatenate(([0], bounds + 1))
        tok_end = np.concatenate((bounds, [len(raw)]))
        nonempty = tok_end > tok_start  # an empty segment leaves an empty "token"
        tok_start, tok_end = tok_start[nonempty], tok_end[nonempty]
        field_of = newlines[tok_start]
        return _field_shingles(encoded, tok_start, tok_end, field_of, field_n, record_fields)
    if _sigkernel is not None:
        return _spans_c(encoded, field_n, record_fields)
    return _spans_numpy(encoded, field_n, record_fields)


def _spans_numpy(encoded: bytes, field_n, record_fields: np.ndarray) -> ShingleBatch:
    """``_spans`` of raw segments (joined by newlines) with numpy: the fallback of ``_spans_c``."""
    raw = np.frombuffer(encoded, dtype=np.uint8)
    newlines = np.cumsum(raw == 10)  # segments are joined by newlines, never inside one
    word = _word_bytes()[raw]
    edge = np.diff(word.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    first = np.flatnonzero(edge == 1)  # first byte of each token, in raw
    stop = np.flatnonzero(edge == -1)  # one past its last byte
    buf, tok_start = _one_space_apart(raw, word, first, stop)
    tok_end = tok_start + (stop - first)
    field_of = newlines[first]
    return _field_shingles(buf.tobytes(), tok_start, tok_end, field_of, field_n, record_fields)


def _spans_c(encoded: bytes, field_n, record_fields: np.ndarray) -> ShingleBatch:
    """``_spans`` of raw segments in the C kernel: the same buffer and spans (tested), two
    passes over the bytes instead of a dozen numpy passes over arrays of the text's length."""
    buf, starts, ends, offsets = _sigkernel.word_shingles(
        encoded,
        _word_table(),
        np.ascontiguousarray(field_n, dtype=np.int64),
        np.ascontiguousarray(record_fields, dtype=np.int64),
    )
    as_int64 = functools.partial(np.frombuffer, dtype=np.int64)
    return ShingleBatch(buf, as_int64(starts), as_int64(ends), as_int64(offsets))


def _field_shingles(buf, tok_start, tok_end, field_of, field_n, record_fields) -> ShingleBatch:
    """Shingles of tokens ``buf[tok_start[t]:tok_end[t]]``, token t in field ``field_of[t]``."""
    m = np.bincount(field_of, minlength=len(field_n)).astype(np.int64)  # tokens per field
    n = np.minimum(np.asarray(field_n, dtype=np.int64), m)  # short field: one shingle of all
    windows = np.where(m > 0, m - n + 1, 0)  # shingles per field
    first_token = np.cumsum(m) - m
    # Shingle k of field f spans tokens first_token[f] + k ... first_token[f] + k + n[f] - 1.
    field_bounds = np.concatenate(([0], np.cumsum(windows)))
    field_id = np.repeat(np.arange(len(m)), windows)
    k = np.arange(int(field_bounds[-1])) - field_bounds[field_id]
    start = first_token[field_id] + k
    offsets = field_bounds[np.cumsum(record_fields)]
    return ShingleBatch(buf, tok_start[start], tok_end[start + n[field_id] - 1], offsets)


def batch_shingles(
    records: Sequence[Sequence[str]], word_n: int, char_n: int
) -> tuple[list[bytes], np.ndarray]:
    """Shingles of many records as one flat list of bytes, and record offsets (length n+1)."""
    batch = shingle_batch(records, word_n, char_n)
    return batch.shingles(), batch.offsets


# --------------------------------------------------------------------------------------------
# Hashing and signatures
# --------------------------------------------------------------------------------------------


# "poly32": a 64-bit polynomial hash of the bytes (odd multiplier, mod 2^64) with the length
# mixed in, MurmurHash3's fmix64 finalizer, low 32 bits. Not cryptographic, like xxh32; unlike
# any per-shingle function it is computed for every span of a batch buffer at once with numpy
# prefix sums, so no Python call per shingle. ``poly_hash32`` is the plain-Python definition,
# usable as ``datasketch.MinHash(hashfunc=poly_hash32)`` to check a signature.
_M64 = (1 << 64) - 1
_POLY = 0x9E3779B97F4A7C15
_POLY_INV = pow(_POLY, -1, 1 << 64)
_LEN_MIX = 0xC2B2AE3D27D4EB4F


def _fmix64_int(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _M64
    return h ^ (h >> 33)


def poly_hash32(data: bytes) -> int:
    """The "poly32" hash of one shingle (reference implementation, for datasketch's hashfunc)."""
    h = 0
    for byte in data:
        h = (h * _POLY + byte) & _M64
    return _fmix64_int((h + len(data) * _LEN_MIX) & _M64) & 0xFFFFFFFF


@functools.lru_cache(maxsize=8)
def _poly_powers(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(P^i, P^-i) mod 2^64 for i < size (size rounded up to a power of two by the caller)."""
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(size, _POLY, dtype=np.uint64))
        inverse = np.cumprod(np.full(size, _POLY_INV, dtype=np.uint64))
    return (
        np.concatenate(([np.uint64(1)], powers[:-1])),
        np.concatenate(([np.uint64(1)], inverse[:-1])),
    )


def poly_hash32_spans(buf: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``poly_hash32`` of every ``buf[starts[j]:ends[j]]``, vectorised (a few numpy passes)."""
    if len(starts) == 0:
        return np.zeros(0, dtype=np.uint32)
    size = 1 << max(10, (len(buf) - 1).bit_length())
    powers, inverse = _poly_powers(size)
    raw = np.frombuffer(buf, dtype=np.uint8).astype(np.uint64)
    # prefix[k] = sum_{i<k} b_i P^-i, so sum_{s<=i<e} b_i P^(e-1-i) = (prefix[e]-prefix[s]) P^(e-1)
    prefix = np.zeros(len(buf) + 1, dtype=np.uint64)
    np.cumsum(raw * inverse[: len(buf)], out=prefix[1:])
    h = (prefix[ends] - prefix[starts]) * powers[ends - 1]
    h += (ends - starts).astype(np.uint64) * np.uint64(_LEN_MIX)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h.astype(np.uint32)


def hash_shingles(shingles: Sequence[bytes], hash_function: str = "sha1") -> np.ndarray:
    """32-bit hash of every shingle: datasketch's ``sha1_hash32``, ``xxh32`` or ``poly32``."""
    if hash_function == "poly32":
        lengths = np.fromiter(map(len, shingles), np.int64, len(shingles))
        ends = np.cumsum(lengths)
        return poly_hash32_spans(b"".join(shingles), ends - lengths, ends)
    if hash_function == "sha1":
        # Instruction data repeats itself (templates, shared definitions): when a batch holds
        # many repeated shingles, hash each distinct one once (all C-level set/dict/map work).
        distinct = set(shingles)
        if len(distinct) < 0.8 * len(shingles):
            unique = list(distinct)
            table = dict(zip(unique, _sha1_32(unique).tolist()))
            return np.fromiter(map(table.__getitem__, shingles), np.uint32, len(shingles))
        return _sha1_32(shingles)
    if hash_function == "xxh32":
        import xxhash  # optional dependency, only for the fast non-default hash

        return np.fromiter(
            map(xxhash.xxh32_intdigest, shingles), dtype=np.uint32, count=len(shingles)
        )
    raise ValueError(f"unknown hash_function {hash_function!r}; expected one of {HASH_FUNCTIONS}")


def sha1_hash32(data: bytes) -> int:
    """datasketch's default ``sha1_hash32`` (first four bytes of SHA-1, little-endian)."""
    return int.from_bytes(hashlib.sha1(data).digest()[:4], "little")


def datasketch_hashfunc(hash_function: str):
    """The ``hashfunc`` that makes ``datasketch.MinHash`` compute our signatures.

    ``MinHash(num_perm, seed, hashfunc=datasketch_hashfunc(config.hash_function))`` checks any
    stored signature of ``DedupConfig`` (same shingles, ``scheme="affine32"``).
    """
    if hash_function == "poly32":
        return poly_hash32
    if hash_function == "sha1":
        return sha1_hash32
    if hash_function == "xxh32":
        import xxhash

        return xxhash.xxh32_intdigest
    raise ValueError(f"unknown hash_function {hash_function!r}; expected one of {HASH_FUNCTIONS}")


def _sha1_32(shingles: Sequence[bytes]) -> np.ndarray:
    """datasketch's ``sha1_hash32``: the first four bytes of SHA-1, little-endian."""
    # Copying one fresh context is ~25% cheaper than constructing one per shingle.
    copy = hashlib.sha1().copy
    digests = []
    append = digests.append
    for shingle in shingles:
        h = copy()
        h.update(shingle)
        append(h.digest())
    return np.frombuffer(b"".join(digests), dtype="<u4").reshape(-1, 5)[:, 0].astype(np.uint32)


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer (datasketch pre-mixes input hashes with it in affine32)."""
    h = h ^ (h >> np.uint32(16))
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


class MinHasher:
    """Permutations for one (num_perm, seed, scheme, hash function); cheap to build, reusable.

    Build it once per worker (``DoFn.setup``): only the four plain parameters cross the
    pickling boundary.
    """

    def __init__(
        self,
        num_perm: int = 128,
        seed: int = 1,
        *,
        scheme: str = "affine32",
        hash_function: str = "sha1",
    ):
        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r}; expected one of {SCHEMES}")
        if hash_function not in HASH_FUNCTIONS:
            raise ValueError(f"unknown hash_function {hash_function!r}")
        self.num_perm, self.seed = num_perm, seed
        self.scheme, self.hash_function = scheme, hash_function
        gen = np.random.RandomState(seed)
        if scheme == "legacy":
            # datasketch < 2.0 draws (a, b) per permutation, interleaved.
            pairs = [
                (
                    gen.randint(1, _MERSENNE, dtype=np.uint64),
                    gen.randint(0, _MERSENNE, dtype=np.uint64),
                )
                for _ in range(num_perm)
            ]
            a, b = np.array(pairs, dtype=np.uint64).T
        else:
            a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
            b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
        self.a = np.ascontiguousarray(a)[:, None]  # (num_perm, 1): blocks are perm-major
        self.b = np.ascontiguousarray(b)[:, None]

    def signatures_from_hashes(self, hashes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """(records, num_perm) uint32 signatures; ``offsets`` delimit each record's hashes.

        A record without shingles gets ``MAX_HASH`` everywhere, as an empty datasketch MinHash.
        """
        n_records = len(offsets) - 1
        out = np.full((self.num_perm, n_records), MAX_HASH, dtype=np.uint32)
        counts = np.diff(offsets)
        nonempty = np.flatnonzero(counts > 0)
        if len(nonempty) == 0:
            return out.T.copy()
        if self.scheme == "legacy":
            hv = hashes.astype(np.uint64)
        else:
            hv = _fmix32(hashes.astype(np.uint32))
        starts = offsets[nonempty]
        ends = offsets[nonempty + 1]
        i = 0
        while i < len(nonempty):
            # a block of whole records holding about _BLOCK_SHINGLES shingles (at least one record)
            j = int(np.searchsorted(ends, starts[i] + _BLOCK_SHINGLES, side="right"))
            j = max(j, i + 1)
            lo, hi = int(starts[i]), int(ends[j - 1])
            block = self._permute(hv[lo:hi])
            out[:, nonempty[i:j]] = np.minimum.reduceat(block, starts[i:j] - lo, axis=1)
            i = j
        return out.T.copy()

    def _permute(self, hv: np.ndarray) -> np.ndarray:
        """(num_perm, len(hv)) permuted hash values, uint32."""
        if self.scheme == "legacy":
            x = self.a * hv[None, :]  # uint64, wraps like numpy does in datasketch
            x += self.b
            # x % (2^61 - 1) without division: x = hi * 2^61 + lo and 2^61 = 1 (mod p).
            y = x >> np.uint64(61)
            x &= _MERSENNE
            x += y  # < 2p: one conditional subtraction left, done branch-free below
            np.minimum(x, x - _MERSENNE, out=x)  # x - p wraps to a huge value when x < p
            return x.astype(np.uint32)  # the low 32 bits: datasketch's & (2**32 - 1)
        x = self.a * hv[None, :]
        x += self.b
        return x

    def signatures(self, shingles: Sequence[bytes], offsets: np.ndarray) -> np.ndarray:
        """Signatures of records given as flat shingles + offsets (see ``batch_shingles``)."""
        return self.signatures_from_hashes(hash_shingles(shingles, self.hash_function), offsets)

    def batch_signatures(self, batch: ShingleBatch) -> np.ndarray:
        """Signatures of a ``shingle_batch``; "poly32" never materialises a shingle.

        The default ("poly32", "affine32") takes the C kernel when it is built: the same
        values (tested bit for bit) several times faster than the numpy passes.
        """
        if _sigkernel is not None and self.hash_function == "poly32" and self.scheme == "affine32":
            out = np.empty((len(batch.offsets) - 1, self.num_perm), dtype=np.uint32)
            _sigkernel.poly32_affine32(
                batch.buf,
                np.ascontiguousarray(batch.starts, dtype=np.int64),
                np.ascontiguousarray(batch.ends, dtype=np.int64),
                np.ascontiguousarray(batch.offsets, dtype=np.int64),
                self.a[:, 0],
                self.b[:, 0],
                out,
            )
            return out
        return self._batch_signatures_numpy(batch)

    def _batch_signatures_numpy(self, batch: ShingleBatch) -> np.ndarray:
        """``batch_signatures`` without the C kernel (the fallback; tests compare the two)."""
        if self.hash_function == "poly32":
            hashes = poly_hash32_spans(batch.buf, batch.starts, batch.ends)
        else:
            hashes = hash_shingles(batch.shingles(), self.hash_function)
        return self.signatures_from_hashes(hashes, batch.offsets)

    def signature(self, shingles: Iterable[bytes]) -> np.ndarray:
        """Signature of one shingle set (convenience; batches are much faster)."""
        shingles = list(shingles)
        return self.signatures(shingles, np.array([0, len(shingles)]))[0]


# --------------------------------------------------------------------------------------------
# LSH banding
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _gauss_legendre() -> tuple[np.ndarray, np.ndarray]:
    # 64 points: exact for polynomials of degree <= 127; the band probability curves are
    # polynomials of degree b*r <= num_perm (beyond 128 permutations: accurate to ~1e-15).
    return np.polynomial.legendre.leggauss(64)


def _integrate(values_at, lo: float, hi: float) -> np.ndarray:
    """Integrals over [lo, hi] of the curves ``values_at(s)`` (rows) by Gauss-Legendre."""
    x, w = _gauss_legendre()
    s = 0.5 * (hi - lo) * x + 0.5 * (hi + lo)
    return 0.5 * (hi - lo) * (values_at(s) @ w)


@functools.lru_cache(maxsize=64)
def optimal_param(
    threshold: float,
    num_perm: int,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false positive + false negative probability mass.

    The same grid search and weighting as ``datasketch.MinHashLSH`` (its ``_optimal_param``);
    tested equal for thresholds 0.3-0.95 and 64-256 permutations.
    """
    best, opt = float("inf"), (0, 0)
    for b in range(1, num_perm + 1):
        r = np.arange(1, num_perm // b + 1, dtype=np.float64)[:, None]
        fp = _integrate(lambda s, r=r, b=b: 1 - (1 - s**r) ** b, 0.0, threshold)
        fn = _integrate(lambda s, r=r, b=b: (1 - s**r) ** b, threshold, 1.0)
        error = fp * false_positive_weight + fn * false_negative_weight
        i = int(np.argmin(error))  # first minimum, as datasketch's strict "<" keeps the first
        if error[i] < best:
            best, opt = float(error[i]), (b, i + 1)
    return opt


_BAND_PRIME = np.uint64(0x100000001B3)  # FNV-1a 64-bit prime
_BAND_BASIS = np.uint64(0xCBF29CE484222325)


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(records, bands) int64 keys: band ``i`` of a signature hashed with its band index.

    Two records share key ``[i]`` when their values ``i*rows .. (i+1)*rows-1`` are equal (up to
    a 2^-64 collision, harmless: every candidate is verified). The function is fixed: stored
    band keys stay valid for the nightly refresh as long as the config fingerprint is unchanged.
    """
    n = signatures.shape[0]
    sig = signatures[:, : bands * rows].astype(np.uint64).reshape(n, bands, rows)
    h = np.full((n, bands), _BAND_BASIS, dtype=np.uint64) ^ np.arange(bands, dtype=np.uint64)
    for j in range(rows):
        h ^= sig[:, :, j]
        h *= _BAND_PRIME
    h ^= h >> np.uint64(31)  # fold the high bits down: FNV's low bits mix poorly
    return h.view(np.int64)


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray | float:
    """Fraction of equal signature values: ``datasketch.MinHash.jaccard`` (broadcasts)."""
    eq = np.asarray(sig_a) == np.asarray(sig_b)
    return eq.mean(axis=-1)


def jaccard(a: set, b: set) -> float:
    """Exact Jaccard of two sets (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def signature_to_bytes(signature: np.ndarray) -> bytes:
    """Little-endian uint32 bytes: the form signatures cross Beam and land in Parquet."""
    return np.ascontiguousarray(signature, dtype="<u4").tobytes()


def signature_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<u4")


# --------------------------------------------------------------------------------------------
# Verification of LSH candidates
# --------------------------------------------------------------------------------------------


def min_equal_slots(threshold: float, num_perm: int) -> int:
    """Fewest equal signature values whose fraction reaches ``threshold`` (integer test)."""
    return max(1, math.ceil(threshold * num_perm - 1e-9))


def pair_edges(pairs: dict[tuple, tuple[bytes, bytes]], min_equal: int) -> Iterator[tuple]:
    """``((u, v), estimated Jaccard)`` of the pairs with at least ``min_equal`` equal signature
    values; ``pairs`` maps ``(u, v)`` to their signature bytes. Compared all at once: the same
    test, with the same figure, as ``bucket_edges`` on a bucket of the two."""
    if not pairs:
        return
    left = np.frombuffer(b"".join(a for a, _ in pairs.values()), dtype="<u4")
    right = np.frombuffer(b"".join(b for _, b in pairs.values()), dtype="<u4")
    num_perm = len(next(iter(pairs.values()))[0]) // 4
    equal = (left == right).reshape(len(pairs), num_perm).sum(axis=1)
    for pair, count in zip(pairs, equal.tolist()):
        if count >= min_equal:
            yield pair, float(count) / num_perm


def bucket_edges(
    members: Iterable[tuple], max_hubs: int, min_equal: int, *, chunk: int = 1024
) -> Iterator[tuple]:
    """Verified edges ``(hub, member, estimated Jaccard)`` of one LSH bucket, ``hub < member``.

    ``members`` is a re-iterable of ``(node, signature bytes)`` with distinct, ordered nodes
    (Beam's GroupByKey values are re-iterable). Every member is compared with the bucket's
    ``max_hubs`` smallest nodes (its best-ranked records), so a bucket of ``n`` members costs
    ``O(n * max_hubs)`` comparisons and holds ``max_hubs`` signatures plus one chunk in memory;
    a bucket of at most ``max_hubs`` members is compared all-pairs. A pair is an edge when at
    least ``min_equal`` signature values are equal (estimated Jaccard >= threshold).
    """
    if iter(members) is members:  # a one-shot iterator: the second pass needs it again
        members = list(members)
    hubs = heapq.nsmallest(max_hubs, members, key=itemgetter(0))
    if len(hubs) < 2:
        return
    num_perm = len(hubs[0][1]) // 4
    hub_sigs = np.stack([np.frombuffer(sig, dtype="<u4") for _, sig in hubs])
    equal = (hub_sigs[:, None, :] == hub_sigs[None, :, :]).sum(axis=2)
    for i, j in zip(*np.nonzero(np.triu(equal >= min_equal, k=1))):
        yield hubs[i][0], hubs[j][0], float(equal[i, j]) / num_perm
    if len(hubs) < max_hubs:
        return
    last_hub = hubs[-1][0]

    def flush(batch):
        sigs = np.frombuffer(b"".join(sig for _, sig in batch), dtype="<u4").reshape(len(batch), -1)
        eq = (sigs[:, None, :] == hub_sigs[None, :, :]).sum(axis=2)
        for m, h in zip(*np.nonzero(eq >= min_equal)):
            yield hubs[h][0], batch[m][0], float(eq[m, h]) / num_perm

    batch = []
    for member in members:
        if member[0] > last_hub:
            batch.append(member)
            if len(batch) >= chunk:
                yield from flush(batch)
                batch = []
    if batch:
        yield from flush(batch)
