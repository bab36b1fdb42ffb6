"""Two fixes to Beam's Python runner (the FnApiRunner: local jobs, and jobs behind an embedded
job service), applied by ``pipelines.options.prepare_process``.

* ``without_timed_flushes``: its timed flush loses data under load.
* ``bounded_input_messages``: it sends each worker a bundle's whole input as one message.

Both change how bytes are cut into messages, never which bytes are sent, and other runners
never read them. ``bench/results/dedup.md`` (twelfth and thirteenth passes) has the evidence.
"""

from __future__ import annotations

import logging
import threading

INPUT_CHUNK_BYTES = 8 << 20  # Beam's data channels flush at 10 MB
_LOGGER = logging.getLogger(__name__)


def without_timed_flushes() -> None:
    """Make the runner's gRPC data channels flush by size only, never on a timer.

    The runner gives each channel of its worker processes (and, in ``multi_threading`` mode,
    its workers' own channels) a 1 s timed flush (``worker_handlers.DATA_BUFFER_TIME_LIMIT_MS``).
    Beam's timed stream flushes from a thread of its own without stopping the writer: bytes
    written while a flush hands the buffer to a full send queue are then cleared unsent
    (``TimeBasedBufferingClosableOutputStream.flush``: ``get()``, send, ``_clear()``). Sending
    a 750 MB shuffle to a worker at 1M records, that dropped 15 MB of a ``CoGroupByKey``'s
    input, silently; with worker threads it cut elements in half ("Invalid PaneInfoEncoding").
    With size-only flushes the same runs were right. A batch job loses nothing by it: every
    stream is closed, and so sent, when its bundle ends.
    """
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = 0


def bounded_input_messages() -> None:
    """Send a bundle's input to a worker in messages of about 10 MB, cut between elements.

    The runner encodes each worker's share of a grouped stage into one byte string
    (``GroupingBuffer.partition``) and writes a bundle's input into a stream it never flushes
    before closing it (``BundleManager._send_input_to_worker``): each worker received its
    whole share as one message and held it for the bundle. With 2 worker processes at 1M
    records those were 0.6 GB at the batches' reshuffle and 1.4-2.1 GB at the ``CoGroupByKey``
    before ``Decide``: workers of 3.8-3.9 GB, growing with the corpus. Here the grouped share
    is encoded in pieces of ``INPUT_CHUNK_BYTES`` that end on an element boundary, and the stream
    flushes once past Beam's size threshold after each piece. The worker decodes each message
    on its own, so no element may span two: pieces are cut only between elements. Calling it
    again changes nothing.
    """
    from apache_beam.runners.portability.fn_api_runner import execution, fn_runner
    from apache_beam.runners.worker import data_plane

    if hasattr(execution.GroupingBuffer.partition, "whole_partition"):
        return
    whole_partition = execution.GroupingBuffer.partition

    def partition_in_pieces(buffer, n: int) -> list[list[bytes]]:
        if not buffer._grouped_output:  # partitioned once, as Beam does
            buffer._grouped_output = _encode_in_pieces(buffer, n, INPUT_CHUNK_BYTES)
            buffer._table.clear()
        return buffer._grouped_output

    def send_in_pieces(manager, process_bundle_id, read_transform_id, byte_streams) -> None:
        channel = manager._worker_handler.data_conn
        data_out = channel.output_stream(process_bundle_id, read_transform_id)

        def send() -> None:
            try:
                for byte_stream in byte_streams or []:
                    data_out.write(byte_stream)
                    data_out.maybe_flush()
                data_out.close()
            except BaseException:  # the worker waits for the rest: say why it never comes
                _LOGGER.exception("sending %s's input to a worker failed", process_bundle_id)
                raise

        if isinstance(channel, data_plane._GrpcDataChannel):
            # The runner sends a bundle's input before it asks the worker to start the
            # bundle; the worker queues at most a few messages of a bundle it has not
            # started. Sent from here, the pieces would wait for a start that never comes.
            threading.Thread(target=send, name="instructmix-send-input", daemon=True).start()
        else:
            send()  # in-process: the worker reads what was appended when it starts

    partition_in_pieces.whole_partition = whole_partition  # Beam's, for the tests to compare
    execution.GroupingBuffer.partition = partition_in_pieces
    fn_runner.BundleManager._send_input_to_worker = send_in_pieces


def _encode_in_pieces(buffer, n: int, chunk_bytes: int) -> list[list[bytes]]:
    """``GroupingBuffer.partition`` (keys dealt round-robin, windowed as Beam does), each
    worker's share a list of byte strings of about ``chunk_bytes``."""
    from apache_beam.coders.coder_impl import create_OutputStream

    coder_impl = buffer._post_grouped_coder.get_impl()
    key_coder_impl = buffer._key_coder.get_impl()
    windowed_key_values = _windowed_key_values(buffer._windowing)
    pieces: list[list[bytes]] = [[] for _ in range(n)]
    streams = [create_OutputStream() for _ in range(n)]
    for idx, (encoded_key, values) in enumerate(buffer._table.items()):
        share = idx % n
        for key_values in windowed_key_values(key_coder_impl.decode(encoded_key), values):
            coder_impl.encode_to_stream(key_values, streams[share], True)
        if streams[share].size() >= chunk_bytes:
            pieces[share].append(streams[share].get())
            streams[share] = create_OutputStream()
    for share, stream in enumerate(streams):
        if stream.size() or not pieces[share]:
            pieces[share].append(stream.get())
    return pieces


def _windowed_key_values(windowing):
    """``(key, values) -> windowed (key, values)`` as Beam's ``GroupingBuffer.partition`` makes
    them: one on-time pane in the global window, or what the trigger fires."""
    from apache_beam.transforms import trigger
    from apache_beam.transforms.window import GlobalWindow, GlobalWindows
    from apache_beam.utils import windowed_value

    if not windowing.is_default():
        return trigger.create_trigger_driver(windowing, True).process_entire_key
    in_global_window = GlobalWindows.windowed_value(
        None,
        timestamp=GlobalWindow().max_timestamp(),
        pane_info=windowed_value.PaneInfo(
            is_first=True,
            is_last=True,
            timing=windowed_value.PaneInfoTiming.ON_TIME,
            index=0,
            nonspeculative_index=0,
        ),
    ).with_value
    return lambda key, values: [in_global_window((key, values))]
