"""The batch pipeline on a real Flink writes the same outputs as the in-process runner."""

from __future__ import annotations

import pytest

from tests.conftest import IN_PROCESS, assert_same_outputs
from tests.flink_support import flink_pipeline_args
from tests.test_pipeline import SUBSET, _run

pytestmark = [
    pytest.mark.flink,
    pytest.mark.timeout(900),
    # Flink hangs up the data stream at the end of a stage; see test_flink_smoke.py.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning"),
]


def test_flink_run_writes_the_same_outputs_as_the_local_runner(shared_data, flink_endpoint, tmp_path):
    inputs = [shared_data / p for p in SUBSET]
    local = _run(inputs, tmp_path / "local", IN_PROCESS)
    flink = _run(inputs, tmp_path / "flink", flink_pipeline_args(flink_endpoint))
    assert flink["runner"]["runner"] == "PortableRunner"
    assert flink["runner"]["job_endpoint"] == flink_endpoint
    assert flink["counts"] == local["counts"]
    assert flink["mixture"]["ledger"] == local["mixture"]["ledger"]
    assert_same_outputs(tmp_path / "local", tmp_path / "flink")
