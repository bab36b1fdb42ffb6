"""LeakageAudit as a Beam stage and ``run_audit`` as a command: the same tables as the
plain-Python reference whatever the input sharding and the runner (in-process, multi-process,
and Flink when the ``flink`` marker is selected), on corpora and on rendered mixtures."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.audit import (
    format_summary,
    qa_section,
    read_tables,
    run_audit,
    sorted_rows,
    to_audit_record,
)
from transforms.leakage import SHARDS, TASKS, TOKENS, LeakageAudit, audit_in_memory
from transforms.leakage_config import LeakageConfig, TaskCheckConfig
from transforms.schema import CORPUS_SCHEMA, new_record

IN_PROCESS = ["--runner=FnApiRunner"]
MULTI_PROCESS = [
    "--runner=FnApiRunner",
    "--direct_num_workers=2",
    "--direct_running_mode=multi_processing",
]
NLI = {
    "entailment": "Given the premise, does the hypothesis follow? Answer yes.",
    "contradiction": "Given the premise, does the hypothesis conflict? Answer no.",
    "neutral": "Given the premise, is the hypothesis related? Answer maybe.",
}
CONFIG = LeakageConfig(checks=TaskCheckConfig(min_instances=5))


def corpus(seed: int = 0) -> list[dict]:
    """A leaky NLI task, a randomised one, an SNI-style task with derived labels, a Chinese
    task and a generation task, spread over three source files."""
    rng = random.Random(seed)
    records = []
    labels = list(NLI)
    for i in range(240):
        label = labels[i % 3]
        for task, template in (("nli_leaky", label), ("nli_random", rng.choice(labels))):
            records.append(
                new_record(
                    id=f"{task}-{i}",
                    task=task,
                    template_id=template[:3],
                    template=NLI[template],
                    input=f"premise {i} / hypothesis {i}",
                    output=label,
                    label=label,
                    source_file=f"nli_{i % 2}.jsonl",
                    source_index=i,
                    input_language=["English"],
                )
            )
    for i in range(40):
        records.append(
            new_record(
                task="sni_yes_no",
                definition="Answer Yes or No: is the review positive?",
                input=f"review {i}",
                output="Yes." if i % 4 else "no",
                source_file="sni.json",
                source_index=i,
                instruction_language=["English"],
            )
        )
        records.append(
            new_record(
                task="zh_sentiment",
                template="判断情感：正面" if i % 2 else "判断情感：负面",
                input=f"评论 {i}",
                output="正面" if i % 2 else "负面",
                source_file="zh.json",
                source_index=i,
                output_language=["Chinese"],
            )
        )
        records.append(
            new_record(
                task="poems",
                definition="Write a poem about the topic.",
                input=f"topic {i % 35}",
                output=f"A long poem number {i} about many things and more things",
                source_file="poems.json",
                source_index=i,
            )
        )
    return records


def as_json(row: dict, *tags: str) -> str:
    return json.dumps([*tags, row], sort_keys=True, ensure_ascii=False)


def _pipeline(args=IN_PROCESS):
    return test_pipeline.TestPipeline(options=PipelineOptions(args))


def test_leakage_audit_matches_the_reference_under_any_input_sharding():
    records = corpus()
    expected = audit_in_memory(records, CONFIG)
    flagged = {s["shard"]: s["reasons"] for s in expected[SHARDS] if s["flagged"]}
    assert "task=nli_leaky" in flagged and "task=nli_random" not in flagged
    assert "task=zh_sentiment" in flagged  # 正面/负面 spelled in their own templates
    leaky = [t["token"] for t in expected[TOKENS] if t["flagged"] and t["task"] == "nli_leaky"]
    assert {"follow", "conflict", "related", "yes", "no"} <= set(leaky)
    sni = next(s for s in expected[SHARDS] if s["shard"] == "task=sni_yes_no")
    assert [c["label"] for c in sni["label_counts"]] == ["yes", "no"]  # derived from outputs
    poems = next(s for s in expected[SHARDS] if s["shard"] == "task=poems")
    assert poems["n_skipped_unlabelled"] == 40 and poems["n_labelled"] == 0
    assert {(r["task"], r["check"]) for r in expected[TASKS]} >= {("poems", "duplicate_inputs")}
    shuffled = records[:]
    random.Random(7).shuffle(shuffled)
    with _pipeline() as p:
        # One input as it comes, one shuffled and split over three differently sized sources.
        whole = p | "Whole" >> beam.Create(records)
        parts = [
            p | f"Part{k}" >> beam.Create(shuffled[k * 100 : (k + 1) * 100 if k < 2 else None])
            for k in range(3)
        ]
        resharded = parts | "Flatten" >> beam.Flatten() | "Reshuffle" >> beam.Reshuffle()
        # Every row of both audits as canonical JSON tagged with its input and table (floats
        # round-trip exactly): one exact comparison of everything.
        tagged = []
        for name, pcoll in (("whole", whole), ("resharded", resharded)):
            out = pcoll | f"Audit_{name}" >> LeakageAudit(CONFIG)
            for table in (TOKENS, SHARDS, TASKS):
                tagged.append(out[table] | f"Json_{name}_{table}" >> beam.Map(as_json, name, table))
        assert_that(
            tagged | "AllRows" >> beam.Flatten(),
            equal_to(
                [
                    as_json(row, name, table)
                    for name in ("whole", "resharded")
                    for table in (TOKENS, SHARDS, TASKS)
                    for row in expected[table]
                ]
            ),
        )


def _write_parts(records: list[dict], directory: Path, schema=CORPUS_SCHEMA) -> None:
    (directory / "lang=en").mkdir(parents=True)
    for k in range(3):
        table = pa.Table.from_pylist(records[k::3], schema=schema)
        pq.write_table(table, directory / "lang=en" / f"part-{k}.parquet")


def test_run_audit_on_the_multi_process_runner_equals_the_reference(tmp_path):
    records = corpus(seed=2)
    _write_parts(records, tmp_path / "out" / "corpus")
    (tmp_path / "out" / "manifest.json").write_text('{"version": "x"}')
    summary = run_audit(str(tmp_path / "out"), str(tmp_path / "out"), CONFIG, MULTI_PROCESS)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["version"] == "x" and manifest["qa"] == json.loads(
        json.dumps(qa_section(summary))
    )
    assert summary["runner"] == {
        "runner": "FnApiRunner",
        "mode": "multi_processing",
        "workers": 2,
    }
    tables = read_tables(str(tmp_path / "out"))
    # The reference over the records as read back from Parquet (in-process runs are checked
    # against the same reference above): identical rows, floats included.
    read_back = [
        to_audit_record(row, str(path))[0]
        for path in sorted((tmp_path / "out" / "corpus" / "lang=en").glob("*.parquet"))
        for row in pq.read_table(path).to_pylist()
    ]
    expected = audit_in_memory(read_back, CONFIG)
    for name in (SHARDS, TOKENS, TASKS):
        assert tables[name] == sorted_rows(expected[name]), name
    assert summary["worst_shards"][0]["shard"].startswith(("task=nli_leaky", "file=nli_"))
    text = format_summary(summary)
    assert "worst shards:" in text and "'follow' -> 'entailment'" in text
    assert qa_section(summary)["flagged_shards"]


MIXTURE_SCHEMA = pa.schema(
    [
        ("task", pa.string()),
        ("template_id", pa.string()),
        ("input", pa.string()),
        ("prompt", pa.string()),
        ("completion", pa.string()),
        ("label", pa.string()),
    ]
)


def test_run_audit_on_a_mixture_uses_the_prompt_without_the_input(tmp_path):
    rng = random.Random(3)
    rows = []
    for i in range(120):
        label = list(NLI)[i % 3]
        instance = f"Premise: cats sleep {i}. Hypothesis: cats rest {i}."
        for task, template in (("leaky", label), ("fair", rng.choice(list(NLI)))):
            rows.append(
                {
                    "task": task,
                    "template_id": template[:3],
                    "input": instance,
                    "prompt": f"{instance}\n{NLI[template]}",
                    "completion": label,
                    "label": label,
                }
            )
    _write_parts(rows, tmp_path / "mix" / "mixture", schema=MIXTURE_SCHEMA)
    summary = run_audit(str(tmp_path / "mix"), str(tmp_path / "mix"), CONFIG, IN_PROCESS)
    shards = {s["shard"]: s for s in read_tables(str(tmp_path / "mix"))[SHARDS]}
    assert shards["task=leaky"]["flagged"] and not shards["task=fair"]["flagged"]
    assert shards["task=leaky"]["template_baseline"] == pytest.approx(1.0)
    fair = shards["task=fair"]
    assert abs(fair["template_baseline"] - fair["majority_rate"]) < 0.1
    tokens = read_tables(str(tmp_path / "mix"))[TOKENS]
    assert not {t["token"] for t in tokens if t["token"] in ("cats", "sleep", "rest")}
    assert summary["columns"] == ["task", "template_id", "input", "label", "prompt", "completion"]
    assert summary["counters"]["template_from:prompt_minus_input"] == 240
    assert summary["counters"]["labels:given"] == 240


@pytest.mark.flink
@pytest.mark.timeout(900)
def test_run_audit_on_flink_matches_the_reference(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from flink_support import flink_job_server, flink_pipeline_args, require_flink

    require_flink()
    records = corpus(seed=4)
    _write_parts(records, tmp_path / "out" / "corpus")
    local = run_audit(str(tmp_path / "out"), str(tmp_path / "a"), CONFIG, IN_PROCESS)
    with flink_job_server() as endpoint:
        run_audit(str(tmp_path / "out"), str(tmp_path / "b"), CONFIG, flink_pipeline_args(endpoint))
    assert read_tables(str(tmp_path / "a")) == read_tables(str(tmp_path / "b"))
    assert local["worst_shards"]
