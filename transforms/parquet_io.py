"""Hive-partitioned Parquet output that works on any Beam filesystem and any runner.

Why not ``WriteToParquet``/``fileio.WriteToFiles``: the first cannot partition by a column, and
the second cannot create ``lang=xx/`` sub-directories on the local filesystem. The scheme here is
the usual two-phase commit: every bundle writes its rows to uniquely named temporary files (a
retried bundle writes new ones, and only files of committed bundles reach the next step), then a
single commit step, fed the temp paths as a side input, renames them into place and removes the
temporary directory. A bundle holds at most ``rows_per_file`` rows at once, whatever the number
of partitions: on Flink's batch mode a bundle is a whole partition of the stage's input.

    rows | WriteParquet(path=f"{out}/corpus", schema=CORPUS_SCHEMA, partition_by="lang")
    rows | WriteParquet(path=f"{out}/mixture", schema=..., partition_by=("split", "lang"))

Partition columns stay in the files too (pyarrow, DuckDB, Polars and ``datasets`` all accept
the duplicate), so a single file read on its own still has them.
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Callable

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

ROWS_PER_FILE = 50_000
TEMP_DIR = "_temporary"


def join(base: str, *parts: str) -> str:
    """Join path parts for local paths and URLs alike."""
    return FileSystems.join(base, *parts) if "://" in base else posixpath.join(base, *parts)


def _mkdirs(path: str) -> None:
    # Object stores have no directories; local filesystems need them before a rename.
    if "://" not in path and not FileSystems.exists(path):
        FileSystems.mkdirs(path)


def write_table(path: str, rows: list[dict], schema: pa.Schema) -> None:
    """Write rows as one Parquet file with the declared schema (never inferred)."""
    table = pa.Table.from_pylist(rows, schema=schema)
    with FileSystems.create(path) as handle:
        pq.write_table(table, handle, compression="zstd")


class _WriteBundleFiles(beam.DoFn):
    """Buffers rows per partition within a bundle; emits (partition, temp_path) per file.

    At ``rows_per_file`` rows buffered in all, the largest partition's rows go to a file: a
    partition that never reaches the size alone (a rare language) cannot keep its rows until
    the bundle ends, so memory stays bounded when there are many partitions. The price: with
    P partitions in one bundle, files may hold as few as ``rows_per_file / P`` rows.
    """

    def __init__(self, temp_dir: str, schema: pa.Schema, partition_fn, rows_per_file: int):
        self._temp_dir = temp_dir
        self._schema = schema
        self._partition_fn = partition_fn
        self._rows_per_file = rows_per_file

    def start_bundle(self):
        self._buffers: dict[str, list[dict]] = {}
        self._buffered = 0

    def _flush(self, partition: str) -> tuple[str, str]:
        rows = self._buffers.pop(partition)
        self._buffered -= len(rows)
        temp_path = join(self._temp_dir, f"{uuid.uuid4().hex}.parquet")
        write_table(temp_path, rows, self._schema)
        return partition, temp_path

    def process(self, row: dict):
        partition = self._partition_fn(row) if self._partition_fn else ""
        self._buffers.setdefault(partition, []).append(row)
        self._buffered += 1
        if self._buffered >= self._rows_per_file:
            yield self._flush(max(self._buffers, key=lambda p: len(self._buffers[p])))

    def finish_bundle(self):
        for partition in list(self._buffers):
            yield WindowedValue(self._flush(partition), MIN_TIMESTAMP, [GlobalWindow()])


class _Commit(beam.DoFn):
    """Moves committed temp files into place; writes an empty file when there were no rows."""

    def __init__(self, path: str, temp_dir: str, schema: pa.Schema):
        self._path = path
        self._temp_dir = temp_dir
        self._schema = schema

    def process(self, _, written: list[tuple[str, str]]):
        _mkdirs(self._path)
        final_paths = []
        for index, (partition, temp_path) in enumerate(sorted(written)):
            directory = join(self._path, partition) if partition else self._path
            _mkdirs(directory)
            final = join(directory, f"part-{index:05d}-{posixpath.basename(temp_path)}")
            FileSystems.rename([temp_path], [final])
            final_paths.append(final)
        if not written:
            # An empty output is still a readable, typed Parquet dataset.
            final = join(self._path, "part-00000-empty.parquet")
            write_table(final, [], self._schema)
            final_paths.append(final)
        if FileSystems.exists(self._temp_dir):
            FileSystems.delete([self._temp_dir])
        yield from final_paths


class WriteParquet(beam.PTransform):
    """Writes dict rows to ``path`` as Parquet, optionally Hive-partitioned by one column or by
    several (``("split", "lang")`` -> ``split=train/lang=en/``).

    Output: PCollection of the final file paths (one element each, after the commit).
    """

    def __init__(
        self,
        *,
        path: str,
        schema: pa.Schema,
        partition_by: str | tuple[str, ...] | None = None,
        rows_per_file: int = ROWS_PER_FILE,
    ):
        super().__init__()
        self._path = path
        self._schema = schema
        self._partition_fn: Callable | None = (
            _HivePartition(partition_by) if partition_by else None
        )
        self._rows_per_file = rows_per_file

    def expand(self, rows):
        temp_dir = join(self._path, f"{TEMP_DIR}-{uuid.uuid4().hex}")
        written = rows | "WriteBundleFiles" >> beam.ParDo(
            _WriteBundleFiles(temp_dir, self._schema, self._partition_fn, self._rows_per_file)
        )
        return (
            rows.pipeline
            | "Once" >> beam.Create([None])
            | "Commit"
            >> beam.ParDo(
                _Commit(self._path, temp_dir, self._schema), beam.pvalue.AsList(written)
            )
        )


class _HivePartition:
    """``column=value[/column=value...]`` directory of a row (picklable, not a lambda)."""

    def __init__(self, columns: str | tuple[str, ...]):
        self.columns = (columns,) if isinstance(columns, str) else tuple(columns)

    def __call__(self, row: dict) -> str:
        parts = []
        for column in self.columns:
            value = row.get(column)
            parts.append(f"{column}={value if value not in (None, '') else 'und'}")
        return "/".join(parts)
