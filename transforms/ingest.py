"""Ingest: input files → parsed records, dead letters and one fingerprint row per file.

A file is read whole by one worker (a JSON task file cannot be split), so the records it fans
out are reshuffled right away: a 6,000-instance task file does not pin the stages after it to
that worker. Compression (.gz, .bz2, .zst, ...) is taken from the file name; the fingerprint is
the SHA-256 of the bytes as stored, which the nightly refresh uses to tell changed files apart.

    paths | ReadInputs(config=IngestConfig())  # Output: {"records", "dead_letters", "files"}
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import hashlib
import io
import lzma
import zlib

import apache_beam as beam
import pyarrow as pa
import zstandard
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms import formats
from transforms.formats import generic  # noqa: F401 - validate_mapping
from transforms.schema import dead_letter

NAMESPACE = "instructmix.ingest"

FILES_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("sha256", pa.string()),
        ("bytes", pa.int64()),
        ("records", pa.int64()),
        ("dead_letters", pa.int64()),
    ]
)


class UnreadableInputError(IOError):
    """A whole input file could not be read (missing, permission, corrupt compression)."""


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    """How input files are read. ``mapping`` maps schema fields to columns of generic files."""

    mapping: tuple[tuple[str, str], ...] = ()
    max_record_bytes: int = 16 * 2**20
    continue_on_unreadable: bool = False

    def __post_init__(self):
        if self.mapping:
            formats.generic.validate_mapping(dict(self.mapping))
        if self.max_record_bytes <= 0:
            raise ValueError(f"max_record_bytes must be positive, got {self.max_record_bytes}")


class _RawReader(io.RawIOBase):
    """Adapts any object with ``read(n)`` to a raw stream, optionally hashing what passes."""

    def __init__(self, source, *, hashing: bool = False):
        self._source = source
        self.sha256 = hashlib.sha256() if hashing else None
        self.size = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self._source.read(len(buffer))
        if self.sha256 is not None:
            self.sha256.update(data)
        self.size += len(data)
        buffer[: len(data)] = data
        return len(data)

    def drain(self):
        while self.readinto(bytearray(1 << 20)):
            pass


class _ZstdReader:
    """Streaming zstd that raises on a truncated frame (zstandard's stream_reader ends quietly)."""

    def __init__(self, source):
        self._source = source
        self._decompressor = zstandard.ZstdDecompressor().decompressobj()
        self._pending = b""

    def read(self, size: int) -> bytes:
        while len(self._pending) < size:
            chunk = self._source.read(1 << 20)
            if not chunk:
                if not self._decompressor.eof and (self._pending or self._started):
                    raise EOFError("zstd stream ends inside a frame (truncated file)")
                break
            self._started = True
            self._pending += self._decompress(chunk)
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def _decompress(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            if self._decompressor.eof:  # the next of several concatenated frames
                self._decompressor = zstandard.ZstdDecompressor().decompressobj()
            out.append(self._decompressor.decompress(chunk))
            chunk = self._decompressor.unused_data if self._decompressor.eof else b""
        return b"".join(out)

    _started = False


_DECOMPRESSORS = {
    CompressionTypes.GZIP: lambda f: gzip.GzipFile(fileobj=f),
    CompressionTypes.BZIP2: bz2.BZ2File,
    CompressionTypes.ZSTD: _ZstdReader,
    CompressionTypes.LZMA: lzma.LZMAFile,
}
# What a broken file raises while being read or decompressed.
READ_ERRORS = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError, zstandard.ZstdError)


def open_input(path: str) -> tuple[io.BufferedReader, _RawReader]:
    """Open a file on any Beam filesystem; returns (decompressed stream, hashing raw reader).

    Decompression is streamed over the hashed bytes, so the fingerprint covers the file as
    stored and a multi-GB .jsonl.zst never sits in memory.
    """
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    hashing = _RawReader(raw, hashing=True)
    stored = io.BufferedReader(hashing, buffer_size=1 << 20)
    compression = CompressionTypes.detect_compression_type(path)
    if compression not in _DECOMPRESSORS:
        return stored, hashing
    decompressed = _DECOMPRESSORS[compression](stored)
    return io.BufferedReader(_RawReader(decompressed), buffer_size=1 << 20), hashing


class ParseFile(beam.DoFn):
    """One input path → records (main output), dead letters and a fingerprint row."""

    DEAD_LETTERS = "dead_letters"
    FILES = "files"

    def __init__(self, config: IngestConfig):
        self._config = config

    def setup(self):
        self._records = Metrics.counter(NAMESPACE, "records")
        self._dead = Metrics.counter(NAMESPACE, "dead_letters")
        self._mapping = dict(self._config.mapping) or None

    def process(self, path: str):
        n_records = n_dead = 0
        try:
            stream, hashing = open_input(path)
            with stream:
                for kind, row in formats.parse_file(
                    path,
                    stream,
                    mapping=self._mapping,
                    max_record_bytes=self._config.max_record_bytes,
                ):
                    if kind == "record":
                        n_records += 1
                        yield row
                    else:
                        n_dead += 1
                        yield beam.pvalue.TaggedOutput(self.DEAD_LETTERS, row)
                hashing.drain()
        except READ_ERRORS as error:
            # Decompression and I/O failures make the whole file unreadable.
            if not self._config.continue_on_unreadable:
                raise UnreadableInputError(f"cannot read input file {path}: {error}") from error
            n_dead += 1
            yield beam.pvalue.TaggedOutput(
                self.DEAD_LETTERS,
                dead_letter(path, "file", "unreadable_file", f"{type(error).__name__}: {error}"),
            )
            digest, size = None, None
        else:
            digest, size = hashing.sha256.hexdigest(), hashing.size
        self._records.inc(n_records)
        self._dead.inc(n_dead)
        yield beam.pvalue.TaggedOutput(
            self.FILES,
            {
                "path": path,
                "sha256": digest,
                "bytes": size,
                "records": n_records,
                "dead_letters": n_dead,
            },
        )


class ReadInputs(beam.PTransform):
    """PCollection of file paths → {"records", "dead_letters", "files"}."""

    def __init__(self, *, config: IngestConfig):
        super().__init__()
        self._config = config

    def expand(self, paths):
        parsed = (
            paths
            | "SpreadFiles" >> beam.Reshuffle()
            | "ParseFiles"
            >> beam.ParDo(ParseFile(self._config)).with_outputs(
                ParseFile.DEAD_LETTERS, ParseFile.FILES, main="records"
            )
        )
        return {
            # Fan-out of big task files: spread their instances over all workers.
            "records": parsed.records | "SpreadRecords" >> beam.Reshuffle(),
            "dead_letters": parsed[ParseFile.DEAD_LETTERS],
            "files": parsed[ParseFile.FILES],
        }
