"""RougeFilter on Beam: decisions, audit rows, task reports, counters, multi-process runner."""

from __future__ import annotations

import random

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from bench.paraphrases import generate
from bench.rouge_bench import reference_greedy
from tests.conftest import IN_PROCESS, MULTI_PROCESS
from transforms import rouge
from transforms.rouge_config import RougeConfig
from transforms.rouge_filter import NAMESPACE, ConnectedComponents, RougeFilter
from transforms.schema import REMOVED_SCHEMA, new_record

# Small partitions and one component round keep each pipeline a few seconds; the remainder
# step (union-find on one worker) is then exercised too.
SMALL = {"num_partitions": 3, "cc_rounds": 1, "batch_size": 64}


def _rec(rid, text, source="alpaca", file="a.json", index=0, task=None, inp=""):
    return new_record(
        id=rid,
        source=source,
        source_file=file,
        source_index=index,
        task=task,
        definition=text,
        input=inp,
        output="out",
    )


def _f1(a: str, b: str) -> float:
    return rouge.rouge_l_f1(rouge.rouge_score_tokens(a), rouge.rouge_score_tokens(b))


POEM = "Write a short poem about the sea."
POEM_SKY = "Write a short poem about the sea and the sky."
NIGHT = "A short poem about the sea and the sky at night."
SENTIMENT = "Given a sentence, classify its sentiment as positive or negative."
SENTIMENT_2 = "Given a sentence, classify the sentiment as positive or negative."

RECORDS = (
    [
        _rec("r0", POEM, index=0),
        _rec("r1", POEM_SKY, index=1),
        _rec("r2", NIGHT, index=2),
        _rec("r3", "write a SHORT poem about the sea!!", source="dolly", file="b.jsonl", index=0),
        _rec("r4", "写一首关于大海的诗", index=3),
        _rec("r5", "写一首关于大海的诗", index=4),
        _rec("r6", "", index=5),
    ]
    + [
        _rec(
            f"a{i}",
            SENTIMENT,
            source="sni",
            file="sni/task001.json",
            index=i,
            task="task001_x",
            inp=f"sentence {i}",
        )
        for i in range(3)
    ]
    + [
        _rec(
            f"b{i}",
            SENTIMENT_2,
            source="sni",
            file="sni/task002.json",
            index=i,
            task="task002_y",
            inp=f"sentence {i}",
        )
        for i in range(2)
    ]
    + [
        _rec(
            "c0",
            "Translate the sentence into French.",
            source="sni",
            file="sni/task003.json",
            task="task003_z",
        )
    ]
)


def _run(records, configs, options=IN_PROCESS, check=None):
    """Run one RougeFilter per config on the same input; ``check(outputs)`` adds assertions
    (``outputs[i]`` is the i-th filter's dict); returns the counters summed over all filters."""
    p = TestPipeline(options=PipelineOptions(options))
    shuffled = list(records)
    random.Random(7).shuffle(shuffled)  # input order must not matter, only order_by
    source = p | beam.Create(shuffled)
    outputs = [source | f"Rouge{i}" >> RougeFilter(cfg) for i, cfg in enumerate(configs)]
    if check:
        check(outputs)
    result = p.run()
    result.wait_until_finish()
    totals: dict[str, int] = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        totals[c.key.metric.name] = totals.get(c.key.metric.name, 0) + c.committed  # per step
    return totals


def _ids(pcoll, label):
    return pcoll | label >> beam.Map(lambda r: r["id"])


def _removed_view(pcoll, label):
    return pcoll | label >> beam.Map(
        lambda r: (
            r["id"],
            r["survivor_id"],
            r["survivor_source_index"],
            r["similarity"],
            r["detail"].split(":")[0],
            r["stage"],
        )
    )


