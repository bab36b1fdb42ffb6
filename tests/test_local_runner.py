"""Beam's Python runner sends its workers grouped input in pieces cut between elements,
byte for byte what it sent as one message before (``pipelines.local_runner``)."""

from __future__ import annotations

import hashlib
import threading

import apache_beam as beam
import pytest
from apache_beam import coders
from apache_beam.coders.coder_impl import create_InputStream, create_OutputStream
from apache_beam.coders.coders import GlobalWindowCoder
from apache_beam.runners.portability.fn_api_runner import execution
from apache_beam.runners.worker import data_plane
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import trigger, window
from apache_beam.transforms.core import Windowing

from pipelines import local_runner
from pipelines.options import pipeline_options, prepare_process

KV = coders.TupleCoder([coders.StrUtf8Coder(), coders.BytesCoder()])
GROUPED = coders.TupleCoder([coders.StrUtf8Coder(), coders.IterableCoder(coders.BytesCoder())])
RESHUFFLE_WINDOWING = Windowing(  # what Beam's Reshuffle groups with
    window.GlobalWindows(),
    triggerfn=trigger.Always(),
    accumulation_mode=trigger.AccumulationMode.DISCARDING,
)


def _value(key: int, j: int) -> bytes:
    return hashlib.sha256(f"{key}/{j}".encode()).digest() * (1 + key % 50)


def _filled_buffer(windowing: Windowing) -> execution.GroupingBuffer:
    """300 keys of 1-7 values of 32 B-1.6 KB, as a producing worker would send them."""
    windowed = coders.WindowedValueCoder(KV, GlobalWindowCoder())
    buffer = execution.GroupingBuffer(
        windowed, coders.WindowedValueCoder(GROUPED, GlobalWindowCoder()), windowing
    )
    stream = create_OutputStream()
    for key in range(300):
        for j in range(key % 7 + 1):
            value = window.GlobalWindows.windowed_value((f"k{key}", _value(key, j)))
            windowed.get_impl().encode_to_stream(value, stream, True)
    buffer.append(stream.get())
    return buffer


def _decode(piece: bytes) -> list:
    impl = coders.WindowedValueCoder(GROUPED, GlobalWindowCoder()).get_impl()
    stream, values = create_InputStream(piece), []
    while stream.size() > 0:
        values.append(impl.decode_from_stream(stream, True))
    return values


@pytest.mark.parametrize("windowing", [Windowing(window.GlobalWindows()), RESHUFFLE_WINDOWING])
def test_pieces_are_beams_share_cut_between_elements(windowing):
    chunk = 20_000
    pieces = local_runner._encode_in_pieces(_filled_buffer(windowing), 3, chunk)
    partition = execution.GroupingBuffer.partition  # Beam's own, even if patched here
    beams = getattr(partition, "whole_partition", partition)(_filled_buffer(windowing), 3)
    for share, whole in zip(pieces, beams):
        assert len(share) > 5
        assert b"".join(share) == b"".join(whole)  # the same bytes, in the same order
        largest = max(_encoded_size(v) for piece in share for v in _decode(piece))
        for piece in share[:-1]:
            assert chunk <= len(piece) < chunk + largest
        decoded = [v for piece in share for v in _decode(piece)]  # each piece on its own
        assert len(decoded) == len(_decode(b"".join(whole)))
    keys = [v.value[0] for share in pieces for piece in share for v in _decode(piece)]
    assert sorted(keys) == sorted(f"k{key}" for key in range(300))


def _encoded_size(windowed_value) -> int:
    stream = create_OutputStream()
    coders.WindowedValueCoder(GROUPED, GlobalWindowCoder()).get_impl().encode_to_stream(
        windowed_value, stream, True
    )
    return stream.size()


@pytest.mark.parametrize("mode", ["multi_processing", "multi_threading"])
def test_workers_get_every_element_of_shares_sent_in_many_messages(mode, monkeypatch):
    """Two workers (processes or threads); each worker's share of the grouped stages (~19 MB)
    goes out in 64 KB pieces, so in several messages: the runner flushes once past 10 MB."""
    monkeypatch.setattr(local_runner, "INPUT_CHUNK_BYTES", 64 << 10)
    flushed = []  # the runner's flushes of its sends to the workers (not the workers' own)
    flush = data_plane.SizeBasedBufferingClosableOutputStream.flush

    def spied_flush(stream):
        if threading.current_thread().name == "instructmix-send-input":
            flushed.append(stream.size())
        flush(stream)

    monkeypatch.setattr(data_plane.SizeBasedBufferingClosableOutputStream, "flush", spied_flush)
    options = pipeline_options(["--direct_num_workers=2", f"--direct_running_mode={mode}"])
    prepare_process(options)
    keys, per_key = 2_000, 3
    expected = [
        (f"k{key}", sum(len(_value(key, j)) for j in range(per_key))) for key in range(keys)
    ]
    with beam.Pipeline(options=options) as pipeline:
        sized = (
            pipeline
            | beam.Create([(f"k{key}", j) for key in range(keys) for j in range(per_key)])
            # what _value makes, 8 times over (the workers cannot import this module)
            | "Fill"
            >> beam.MapTuple(
                lambda key, j: (
                    key,
                    hashlib.sha256(f"{key[1:]}/{j}".encode()).digest()
                    * (1 + int(key[1:]) % 50)
                    * 8,
                )
            )
            | beam.Reshuffle()
            | beam.GroupByKey()
            | beam.MapTuple(lambda key, values: (key, sum(len(v) for v in values) // 8))
        )
        assert_that(sized, equal_to(expected))
    assert len(flushed) >= 4  # 2 grouped stages x 2 workers, each share > 10 MB
    assert max(flushed) < 11 << 20
