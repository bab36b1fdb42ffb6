"""Does a Python SDK worker grow with a bundle's input even when the DoFn does nothing?

    python -m bench.flink_harness_memory --keys 20000 --value-bytes 2000   # Flink, ~1 min
    python -m bench.flink_harness_memory --runner fnapi                    # FnApiRunner, 2 procs

``Create(keys) -> (key, value bytes) -> GroupByKey -> ParDo(_Count)`` on the local Flink job
server with EXTERNAL Python workers (or the FnApiRunner with 2 worker processes). ``_Count`` keeps nothing: it counts elements and writes,
per bundle, the worker's VmRSS at start_bundle and finish_bundle to a JSON-lines file. Growth
between the two, proportional to the bundle's input, is the runner/SDK harness's, not a DoFn's:
what ``bench/results/dedup.md`` compares the dedup DoFns against.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from bench.dedup_bench import RssSampler
from bench.dofn_probe import rss_mb


class _Count(beam.DoFn):
    def __init__(self, log: str):
        self.log = log

    def start_bundle(self):
        self.elements, self.rss_start = 0, rss_mb()

    def process(self, element):
        self.elements += 1
        return ()

    def finish_bundle(self):
        row = {"pid": os.getpid(), "elements": self.elements, "rss_start_mb": self.rss_start}
        row["rss_end_mb"] = rss_mb()
        with open(self.log, "a") as f:
            f.write(json.dumps(row) + "\n")


def _pair(i: int, size: int) -> tuple[int, bytes]:
    return i, b"x" * size


def main(argv=None):
    from tests.flink_support import flink_job_server, flink_pipeline_args, flink_worker_pool

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--value-bytes", type=int, default=2_000)
    parser.add_argument("--runner", choices=("flink", "fnapi"), default="flink")
    args = parser.parse_args(argv)
    fd, log = tempfile.mkstemp(suffix=".jsonl")
    os.close(fd)
    sampler = RssSampler()
    sampler.start()
    with contextlib.ExitStack() as stack:
        if args.runner == "flink":
            endpoint = stack.enter_context(flink_job_server())
            pool = stack.enter_context(flink_worker_pool())
            options = flink_pipeline_args(endpoint, "EXTERNAL", worker_pool=pool)
        else:
            options = ["--runner=FnApiRunner", "--direct_num_workers=2"]
            options.append("--direct_running_mode=multi_processing")
        with beam.Pipeline(options=PipelineOptions(options)) as p:
            _ = (
                p
                | beam.Create(list(range(args.keys)))
                | beam.Map(_pair, args.value_bytes)
                | beam.GroupByKey()
                | beam.ParDo(_Count(log))
            )
    procs = sampler.stop()
    with open(log) as f:
        bundles = [json.loads(line) for line in f]
    os.remove(log)
    workers = [round(q["hwm_mb"]) for q in procs if q["label"] == "python SDK worker"]
    print(json.dumps({**vars(args), "bundles": bundles, "sdk_worker_peaks_mb": workers}))


if __name__ == "__main__":
    main()
