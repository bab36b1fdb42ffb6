"""Exact and MinHash near-duplicate removal: ``Deduplicate(config=DedupConfig(...))``.

    outputs = records | Deduplicate(config=DedupConfig(source_priority=("sni", "flan")))
    outputs["kept"]         # record dicts (CORPUS_SCHEMA keys), unchanged
    outputs["removed"]      # REMOVED_SCHEMA dicts: who was removed, by which stage, for whom
    outputs["exact_state"]  # EXACT_STATE_SCHEMA dicts, one per kept record
    outputs["band_state"]   # BAND_STATE_SCHEMA dicts, one per kept record

Every input record ends in exactly one of ``kept`` and ``removed`` (tested). Records with no
text in their compared fields are kept untouched (counter ``skipped:no_text_in_fields``): they
have nothing to compare and must not all be "identical" to each other.

Stages (labelled steps of ``_DedupCore.expand``):

1. Fingerprint: per batch of records, the normalised text (NFKC, case-folded, whitespace
   collapsed: ``text.normalize_text``) of the compared fields — ``config.fields_for(source)``:
   ``fields``, or ``input`` + ``output`` for sources whose instances share one task definition
   (``fields_by_source``) —, its stable hash, the MinHash signature of its shingles and its LSH
   band keys (``transforms.minhash``).
2. Exact: grouped by hash; the best-ranked record of a group survives, the others are removed
   (stage ``exact``, similarity 1.0). Exact duplicates are gone before banding, so they never
   make giant LSH buckets.
3. Near: grouped by band key; buckets with >= 2 members fetch their members' signatures (a
   signature is shuffled once, not once per band); in each bucket every member is compared
   with the bucket's ``max_hubs`` best-ranked members (O(n * max_hubs), never O(n^2)); a pair is
   an edge only if its *estimated* Jaccard (the fraction of equal signature values,
   ``datasketch.MinHash.jaccard``) is >= ``threshold``. Estimated rather than exact Jaccard
   keeps the payload a fixed 4 * num_perm bytes per record whatever its length, and anyone can
   recompute it with datasketch from the stored signature.
4. Clusters: connected components of the edges (``transforms.clusters``: Large-Star/Small-Star,
   no worker holds all edges); in each component the best-ranked record survives and every
   other member is removed (stage ``minhash``) pointing to it.
5. Decide: records, state and decisions meet per record; kept records, removed rows, state.
   A shard's decisions are read first and its records one pickled batch at a time, so a
   call holds the shard's decisions but never all of its records.

All shuffles are GroupByKeys on shards of their keys carrying pickled batches (see "Sharded
shuffles" below): the same grouping, a fraction of Beam's per-element cost, bounded memory.

Survivor policy: rank = (index of the source in ``config.source_priority`` — unlisted sources
last —, id, source_file, source_index); the smallest rank survives (``rank_key``).
Deterministic on every runner: no decision depends on arrival order or bundling.

Removed rows carry the provenance of both sides. For ``minhash`` rows, ``similarity`` is the
estimated Jaccard with the survivor when the two are directly linked; when the record joined
the survivor's cluster through another member, it is the similarity of that link and ``detail``
names the member. An ``exact`` row points at its group's survivor, which the near-duplicate stage
may remove in turn (its own ``minhash`` row continues the chain to a kept record).

The nightly refresh reuses ``exact_state`` (exact hash per kept record) and ``band_state``
(signature and band keys per kept record); rows carry ``config.state_fingerprint()`` so state
built with other shingles, permutations or bands is never mixed in.

Measured figures and the command to reproduce them: ``bench/results/dedup.md``.
"""

from __future__ import annotations

import hashlib
import itertools
import pickle
import unicodedata
from collections import defaultdict
from operator import itemgetter

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics

