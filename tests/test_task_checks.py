"""The SNI maintainers' task checks: each check on a small task, real SNI and P3 files, and
the Beam branch against the plain-Python oracle (in-process)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.leakage import TaskChecks
from transforms.leakage_config import TaskCheckConfig
from transforms.schema import new_record
from transforms.task_checks import (
    DUPLICATE_INPUTS,
    EMPTY_INPUT,
    EMPTY_OUTPUT,
    LABEL_IMBALANCE,
    MISSING_LANGUAGE,
    POSITIVE_IN_INSTANCES,
    SINGLE_OUTPUT,
    TOO_FEW,
    TOO_MANY,
    UNKNOWN_LANGUAGE,
    check_tasks,
    is_known_language,
)

CONFIG = TaskCheckConfig(min_instances=3, max_instances=50)


def task(name, inputs, outputs, **extra):
    return [
        new_record(
            task=name,
            input=i,
            output=o,
            references=[o] if o else [],
            source_file=f"{name}.json",
            source_index=n,
            input_language=["English"],
            **extra,
        )
        for n, (i, o) in enumerate(zip(inputs, outputs, strict=True))
    ]


def findings(records, config=CONFIG):
    return {(r["task"], r["check"]): r for r in check_tasks(records, config)}


def test_a_clean_task_has_no_findings():
    records = task("ok", ["a", "b", "c", "d"], ["yes", "no", "no", "yes"])
    assert check_tasks(records, CONFIG) == []


def test_duplicate_inputs_after_normalisation_with_evidence():
    records = task("dup", ["Works great!", "works  great!", "other", "x"], ["a", "b", "a", "b"])
    found = findings(records)[("dup", DUPLICATE_INPUTS)]
    assert found["severity"] == "error"
    assert found["value"] == 1
    assert "'Works great!' x2" in found["evidence"]


def test_all_instances_mapped_to_one_output():
    found = findings(task("one", ["a", "b", "c"], ["Company", "company", "Company."]))
    assert found[("one", SINGLE_OUTPUT)]["evidence"] == "all 3 instances have the output 'company'"


def test_one_label_written_several_ways_is_still_a_single_output():
    records = task("verbalised", ["a", "b", "c"], ["bad", "no", "negative"])
    records = [dict(r, label="neg") for r in records]
    found = findings(records)[("verbalised", SINGLE_OUTPUT)]
    assert found["evidence"] == "all 3 labelled instances have the label 'neg' (written 3 ways)"


def test_label_imbalance_uses_normalised_entropy():
    records = task("skew", [str(i) for i in range(20)], ["pos"] * 19 + ["neg"])
    found = findings(records)[("skew", LABEL_IMBALANCE)]
    p = 19 / 20

    assert found["value"] == pytest.approx(-(p * math.log2(p) + (1 - p) * math.log2(1 - p)))
    assert "'pos': 19" in found["evidence"]
    balanced = task("fair", [str(i) for i in range(20)], ["pos", "neg"] * 10)
    assert ("fair", LABEL_IMBALANCE) not in findings(balanced)


def test_positive_examples_that_reappear_as_instances():
    examples = [{"input": "Seen before", "output": "yes", "explanation": "."}]
    records = task(
        "pos", ["seen before", "b", "c"], ["yes", "no", "no"], positive_examples=examples
    )
    found = findings(records)[("pos", POSITIVE_IN_INSTANCES)]
    assert found["value"] == 1
    assert "'Seen before'" in found["evidence"]


def test_empty_inputs_and_outputs_point_at_the_records():
    records = task("empty", ["", "b", " ", "d"], ["x", "", "y", "z"])
    found = findings(records)
    assert found[("empty", EMPTY_INPUT)]["value"] == 2
    assert "empty.json#0" in found[("empty", EMPTY_INPUT)]["evidence"]
    assert found[("empty", EMPTY_OUTPUT)]["value"] == 1
    assert "empty.json#1" in found[("empty", EMPTY_OUTPUT)]["evidence"]


def test_too_few_and_too_many_instances():
    assert ("few", TOO_FEW) in findings(task("few", ["a", "b"], ["x", "y"]))
    many = task("many", [str(i) for i in range(51)], [str(i) for i in range(51)])
    assert ("many", TOO_MANY) in findings(many)


def test_declared_languages_must_be_iso_names():
    for name in ["English", "Persian", "Japanese", "Panjabi", "Swahili", "en", "fas", "pt-BR"]:
        assert is_known_language(name), name
    for name in ["Englsh", "Code", "Farsi-ish", "xx-YY"]:
        assert not is_known_language(name), name
    records = task("lang", ["a", "b", "c"], ["x", "y", "z"], output_language=["Englsh"])
    found = findings(records)[("lang", UNKNOWN_LANGUAGE)]
    assert "output_language='Englsh'" in found["evidence"]
    bare = [dict(r, input_language=[], output_language=[]) for r in records]
    assert findings(bare)[("lang", MISSING_LANGUAGE)]["severity"] == "info"


def _sni_records(path: Path) -> list[dict]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    definition = doc["Definition"]
    definition = "\n".join(definition) if isinstance(definition, list) else definition
    examples = [
        {"input": e["input"], "output": e["output"], "explanation": e.get("explanation")}
        for e in doc.get("Positive Examples", [])
    ]
    return [
        new_record(
            task=path.stem.removeprefix("fin-translated-"),
            source_file=path.name,
            source_index=i,
            definition=definition,
            positive_examples=examples,
            input=inst["input"],
            output=inst["output"][0],
            references=inst["output"],
            input_language=doc.get("Input_language") or [],
            output_language=doc.get("Output_language") or [],
        )
        for i, inst in enumerate(doc["Instances"])
    ]


def test_real_sni_tasks(shared_data):
    trec = _sni_records(shared_data / "sni" / "tasks" / "task1289_trec_classification.json")
    assert check_tasks(trec, TaskCheckConfig()) == []
    reviews = _sni_records(shared_data / "sni" / "tasks" / "task1342_amazon_us_reviews_title.json")
    found = findings(reviews, TaskCheckConfig())
    # SNI compares raw strings; "Works great!" / "works great!" are the same input.
    assert found[("task1342_amazon_us_reviews_title", DUPLICATE_INPUTS)]["value"] == 2
    persian = _sni_records(
        shared_data / "sni" / "tasks_nonenglish" / "task463_parsinlu_entailment_classification.json"
    )
    assert set(findings(persian, TaskCheckConfig())) == {
        ("task463_parsinlu_entailment_classification", TOO_FEW)
    }


def test_real_p3_template_with_empty_completions(shared_data):
    path = shared_data / "p3_t0_gpt3ft" / "data_per_template" / "trec_trec1.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    records = [
        new_record(
            task="trec", input=r["prompt"], output=r["completion"].removesuffix("<|endoftext|>")
        )
        for r in rows
    ]
    found = findings(records, TaskCheckConfig())
    assert found[("trec", EMPTY_OUTPUT)]["value"] == 200


def test_beam_task_checks_match_the_oracle():
    examples = [{"input": "b", "output": "no", "explanation": "."}]
    records = (
        task("dup", ["a", "A", "b", "c"], ["x", "y", "x", "y"], positive_examples=examples)
        + task("one", ["a", "b", "c"], ["same"] * 3)
        + task("few", ["", "q"], ["", "r"])
    )
    expected = check_tasks(records, CONFIG)
    assert {r["check"] for r in expected} >= {DUPLICATE_INPUTS, POSITIVE_IN_INSTANCES, TOO_FEW}
    options = PipelineOptions(["--runner=FnApiRunner"])
    with test_pipeline.TestPipeline(options=options) as p:
        rows = p | beam.Create(records) | TaskChecks(CONFIG)
        assert_that(rows, equal_to(expected))
