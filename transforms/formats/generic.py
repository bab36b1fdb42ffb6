"""Generic JSONL / JSON array / CSV / TSV / Parquet rows with a field mapping from the config.

The mapping is ``{schema_field: source_column}``, e.g. ``{"definition": "prompt_text",
"output": "answer", "task": "dataset_name"}``; a dotted column (``meta.lang``) reaches into
nested objects. Identity and detected-language columns (``id``, ``lang*``, ``source_file``,
``source_index``, ``source_format``) cannot be mapped: the pipeline owns them. A mapping is
validated when ``parse_file`` is called -- a bad one is a config error (``ValueError``), not a
dead letter.

Per row: text fields take strings (numbers and booleans are stringified); list fields take a
list or a single value; ``output`` given as a list becomes output = first, references = all;
``messages`` take turn objects (normalised like ``chat``); unmapped columns go to ``metadata``.
``source`` defaults to ``generic`` and ``task`` to the file stem. A row whose mapped text
(definition, input, output, messages) is all empty is ``missing_field``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from transforms.formats.chat import normalise_turns
from transforms.formats.common import FileContext, examples, metadata_json
from transforms.formats.errors import RecordError
from transforms.schema import CORPUS_SCHEMA, FIELDS, new_record

FORMAT = "generic"
DESCRIPTION = "generic JSONL/JSON/CSV/TSV/Parquet rows with a {schema_field: column} mapping"

PIPELINE_FIELDS = frozenset(
    {
        "id",
        "source_file",
        "source_index",
        "source_format",
        "lang",
        "lang_score",
        "lang_instruction",
        "lang_output",
        "lang_reason",
    }
)
MAPPABLE_FIELDS = frozenset(FIELDS) - PIPELINE_FIELDS
_LIST_FIELDS = frozenset(f.name for f in CORPUS_SCHEMA if str(f.type).startswith("list")) - {
    "messages",
    "positive_examples",
    "negative_examples",
}
_MISSING = object()


def validate_mapping(mapping: object) -> dict[str, str]:
    """The mapping as a plain dict, or ValueError naming what is wrong."""
    if not isinstance(mapping, Mapping) or not mapping:
        raise ValueError("mapping must be a non-empty {schema_field: source_column} dict")
    unknown = sorted(k for k in mapping if k not in FIELDS)
    if unknown:
        raise ValueError(f"mapping targets unknown schema fields: {unknown}")
    reserved = sorted(k for k in mapping if k in PIPELINE_FIELDS)
    if reserved:
        raise ValueError(f"mapping targets fields the pipeline sets itself: {reserved}")
    bad = sorted(k for k, v in mapping.items() if not isinstance(v, str) or not v)
    if bad:
        raise ValueError(f"mapping columns must be non-empty strings: {bad}")
    if not set(mapping) & {"definition", "input", "output", "messages"}:
        raise ValueError("mapping must map at least one of definition, input, output, messages")
    return dict(mapping)


def _lookup(row: Mapping, column: str) -> object:
    if column in row:
        return row[column]
    value: object = row
    for part in column.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _text(value: object, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return str(value)
    raise RecordError(
        "wrong_type", f"column for {field!r} must hold text, got {type(value).__name__}"
    )


def _texts(value: object, field: str) -> list[str]:
    if value is None:
        return []
    values = value if isinstance(value, (list, tuple)) else [value]
    return [t for t in (_text(v, field) for v in values) if t is not None]


def expand(doc: object, ctx: FileContext, mapping: Mapping[str, str]) -> Iterator[dict]:
    """One record per row, fields taken from the mapped columns."""
    if not isinstance(doc, Mapping):
        raise RecordError("wrong_type", "a row must be an object")
    values: dict[str, object] = {}
    used = set()
    for field, column in mapping.items():
        value = _lookup(doc, column)
        if value is _MISSING:
            continue
        used.add(column.split(".", 1)[0] if column not in doc else column)
        if field == "messages":
            values[field], _ = normalise_turns(
                value, role_key="role", content_key="content", field=column
            )
        elif field in ("positive_examples", "negative_examples"):
            values[field] = examples(value)
        elif field in _LIST_FIELDS:
            values[field] = _texts(value, field)
        elif field == "output" and isinstance(value, (list, tuple)):
            outputs = _texts(value, field)
            values["output"] = outputs[0] if outputs else None
            values.setdefault("references", outputs)
        else:
            values[field] = _text(value, field)
    if not any(values.get(f) for f in ("definition", "input", "output", "messages")):
        raise RecordError(
            "missing_field", "the mapped definition/input/output/messages are all empty"
        )
    values.setdefault("source", "generic")
    values.setdefault("task", ctx.stem)
    if not values.get("source"):
        values["source"] = "generic"
    if not values.get("task"):
        values["task"] = ctx.stem
    extra = {k: v for k, v in doc.items() if k not in used}
    values.setdefault("metadata", metadata_json(extra))
    yield new_record(**values)
