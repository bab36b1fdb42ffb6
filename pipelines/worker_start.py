"""Imported first by every Beam SDK worker process of an instructmix job.

Some worker settings must precede the worker's first gRPC channel: a channel's options are
fixed when it opens, and a worker opens its data channel at its first bundle, before any
DoFn's ``setup`` runs. Workers that Beam starts with ``sdk_worker_main`` (the local runner's
worker processes, Beam's SDK container on Flink or Dataflow) import the modules named in
``--beam_plugins``, and ``pipelines.options.pipeline_options`` names this one there. Beam's
Python worker pool starts its workers without reading the job's options: give it
``instructmix-sdk-worker`` (``pipelines.sdk_worker``) as ``--container_executable``.
"""

from transforms.worker import fix_receive_window

fix_receive_window()
