"""Throughput of the leakage stage (LeakageAudit: label spaces, shard counts, statistics and
task checks) on synthetic records generated on the workers.

    .venv/bin/python -m bench.leakage_bench --records 1000000 --workers 2
    .venv/bin/python -m bench.leakage_bench --records 100000 --kernels-only

The synthetic corpus mimics instruction data: ~300 tasks, 60% classification (2-6 labels, some
with label-coded templates), 1-10 templates each (20-80 template tokens, some Chinese),
generation tasks with long outputs, ~1% duplicate inputs, two positive examples per task.
Records are made inside the pipeline (``Create(chunk ids) | FlatMap(generate)``), so the
driver never holds them; a generate-only pipeline is timed too and its time reported beside.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import resource
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from transforms.leakage import LeakageAudit, audit_in_memory
from transforms.leakage_config import LeakageConfig
from transforms.schema import new_record

WORDS = [
    "answer",
    "question",
    "review",
    "sentence",
    "premise",
    "hypothesis",
    "classify",
    "label",
    "decide",
    "whether",
    "text",
    "following",
    "given",
    "read",
    "choose",
    "option",
    "correct",
    "best",
    "describe",
    "category",
    "topic",
    "sentiment",
    "positive",
    "negative",
    "neutral",
    "entail",
    "contradict",
    "relate",
    "output",
    "input",
    "task",
    "instruction",
    "please",
    "carefully",
    "briefly",
    "explain",
    "reason",
    "context",
    "passage",
    "article",
    "summary",
    "title",
    "tweet",
    "product",
]
CHINESE = "请判断下面句子的情感类别并给出答案"
N_TASKS = 300
CHUNK = 5_000


def _task_spec(task_id: int) -> dict:
    rng = random.Random(task_id)
    classification = rng.random() < 0.6
    labels = [f"class_{k}" for k in range(rng.randint(2, 6))] if classification else []
    templates = []
    for _ in range(rng.randint(1, 10)):
        words = rng.choices(WORDS, k=rng.randint(20, 80))
        if rng.random() < 0.1:
            words.append(CHINESE)
        templates.append(" ".join(words))
    return {
        "task": f"task{task_id:03d}",
        "labels": labels,
        "templates": templates,
        "leaky": classification and rng.random() < 0.2,  # template chosen by label
        "examples": [
            {"input": f"example {task_id} {k}", "output": "x", "explanation": "."} for k in (0, 1)
        ],
    }


SPECS = [_task_spec(t) for t in range(N_TASKS)]


def generate(chunk: int, size: int):
    """``size`` records of chunk ``chunk`` (deterministic)."""
    rng = random.Random(chunk)
    for i in range(size):
        spec = SPECS[rng.randrange(N_TASKS)]
        n = chunk * size + i
        text = f"instance {n} " + " ".join(rng.choices(WORDS, k=12))
        if rng.random() < 0.01:
            text = f"duplicate {n % 97}"
        if spec["labels"]:
            label = rng.choice(spec["labels"])
            k = (
                spec["labels"].index(label)
                if spec["leaky"]
                else rng.randrange(len(spec["templates"]))
            )
            output = label
        else:
            label, k = None, rng.randrange(len(spec["templates"]))
            output = " ".join(rng.choices(WORDS, k=40))
        template_index = k % len(spec["templates"])
        yield new_record(
            id=str(n),
            task=spec["task"],
            source_file=f"{spec['task']}.json",
            source_index=n,
            template_id=f"t{template_index}",
            template=spec["templates"][template_index],
            positive_examples=spec["examples"],
            input=text,
            output=output,
            references=[output],
            label=label,
            input_language=["English"],
        )


def _options(workers: int) -> PipelineOptions:
    args = ["--runner=FnApiRunner"]
    if workers > 1:
        args += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    return PipelineOptions(args)


def _chunks(records: int) -> list[tuple[int, int]]:
    return [(c, min(CHUNK, records - c * CHUNK)) for c in range((records + CHUNK - 1) // CHUNK)]


def _cpu_seconds() -> float:
    """CPU time of this process and its reaped children (the multi-process workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_pipeline(records: int, workers: int, *, audit: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one pipeline run."""
    started, cpu = time.perf_counter(), _cpu_seconds()
    with beam.Pipeline(options=_options(workers)) as p:
        generated = (
            p
            | "Chunks" >> beam.Create(_chunks(records))
            | "Reshuffle" >> beam.Reshuffle()
            | "Generate" >> beam.FlatMapTuple(generate)
        )
        if audit:
            tables = generated | "Audit" >> LeakageAudit(LeakageConfig())
            for name, pcoll in tables.items():
                pcoll | f"Count_{name}" >> beam.combiners.Count.Globally()
        else:
            generated | "Count" >> beam.combiners.Count.Globally()
    return time.perf_counter() - started, _cpu_seconds() - cpu


def time_kernels(records: int) -> tuple[float, float]:
    """CPU seconds to generate, and to audit with the plain-Python reference (one core)."""
    started = time.process_time()
    data = [r for c, size in _chunks(records) for r in generate(c, size)]
    generated = time.process_time()
    audit_in_memory(data, LeakageConfig())
    return generated - started, time.process_time() - generated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--kernels-only", action="store_true")
    args = parser.parse_args()
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    if args.kernels_only:
        gen, audit = time_kernels(args.records)
        print(
            f"kernels, 1 core: {args.records} records: generate {gen:.1f} s CPU, audit "
            f"{audit:.1f} s CPU = {args.records / audit:,.0f} records per CPU-second"
        )
        return
    n = args.records
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for workers in args.workers:
        gen, gen_cpu = time_pipeline(n, workers, audit=False)
        total, total_cpu = time_pipeline(n, workers, audit=True)
        stage, stage_cpu = total - gen, total_cpu - gen_cpu
        print(
            f"FnApiRunner workers={workers}: {n} records: generate-only {gen:.1f} s wall "
            f"({gen_cpu:.1f} s CPU); generate+audit {total:.1f} s wall ({total_cpu:.1f} s CPU); "
            f"stage alone {n / max(stage, 1e-9):,.0f} records/s wall, "
            f"{n / max(stage_cpu, 1e-9):,.0f} records per CPU-second"
        )
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
