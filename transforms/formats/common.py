"""Small helpers every format reader shares: file-name parts, field checks, metadata JSON.

Readers are strict about what their format requires (a missing or mistyped required field is a
``RecordError``) and lenient about the rest (unknown fields go to ``metadata``), so schema drift
in optional fields never loses a record.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Iterable, Mapping

from transforms.formats.errors import RecordError

COMPRESSION_SUFFIXES = (".gz", ".gzip", ".bz2", ".zst", ".zstd", ".xz")
DATA_SUFFIXES = (".jsonl", ".ndjson", ".json", ".tsv", ".csv", ".parquet", ".yaml", ".yml", ".txt")


@dataclasses.dataclass(frozen=True)
class FileContext:
    """What a reader knows about the file it parses (plain values: safe to pickle)."""

    path: str  # as given: local path or URL
    max_record_bytes: int
    check_sizes: bool = False  # the whole document exceeds the limit: measure each instance

    @functools.cached_property
    def name(self) -> str:
        """Base name without compression suffix: ``a/b/x.jsonl.gz`` -> ``x.jsonl``."""
        name = self.path.rstrip("/").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
        lowered = name.lower()
        for suffix in COMPRESSION_SUFFIXES:
            if lowered.endswith(suffix):
                return name[: -len(suffix)]
        return name

    @functools.cached_property
    def stem(self) -> str:
        """Base name without compression and data suffix: ``x.jsonl.gz`` -> ``x``."""
        name = self.name
        lowered = name.lower()
        for suffix in DATA_SUFFIXES:
            if lowered.endswith(suffix):
                return name[: -len(suffix)]
        return name

    def check_size(self, value: object, what: str) -> None:
        """Raise oversize_record when a value parsed from a big document exceeds the limit."""
        if not self.check_sizes:
            return
        size = len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        if size > self.max_record_bytes:
            raise RecordError(
                "oversize_record",
                f"{what} is {size} bytes, more than max_record_bytes={self.max_record_bytes}",
            )


def metadata_json(fields: Mapping[str, object]) -> str | None:
    """JSON of the source fields the schema has no column for (sorted keys), or None."""
    if not fields:
        return None
    return json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)


def leftovers(doc: Mapping[str, object], used: Iterable[str]) -> dict[str, object]:
    """The fields of ``doc`` not in ``used``."""
    used = set(used)
    return {k: v for k, v in doc.items() if k not in used}


def require(doc: Mapping[str, object], key: str) -> object:
    """The value of a required field, or missing_field."""
    if key not in doc or doc[key] is None:
        raise RecordError("missing_field", f"required field {key!r} is missing")
    return doc[key]


def require_text(doc: Mapping[str, object], key: str, *, allow_empty: bool = True) -> str:
    """A required string field; wrong_type for anything but a string."""
    value = require(doc, key)
    if not isinstance(value, str):
        raise RecordError(
            "wrong_type", f"field {key!r} must be a string, got {type(value).__name__}"
        )
    if not allow_empty and not value.strip():
        raise RecordError("missing_field", f"required field {key!r} is empty")
    return value


def optional_text(doc: Mapping[str, object], key: str) -> str | None:
    """An optional string field: None when absent; wrong_type when not a string."""
    value = doc.get(key)
    if value is None or isinstance(value, str):
        return value
    raise RecordError("wrong_type", f"field {key!r} must be a string, got {type(value).__name__}")


def as_text(value: object) -> str | None:
    """Lenient text for descriptive fields: lists joined by newlines, scalars stringified."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [as_text(v) for v in value]
        return "\n".join(p for p in parts if p is not None)
    if isinstance(value, (dict,)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def text_list(value: object, key: str) -> list[str]:
    """A list of strings (a lone string becomes a one-element list); wrong_type otherwise."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise RecordError("wrong_type", f"field {key!r} must be a list of strings")


def lenient_text_list(value: object) -> list[str]:
    """A list of strings from descriptive metadata (never fails: non-strings are stringified)."""
    if value is None:
        return []
    if isinstance(value, list):
        return [t for t in (as_text(v) for v in value) if t is not None]
    text = as_text(value)
    return [text] if text is not None else []


def examples(value: object, *, explanation_keys: tuple[str, ...] = ("explanation",)) -> list[dict]:
    """Demonstrations as ``{input, output, explanation}`` (lenient: they are task metadata)."""
    if not isinstance(value, list):
        return []
    out = []
    for item in value:
        if not isinstance(item, dict):
            continue
        output = item.get("output")
        if isinstance(output, list):  # some drafts list several outputs: keep the first
            output = output[0] if output else None
        explanation = [as_text(item.get(k)) for k in explanation_keys]
        explanation = [e for e in explanation if e and e.strip()]
        out.append(
            {
                "input": as_text(item.get("input")),
                "output": as_text(output),
                "explanation": "\n".join(explanation) if explanation else None,
            }
        )
    return out


_TASK_IN_NAME = re.compile(r"(?:^|[-_.])((?:sub)?task\d+_.+)$")


def sni_task_name(stem: str) -> str:
    """The ``taskNNN_name`` part of a file stem (``fin-translated-task1289_x`` -> ``task1289_x``)."""
    if re.match(r"(?:sub)?task\d+_", stem):
        return stem
    match = _TASK_IN_NAME.search(stem)
    return match.group(1) if match else stem
