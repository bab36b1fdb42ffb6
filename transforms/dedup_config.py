"""Configuration of exact + MinHash near-duplicate removal (validated when built).

Only this frozen dataclass crosses the pickling boundary into dedup DoFns; permutations and
tokenizer tables are rebuilt from it in ``DoFn.setup``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from transforms.minhash import HASH_FUNCTIONS, SCHEMES, optimal_param
from transforms.schema import FIELDS
from transforms.text import stable_hash


@dataclass(frozen=True, kw_only=True)
class DedupConfig:
    """What makes two records duplicates, and which one survives.

    Attributes:
        fields: record fields whose text is compared (exact hash and shingles), in this order.
        fields_by_source: per-source replacement of ``fields``, as ``{source: fields}`` (YAML
            mapping or pairs). Default: task-structured sources whose instances share one
            long task definition (``sni``, ``niv1``) compare ``input`` + ``output`` only;
            with the definition, every short instance of such a task is a near-duplicate of
            every other (on the shared SNI data: 2,859 of 5,520 distinct instances removed;
            ``bench/results/dedup.md``).
        threshold: Jaccard similarity at or above which two records are near-duplicates; also
            the verification bar every LSH candidate pair must pass before anything is removed.
        num_perm: MinHash permutations.
        shingle_size: word n-gram size for fields in space-delimited scripts.
        char_shingle_size: character n-gram size for fields containing Chinese, Japanese, Thai,
            ... (scripts written without spaces).
        seed: MinHash permutation seed (datasketch's ``seed``).
        source_priority: source names, best first; sources not listed rank after all listed
            ones. The survivor of a duplicate group is the record with the smallest rank
            ``(priority index, id, source_file, source_index)``.
        bands, rows: LSH banding override; both or neither. Default: datasketch's optimal
            parameters for ``threshold``, ``num_perm`` and ``lsh_weights``.
        lsh_weights: (false positive, false negative) weights of that optimisation, as
            ``MinHashLSH(weights=...)``; default (0.5, 0.5) = MinHashLSH's default. Candidates
            are verified, so weighting false negatives more buys recall for CPU, not precision.
        scheme: ``"affine32"`` = ``datasketch.MinHash`` default since datasketch 2.0;
            ``"legacy"`` = datasketch < 2.0 (``(a*h+b) % (2**61-1) & (2**32-1)``).
        hash_function: the 32-bit shingle hash, datasketch's ``hashfunc``. Default
            ``"poly32"``: signatures equal ``datasketch.MinHash(num_perm, seed,
            hashfunc=transforms.minhash.poly_hash32)``; computed for a whole batch with a few
            numpy passes, no Python call per shingle. ``"sha1"`` = datasketch's own default
            ``sha1_hash32`` (equal to a plain ``datasketch.MinHash(num_perm, seed)``; one
            hashlib call per shingle: signatures ~8x slower, the whole stage ~25% more CPU);
            ``"xxh32"`` = ``hashfunc=xxhash.xxh32_intdigest`` (needs the ``xxhash`` package).
            Measured in ``bench/results/dedup.md``.
        max_hubs: in an LSH bucket every member is compared with the bucket's ``max_hubs``
            best-ranked members only: buckets up to ``max_hubs + 1`` members are compared
            all-pairs, bigger ones in O(size * max_hubs) instead of O(size^2).
        cc_max_rounds: Large-Star/Small-Star rounds unrolled for transitive clusters
            (see ``transforms.clusters``); unresolved nodes are kept and counted.
        batch_size: records per vectorised signature batch.
        shard_size: records per shard of the internal shuffles (see ``transforms.dedup``):
            the memory one worker needs for one shard, whatever the corpus size.
    """

    fields: tuple[str, ...] = ("definition", "input", "output")
    fields_by_source: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("niv1", ("input", "output")),
        ("sni", ("input", "output")),
    )
    threshold: float = 0.7
    num_perm: int = 128
    shingle_size: int = 5
    char_shingle_size: int = 5
    seed: int = 1
    source_priority: tuple[str, ...] = ()
    bands: int | None = None
    rows: int | None = None
    lsh_weights: tuple[float, float] = (0.5, 0.5)
    scheme: str = "affine32"
    hash_function: str = "poly32"
    max_hubs: int = 8
    cc_max_rounds: int = 12
    batch_size: int = 1024
    shard_size: int = 20_000

    def __post_init__(self):
        # Accept lists from YAML/JSON configs, store tuples (hashable, immutable).
        for name in ("fields", "source_priority", "lsh_weights"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, (tuple, list)):
                raise TypeError(f"{name} must be a tuple, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "fields_by_source", _source_fields(self.fields_by_source))
        by_source = ((f"fields_by_source[{s}]", f) for s, f in self.fields_by_source)
        for where, fields in (("fields", self.fields), *by_source):
            _check_fields(where, fields)
        if len(set(self.source_priority)) != len(self.source_priority):
            raise ValueError("source_priority must not repeat a source")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        for name in (
            "num_perm",
            "shingle_size",
            "char_shingle_size",
            "max_hubs",
            "cc_max_rounds",
            "batch_size",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both bands and rows, or neither")
        if self.bands is not None and (
            self.bands < 1 or self.rows < 1 or self.bands * self.rows > self.num_perm
        ):
            raise ValueError(
                f"bands * rows must be in [1, num_perm={self.num_perm}], "
                f"got {self.bands} x {self.rows}"
            )
        fp, fn = self.lsh_weights if len(self.lsh_weights) == 2 else (-1, -1)
        if not (0 <= fp <= 1 and 0 <= fn <= 1 and abs(fp + fn - 1) < 1e-9):
            raise ValueError(
                f"lsh_weights must be two weights summing to 1, got {self.lsh_weights}"
            )
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {self.scheme!r}")
        if self.hash_function not in HASH_FUNCTIONS:
            raise ValueError(f"hash_function must be one of {HASH_FUNCTIONS}")

    @property
    def lsh_params(self) -> tuple[int, int]:
        """(bands, rows): the override, else datasketch's optimum for threshold and num_perm."""
        if self.bands is not None:
            return self.bands, self.rows
        return optimal_param(self.threshold, self.num_perm, *map(float, self.lsh_weights))

    def fields_for(self, source: str | None) -> tuple[str, ...]:
        """The compared fields of a record from ``source``."""
        for name, fields in self.fields_by_source:
            if name == source:
                return fields
        return self.fields

    def priority(self, source: str | None) -> int:
        """Index of ``source`` in ``source_priority``; unlisted sources after every listed one."""
        try:
            return self.source_priority.index(source)
        except ValueError:
            return len(self.source_priority)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """Short stable hash of every field: goes into manifests and next to the dedup state."""
        return stable_hash(json.dumps(self.to_dict(), sort_keys=True), digest_size=6)

    def state_fingerprint(self) -> str:
        """Hash of what makes stored exact hashes and band keys comparable across runs.

        Survivor policy and performance knobs are left out: changing ``source_priority`` or
        ``batch_size`` does not invalidate yesterday's state; changing shingles or bands does.
        """
        keys = (
            "fields",
            "fields_by_source",
            "num_perm",
            "shingle_size",
            "char_shingle_size",
            "seed",
            "scheme",
            "hash_function",
        )
        basis = {k: getattr(self, k) for k in keys}
        basis["lsh_params"] = self.lsh_params
        return stable_hash(json.dumps(basis, sort_keys=True), digest_size=6)


def _source_fields(value) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``{source: fields}`` or pairs, as sorted pairs of tuples (hashable, one per source)."""
    pairs = list(value.items()) if isinstance(value, dict) else list(value)
    out = {}
    for pair in pairs:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not isinstance(pair[0], str):
            raise TypeError(f"fields_by_source must map source names to fields, got {pair!r}")
        source, fields = pair
        if isinstance(fields, str) or not isinstance(fields, (tuple, list)):
            raise TypeError(f"fields_by_source[{source!r}] must be a list of fields")
        if source in out:
            raise ValueError(f"fields_by_source names {source!r} twice")
        out[source] = tuple(fields)
    return tuple(sorted(out.items()))


def _check_fields(where: str, fields: tuple[str, ...]) -> None:
    if not fields:
        raise ValueError(f"{where} must not be empty")
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        raise ValueError(f"{where}: fields not in CORPUS_SCHEMA: {unknown}")
    if len(set(fields)) != len(fields):
        raise ValueError(f"{where}: fields must be distinct")
