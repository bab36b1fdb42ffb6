"""Imported first by every Beam SDK worker process of an instructmix job.

It watches the worker's data plane from the start, whatever stages the worker runs
(``transforms.worker.watch_data_plane``). Some worker settings must precede the worker's first
gRPC channel: a channel's options are fixed when it opens, and a worker may open its data
channel before any DoFn's ``setup`` runs (measured with Beam's Python runner, whose workers
open their timer channel, at the data channel's address, when they build a bundle's
processor). How each kind of worker gets here:

* Beam's SDK container (the Flink deployment's worker pool, Dataflow) starts
  ``sdk_worker_main`` with the job's options, which imports the modules named in
  ``--beam_plugins``; ``pipelines.options.pipeline_options`` names this one there.
* Beam's Python worker pool starts its workers without the job's options: give it
  ``instructmix-sdk-worker`` (``pipelines.sdk_worker``) as ``--container_executable``.
* Workers inside the submitting process (``--environment_type=LOOPBACK``):
  ``pipelines.options.prepare_process``.

The local runner's worker processes (``--direct_running_mode=multi_processing``) get no
options from Beam and keep gRPC's defaults; that runner sends them ~8 MB messages
(``pipelines.local_runner``).
"""

from transforms.worker import fix_receive_window, watch_data_plane

fix_receive_window()
watch_data_plane()  # a runner that stops taking output: an error, not a hang