def test_decisions_audit_rows_task_reports_and_options():
    """Three configurations on one input: the default, drop tasks + unicode, with input."""

    def check(outputs):
        out, drop, with_input, lsh = outputs
        # Default: r2 collides only with the *dropped* r1 and is kept; r3 has r0's tokens.
        kept = ["r0", "r2", "r4", "r5", "r6", "a0", "a1", "a2", "b0", "b1", "c0"]
        assert_that(_ids(out["kept"], "KeptIds"), equal_to(kept), label="Kept")
        removed = [
            ("r1", "r0", 0, _f1(POEM, POEM_SKY), "rouge_l", "rouge"),
            ("r3", "r0", 0, 1.0, "identical_instruction", "rouge"),
        ]
        assert_that(_removed_view(out["removed"], "View"), equal_to(removed), label="Removed")
        assert_that(
            out["removed"]
            | "Keys" >> beam.Map(lambda r: sorted(r) == sorted(REMOVED_SCHEMA.names)),
            equal_to([True, True]),
            label="Schema",
        )
        report = [("task002_y", 2, "task001_x", "a0", _f1(SENTIMENT, SENTIMENT_2), "reported")]
        assert_that(
            out["near_duplicate_tasks"]
            | beam.Map(
                lambda r: (
                    r["task"],
                    r["records"],
                    r["duplicate_of_task"],
                    r["duplicate_of_id"],
                    r["similarity"],
                    r["action"],
                )
            ),
            equal_to(report),
            label="Report",
        )
        # Dropping near-duplicate tasks, with unicode tokens (Chinese is compared).
        assert_that(
            _ids(drop["kept"], "DropKeptIds"),
            equal_to(["r0", "r2", "r4", "r6", "a0", "a1", "a2", "c0"]),
            label="DropKept",
        )
        assert_that(
            drop["removed"]
            | "DropView"
            >> beam.Map(lambda r: (r["id"], r["survivor_id"], r["detail"].split(":")[0])),
            equal_to(
                [
                    ("r1", "r0", "rouge_l"),
                    ("r3", "r0", "identical_instruction"),
                    ("r5", "r4", "identical_instruction"),
                    ("b0", "a0", "near_duplicate_task"),
                    ("b1", "a0", "near_duplicate_task"),
                ]
            ),
            label="DropRemoved",
        )
        # Instruction + input: the SNI instances of one task are distinct units now, and
        # r0 / r3 too (r3 has no input either, so they stay identical).
        assert_that(
            _ids(with_input["removed"], "InputRemovedIds"),
            equal_to(["r1", "r3"]),
            label="InputRemoved",
        )
        # MinHash LSH candidates instead of prefix keys: same decisions here.
        assert_that(_ids(lsh["kept"], "LshKeptIds"), equal_to(kept), label="LshKept")

    assert _f1(POEM, POEM_SKY) > 0.7 and _f1(POEM_SKY, NIGHT) > 0.7 and _f1(POEM, NIGHT) <= 0.7
    configs = [
        RougeConfig(**SMALL),
        RougeConfig(drop_near_duplicate_tasks=True, tokenizer="unicode", **SMALL),
        RougeConfig(instruction_fields=("definition", "input"), **SMALL),
        RougeConfig(candidates="lsh", **SMALL),
    ]
    counters = _run(RECORDS, configs, check=check)
    n = len(RECORDS)
    assert counters["records"] == 4 * n
    removed = sum(v for k, v in counters.items() if k.startswith("removed:"))
    assert counters["kept"] + removed == 4 * n  # every record ends kept or removed, per filter
    assert counters["removed:rouge_l"] == 4
    assert counters["removed:identical_instruction"] == 1 + 2 + 1 + 1
    assert counters["removed:near_duplicate_task"] == 2
    assert counters["kept:empty_tokens"] == 3 + 1 + 3 + 3  # Chinese, empty; unicode: empty only
    # default: 1 report; drop: 1 (action "dropped"); with the input, a task unit is one
    # instance: a1, a2 (vs a0, same task) and b0, b1 (vs a0) are reported; lsh: 1.
    assert counters["tasks:near_duplicate"] == 1 + 1 + 4 + 1


@pytest.mark.parametrize(
    "bad",
    [
        {"threshold": 1.0},
        {"tokenizer": "nltk"},
        {"instruction_fields": "definition"},
        {"instruction_fields": ()},
        {"candidates": "simhash"},
        {"num_partitions": 0},
        {"lsh_max_miss": 0.0},
    ],
)
def test_config_is_validated_when_built(bad):
    with pytest.raises((ValueError, TypeError)):
        RougeConfig(**bad)


def test_config_fingerprint_is_stable_and_sensitive():
    assert RougeConfig().fingerprint() == RougeConfig().fingerprint()
    assert RougeConfig().fingerprint() != RougeConfig(threshold=0.75).fingerprint()
    assert RougeConfig(task_sources=["sni"]).task_sources == ("sni",)


def test_multi_process_runner_matches_the_rouge_score_reference():
    texts, _ = generate(300, seed=11)
    # Three files; the reference's order is (source_file, source_index).
    records = [
        _rec(f"p{i}", t, file=f"part-{i % 3}.jsonl", index=i // 3) for i, t in enumerate(texts)
    ]
    ordered = sorted(records, key=lambda r: (r["source_file"], r["source_index"]))
    ref_kept, ref_dropped = reference_greedy([r["definition"] for r in ordered])
    expected = [r["id"] for r, k in zip(ordered, ref_kept) if k]
    assert 0 < len(ref_dropped) < len(texts)

    def check(outputs):
        (out,) = outputs
        assert_that(_ids(out["kept"], "KeptIds"), equal_to(expected), label="Kept")
        assert_that(
            out["removed"] | beam.Map(lambda r: (r["id"], r["survivor_id"], r["similarity"])),
            equal_to(
                [
                    (ordered[i]["id"], ordered[s]["id"], score)
                    for i, (s, score) in ref_dropped.items()
                ]
            ),
            label="Survivors",
        )

    counters = _run(records, [RougeConfig(num_partitions=2, cc_rounds=1)], MULTI_PROCESS, check)
    removed = sum(v for k, v in counters.items() if k.startswith("removed:"))
    assert counters["records"] == len(records) == counters["kept"] + removed


@pytest.mark.parametrize("rounds", [0, 3])
def test_connected_components_transform_equals_union_find(rounds):
    rng = np.random.default_rng(rounds)
    path = np.arange(0, 40, dtype=np.uint64)  # a long path needs many rounds
    a = np.concatenate([path[:-1], rng.integers(100, 160, 50).astype(np.uint64)])
    b = np.concatenate([path[1:], rng.integers(100, 160, 50).astype(np.uint64)])
    keep = a != b
    a, b = a[keep], b[keep]
    chunks = [(a[i : i + 7], b[i : i + 7]) for i in range(0, len(a), 7)]
    expected = rouge.union_find_labels(a.tolist(), b.tolist())
    with TestPipeline(options=PipelineOptions(IN_PROCESS)) as p:
        labels = (
            p
            | beam.Create(chunks)
            | ConnectedComponents(rounds, 3)
            | beam.FlatMap(lambda kv: zip(kv[1][0].tolist(), kv[1][1].tolist()))
        )
        assert_that(labels, equal_to(sorted(expected.items())))
