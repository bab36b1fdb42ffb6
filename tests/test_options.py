"""Runner options: the warning for local runs whose stages are split across workers."""

from __future__ import annotations

import logging

import pytest

from pipelines.options import pipeline_options, prepare_process, split_bundle_warning


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--direct_num_workers=1", "--direct_running_mode=multi_processing"],
        ["--direct_num_workers=2"],  # in_memory: one worker whatever the number
        [
            "--runner=FlinkRunner",
            "--direct_num_workers=2",
            "--direct_running_mode=multi_processing",
        ],
    ],
)
def test_no_warning_where_one_worker_runs_each_bundle(args):
    assert split_bundle_warning(pipeline_options(args)) is None


@pytest.mark.parametrize("mode", ["multi_processing", "multi_threading"])
@pytest.mark.parametrize("workers", ["2", "0"])  # 0: one worker per CPU
def test_several_local_workers_are_warned_about(mode, workers, caplog):
    options = pipeline_options([f"--direct_num_workers={workers}", f"--direct_running_mode={mode}"])
    warning = split_bundle_warning(options)
    assert warning and f"--direct_running_mode={mode}" in warning and "Flink" in warning
    with caplog.at_level(logging.WARNING, logger="pipelines.options"):
        prepare_process(options)
    assert warning in caplog.messages
