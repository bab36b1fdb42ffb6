"""Recognise a file's format by its content: the first bytes, then the first record's fields.

Two questions, answered from a head of the file (64 KiB is plenty):

1. the container -- JSON Lines, a JSON array, one JSON document, TSV, CSV, YAML or Parquet --
   from the first non-blank bytes (a ``.json`` file holding JSON Lines is JSON Lines);
2. the format -- from the keys of the first record (``match_document``). When the head ends
   inside the first record (a 1 MB conversation), the keys are sniffed from the partial text.

File names are only hints for provenance (task and template names, the source of an
Alpaca-layout file), never for the format, except that ``.tsv`` decides the delimiter of a
tab-separated file with a header.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping

HEAD_BYTES = 64 * 1024
BOM = b"\xef\xbb\xbf"

# Fields only Natural Instructions v1 task files have (SNI has Instances and Definition too).
_NIV1_KEYS = frozenset({"Title", "Prompt", "Things to Avoid", "Emphasis & Caution", "Examples"})
# Task-level fields only Super-NaturalInstructions files have.
_SNI_KEYS = frozenset(
    {
        "Definition",
        "Positive Examples",
        "Negative Examples",
        "Instruction_language",
        "Instance License",
    }
)
# Fields only Self-Instruct's generated files have next to instruction/input/output.
_SELF_INSTRUCT_KEYS = frozenset(
    {"most_similar_instructions", "avg_similarity_score", "request_idx", "is_classification"}
)
FLAN_COLLECTION_HEADER = ("Source", "Dataset", "Specific Task Category", "Generic Task Category")
COT_HEADER = ("question", "answer", "rationale")


def match_keys(
    keys: frozenset[str] | set[str], *, conversation_items: str | None = None
) -> str | None:
    """The format whose required fields are ``keys`` (first match in a fixed priority order).

    ``conversation_items`` is "str" or "dict" when known: LIMA's original ``conversations`` is a
    list of strings, ShareGPT's a list of {from, value} turns.
    """
    if "Instances" in keys:
        return "niv1_task" if keys & _NIV1_KEYS else "sni_task"
    # A head that ends before "Instances" (keys sniffed from a partial task object):
    if len(keys & _NIV1_KEYS) >= 2:
        return "niv1_task"
    if keys & _SNI_KEYS:
        return "sni_task"
    if "predictions" in keys:
        return "niv1_predictions"
    if {"inputs", "targets"} <= keys or {"_inputs", "_targets"} <= keys:
        return "flan_jsonl"
    if {"prompt", "completion"} <= keys:
        return "prompt_completion"
    if "instruction" in keys and "instances" in keys:
        return "self_instruct"
    if {"instruction", "context", "response"} <= keys:
        return "dolly"
    if "instruction" in keys and ("output" in keys or "input" in keys):
        return "self_instruct" if keys & _SELF_INSTRUCT_KEYS else "alpaca"
    if "instruction" in keys and keys & _SELF_INSTRUCT_KEYS:
        return "self_instruct"  # Self-Instruct's machine_generated_instructions: no instances
    if "conversations" in keys:
        if conversation_items == "str" or (
            conversation_items is None and "source" in keys and "id" not in keys
        ):
            return "lima"
        return "sharegpt"
    if "messages" in keys:
        return "chat"
    return None


def match_document(doc: object) -> str | None:
    """The format of one parsed record (a dict), or None."""
    if not isinstance(doc, Mapping):
        return None
    items = None
    conversations = doc.get("conversations")
    if isinstance(conversations, list) and conversations:
        items = "str" if isinstance(conversations[0], str) else "dict"
    return match_keys(frozenset(k for k in doc if isinstance(k, str)), conversation_items=items)


# A string (unrolled: linear time; an unterminated one runs to the end, group 2 empty) or a
# structural character.
_SNIFF = re.compile(rb'"([^"\\]*(?:\\[\s\S][^"\\]*)*)("?)|([\[\]{}:,])')


def sniff_keys(head: bytes, depth: int) -> tuple[frozenset[str], str | None]:
    """Keys at nesting ``depth`` of a possibly truncated JSON text (1 = top-level object).

    Stops at the end of the first value at that depth. Also reports whether the first item of a
    ``conversations`` list is a string or an object ("str" / "dict" / None when unseen).
    """
    keys: set[str] = set()
    level, last, items = 0, None, None
    stage = 0  # 1: just read `"conversations":`; 2: and then `[`
    for m in _SNIFF.finditer(head):
        string, closed, punct = m.group(1), m.group(2), m.group(3)
        if string is not None and not closed:
            break  # the head ends inside this string
        if string is not None:
            if stage == 2:
                items = "str"
            stage, last = 0, string
            continue
        if stage == 1:
            stage = 2 if punct == b"[" else 0
        elif stage == 2:
            items, stage = ("dict" if punct == b"{" else None), 0
        if punct == b":":
            if level == depth and last is not None:
                try:
                    key = json.loads(b'"' + last + b'"')
                except ValueError:
                    key = None
                if isinstance(key, str):
                    keys.add(key)
                    if key == "conversations" and items is None:
                        stage = 1
            last = None
            continue
        last = None
        if punct in (b"{", b"["):
            level += 1
        elif punct in (b"}", b"]"):
            level -= 1
            if level < depth:
                break
    return frozenset(keys), items


def container_of(head: bytes) -> str | None:
    """jsonl | json_array | json_document | yaml | tsv | csv | parquet, or None (unknown)."""
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(BOM):
        head = head[3:]
    text = head.lstrip()
    if not text:
        return None
    first = text[:1]
    if first == b"[":
        return "json_array"
    if first == b"{":
        lines = [line for line in text.split(b"\n", 3)[:3] if line.strip()]
        if _is_json_object(lines[0]):
            return "jsonl"
        complete = b"\n" in text  # the first line ended inside the head
        if not complete:
            return "jsonl"  # one long line (a JSON Lines record or a minified document)
        if len(lines) > 1 and _is_json_object(lines[1]):
            return "jsonl"  # first line broken, the next one a record: JSON Lines
        return "json_document"
    if _looks_like_yaml(text):
        return "yaml"
    if _looks_binary(text):
        return None
    first_line = text.split(b"\n", 1)[0]
    if b"\t" in first_line:
        return "tsv"
    if b"," in first_line:
        return "csv"
    return None


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _looks_like_yaml(text: bytes) -> bool:
    return re.match(rb"(?:#[^\n]*\n|\s)*(?:dataset|templates|subset)\s*:", text) is not None


def _looks_binary(text: bytes) -> bool:
    """NUL bytes, or more than a few bytes that are not UTF-8 (a stray bad byte is a record's
    problem, not the file's)."""
    sample = text[:4096]
    if b"\x00" in sample:
        return True
    bad = sample.decode("utf-8", "replace").count("\ufffd")
    return bad > max(4, len(sample) // 100)


def _first_records(head: bytes, container: str) -> list[object]:
    """Complete records parseable from the head alone (up to 5)."""
    if container == "jsonl":
        out = []
        for line in head.split(b"\n")[:-1] if not head.endswith(b"\n") else head.split(b"\n"):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
            if len(out) >= 5:
                break
        return out
    if container == "json_document":
        try:
            return [json.loads(head)]
        except ValueError:
            return []
    if container == "json_array":
        from transforms.formats.containers import Doc, iter_json_array, rewound

        out = []
        for event in iter_json_array(rewound(head, io.BytesIO()), len(head) + 1):
            if isinstance(event, Doc):
                out.append(event.value)
                if len(out) >= 5:
                    break
        return out
    return []


def detect_format(path: str, head: bytes) -> str | None:
    """The format name (a key of ``FORMATS``) of a file from its first bytes, or None.

    ``parquet`` is returned for Parquet files: their columns live in the footer, so the row
    format is decided when the file is read.
    """
    if head.startswith(BOM):
        head = head[3:]
    container = container_of(head)
    if container is None:
        return None
    if container == "parquet":
        return "parquet"
    if container == "yaml":
        return "promptsource_templates" if re.search(rb"(?m)^templates\s*:", head) else None
    if container in ("tsv", "csv"):
        return _detect_table(path, head, container)
    for record in _first_records(head, container):
        if isinstance(record, Mapping):
            return match_document(record)
    # The head ends inside the first record: sniff its keys from the partial text.
    start = head.lstrip()
    depth = 2 if container == "json_array" else 1
    if container == "jsonl":
        start = start.split(b"\n", 1)[0]
    keys, items = sniff_keys(start, depth)
    return match_keys(keys, conversation_items=items)


def _detect_table(path: str, head: bytes, container: str) -> str | None:
    text = head.decode("utf-8", "replace")
    lines = [line for line in text.split("\n") if line.strip()]
    if not head.endswith(b"\n") and len(lines) > 1:
        lines = lines[:-1]  # the head may cut the last line
    delimiter = "\t" if container == "tsv" else ","
    rows = list(csv.reader(io.StringIO("\n".join(lines[:20])), delimiter=delimiter))
    if not rows:
        return None
    header = tuple(cell.strip() for cell in rows[0])
    if header[: len(FLAN_COLLECTION_HEADER)] == FLAN_COLLECTION_HEADER:
        return "flan_collection_info"
    if container == "tsv":
        if tuple(h.lower() for h in header) == COT_HEADER:
            return "flan_cot_tsv"
        # FLAN's chain-of-thought TSVs have no header: every line is question, answer, rationale
        # (the first line and most others, so that one malformed row does not hide the format).
        sample = lines[:20]
        fits = [line.count("\t") == 2 for line in sample]
        if fits[0] and sum(fits) * 2 > len(sample):
            return "flan_cot_tsv"
    table_format = match_keys(frozenset(header))
    return table_format
