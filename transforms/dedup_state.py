"""New records against the kept corpus of earlier runs: the nightly refresh's dedup join.

    against = {
        "kept": new_kept, "exact_state": new_exact, "band_state": new_bands,   # Deduplicate's
        "prior_exact": old_exact, "prior_bands": old_bands,                    # from STATE
    } | DedupAgainstState(config)
    against["kept"], against["removed"], against["exact_state"], against["band_state"]

The new records were already deduplicated among themselves (``Deduplicate``). Here a new
kept record is removed if its exact hash equals an earlier kept record's (stage ``exact``) or
if it shares an LSH band key with one whose estimated Jaccard is >= ``threshold`` (stage
``minhash``, the same verification as ``Deduplicate``). Earlier records always win: nothing
kept by an earlier run is ever removed here.

Scaling: the prior state is read in full (I/O) but filtered before any shuffle by the new
records' exact hashes and band keys (side inputs: O(new records)), so the shuffles and the
comparisons grow with the night's data, not with the corpus.

Where this differs from a from-scratch run (documented in README, "Nightly refresh"): a
cluster spanning nights keeps its earliest member rather than the policy's best-ranked one; a
new record that is similar to an old one only through another new record is not chained to
it; a new record bridging two old clusters removes neither of them.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.pvalue import AsSingleton, TaggedOutput

from transforms import minhash
from transforms.dedup import EXACT, MINHASH, removed_row
from transforms.dedup_config import DedupConfig

NAMESPACE = "instructmix.refresh"
DETAIL = "kept by an earlier run"


def _provenance(row: dict) -> tuple:
    return (row.get("id"), row.get("source_file"), row.get("source_index"))


class _SortedKeys(beam.CombineFn):
    """The new records' band keys as one sorted, distinct int64 array (a side input)."""

    def create_accumulator(self):
        return []

    def add_input(self, acc, keys):
        if len(keys):
            acc.append(np.asarray(keys, dtype=np.int64))
        return acc

    def merge_accumulators(self, accs):
        merged = [a for acc in accs for a in acc]
        return [np.unique(np.concatenate(merged))] if merged else []

    def extract_output(self, acc):
        return np.unique(np.concatenate(acc)) if acc else np.empty(0, dtype=np.int64)


class _PriorBandEntries(beam.DoFn):
    """An old record's band keys that some new record also has: (key, ("old", prov, sig))."""

    def process(self, row, new_keys: np.ndarray):
        keys = np.asarray(row["band_keys"], dtype=np.int64)
        if len(keys) == 0 or len(new_keys) == 0:
            return
        position = np.minimum(np.searchsorted(new_keys, keys), len(new_keys) - 1)
        for key in np.unique(keys[new_keys[position] == keys]):
            yield int(key), ("old", _provenance(row), row["signature"])


def _new_band_entries(row):
    for key in row["band_keys"]:
        yield int(key), ("new", row["id"], row["signature"])


class _VerifyBucket(beam.DoFn):
    """In a bucket with old and new members: each new one's best verified old match (the same
    integer test as ``Deduplicate``: at least ``min_equal_slots`` equal signature values)."""

    def __init__(self, threshold: float, num_perm: int):
        self.min_equal = minhash.min_equal_slots(threshold, num_perm)

    def process(self, element):
        _, members = element
        old = [
            (prov, minhash.signature_from_bytes(sig))
            for kind, prov, sig in members
            if kind == "old"
        ]
        if not old:
            return
        old_sigs = np.stack([sig for _, sig in old])
        seen = set()
        for kind, new_id, sig in members:
            if kind != "new" or new_id in seen:
                continue
            seen.add(new_id)
            equal = (old_sigs == minhash.signature_from_bytes(sig)).sum(axis=1)
            best = int(np.argmax(equal))
            if equal[best] >= self.min_equal:
                yield new_id, (float(equal[best]) / old_sigs.shape[1], old[best][0])


def _best_match(a: tuple, b: tuple) -> tuple:
    """Highest similarity; ties to the smallest provenance (deterministic on any runner)."""
    return min(a, b, key=lambda m: (-m[0], tuple("" if v is None else str(v) for v in m[1])))


