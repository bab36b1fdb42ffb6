"""Shared fixtures: where the real public data lives, and runner argument sets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

IN_PROCESS = ["--runner=FnApiRunner"]
MULTI_PROCESS = [
    "--runner=FnApiRunner",
    "--direct_num_workers=2",
    "--direct_running_mode=multi_processing",
]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; CI always has it, so there a missing folder is a failure, not a skip."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} is missing; CI must provide ../shared/data")
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA


def read_output(out: Path, name: str):
    """A Hive-partitioned output directory as one pyarrow table, rows sorted by id when present."""
    import pyarrow.dataset as ds

    table = ds.dataset(out / name, format="parquet", partitioning="hive").to_table()
    if "id" in table.column_names:
        table = table.sort_by("id")
    return table


@pytest.fixture(scope="session")
def flink_endpoint():
    """One real Flink job server (embedded Flink) for the whole session: "localhost:PORT"."""
    from tests.flink_support import flink_job_server, require_flink

    require_flink()
    with flink_job_server() as endpoint:
        yield endpoint


# Outputs that must be identical whichever runner ran, each with a sort key making row order moot.
COMPARED_OUTPUTS = {
    "corpus": ["id"],
    "dead_letter": ["source_file", "position"],
    "removed": ["stage", "id"],
    "mixture": ["split", "record_id", "inverted"],
    "leakage/shards.parquet": ["shard"],
    "leakage/tokens.parquet": ["shard", "token", "label"],
}


def assert_same_outputs(a: Path, b: Path) -> None:
    """The runs under ``a`` and ``b`` wrote the same rows to every compared output."""
    import pyarrow.dataset as ds

    for name, keys in COMPARED_OUTPUTS.items():
        tables = [
            ds.dataset(root / name, format="parquet", partitioning="hive").to_table()
            for root in (a, b)
        ]
        left, right = (t.sort_by([(k, "ascending") for k in keys]) for t in tables)
        assert left.num_rows == right.num_rows, name
        assert left.equals(right), name