from transforms import minhash
from transforms.clusters import (
    NAMESPACE,
    ShardedConnectedComponents,
    node_shard,
    pack,
    union_find_components,
    unpack,
)
from transforms.dedup_config import DedupConfig
from transforms.text import normalize_text, stable_hash
from transforms.worker import FrozenHeapDoFn, paused_gc

EXACT_STATE_SCHEMA = pa.schema(
    [
        ("exact_hash", pa.string()),  # stable_hash of the normalised fields
        ("id", pa.string()),
        ("source", pa.string()),
        ("source_file", pa.string()),
        ("source_index", pa.int64()),
        ("state_fingerprint", pa.string()),  # DedupConfig.state_fingerprint()
    ]
)

BAND_STATE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("source_file", pa.string()),
        ("source_index", pa.int64()),
        ("band_keys", pa.list_(pa.int64())),  # minhash.band_keys; empty: record has no shingles
        ("signature", pa.binary()),  # num_perm little-endian uint32 (datasketch hashvalues)
        ("state_fingerprint", pa.string()),
    ]
)

EXACT, MINHASH = "exact", "minhash"


# --------------------------------------------------------------------------------------------
# Pure policy functions
# --------------------------------------------------------------------------------------------


def rank_key(record: dict, config: DedupConfig) -> tuple:
    """Node identity and survivor order: (priority, id, source_file, source_index, sid).

    The smallest key survives. ``sid`` is a stable 63-bit hash of the identity: it makes
    sharding a modulo (``clusters.node_shard``) and stands for the node where only a reference
    is needed (band entries). The first four elements already identify a record, so ``sid``
    never decides the order.
    """
    index = record.get("source_index")
    ident = record.get("id") or ""
    source_file = record.get("source_file") or ""
    index = -1 if index is None else int(index)
    digest = hashlib.blake2b(
        f"{ident}\x1f{source_file}\x1f{index}".encode("utf-8", "surrogatepass"), digest_size=8
    ).digest()
    return (
        config.priority(record.get("source")),
        ident,
        source_file,
        index,
        int.from_bytes(digest, "little") >> 1,
    )


def normalize(text: str) -> str:
    """Exactly ``text.normalize_text``, several times faster (tested for equality).

    NFKC is the identity on ASCII and casefold is lower() there; whitespace is collapsed with
    ``str.split()``, which splits on exactly ``normalize_text``'s ``\\s`` but for the four
    separators \\x1c-\\x1f (checked over all of Unicode by a test).
    """
    folded = text.lower() if text.isascii() else unicodedata.normalize("NFKC", text).casefold()
    if "\x1c" in folded or "\x1d" in folded or "\x1e" in folded or "\x1f" in folded:
        return normalize_text(text)
    return " ".join(folded.split())


def normalized_fields(record: dict, fields: tuple[str, ...]) -> list[str]:
    """Normalised text of each compared field (what the exact hash and the shingles see)."""
    return [normalize(minhash.field_text(record.get(f))) for f in fields]


def normalized_batch(records: list[dict], config: DedupConfig) -> list[list[str]]:
    """``normalized_fields`` of many records (each its ``config.fields_for`` its source).

    ASCII texts are normalised by the C kernel when it is built (``normalize_ascii``, tested
    equal to ``normalize``), the others by ``normalize``.
    """
    texts, counts = [], []
    field_text = minhash.field_text
    for record in records:
        fields = config.fields_for(record.get("source"))
        counts.append(len(fields))
        for f in fields:
            value = record.get(f)
            texts.append(value if type(value) is str else field_text(value))
    kernel = minhash._sigkernel
    norms = kernel.normalize_ascii(texts) if kernel is not None else [None] * len(texts)
    norms = [normalize(t) if n is None else n for n, t in zip(norms, texts)]
    bounds = itertools.accumulate(counts, initial=0)
    return [norms[lo:hi] for lo, hi in itertools.pairwise(bounds)]


def exact_hash(normalized: list[str]) -> str:
    """Stable hash of the normalised fields, length-prefixed so field boundaries are kept."""
    return stable_hash(*normalized)


