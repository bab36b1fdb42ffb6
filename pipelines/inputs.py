"""Input discovery and output preparation, on the driver, before the pipeline is built.

Globs and directories are expanded here so that a pattern matching nothing is a clear error
before any worker starts, and so the manifest can list exactly what was read.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from transforms.parquet_io import TEMP_DIR, join


class InputError(ValueError):
    """An input pattern matched nothing or could not be listed."""


def _is_hidden(path: str) -> bool:
    return any(part.startswith((".", "_")) for part in path.replace("\\", "/").split("/")[-1:])


def expand_inputs(patterns: tuple[str, ...] | list[str]) -> list[str]:
    """Files matched by each pattern; a directory means every file below it."""
    files: set[str] = set()
    for pattern in patterns:
        candidates = [pattern]
        if not any(ch in pattern for ch in "*?[") and FileSystems.exists(pattern):
            # A directory (or a plain file): match everything below it.
            candidates = [join(pattern, "**")] if _is_directory(pattern) else [pattern]
        try:
            results = FileSystems.match(candidates)
        except Exception as error:  # Beam raises BeamIOError with per-pattern details
            raise InputError(f"cannot list input {pattern!r}: {error}") from error
        matched = [m.path for r in results for m in r.metadata_list if not _is_hidden(m.path)]
        if not matched:
            raise InputError(f"no input files match {pattern!r}")
        files.update(matched)
    return sorted(files)


def _is_directory(path: str) -> bool:
    if "://" in path:
        return path.endswith("/")
    import os

    return os.path.isdir(path)


def clear_outputs(output: str, names: tuple[str, ...]) -> None:
    """Remove what an earlier run left under ``output`` (only the names this run writes)."""
    stale = [join(output, name) for name in names if FileSystems.exists(join(output, name))]
    if stale:
        FileSystems.delete(stale)


def read_parquet_dir(path: str, schema: pa.Schema | None = None) -> pa.Table:
    """All Parquet files directly under ``path`` (any Beam filesystem) as one table."""
    results = FileSystems.match([join(path, "*.parquet")])
    tables = []
    for metadata in sorted(results[0].metadata_list, key=lambda m: m.path):
        if f"/{TEMP_DIR}" in metadata.path:
            continue
        with FileSystems.open(metadata.path) as handle:
            tables.append(pq.read_table(io.BytesIO(handle.read()), schema=schema))
    if not tables:
        return schema.empty_table() if schema else pa.table({})
    return pa.concat_tables(tables)