class _Decide(beam.DoFn):
    """Per new record: kept (with its state rows) or removed against an older record."""

    def __init__(self):
        self.kept = Metrics.counter(NAMESPACE, "dedup_state:kept")
        self.removed = {
            s: Metrics.counter(NAMESPACE, f"dedup_state:removed:{s}") for s in (EXACT, MINHASH)
        }

    def process(self, element):
        _, grouped = element
        (record,) = grouped["record"] or [None]
        if record is None:
            return
        exact, near = grouped["exact_hit"], grouped["near_hit"]
        if exact:
            self.removed[EXACT].inc()
            yield TaggedOutput(
                "removed", removed_row(record, min(exact, key=str), EXACT, 1.0, DETAIL)
            )
            return
        if near:
            best = near[0]
            for match in near[1:]:
                best = _best_match(best, match)
            self.removed[MINHASH].inc()
            yield TaggedOutput("removed", removed_row(record, best[1], MINHASH, best[0], DETAIL))
            return
        self.kept.inc()
        yield record
        for row in grouped["exact_state"]:
            yield TaggedOutput("exact_state", row)
        for row in grouped["band_state"]:
            yield TaggedOutput("band_state", row)


def _prior_exact_hit(row: dict, new_hashes: frozenset):
    if row["exact_hash"] in new_hashes:
        yield row["exact_hash"], _provenance(row)


def _exact_hits(element):
    """(hash, {"new": [ids], "old": [provenances]}) → (new id, oldest-sorting provenance)."""
    _, sides = element
    if sides["old"]:
        survivor = min(sides["old"], key=str)
        for new_id in sides["new"]:
            yield new_id, survivor


class DedupAgainstState(beam.PTransform):
    def __init__(self, config: DedupConfig):
        super().__init__()
        self.config = config

    def expand(self, pcolls):
        kept, new_exact, new_bands = pcolls["kept"], pcolls["exact_state"], pcolls["band_state"]
        new_hashes = (
            new_exact
            | "NewHashes" >> beam.Map(lambda row: row["exact_hash"])
            | "HashSet" >> beam.CombineGlobally(beam.combiners.ToSetCombineFn())
            | "Frozen" >> beam.Map(frozenset)
        )
        exact_hits = (
            {
                "new": new_exact | "NewByHash" >> beam.Map(lambda r: (r["exact_hash"], r["id"])),
                "old": pcolls["prior_exact"]
                | "OldHashHits" >> beam.FlatMap(_prior_exact_hit, AsSingleton(new_hashes)),
            }
            | "JoinHashes" >> beam.CoGroupByKey()
            | "ExactHits" >> beam.FlatMap(_exact_hits)
        )
        new_keys = (
            new_bands
            | "NewKeyLists" >> beam.Map(lambda row: row["band_keys"])
            | "NewKeys" >> beam.CombineGlobally(_SortedKeys())
        )
        near_hits = (
            (
                pcolls["prior_bands"]
                | "OldBandHits" >> beam.ParDo(_PriorBandEntries(), AsSingleton(new_keys)),
                new_bands | "NewBandEntries" >> beam.FlatMap(_new_band_entries),
            )
            | "AllBandEntries" >> beam.Flatten()
            | "ByBandKey" >> beam.GroupByKey()
            | "Verify" >> beam.ParDo(_VerifyBucket(self.config.threshold, self.config.num_perm))
        )
        return (
            {
                "record": kept | "RecordById" >> beam.Map(lambda r: (r["id"], r)),
                "exact_state": new_exact | "ExactById" >> beam.Map(lambda r: (r["id"], r)),
                "band_state": new_bands | "BandsById" >> beam.Map(lambda r: (r["id"], r)),
                "exact_hit": exact_hits,
                "near_hit": near_hits,
            }
            | "JoinDecisions" >> beam.CoGroupByKey()
            | "Decide"
            >> beam.ParDo(_Decide()).with_outputs(
                "removed", "exact_state", "band_state", main="kept"
            )
        )