def rank_provenance(rank: tuple) -> tuple[str | None, str | None, int | None]:
    """(id, source_file, source_index) of a node given by its ``rank_key``."""
    _, ident, source_file, index, _ = rank
    return ident or None, source_file or None, None if index < 0 else index


def removed_row(record: dict, survivor: tuple, stage: str, similarity: float, detail: str) -> dict:
    """A REMOVED_SCHEMA row; ``survivor`` is the survivor's (id, source_file, source_index)."""
    survivor_id, survivor_file, survivor_index = survivor
    return {
        "id": record.get("id"),
        "source": record.get("source"),
        "source_file": record.get("source_file"),
        "source_index": record.get("source_index"),
        "task": record.get("task"),
        "stage": stage,
        "survivor_id": survivor_id,
        "survivor_source_file": survivor_file,
        "survivor_source_index": survivor_index,
        "similarity": float(similarity),
        "detail": detail,
    }


def minhash_decision(node: tuple, root: tuple | None, links: list[tuple]) -> tuple[float, str]:
    """(similarity, detail) of a near-duplicate removal, from the node's verified links.

    A node reaches the clusters only through a verified link, parked at its shard with the
    root; a root without links means the runner lost part of the shard's input.
    """
    if not links:
        raise _incomplete(
            node, f"assigned to the cluster of id {root[1]!r}, but none of its verified links"
        )
    sims = {}
    for other, sim in links:
        sims[other] = max(sim, sims.get(other, 0.0))
    if root in sims:
        return sims[root], "estimated Jaccard with survivor"
    other, sim = max(sims.items(), key=lambda kv: (kv[1], kv[0]))
    return sim, (
        f"estimated Jaccard with id {other[1]} ({other[2]}#{other[3]}), "
        "which is in the survivor's cluster"
    )


# --------------------------------------------------------------------------------------------
# Sharded shuffles
# --------------------------------------------------------------------------------------------
# Every shuffle below is a GroupByKey on a *shard* (a stable hash of the real key modulo a shard
# count) whose values are pickled lists of entries (``clusters.pack``); the shard's DoFn
# regroups entries by their real key (exact hash, band key, node) in a dict and applies the
# per-key logic. The result is that of a GroupByKey per key, but the runner moves
# O(batches x shards) elements instead of O(records x bands) — Beam's per-element cost (~10 us
# in Python, 33 us to decode a record dict) would otherwise dominate. Shard counts grow with
# the corpus (a side input from the record count), so a shard — the memory one worker needs
# at a time — stays about ``config.shard_size`` records whatever the corpus size.
#
# Entries for the final, node-sharded decision, one tuple each: the records ("records") and
# what was decided about them ("park"), grouped together by a CoGroupByKey on the shard:
#   ("rec", node, record)                   every input record ("records")
#   ("state", node, exact_hash, sig, keys)  exact survivors (state rows if finally kept)
#   ("exact", node, survivor node)          removed as an exact duplicate
#   ("root", node, root node)               removed as a near duplicate (from the clusters)
#   ("link", node, other node, similarity)  a verified near-duplicate edge, from both ends
#
# Near duplicates take three sharded steps so that signatures are not copied once per band:
#   buckets    (band keys, sids) int64 arrays → members of buckets with >= 2 members
#   signatures ("sig", sid, node, sig) + ("want", sid, band key) → (band key, node, sig)
#   verify     (band key, node, sig)         → verified edges (clusters) and links (park)
# (sid: the node's 63-bit identity hash, ``rank_key``; ints are what band entries carry.)


