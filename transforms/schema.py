"""The one Arrow schema of a corpus row, and of a dead letter.

Every stage passes records as plain dicts with exactly the keys of ``CORPUS_SCHEMA`` (cheap to
pickle and to encode on any runner); ``new_record`` fills the defaults so a reader only sets what
its format has. Writers always pass these schemas: never inferred from the first record.
"""

from __future__ import annotations

import pyarrow as pa

EXAMPLE = pa.struct(
    [("input", pa.string()), ("output", pa.string()), ("explanation", pa.string())]
)
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

CORPUS_SCHEMA = pa.schema(
    [
        # identity and provenance
        ("id", pa.string()),  # stable content-derived hash, see ``record_id``
        ("source", pa.string()),  # sni, niv1, flan, flan_cot, p3, alpaca, dolly, chat, ...
        ("source_format", pa.string()),  # the reader that parsed it
        ("source_file", pa.string()),  # path or URL as given
        ("source_index", pa.int64()),  # position of the record in its file (0-based)
        # task
        ("task", pa.string()),
        ("task_categories", pa.list_(pa.string())),
        ("domains", pa.list_(pa.string())),
        # instruction
        ("definition", pa.string()),
        ("constraints", pa.string()),
        ("positive_examples", pa.list_(EXAMPLE)),
        ("negative_examples", pa.list_(EXAMPLE)),
        ("template_id", pa.string()),
        ("template", pa.string()),
        # instance
        ("input", pa.string()),
        ("output", pa.string()),
        ("references", pa.list_(pa.string())),  # every valid output (SNI lists several)
        ("label", pa.string()),  # classification tasks only
        ("label_space", pa.list_(pa.string())),
        ("rationale", pa.string()),  # chain of thought, when the source has one
        ("messages", pa.list_(MESSAGE)),  # multi-turn sources
        # declared languages (as the source states them) and detected ones
        ("instruction_language", pa.list_(pa.string())),
        ("input_language", pa.list_(pa.string())),
        ("output_language", pa.list_(pa.string())),
        ("lang", pa.string()),  # split key: detected language, or "und"
        ("lang_score", pa.float32()),
        ("lang_instruction", pa.string()),
        ("lang_output", pa.string()),
        ("lang_reason", pa.string()),  # why "und" (or how the split key was chosen)
        ("license", pa.string()),
        ("metadata", pa.string()),  # JSON of source fields the schema has no column for
    ]
)

FIELDS = tuple(CORPUS_SCHEMA.names)
_LIST_FIELDS = frozenset(
    f.name for f in CORPUS_SCHEMA if pa.types.is_list(f.type)
)

DEAD_LETTER_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("position", pa.string()),  # "line 12", "instance 40", "row 7", "file"
        ("source_index", pa.int64()),
        ("stage", pa.string()),  # ingest, normalize, ...
        ("reason", pa.string()),  # short machine-readable category
        ("detail", pa.string()),  # human-readable explanation
        ("raw", pa.string()),  # the offending text, truncated
    ]
)

RAW_LIMIT = 2000  # characters of raw text kept in a dead letter


def new_record(**values) -> dict:
    """A record with every schema key: lists default to [], everything else to None."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise KeyError(f"not in CORPUS_SCHEMA: {sorted(unknown)}")
    record = {name: ([] if name in _LIST_FIELDS else None) for name in FIELDS}
    record.update(values)
    return record


def dead_letter(
    source_file: str,
    position: str,
    reason: str,
    detail: str,
    raw: str | bytes | None = None,
    *,
    source_index: int | None = None,
    stage: str = "ingest",
) -> dict:
    """A dead-letter row; raw bytes are decoded with replacement and truncated."""
    if isinstance(raw, bytes):
        raw = raw[: RAW_LIMIT * 4].decode("utf-8", errors="replace")
    if raw is not None and len(raw) > RAW_LIMIT:
        raw = raw[:RAW_LIMIT] + f"…[{len(raw) - RAW_LIMIT} more characters]"
    return {
        "source_file": source_file,
        "position": position,
        "source_index": source_index,
        "stage": stage,
        "reason": reason,
        "detail": detail,
        "raw": raw,
    }

# One row per record removed by a stage after ingest (dedup, ROUGE-L, decontamination, ...):
# enough provenance on both sides for a user to check the decision by hand.
REMOVED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("source_file", pa.string()),
        ("source_index", pa.int64()),
        ("task", pa.string()),
        ("stage", pa.string()),  # exact, minhash, rouge, decontaminate, ...
        ("survivor_id", pa.string()),
        ("survivor_source_file", pa.string()),
        ("survivor_source_index", pa.int64()),
        ("similarity", pa.float64()),  # Jaccard, ROUGE-L F1, 1.0 for exact
        ("detail", pa.string()),
    ]
)
