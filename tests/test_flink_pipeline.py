"""The batch pipeline on a real Flink gives the same corpus as the in-process runner."""

from __future__ import annotations

import pytest

from tests.conftest import IN_PROCESS, read_output
from tests.flink_support import flink_pipeline_args
from tests.test_pipeline import SUBSET, _run

pytestmark = [
    pytest.mark.flink,
    pytest.mark.timeout(900),
    # Flink hangs up the data stream at the end of a stage; see test_flink_smoke.py.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning"),
]


def test_flink_run_writes_the_same_corpus_as_the_local_runner(shared_data, flink_endpoint, tmp_path):
    inputs = [shared_data / p for p in SUBSET]
    local = _run(inputs, tmp_path / "local", IN_PROCESS)
    flink = _run(inputs, tmp_path / "flink", flink_pipeline_args(flink_endpoint))
    assert flink["runner"]["runner"] == "PortableRunner"
    assert flink["runner"]["job_endpoint"] == flink_endpoint
    assert flink["counts"] == local["counts"]
    for output in ("corpus", "dead_letter"):
        a, b = read_output(tmp_path / "local", output), read_output(tmp_path / "flink", output)
        if output == "dead_letter":
            a, b = a.sort_by([("source_file", "ascending"), ("position", "ascending")]), b.sort_by(
                [("source_file", "ascending"), ("position", "ascending")])
        assert a.equals(b), output