def shard_layout(num_records: int, config: DedupConfig) -> tuple[int, int]:
    """(record shards, band shards): ~shard_size records or ~4 x shard_size band entries each."""
    bands, _ = config.lsh_params
    record_shards = max(1, -(-num_records // config.shard_size))
    band_shards = max(1, -(-num_records * bands // (4 * config.shard_size)))
    return record_shards, band_shards


def _hash_shard(exact: str, num_shards: int) -> int:
    return int(exact[:12], 16) % num_shards


def _emit(buffers: dict, tag: str | None = None):
    for shard, entries in buffers.items():
        element = (shard, pack(entries))
        yield element if tag is None else beam.pvalue.TaggedOutput(tag, element)


def _survivor_entries(node, ehash, sig, keys, layout, out):
    """Entries of a record that survived exact dedup (or skipped it) into ``out`` buffers."""
    record_shard = node_shard(node, layout[0])
    out["park"][record_shard].append(("state", node, ehash, sig, keys))
    if keys is not None:
        sid = node[-1]
        out["sigs"][record_shard].append(("sig", sid, node, sig))
        out["band_rows"].append(keys)
        out["band_sids"].append(sid)


def _buffers(*tags):
    out = {tag: defaultdict(list) for tag in tags}
    out["band_rows"], out["band_sids"] = [], []
    return out


def _band_arrays(rows: list[bytes], sids: list[int], band_shards: int):
    """Band entries of many records as per-shard (keys, sids) int64 arrays, not tuples.

    Each record contributes one entry per band; as arrays they cost no Python object each.
    """
    if not rows:
        return
    keys = np.frombuffer(b"".join(rows), dtype=np.int64)
    bands = len(keys) // len(rows)
    owners = np.repeat(np.asarray(sids, dtype=np.int64), bands)
    shards = keys % band_shards
    order = np.argsort(shards, kind="stable")
    keys, owners, shards = keys[order], owners[order], shards[order]
    bounds = np.flatnonzero(np.diff(shards)) + 1
    for lo, hi in zip(np.concatenate(([0], bounds)), np.concatenate((bounds, [len(keys)]))):
        yield beam.pvalue.TaggedOutput(
            "bands", (int(shards[lo]), pack((keys[lo:hi], owners[lo:hi])))
        )


def _emit_all(buffers: dict, layout):
    rows, sids = buffers.pop("band_rows"), buffers.pop("band_sids")
    for tag, shards in buffers.items():
        if tag != "bands":
            yield from _emit(shards, tag)
    yield from _band_arrays(rows, sids, layout[1])


class _PackBatchFn(FrozenHeapDoFn):
    """A list of records → one pickle (``clusters.pack``).

    It runs in the stage that produces the records, so its ``setup`` freezes the worker's
    long-lived objects before that stage allocates any record.
    """

    def process(self, batch):
        yield pack(batch)


class _FingerprintFn(FrozenHeapDoFn):
    """Batch of records → the records, and their exact-hash (or band) entries, sharded."""

    def __init__(self, config: DedupConfig, exact: bool, near: bool):
        self.config, self.exact, self.near = config, exact, near
        self.records_in = Metrics.counter(NAMESPACE, "records:in")
        self.no_shingles = Metrics.counter(NAMESPACE, "minhash:no_shingles")
        self.blank = Metrics.counter(NAMESPACE, "skipped:no_text_in_fields")

    def setup(self):
        super().setup()
        c = self.config
        self.hasher = minhash.MinHasher(
            c.num_perm, c.seed, scheme=c.scheme, hash_function=c.hash_function
        )
        self.bands, self.rows = c.lsh_params
        minhash.tokenize_normalized("")  # build the tokenizer tables once per worker

    def process(self, packed_batch, layout):
        with paused_gc():  # compute with the collector paused, yield after
            outputs = list(self._run(pickle.loads(packed_batch), layout))
        yield from outputs

    def _run(self, batch, layout):
        c = self.config
        self.records_in.inc(len(batch))
        norms = normalized_batch(batch, c)
        n = len(batch)
        sigs = keys = None
        empty = np.zeros(n, dtype=bool)
        if self.near:
            shingles = minhash.shingle_batch(norms, c.shingle_size, c.char_shingle_size)
            sigs = self.hasher.batch_signatures(shingles)
            keys = minhash.band_keys(sigs, self.bands, self.rows)
            empty = shingles.offsets[1:] == shingles.offsets[:-1]
            if empty.any():
                self.no_shingles.inc(int(empty.sum()))
        out = _buffers("records", "park", "exact", "sigs")
        records, exact = out["records"], out["exact"]
        blank = 0
        for i, record in enumerate(batch):
            node = rank_key(record, c)
            ehash = exact_hash(norms[i])
            sig = None if sigs is None else sigs[i].tobytes()
            key = None if (keys is None or empty[i]) else keys[i].tobytes()
            records[node_shard(node, layout[0])].append(("rec", node, record))
            if not any(norms[i]):
                # No text in the compared fields (e.g. a chat record when fields hold no
                # messages): nothing to compare, and never "identical" to every other such record.
                blank += 1
                _survivor_entries(node, ehash, sig, None, layout, out)
            elif self.exact:
                exact[_hash_shard(ehash, layout[0])].append((ehash, node, sig, key))
            else:
                _survivor_entries(node, ehash, sig, key, layout, out)
        if blank:
            self.blank.inc(blank)
        yield from _emit_all(out, layout)


class _ExactShardFn(FrozenHeapDoFn):
    """Shard of (exact hash, node, sig, keys) → survivors' entries, exact removals (parked).

    Within a group of equal hashes the smallest rank survives. A giant group (100k identical
    records) costs one list of small tuples, never a quadratic comparison.
    """

    def __init__(self):
        self.removed = Metrics.counter(NAMESPACE, "exact:removed")

    def process(self, element, layout):
        with paused_gc():  # compute with the collector paused, yield after
            outputs = list(self._run(element, layout))
        yield from outputs

    def _run(self, element, layout):
        groups = defaultdict(list)
        for entry in unpack(element[1]):
            groups[entry[0]].append(entry)
        out = _buffers("park", "sigs")
        park = out["park"]
        removed = 0
        for ehash, members in groups.items():
            best = min(m[1] for m in members)
            kept = False
            for _, node, sig, keys in members:
                if node == best and not kept:
                    kept = True
                    _survivor_entries(node, ehash, sig, keys, layout, out)
                else:
                    removed += 1
                    park[node_shard(node, layout[0])].append(("exact", node, best))
        self.removed.inc(removed)
        yield from _emit_all(out, layout)


class _BucketShardFn(FrozenHeapDoFn):
    """Shard of (band keys, sids) arrays → a signature request per member of a shared bucket."""

    def __init__(self):
        self.buckets = Metrics.counter(NAMESPACE, "minhash:candidate_buckets")

    def process(self, element, layout):
        parts = [pickle.loads(blob) for blob in element[1]]
        keys = np.concatenate([k for k, _ in parts])
        sids = np.concatenate([o for _, o in parts])
        order = np.argsort(keys, kind="stable")
        keys, sids = keys[order], sids[order]
        same = keys[1:] == keys[:-1]  # entry i+1 shares its bucket with entry i
        member = np.zeros(len(keys), dtype=bool)
        member[1:] |= same
        member[:-1] |= same
        # a bucket with >= 2 members starts where a run of equal keys starts
        self.buckets.inc(int(np.count_nonzero(same & ~np.concatenate(([False], same[:-1])))))
        wants = defaultdict(list)
        for key, sid in zip(keys[member].tolist(), sids[member].tolist()):
            wants[sid % layout[0]].append(("want", sid, key))
        yield from _emit(wants)


class _SignatureShardFn(FrozenHeapDoFn):
    """Shard of signatures and requests → (band key, node, sig) for every requested member."""

    def process(self, element, layout):
        with paused_gc():  # compute with the collector paused, yield after
            outputs = list(self._run(element, layout))
        yield from outputs

    def _run(self, element, layout):
        sigs, wants = defaultdict(list), []
        for entry in unpack(element[1]):
            if entry[0] == "sig":
                sigs[entry[1]].append(entry[2:])  # a list: two nodes may share a 63-bit sid
            else:
                wants.append(entry)
        out = defaultdict(list)
        for _, sid, key in wants:
            for node, sig in sigs[sid]:
                out[key % layout[1]].append((key, node, sig))
        yield from _emit(out)


class _VerifyShardFn(FrozenHeapDoFn):
    """Shard of (band key, node, sig) → verified edges (main, as lists) and parked links."""

    def __init__(self, config: DedupConfig):
        self.max_hubs = config.max_hubs
        self.min_equal = minhash.min_equal_slots(config.threshold, config.num_perm)
        self.sizes = Metrics.distribution(NAMESPACE, "minhash:bucket_size")
        self.edges = Metrics.counter(NAMESPACE, "minhash:verified_edges")

    def process(self, element, layout):
        with paused_gc():  # compute with the collector paused, yield after
            outputs = list(self._run(element, layout))
        yield from outputs

    def _run(self, element, layout):
        buckets = defaultdict(list)
        for key, node, sig in unpack(element[1]):
            buckets[key].append((node, sig))
        links = {}  # (u, v) -> similarity, u < v
        pairs = {}  # buckets of two members (most of them): compared at once, each pair once
        for members in buckets.values():
            self.sizes.update(len(members))
            if len(members) == 2:
                (u, sig_u), (v, sig_v) = sorted(members, key=itemgetter(0))
                pairs[u, v] = sig_u, sig_v
                continue
            for u, v, sim in minhash.bucket_edges(members, self.max_hubs, self.min_equal):
                links[u, v] = sim
        links.update(minhash.pair_edges(pairs, self.min_equal))
        self.edges.inc(len(links))
        if not links:
            return
        # The clusters only need connectivity: a spanning forest of this shard's edges (a star
        # per local component) has the same connected components, with at most one edge per
        # node instead of up to max_hubs per bucket and band.
        yield list(union_find_components(links).items())
        park = defaultdict(list)
        for (u, v), sim in links.items():
            park[node_shard(u, layout[0])].append(("link", u, v, sim))
            park[node_shard(v, layout[0])].append(("link", v, u, sim))
        yield from _emit(park, "park")


def _roots_to_park(element):
    shard, blob = element
    return shard, pack([("root", node, root) for node, root in unpack([blob])])


_SLOT = {"state": 0, "exact": 1, "root": 2, "link": 3}


def _incomplete(node: tuple, what: str) -> RuntimeError:
    """Decide's input lost something (a runner fault): fail the run, never decide by guess."""
    return RuntimeError(
        f"record id {node[1]!r} ({node[2]}#{node[3]}): {what} reached its dedup shard; the "
        "shard's input is incomplete, so nothing is decided (see README, 'Running it')"
    )


class _DecideShardFn(FrozenHeapDoFn):
    """Shard's records and decisions → kept records (main), removed rows, exact and band state.

    Every ``rec`` entry yields exactly one kept record or one removed row. The decisions are
    small (a signature per survivor at most); the records are read one pickled batch at a
    time and decided at once, so they are never all in memory together.
    """

    def __init__(self, config: DedupConfig, exact: bool, near: bool):
        self.fingerprint = config.state_fingerprint()
        self.exact, self.near = exact, near
        self.kept = Metrics.counter(NAMESPACE, "kept")
        self.removed = Metrics.counter(NAMESPACE, "minhash:removed")

    def process(self, element):
        with paused_gc():  # yields inside: a record and two state rows per kept record
            groups = element[1]
            decisions = itertools.chain.from_iterable(
                blobs for tag, blobs in groups.items() if tag != "records"
            )
            yield from self._run(groups["records"], decisions)

    def _run(self, record_blobs, decision_blobs):
        nodes = {}  # node -> (states, exact, roots, links)
        for entry in unpack(decision_blobs):
            slots = nodes.get(entry[1])
            if slots is None:
                slots = nodes[entry[1]] = ([], [], [], [])
            slots[_SLOT[entry[0]]].append(entry[2:])
        undecided = ((), (), (), ())
        kept = removed = 0
        seen = set()
        for _, node, record in unpack(record_blobs):
            states, exact, roots, links = nodes.get(node, undecided)
            seen.add(node)
            if not states and not exact:  # the exact stage (or its bypass) decides every record
                raise _incomplete(node, "no exact-stage decision")
            if exact:  # identical copies of one node: as many removed as decided
                yield beam.pvalue.TaggedOutput(
                    "removed",
                    removed_row(
                        record,
                        rank_provenance(exact.pop(0)[0]),
                        EXACT,
                        1.0,
                        "normalised text identical",
                    ),
                )
            elif roots:
                root = min(r[0] for r in roots)
                similarity, detail = minhash_decision(node, root, links)
                removed += 1
                yield beam.pvalue.TaggedOutput(
                    "removed",
                    removed_row(record, rank_provenance(root), MINHASH, similarity, detail),
                )
            else:
                kept += 1
                yield record
                if states:
                    yield from self._state_rows(record, *states[0])
        lost = nodes.keys() - seen
        if lost:
            others = f" (nor {len(lost) - 1} other records)" if len(lost) > 1 else ""
            raise _incomplete(min(lost), f"decisions but not the record{others}")
        self.kept.inc(kept)
        self.removed.inc(removed)

    def _state_rows(self, record, ehash, sig, keys):
        provenance = {
            "id": record.get("id"),
            "source": record.get("source"),
            "source_file": record.get("source_file"),
            "source_index": record.get("source_index"),
        }
        if self.exact:
            yield beam.pvalue.TaggedOutput(
                "exact_state",
                {"exact_hash": ehash, **provenance, "state_fingerprint": self.fingerprint},
            )
        if self.near:
            yield beam.pvalue.TaggedOutput(
                "band_state",
                {
                    **provenance,
                    "band_keys": [] if keys is None else np.frombuffer(keys, np.int64).tolist(),
                    "signature": sig,
                    "state_fingerprint": self.fingerprint,
                },
            )


# --------------------------------------------------------------------------------------------
# PTransforms
# --------------------------------------------------------------------------------------------


def _record_shards(layout: tuple[int, int]) -> int:
    return layout[0]


class _DedupCore(beam.PTransform):
    """Records → {"kept", "removed", "exact_state", "band_state"} with either stage switched off."""

    def __init__(self, *, config: DedupConfig, exact: bool, near: bool):
        super().__init__()
        self.config, self.exact, self.near = config, exact, near

    def expand(self, records):
        c = self.config
        # Output: lists of batch_size records, each pickled: Fingerprint waits for the side
        # input below, so its input is materialised, and Beam's coder decodes a record dict
        # ~6x slower than pickle (see clusters.pack).
        batched = records | "Batch" >> beam.BatchElements(
            min_batch_size=c.batch_size, max_batch_size=c.batch_size
        )
        # Reshuffled so that the batches of one input split (a single-row-group Parquet file is
        # one split) spread over all workers: Flink keeps a split's elements on one subtask.
        batches = (
            batched
            | "PackBatch" >> beam.ParDo(_PackBatchFn())
            | "SpreadBatches" >> beam.Reshuffle()
        )
        # Output: (record shards, band shards), from the number of records (counted per batch).
        layout_pc = (
            batched
            | "BatchSizes" >> beam.Map(len)
            | "CountRecords" >> beam.CombineGlobally(sum)
            | "ShardLayout" >> beam.Map(shard_layout, c)
        )
        layout = beam.pvalue.AsSingleton(layout_pc)
        # Output (tagged): (shard, pack([entries])) for records / park / exact / sigs / bands.
        found = batches | "Fingerprint" >> beam.ParDo(
            _FingerprintFn(c, self.exact, self.near), layout
        ).with_outputs("records", "park", "exact", "sigs", "bands")
        records_by_shard = found.records
        parked = [found.park]
        sigs, bands = found.sigs, found.bands
        if self.exact:
            found = (
                found.exact
                | "Exact/GroupByHashShard" >> beam.GroupByKey()
                | "Exact/PickSurvivors"
                >> beam.ParDo(_ExactShardFn(), layout).with_outputs("park", "sigs", "bands")
            )
            parked.append(found.park)
            sigs, bands = found.sigs, found.bands
        if self.near:
            wants = (
                bands
                | "Near/GroupByBandShard" >> beam.GroupByKey()
                | "Near/CandidateBuckets" >> beam.ParDo(_BucketShardFn(), layout)
            )
            candidates = (
                (sigs, wants)
                | "Near/SignaturesAndRequests" >> beam.Flatten()
                | "Near/GroupByNodeShard" >> beam.GroupByKey()
                | "Near/FetchSignatures" >> beam.ParDo(_SignatureShardFn(), layout)
            )
            verified = (
                candidates
                | "Near/GroupCandidatesByBandShard" >> beam.GroupByKey()
                | "Near/Verify"
                >> beam.ParDo(_VerifyShardFn(c), layout).with_outputs("park", main="edges")
            )
            roots = (
                verified.edges
                | "Near/Clusters"
                >> ShardedConnectedComponents(
                    num_shards=beam.pvalue.AsSingleton(
                        layout_pc | "RecordShards" >> beam.Map(_record_shards)
                    ),
                    max_rounds=c.cc_max_rounds,
                )
                | "Near/RootsToPark" >> beam.Map(_roots_to_park)
            )
            parked += [verified.park, roots]
        decided = (
            # One CoGroupByKey of every input (no Flatten of the decisions before it: one
            # shuffle hop less for ~half of its bytes).
            {"records": records_by_shard, **{f"park{i}": p for i, p in enumerate(parked)}}
            | "GroupByNodeShard" >> beam.CoGroupByKey()
            | "Decide"
            >> beam.ParDo(_DecideShardFn(c, self.exact, self.near)).with_outputs(
                "removed", "exact_state", "band_state", main="kept"
            )
        )
        return {
            "kept": decided.kept,
            "removed": decided.removed,
            "exact_state": decided.exact_state,
            "band_state": decided.band_state,
        }


class ExactDuplicates(beam.PTransform):
    """Records → {"kept", "removed", "exact_state"}: exact duplicates of ``config.fields``."""

    def __init__(self, *, config: DedupConfig | None = None):
        super().__init__()
        self.config = config or DedupConfig()

    def expand(self, records):
        out = records | "Core" >> _DedupCore(config=self.config, exact=True, near=False)
        return {k: out[k] for k in ("kept", "removed", "exact_state")}


class NearDuplicates(beam.PTransform):
    """Records → {"kept", "removed", "band_state"}: MinHash near-duplicates only.

    Meant for records already free of exact duplicates (``Deduplicate`` does both): exact
    duplicates still come out right, but each group of them costs a bucket of its size.
    """

    def __init__(self, *, config: DedupConfig | None = None):
        super().__init__()
        self.config = config or DedupConfig()

    def expand(self, records):
        out = records | "Core" >> _DedupCore(config=self.config, exact=False, near=True)
        return {k: out[k] for k in ("kept", "removed", "band_state")}


class Deduplicate(beam.PTransform):
    """Records → {"kept", "removed", "exact_state", "band_state"}: exact, then near duplicates.

    One fingerprint pass serves both stages (signatures of exact duplicates are computed and
    dropped: cheaper than a second pass over the survivors).
    """

    def __init__(self, *, config: DedupConfig | None = None):
        super().__init__()
        self.config = config or DedupConfig()

    def expand(self, records):
        return records | "Core" >> _DedupCore(config=self.config, exact=True, near=True)
