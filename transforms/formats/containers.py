"""Byte-level containers: how documents are laid out in a file, independent of their schema.

Each iterator yields ``Doc(position, value, raw)`` for a parsed document or
``Bad(position, reason, detail, raw)`` for one that cannot be parsed, and never raises for bad
content (I/O errors of the stream do propagate; ``parse_file`` turns them into ``read_error``).

- JSON Lines: read line by line with a bounded ``readline``: memory stays O(max_record_bytes)
  whatever the file size; an oversize line is skipped in chunks, never held whole.
- JSON arrays (Alpaca, ShareGPT, LIMA...): streamed element by element with a byte scanner, so
  a 600 MB ShareGPT dump is never one Python object, and one bad element costs one record.
- Whole JSON documents (Super-NaturalInstructions / NIv1 task files, NIv1 predictions): read
  whole -- unavoidable, a task object is one JSON value -- then fanned out by the format reader.
- TSV lines (Flan CoT), CSV rows (csv module), Parquet rows (pyarrow, batch by batch).

Positions are for humans: ``line N`` is the 1-based physical line (as editors and ``sed -n Np``
count, blank lines included); ``element N`` and ``instance N`` are 0-based indices.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

from transforms.schema import RAW_LIMIT

RAW_BYTES = RAW_LIMIT * 4  # bytes of raw text kept for a dead letter (decoded, then truncated)
CHUNK = 1 << 20


class Doc(NamedTuple):
    position: str
    value: object
    raw: bytes | None
    clean: bool = False  # known to hold no lone surrogates: record validation can be skipped


class Bad(NamedTuple):
    position: str
    reason: str
    detail: str
    raw: bytes | str | None


class _Rewound(io.RawIOBase):
    """The head bytes already read, followed by the rest of the stream."""

    def __init__(self, head: bytes, stream: BinaryIO):
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head.nbytes:
            n = min(len(buffer), self._head.nbytes)
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        if not data:
            return 0
        buffer[: len(data)] = data
        return len(data)


def read_head(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes from the start (loops: pipes and decompressors return short reads)."""
    parts, got = [], 0
    while got < size:
        chunk = stream.read(size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def rewound(head: bytes, stream: BinaryIO) -> io.BufferedReader:
    """A buffered reader over ``head`` + the rest of ``stream`` (readline, read, peek)."""
    return io.BufferedReader(_Rewound(head, stream), buffer_size=CHUNK)


def iter_lines(
    reader: io.BufferedReader, limit: int
) -> Iterator[tuple[int, bytes | None, bytes, int]]:
    """``(line_number, content or None when oversize, raw prefix, size)`` for every line.

    At most ``limit + 1`` bytes of one line are ever held; the newline is not part of the
    content (a trailing ``\\r`` is removed too).
    """
    lineno = 0
    while True:
        line = reader.readline(limit + 1)
        if not line:
            return
        lineno += 1
        if line.endswith(b"\n"):
            content = line[:-1]
        elif len(line) <= limit:
            content = line  # last line without newline
        else:
            size, prefix = len(line), line[:RAW_BYTES]
            while True:
                rest = reader.readline(CHUNK)
                if not rest:
                    break
                if rest.endswith(b"\n"):
                    size += len(rest) - 1
                    break
                size += len(rest)
            yield lineno, None, prefix, size
            continue
        if content.endswith(b"\r"):
            content = content[:-1]
        yield lineno, content, content, len(content)


def _oversize(position: str, size: int, limit: int, raw: bytes) -> Bad:
    return Bad(
        position,
        "oversize_record",
        f"record is {size} bytes, more than max_record_bytes={limit}",
        raw[:RAW_BYTES],
    )


# A JSON escape of a surrogate code point (\ud800-\udfff): may decode to a lone surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def decode_json(data: bytes, position: str) -> Doc | Bad:
    """One JSON value from UTF-8 bytes, or the reason it is not one.

    Bytes that are not UTF-8 survive as lone surrogates (``surrogateescape``): the record built
    from them is rejected as invalid_utf8 by validation, and a line that holds several
    instances (a Self-Instruct seed, a one-line task file) loses only the instance they are in.
    ``clean`` tells validation it can skip the record: strict UTF-8 and no surrogate escapes.
    """
    try:
        text = data.decode("utf-8")
        clean = _SURROGATE_ESCAPE.search(data) is None
    except UnicodeDecodeError:
        text, clean = data.decode("utf-8", "surrogateescape"), False
    try:
        return Doc(position, json.loads(text), data, clean)
    except json.JSONDecodeError as err:
        return Bad(position, "malformed_json", f"{err.msg} at column {err.colno}", data)
    except RecursionError:
        return Bad(position, "malformed_json", "JSON nested too deeply", data)


def iter_jsonl(reader: io.BufferedReader, limit: int) -> Iterator[Doc | Bad]:
    """One document per non-blank line."""
    for lineno, content, raw, size in iter_lines(reader, limit):
        position = f"line {lineno}"
        if content is None:
            yield _oversize(position, size, limit, raw)
            continue
        if not content.strip():
            continue
        if lineno == 1 and content.startswith(b"\xef\xbb\xbf"):
            content = content[3:]
        yield decode_json(content, position)


_TOKEN = re.compile(rb'["\[\]{}]')
_STRING_BODY = re.compile(rb'[^"\\]*(?:\\[\s\S][^"\\]*)*')
_SCALAR_END = re.compile(rb"[,\]\s]")
_WS = re.compile(rb"[ \t\r\n]*")


def iter_json_array(reader: io.BufferedReader, limit: int) -> Iterator[Doc | Bad]:
    """The elements of a top-level JSON array, streamed: O(max_record_bytes) memory.

    A scanner finds each element's end (tracking strings and bracket depth), then
    ``json.loads`` parses just that element. An element beyond ``limit`` is skipped in chunks
    (oversize_record); an element that does not parse costs only itself; a file that ends
    inside the array (truncated) yields what was complete, then one malformed_json.
    """
    data = b""
    eof = False

    def fill(keep_from: int) -> int:
        """Drop bytes before ``keep_from``, append a chunk; returns how many bytes were dropped."""
        nonlocal data, eof
        chunk = reader.read(CHUNK)
        if not chunk:
            eof = True
        data = data[keep_from:] + chunk
        return keep_from

    def skip_ws(p: int) -> int:
        nonlocal data
        while True:
            p = _WS.match(data, p).end()
            if p < len(data) or eof:
                return p
            p -= fill(p)

    pos = skip_ws(0)
    if pos >= len(data) or data[pos : pos + 1] != b"[":
        yield Bad("file", "malformed_json", "expected a JSON array", data[:RAW_BYTES])
        return
    pos = skip_ws(pos + 1)
    index = 0
    while True:
        position = f"element {index}"
        if pos >= len(data):
            yield Bad(
                position, "malformed_json", "file ends inside the JSON array (truncated)", None
            )
            return
        if data[pos : pos + 1] == b"]":
            pos = skip_ws(pos + 1)
            if pos < len(data):
                yield Bad(
                    "end of file",
                    "malformed_json",
                    "data after the closing ]",
                    data[pos : pos + RAW_BYTES],
                )
            return
        if index:
            if data[pos : pos + 1] != b",":
                yield Bad(
                    position,
                    "malformed_json",
                    "expected , or ] after an element",
                    data[pos : pos + RAW_BYTES],
                )
                return
            pos = skip_ws(pos + 1)
            if pos >= len(data):
                continue  # reported as truncation at the top of the loop
            if data[pos : pos + 1] == b"]":
                yield Bad(position, "malformed_json", "trailing comma before ]", None)
                return
        first = data[pos : pos + 1]
        if first in (b"}", b"]", b","):
            yield Bad(
                position,
                "malformed_json",
                f"unexpected {first.decode()}",
                data[pos : pos + RAW_BYTES],
            )
            return
        # Scan one element from ``start``; ``p`` is the scan position, ``depth`` the nesting.
        start = p = pos
        depth, in_string, discarded, prefix, end = 0, False, 0, b"", -1
        scalar = first not in (b"{", b"[", b'"')
        while True:
            if scalar:
                m = _SCALAR_END.search(data, p)
                if m:
                    end = m.start()
                    break
                p = len(data)
            elif in_string:
                q = _STRING_BODY.match(data, p).end()
                if q < len(data) and data[q] == 0x22:  # the closing quote
                    in_string, p = False, q + 1
                    if depth == 0:
                        end = p
                        break
                    continue
                p = q  # at the end, or at a final backslash whose escaped byte is not read yet
            else:
                m = _TOKEN.search(data, p)
                if m:
                    p = m.end()
                    ch = data[m.start()]
                    if ch == 0x22:
                        in_string = True
                    elif ch in (0x7B, 0x5B):
                        depth += 1
                    else:
                        depth -= 1
                        if depth <= 0:
                            end = p
                            break
                    continue
                p = len(data)
            # The element continues past the buffer: read more (or skip, once oversize).
            if eof:
                break
            if discarded or len(data) - start > limit:
                if len(prefix) < RAW_BYTES:
                    prefix += data[start : min(p, start + RAW_BYTES - len(prefix))]
                discarded += p - start
                p -= fill(p)
            else:
                p -= fill(start)
            start = 0
        if end < 0:
            raw = (prefix + data[start:])[:RAW_BYTES]
            yield Bad(
                position, "malformed_json", "file ends inside this element (truncated JSON)", raw
            )
            return
        size = discarded + end - start
        if size > limit:
            yield _oversize(position, size, limit, (prefix + data[start:end])[:RAW_BYTES])
        else:
            yield decode_json(data[start:end], position)
        index += 1
        pos = skip_ws(end)


def read_document(reader: io.BufferedReader) -> tuple[Doc | Bad, int]:
    """The whole file as one JSON value (task files); returns the event and the byte size.

    Invalid UTF-8 is kept as lone surrogates (``surrogateescape``) so that one bad byte inside
    one instance costs that instance, not the file: record validation rejects such strings.
    """
    data = reader.read()
    text = data.decode("utf-8", "surrogateescape")
    text = text.removeprefix("\ufeff")
    try:
        return Doc("file", json.loads(text), None), len(data)
    except json.JSONDecodeError as err:
        detail = f"{err.msg} at line {err.lineno} column {err.colno} (truncated or malformed JSON)"
        tail = (
            data[-RAW_LIMIT:]
            if err.pos >= len(text) - 1
            else data[max(0, err.pos - 200) : err.pos + 800]
        )
        return Bad("file", "malformed_json", detail, tail), len(data)
    except RecursionError:
        return Bad("file", "malformed_json", "JSON nested too deeply", data[:RAW_BYTES]), len(data)


def iter_tsv(reader: io.BufferedReader, limit: int, columns: int) -> Iterator[Doc | Bad]:
    """Tab-separated lines with exactly ``columns`` fields (no quoting: tabs never occur in fields)."""
    for lineno, content, raw, size in iter_lines(reader, limit):
        position = f"line {lineno}"
        if content is None:
            yield _oversize(position, size, limit, raw)
            continue
        if not content.strip():
            continue
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as err:
            yield Bad(position, "invalid_utf8", f"not UTF-8 at byte {err.start}", content)
            continue
        if lineno == 1:
            text = text.lstrip("\ufeff")
        fields = text.split("\t")
        if len(fields) != columns:
            yield Bad(
                position,
                "malformed_row",
                f"expected {columns} tab-separated fields, got {len(fields)}",
                content,
            )
            continue
        yield Doc(position, fields, content)


def iter_csv(reader: io.BufferedReader, limit: int, delimiter: str) -> Iterator[Doc | Bad]:
    """CSV/TSV rows with a header, as dicts. Invalid UTF-8 survives as lone surrogates and is
    rejected per row by record validation; quoted newlines are allowed (csv module)."""
    # The csv module refuses fields over its (process-wide) limit; raise it once to ours so an
    # oversize row is reported as oversize_record rather than aborting the file.
    if csv.field_size_limit() < limit:
        csv.field_size_limit(limit)
    text = io.TextIOWrapper(reader, encoding="utf-8-sig", errors="surrogateescape", newline="")
    rows = csv.reader(text, delimiter=delimiter)
    header: list[str] | None = None
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as err:
            yield Bad(f"line {rows.line_num}", "malformed_row", str(err), None)
            return
        if header is None:
            header = row
            continue
        position = f"line {rows.line_num}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            yield Bad(
                position,
                "malformed_row",
                f"expected {len(header)} fields, got {len(row)}",
                delimiter.join(row),
            )
            continue
        size = sum(len(cell) for cell in row)
        if size > limit:
            yield _oversize(
                position, size, limit, delimiter.join(row).encode("utf-8", "surrogateescape")
            )
            continue
        yield Doc(position, dict(zip(header, row)), None)


