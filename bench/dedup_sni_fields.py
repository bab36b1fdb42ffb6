"""Do the default dedup fields merge distinct instances of one task? Measured on the shared SNI.

    python -m bench.dedup_sni_fields       # ~1 min; prints one JSON line per field choice

Every SNI task file in ``../shared/data/sni`` is read as the pipeline reads it (one record per
instance) and deduplicated in-process, comparing whole records and with the default config. A removal is counted as
a *distinct instance* when the removed record's normalised (input, output) differs from its
survivor's: the two share the task's definition and nothing else worth merging.
"""

from __future__ import annotations

import argparse
import glob
import json
from collections import Counter
from pathlib import Path
from typing import ClassVar

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from transforms.dedup import Deduplicate, normalized_fields
from transforms.dedup_config import DedupConfig
from transforms.normalize import normalized_records

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sni"


def sni_records() -> list[dict]:
    return list(normalized_records(sorted(glob.glob(str(DATA / "**" / "*.json"), recursive=True))))


def removed_rows(records: list[dict], config: DedupConfig) -> list[dict]:
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        out = p | beam.Create(records) | Deduplicate(config=config)
        rows = out["removed"] | beam.combiners.ToList()
        _ = rows | beam.Map(_Sink.keep)
    return _Sink.rows.pop()


class _Sink:
    rows: ClassVar[list] = []  # in-process runner: the DoFn runs in this process

    @staticmethod
    def keep(rows):
        _Sink.rows.append(rows)


def distinct_instances(records: list[dict], removed: list[dict]) -> dict:
    """Removed records whose (input, output) differs from their survivor's, per stage and task."""
    by_key = {(r["source_file"], r["source_index"]): r for r in records}
    io = ("input", "output")
    out = Counter()
    tasks = Counter()
    examples = []
    for row in removed:
        mine = by_key[(row["source_file"], row["source_index"])]
        survivor = by_key[(row["survivor_source_file"], row["survivor_source_index"])]
        if normalized_fields(mine, io) != normalized_fields(survivor, io):
            out[row["stage"]] += 1
            tasks[mine["task"]] += 1
            if len(examples) < 3:
                examples.append(
                    {
                        "task": mine["task"],
                        "removed": [mine["input"][:80], mine["output"][:40]],
                        "survivor": [survivor["input"][:80], survivor["output"][:40]],
                        "similarity": row["similarity"],
                    }
                )
    return {"by_stage": dict(out), "by_task": dict(tasks.most_common()), "examples": examples}


CONFIGS = {
    "whole record (definition + input + output)": DedupConfig(fields_by_source={}),
    "default (sni, niv1: input + output)": DedupConfig(),
}


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    records = sni_records()
    for name, config in CONFIGS.items():
        removed = removed_rows(records, config)
        row = {
            "config": name,
            "records": len(records),
            "tasks": len({r["task"] for r in records}),
            "removed": len(removed),
            "removed_by_stage": dict(Counter(r["stage"] for r in removed)),
            "distinct_instances_removed": distinct_instances(records, removed),
        }
        print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main()
