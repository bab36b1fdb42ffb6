"""Format readers: one raw file in any supported format -> schema records and dead letters.

``parse_file(path, stream)`` recognises the format by content (``detect_format``), streams the
file's documents (``containers``) and fans each out through its format's reader, yielding
``("record", dict)`` -- a ``transforms.schema.new_record`` with source, source_format,
source_file and source_index set (id and lang* are left to the pipeline) -- or
``("dead_letter", dict)`` (``transforms.schema.dead_letter``; reasons in
``DEAD_LETTER_REASONS``). It never raises for bad *content*; a bad argument (a malformed
mapping, a non-positive size limit) raises ``ValueError`` at call time, and a failing *stream*
(I/O or decompression error) propagates its exception to the caller.

A file has one format, decided by its content (``detect_format`` on the first 64 KiB, else the
first parseable record): a later record of another layout is a dead letter (missing_field...),
not silently read as something else.

Accounting, so that "records in = corpus + dead letters" can be checked per file:
- every instance becomes exactly one record or one dead letter, and takes the next
  ``source_index`` (0-based ordinal of the instance in the file: the index in ``Instances`` of
  a task file, the element index of a JSON array, the index among non-blank lines of JSON Lines
  with one record per line); dead letters for a whole file have ``source_index`` None;
- a data file that yields nothing gets one dead letter (``empty_file`` or ``no_instances``);
- PromptSource templates and the Flan collection table are metadata: recognised, logged, and
  they yield no rows at all.

    python -c "from transforms.formats import parse_path
    for kind, row in parse_path('../shared/data/dolly/databricks-dolly-15k.first9.jsonl'):
        print(kind, row['task'], row['source_index'])"
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import json
import logging
import typing
from collections.abc import Callable, Iterator, Mapping

from transforms.formats import (
    alpaca,
    chat,
    dolly,
    flan,
    generic,
    niv1,
    prompt_completion,
    promptsource,
    self_instruct,
    sni,
)
from transforms.formats.common import FileContext
from transforms.formats.containers import (
    RAW_BYTES,
    Bad,
    Doc,
    iter_csv,
    iter_json_array,
    iter_jsonl,
    iter_parquet,
    iter_tsv,
    read_document,
    read_head,
    rewound,
)
from transforms.formats.detect import (
    BOM,
    COT_HEADER,
    HEAD_BYTES,
    container_of,
    detect_format,
    match_document,
)
from transforms.formats.errors import DEAD_LETTER_REASONS, Failure, RecordError
from transforms.formats.promptsource import load_template_sets
from transforms.schema import dead_letter

__all__ = [
    "DEAD_LETTER_REASONS",
    "DEFAULT_MAX_RECORD_BYTES",
    "FORMATS",
    "detect_format",
    "load_template_sets",
    "parse_file",
    "parse_path",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_RECORD_BYTES = 16 * 2**20

FORMATS: dict[str, str] = {
    sni.FORMAT: sni.DESCRIPTION,
    **niv1.FORMATS,
    **flan.FORMATS,
    prompt_completion.FORMAT: prompt_completion.DESCRIPTION,
    self_instruct.FORMAT: self_instruct.DESCRIPTION,
    **alpaca.FORMATS,
    dolly.FORMAT: dolly.DESCRIPTION,
    **chat.FORMATS,
    promptsource.FORMAT: promptsource.DESCRIPTION,
    generic.FORMAT: generic.DESCRIPTION,
    "parquet": "Apache Parquet rows: the columns pick the row format (or the generic mapping)",
}

_Expand = Callable[[object, FileContext], Iterator[dict | Failure]]
_READERS: dict[str, _Expand] = {
    "sni_task": sni.expand,
    "niv1_task": niv1.expand_task,
    "niv1_predictions": niv1.expand_predictions,
    "flan_jsonl": flan.expand_jsonl,
    "flan_cot_tsv": flan.expand_cot,
    "prompt_completion": prompt_completion.expand,
    "self_instruct": self_instruct.expand,
    "alpaca": alpaca.expand_alpaca,
    "lima": alpaca.expand_lima,
    "dolly": dolly.expand,
    "chat": chat.expand_messages,
    "sharegpt": chat.expand_sharegpt,
}
# Formats whose file is one JSON document holding many instances (read whole).
_TASK_FORMATS = frozenset({"sni_task", "niv1_task", "niv1_predictions"})
# Formats where one document (line, element, file) can hold several instances.
_MULTI_INSTANCE_FORMATS = _TASK_FORMATS | {"self_instruct"}
# Formats that describe data rather than hold it: recognised, logged, no rows.
METADATA_FORMATS = frozenset({"promptsource_templates", "flan_collection_info"})

Event = tuple[str, dict]


def parse_file(
    path: str,
    stream: typing.BinaryIO,
    *,
    mapping: dict | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[Event]:
    """Yield ("record", record_dict) or ("dead_letter", dead_letter_dict) for one input file.

    ``stream`` is the already-decompressed binary content; ``path`` is the file's name as given
    (used for task/template names from file names and for provenance). ``mapping``
    ({schema_field: source_column}) is for files no reader recognises: they are read by the
    generic reader with it, while files of a known format keep their own reader, so one
    mapping can be given for a whole mixed input directory. Errors of the
    stream itself (I/O, decompression) propagate: whether an unreadable file stops the run is
    the caller's policy.
    """
    mapping = _check_arguments(mapping, max_record_bytes)
    return _parse(path, stream, mapping, max_record_bytes)


def _check_arguments(mapping: object, max_record_bytes: object) -> dict | None:
    if isinstance(max_record_bytes, bool) or not isinstance(max_record_bytes, int):
        raise TypeError("max_record_bytes must be an int")
    if max_record_bytes < 1:
        raise ValueError("max_record_bytes must be positive")
    return None if mapping is None else generic.validate_mapping(mapping)


def _dead(
    path: str,
    position: str,
    reason: str,
    detail: str,
    raw: object = None,
    source_index: int | None = None,
) -> Event:
    if raw is not None and not isinstance(raw, (str, bytes)):
        raw = json.dumps(raw, ensure_ascii=False, default=str)[:RAW_BYTES]
    return "dead_letter", dead_letter(
        path, position, reason, detail, raw, source_index=source_index
    )


def _parse(path: str, stream: typing.BinaryIO, mapping: dict | None, limit: int) -> Iterator[Event]:
    head = read_head(stream, HEAD_BYTES).removeprefix(BOM)
    while len(head) == HEAD_BYTES and not head.strip():  # leading whitespace longer than a head
        head = read_head(stream, HEAD_BYTES)
    if not head.strip():
        yield _dead(path, "file", "empty_file", "the file holds no data")
        return
    container = container_of(head)
    fmt = detect_format(path, head) if container is not None else None
    if mapping is not None and fmt is None:
        # The mapping is for files no reader recognises; known formats keep their reader.
        fmt = "generic"
    if fmt in METADATA_FORMATS:
        yield from _metadata_file(path, fmt, rewound(head, stream))
        return
    if container is None or container == "yaml" or (fmt is None and container in ("tsv", "csv")):
        yield _dead(path, "file", "unknown_format", _unknown_detail(head, container), head)
        return
    if container == "jsonl" and fmt in _TASK_FORMATS and b"\n" not in head.strip():
        container = "json_document"  # a task file minified on one line longer than the head
    ctx = FileContext(path=path, max_record_bytes=limit)
    reader = rewound(head, stream)
    if container == "json_document":
        events, size = _document(reader)
        ctx = dataclasses.replace(ctx, check_sizes=size > limit)
    elif container == "json_array":
        events = iter_json_array(reader, limit)
    elif container == "jsonl":
        events = iter_jsonl(reader, limit)
    elif container == "tsv" and fmt == "flan_cot_tsv":
        events = iter_tsv(reader, limit, 3)
    elif container in ("tsv", "csv"):
        events = iter_csv(reader, limit, "\t" if container == "tsv" else ",")
    else:
        events = iter_parquet(reader, limit)
    yield from _drive(ctx, None if fmt == "parquet" else fmt, events, mapping)


def _document(reader) -> tuple[Iterator[Doc | Bad], int]:
    event, size = read_document(reader)
    return iter([event]), size


def _metadata_file(path: str, fmt: str, reader) -> Iterator[Event]:
    if fmt == "promptsource_templates":
        try:
            count = len(promptsource.parse_templates(reader.read(), path))
        except Exception as err:  # noqa: BLE001 - yaml.YAMLError, ValueError, decode errors
            yield _dead(path, "file", "malformed_yaml", f"{type(err).__name__}: {err}")
            return
        logger.info(
            "%s: PromptSource templates (%d), template sets not records: 0 records", path, count
        )
    else:
        logger.info("%s: Flan collection task table, task metadata not instances: 0 records", path)


def _unknown_detail(head: bytes, container: str | None) -> str:
    if head.startswith(b"\x1f\x8b"):
        return "gzip-compressed bytes: the file should be decompressed before parsing"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd-compressed bytes: the file should be decompressed before parsing"
    if head.startswith(b"BZh"):
        return "bzip2-compressed bytes: the file should be decompressed before parsing"
    if container is None:
        return "not JSON, JSON Lines, YAML, TSV, CSV or Parquet"
    return f"{container} content whose columns/keys match no known format (give a mapping?)"


def _drive(
    ctx: FileContext, fmt: str | None, events: Iterator[Doc | Bad], mapping: dict | None
) -> Iterator[Event]:
    """Fan documents out to records; every instance takes the next source_index."""
    path, slot, produced = ctx.path, 0, 0
    for event in events:  # stream I/O errors propagate: the caller owns that policy
        if isinstance(event, Bad):
            whole = event.position == "file"
            yield _dead(
                path, event.position, event.reason, event.detail, event.raw, None if whole else slot
            )
            slot += 0 if whole else 1
            produced += 1
            continue
        if fmt is None:
            fmt = match_document(event.value) or ("generic" if mapping is not None else None)
            if fmt is None:
                keys = (
                    sorted(event.value)[:20]
                    if isinstance(event.value, Mapping)
                    else type(event.value).__name__
                )
                yield _dead(
                    path,
                    "file",
                    "unknown_format",
                    f"first record matches no known format (fields: {keys})",
                    event.raw or event.value,
                )
                return
        if fmt == "flan_cot_tsv" and slot == 0 and _is_cot_header(event.value):
            continue
        whole = event.position == "file"
        try:
            if fmt == "generic":
                items = generic.expand(event.value, ctx, mapping)
            else:
                items = _READERS[fmt](event.value, ctx)
            for k, item in enumerate(items):
                produced += 1
                if isinstance(item, Failure):
                    position = item.position if whole else f"{event.position}, {item.position}"
                    yield _dead(path, position, item.reason, item.detail, item.raw, slot)
                else:
                    item["source_file"], item["source_index"], item["source_format"] = (
                        path,
                        slot,
                        fmt,
                    )
                    problem = None if event.clean else _invalid_text(item)
                    if problem:
                        yield _dead(
                            path,
                            _position(event.position, k, whole, fmt),
                            "invalid_utf8",
                            problem,
                            event.raw or item,
                            slot,
                        )
                    else:
                        yield "record", item
                slot += 1
        except RecordError as err:
            produced += 1
            yield _dead(
                path,
                event.position,
                err.reason,
                err.detail,
                event.raw or event.value,
                None if whole else slot,
            )
            slot += 0 if whole else 1
        except Exception as err:
            produced += 1
            logger.exception("%s: reader error at %s", path, event.position)
            yield _dead(
                path,
                event.position,
                "reader_error",
                f"{type(err).__name__}: {err}",
                event.raw or event.value,
                None if whole else slot,
            )
            slot += 0 if whole else 1
    if produced == 0:
        yield _dead(path, "file", "no_instances", "the file holds no instances")


def _position(doc_position: str, k: int, whole: bool, fmt: str) -> str:
    """Where the k-th record of a document came from."""
    if whole:
        return f"instance {k}"
    return f"{doc_position}, instance {k}" if fmt in _MULTI_INSTANCE_FORMATS else doc_position


def _is_cot_header(value: object) -> bool:
    return isinstance(value, list) and tuple(v.strip().lower() for v in value) == COT_HEADER


def _invalid_text(record: dict) -> str | None:
    """Why the record cannot be written as UTF-8 (lone surrogates), or None."""
    for key, value in record.items():
        if isinstance(value, str):
            if not value.isascii() and not _encodable(value):
                return f"field {key!r} holds bytes that are not UTF-8"
        elif isinstance(value, list):
            for item in value:
                texts = item.values() if isinstance(item, dict) else (item,)
                for text in texts:
                    if isinstance(text, str) and not text.isascii() and not _encodable(text):
                        return f"field {key!r} holds bytes that are not UTF-8"
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def open_local(path: str) -> typing.BinaryIO:
    """A local file, decompressed by suffix (.gz, .bz2, .zst)."""
    lowered = path.lower()
    if lowered.endswith((".gz", ".gzip")):
        return gzip.open(path, "rb")
    if lowered.endswith(".bz2"):
        return bz2.open(path, "rb")
    if lowered.endswith((".zst", ".zstd")):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
    return open(path, "rb")


def parse_path(
    path: str, *, mapping: dict | None = None, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> Iterator[Event]:
    """``parse_file`` on a local file, decompressed by suffix (tests, benchmarks, debugging)."""
    mapping = _check_arguments(mapping, max_record_bytes)
    return _parse_local(path, mapping, max_record_bytes)


def _parse_local(path: str, mapping: dict | None, limit: int) -> Iterator[Event]:
    with open_local(path) as stream:
        yield from _parse(path, stream, mapping, limit)