# What pyarrow raises for a bad file: ArrowInvalid/ArrowIOError (ValueError, OSError), others.
_PARQUET_ERRORS = (ValueError, OSError, TypeError, IndexError, KeyError, NotImplementedError)


def iter_parquet(reader: io.BufferedReader, limit: int) -> Iterator[Doc | Bad]:
    """Parquet rows as dicts, batch by batch (a non-seekable stream is buffered in memory:
    Parquet keeps its schema in a footer)."""
    import pyarrow.parquet as pq

    data = reader.read()
    try:
        table = pq.ParquetFile(io.BytesIO(data))
        batches = table.iter_batches(batch_size=1024)
    except _PARQUET_ERRORS as err:
        yield Bad("file", "malformed_parquet", f"{type(err).__name__}: {err}", data[:RAW_BYTES])
        return
    row = 0
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except _PARQUET_ERRORS as err:
            yield Bad(f"row {row}", "malformed_parquet", f"{type(err).__name__}: {err}", None)
            return
        small = batch.nbytes <= limit
        for value in batch.to_pylist():
            position = f"row {row}"
            row += 1
            if not small:
                size = len(
                    json.dumps(value, ensure_ascii=False, default=str).encode(
                        "utf-8", "surrogatepass"
                    )
                )
                if size > limit:
                    yield _oversize(
                        position, size, limit, json.dumps(value, default=str)[:RAW_BYTES].encode()
                    )
                    continue
            yield Doc(position, value, None)
