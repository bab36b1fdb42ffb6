"""Nothing lost: every ingested record ends in exactly one fate, and the counts say so.

Fates are counted per (source file, source, fate) with a Beam combiner, so the ledger is exact
on every runner and sharding; ``reconcile`` then checks, per input file, that what the reader
produced (records + dead letters) equals what came out (corpus + removed + filtered + dead
letters). Fates are strings such as ``corpus``, ``dead_letter:ingest``,
``removed:minhash``, ``filtered:language``.

    {"corpus": kept, "dead_letter:ingest": dead, ...} | CountFates()
    # Output: [{"source_file", "source", "fate", "count"}]
"""

from __future__ import annotations

from collections import defaultdict

import apache_beam as beam
import pyarrow as pa

FATES_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("source", pa.string()),
        ("fate", pa.string()),
        ("count", pa.int64()),
    ]
)


class _KeyByFate:
    """row → ((source_file, source, fate), 1); a picklable callable, not a lambda.

    A fate ending in ``:*`` takes its suffix from the row's ``reason`` (``left_out:cap``) or,
    for removed-record rows, its ``stage`` (``removed:minhash``).
    """

    def __init__(self, fate: str):
        self.fate = fate

    def __call__(self, row: dict):
        fate = self.fate
        if fate.endswith(":*"):
            fate = f"{fate[:-2]}:{row.get('reason') or row.get('stage')}"
        return (row.get("source_file"), row.get("source"), fate), 1


def _to_row(item) -> dict:
    (source_file, source, fate), count = item
    return {"source_file": source_file, "source": source, "fate": fate, "count": count}


class CountFates(beam.PTransform):
    """A dict {fate: PCollection of rows with source_file/source} → fate-count rows."""

    def expand(self, fates: dict):
        keyed = [
            pcoll | f"Key[{fate}]" >> beam.Map(_KeyByFate(fate)) for fate, pcoll in fates.items()
        ]
        return (
            keyed
            | "AllFates" >> beam.Flatten()
            | "Sum" >> beam.CombinePerKey(sum)
            | "ToRows" >> beam.Map(_to_row)
        )


class ReconciliationError(RuntimeError):
    """Records went missing or were counted twice between ingest and output."""


def reconcile(files: list[dict], fates: list[dict]) -> dict:
    """Check per input file that ingested == sum of fates; return the per-source ledger.

    ``files`` are ingest fingerprint rows (records and dead_letters per path). Raises
    ``ReconciliationError`` naming the files that do not balance.
    """
    produced = {f["path"]: f["records"] + f["dead_letters"] for f in files}
    ended: dict[str, int] = defaultdict(int)
    per_source: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    source_of_file: dict[str, str] = {}
    for row in fates:
        ended[row["source_file"]] += row["count"]
        if row["source"]:
            source_of_file.setdefault(row["source_file"], row["source"])
    for row in fates:
        source = row["source"] or source_of_file.get(row["source_file"]) or "unknown"
        per_source[source][row["fate"]] += row["count"]
    unbalanced = {
        path: (produced.get(path, 0), ended.get(path, 0))
        for path in set(produced) | set(ended)
        if produced.get(path, 0) != ended.get(path, 0)
    }
    if unbalanced:
        lines = [f"  {path}: ingested {a}, accounted {b}" for path, (a, b) in sorted(unbalanced.items())]
        raise ReconciliationError("records not accounted for:\n" + "\n".join(lines))
    ledger = {source: dict(sorted(fates.items())) for source, fates in sorted(per_source.items())}
    for source, counts in ledger.items():
        counts["ingested"] = sum(counts.values())
    return ledger


def reconcile_mixture(fates: list[dict], mixture_fates: list[dict]) -> dict:
    """Check per file that every corpus record is in the mixture once or left out with a reason.

    Returns {source: {fate: count}} of the mixture ledger; raises ``ReconciliationError``.
    """
    in_corpus = [
        {"path": row["source_file"], "records": row["count"], "dead_letters": 0}
        for row in fates
        if row["fate"] == "corpus"
    ]
    merged: dict[str, dict] = {}
    for row in in_corpus:
        entry = merged.setdefault(row["path"], dict(row, records=0))
        entry["records"] += row["records"]
    return reconcile(list(merged.values()), mixture_fates)
