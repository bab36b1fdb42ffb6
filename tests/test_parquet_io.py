import apache_beam as beam
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tests.conftest import IN_PROCESS, MULTI_PROCESS
from transforms.parquet_io import WriteParquet

SCHEMA = pa.schema([("id", pa.string()), ("lang", pa.string()), ("n", pa.int64())])


def _write(rows, path, argv, **kwargs):
    with beam.Pipeline(argv=argv) as p:
        p | beam.Create(rows) | WriteParquet(path=str(path), schema=SCHEMA, **kwargs)


@pytest.mark.parametrize("argv", [IN_PROCESS, MULTI_PROCESS], ids=["in_process", "multi_process"])
def test_partitioned_rows_land_in_hive_directories(tmp_path, argv):
    rows = [{"id": str(i), "lang": ["en", "fi", None][i % 3], "n": i} for i in range(1000)]
    _write(rows, tmp_path / "out", argv, partition_by="lang", rows_per_file=100)
    table = ds.dataset(tmp_path / "out", format="parquet", partitioning="hive").to_table()
    assert sorted(table.column("n").to_pylist()) == list(range(1000))
    by_dir = {p.name for p in (tmp_path / "out").iterdir()}
    assert by_dir == {"lang=en", "lang=fi", "lang=und"}
    assert not list((tmp_path / "out").glob("_temporary*")), "temporary files must be removed"


def test_empty_output_is_a_typed_dataset(tmp_path):
    _write([], tmp_path / "empty", IN_PROCESS)
    table = ds.dataset(tmp_path / "empty", format="parquet").to_table()
    assert table.num_rows == 0 and table.schema == SCHEMA


def test_schema_is_declared_not_inferred(tmp_path):
    # All-null first rows would make an inferring writer pick the null type.
    rows = [{"id": None, "lang": "en", "n": None}] * 3 + [{"id": "x", "lang": "en", "n": 1}]
    _write(rows, tmp_path / "out", IN_PROCESS)
    table = ds.dataset(tmp_path / "out", format="parquet").to_table()
    assert table.schema == SCHEMA and table.num_rows == 4


def test_a_bundle_buffers_at_most_rows_per_file_rows_across_partitions(tmp_path):
    # On Flink's batch mode a bundle is a whole partition of the stage's input: 40 partitions
    # of 60 rows each would otherwise all wait for the bundle's end (2,400 rows held).
    from transforms.parquet_io import _HivePartition, _WriteBundleFiles

    write = _WriteBundleFiles(str(tmp_path), SCHEMA, _HivePartition("lang"), rows_per_file=100)
    rows = [{"id": str(i), "lang": f"l{i % 40}", "n": i} for i in range(2400)]
    write.start_bundle()
    files, most_held = [], 0
    for row in rows:
        files += list(write.process(row))
        most_held = max(most_held, sum(len(b) for b in write._buffers.values()))
    files += [w.value for w in write.finish_bundle()]
    assert most_held == 99  # the 100th row buffered writes the largest partition's file
    written = [r for _, path in files for r in pq.read_table(path).to_pylist()]
    assert sorted(r["n"] for r in written) == list(range(2400))
    for partition, path in files:
        assert {r["lang"] for r in pq.read_table(path).to_pylist()} == {
            partition.removeprefix("lang=")
        }
