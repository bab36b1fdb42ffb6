"""The dead-letter vocabulary of the readers, and the exception a reader raises to use it.

A reader never lets a bad record stop the file: it raises ``RecordError`` (or yields a
``Failure`` for one instance of a multi-instance document) and ``parse_file`` turns it into a
dead-letter row. The reasons are short, stable categories: counters and reports group by them.
"""

from __future__ import annotations

import dataclasses

DEAD_LETTER_REASONS: dict[str, str] = {
    "empty_file": "the file holds no bytes (or only whitespace / a byte-order mark)",
    "no_instances": "a data file, task or record that holds zero instances",
    "unknown_format": "the content matches no reader and no field mapping was given",
    "malformed_json": "JSON that does not parse: a line, an array element or a whole document",
    "malformed_yaml": "YAML that does not parse (PromptSource templates)",
    "malformed_row": "a TSV/CSV row with the wrong number of fields",
    "malformed_parquet": "pyarrow cannot read the Parquet file",
    "invalid_utf8": "bytes that are not UTF-8, or lone surrogates that cannot be written as UTF-8",
    "missing_field": "a field the format requires is absent or empty",
    "wrong_type": "a field has the wrong type (e.g. a number where text is required)",
    "invalid_value": "a value outside the format's vocabulary (e.g. an unknown chat role)",
    "oversize_record": "one record is larger than max_record_bytes",
    "unreadable_file": "(set by the ingest, not the readers) the stream failed: I/O or decompression",
    "reader_error": "an unexpected exception inside a reader: a bug, please report it",
}


class RecordError(Exception):
    """One document cannot become records; ``reason`` is a key of ``DEAD_LETTER_REASONS``."""

    def __init__(self, reason: str, detail: str):
        if reason not in DEAD_LETTER_REASONS:
            raise ValueError(f"unknown dead-letter reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class Failure:
    """One instance inside a multi-instance document that cannot become a record."""

    reason: str
    detail: str
    position: str  # inside the document, e.g. "instance 40"
    raw: object = None  # the offending value; serialised for the dead letter
