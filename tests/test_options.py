"""Runner options: Beam's Python runner flushes its data channels by size only (its timed flush
loses bytes written while it sends)."""

from __future__ import annotations

import time

import pytest
from apache_beam.runners.portability.fn_api_runner import worker_handlers
from apache_beam.runners.worker import data_plane

from pipelines.options import pipeline_options, prepare_process
from transforms.worker import NO_WINDOW_GROWTH, receive_window_fixed

CHUNK = b"x" * 1000
CHUNKS = 2000


def _write_while_sends_wait(stream_for) -> int:
    """Bytes that reached the other side after ``CHUNKS`` writes, with each send held up for
    5 ms (a full send queue) while the writer goes on, as a runner's does."""
    received = []

    def slow_send(data: bytes) -> None:
        received.append(len(data))
        time.sleep(0.005)

    stream = stream_for(lambda data: received.append(len(data)), slow_send)
    for _ in range(CHUNKS):
        stream.write(CHUNK)
        time.sleep(0.0001)
    stream.close()
    return sum(received)


def test_beams_timed_flush_drops_bytes_written_while_it_sends():
    """Why the setting exists: with a 1 ms timer, writes made during a flush are cleared unsent.
    (If a Beam upgrade makes this fail, the race is fixed upstream.)"""
    sent = _write_while_sends_wait(
        lambda close, flush: data_plane.TimeBasedBufferingClosableOutputStream(
            close, flush_callback=flush, time_flush_threshold_ms=1
        )
    )
    assert sent < CHUNKS * len(CHUNK)


@pytest.mark.parametrize(
    "args",
    [
        ["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
        ["--direct_num_workers=2", "--direct_running_mode=multi_threading"],
        [],
        ["--runner=PortableRunner", "--job_endpoint=embed"],  # the FnApiRunner, behind a service
    ],
)
def test_python_runner_channels_flush_by_size_only(args, monkeypatch):
    monkeypatch.setattr(worker_handlers, "DATA_BUFFER_TIME_LIMIT_MS", 1000)  # Beam's default
    prepare_process(pipeline_options(args))
    assert worker_handlers.DATA_BUFFER_TIME_LIMIT_MS == 0
    # the runner's side of its workers' channels, as worker_handlers.GrpcServer makes it
    servicer = data_plane.BeamFnDataServicer(worker_handlers.DATA_BUFFER_TIME_LIMIT_MS)
    stream = servicer.get_conn_by_worker_id("worker_0").output_stream("bundle_1", "read")
    assert not isinstance(stream, data_plane.TimeBasedBufferingClosableOutputStream)
    sent = _write_while_sends_wait(
        lambda close, flush: data_plane.ClosableOutputStream.create(
            close, flush, worker_handlers.DATA_BUFFER_TIME_LIMIT_MS
        )
    )
    assert sent == CHUNKS * len(CHUNK)


def test_workers_in_the_submitting_process_keep_the_initial_receive_window(monkeypatch):
    # LOOPBACK workers open Beam's channels in this process, after prepare_process
    from apache_beam.runners.worker.channel_factory import GRPCChannelFactory

    beams = [o for o in GRPCChannelFactory.DEFAULT_OPTIONS if o != NO_WINDOW_GROWTH]
    monkeypatch.setattr(GRPCChannelFactory, "DEFAULT_OPTIONS", beams)  # restored afterwards
    assert not receive_window_fixed()
    prepare_process(pipeline_options(["--runner=PortableRunner", "--environment_type=LOOPBACK"]))
    assert receive_window_fixed()
