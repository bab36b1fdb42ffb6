"""The Beam side of language ID: IdentifyLanguage, FilterLanguages, LanguageAgreement and
LanguageCounts, in process and on the multi-process runner, against the kernel as oracle."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.langid import LanguageIdentifier, default_model_path
from transforms.langid_config import LangIdConfig, LanguageFilterConfig
from transforms.langid_stage import (
    NAMESPACE,
    FilterLanguages,
    IdentifyLanguage,
    IdentifyLanguageFn,
    LanguageAgreement,
    LanguageCounts,
)
from transforms.schema import new_record

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IN_PROCESS = ["--runner=FnApiRunner"]
MULTI_PROCESS = [
    "--runner=FnApiRunner",
    "--direct_num_workers=2",
    "--direct_running_mode=multi_processing",
]

EN_DEF = "In this task you are given a sentence. Classify its sentiment as positive or negative."


def _records() -> list[dict]:
    """Hand-written records covering a decided input, each fallback and each und reason."""
    rows = [
        ("Tämä on suomenkielinen lause, jossa kerrotaan säästä.", EN_DEF, "positive", "Finnish"),
        ("Heute regnet es den ganzen Tag, deshalb bleiben wir zu Hause.", EN_DEF, "NEG", "German"),
        ("今天天气很好，我们一起去公园散步了。", EN_DEF, "positive", "Chinese"),
        ("Guam", EN_DEF, "Hagåtña", "English"),  # too short: the instruction decides
        ("", "", "I am a language model trained to help you with your questions.", ""),
        ("😀😂🎉👍", "", "", ""),  # nothing anywhere
        ("面白い", EN_DEF, "POS", "Japanese"),  # short, another script than the fallback
        ("qwrtpsdfgh zxcvbnm kjhgf lkjh qwrt zxcv", EN_DEF, "x", "English"),
    ]
    return [
        new_record(
            id=str(i),
            source="test",
            source_file="mem",
            source_index=i,
            task=f"task{i % 2}",
            input=text,
            definition=definition,
            output=output,
            input_language=[declared] if declared else [],
        )
        for i, (text, definition, output, declared) in enumerate(rows)
    ]


def _oracle(records, config=None) -> list[dict]:
    return LanguageIdentifier.default(config).identify_records(records)


def test_identify_language_matches_the_kernel_and_counts_every_decision():
    records = _records()
    expected = _oracle(records)
    assert [r["lang"] for r in expected] == [
        "fi", "de", "zh-Hans", "en", "en", "und", "und", "und",
    ]  # fmt: skip
    pipeline = BeamTestPipeline(options=PipelineOptions(IN_PROCESS))
    out = pipeline | beam.Create(records) | IdentifyLanguage(config=LangIdConfig(batch_size=3))
    assert_that(out, equal_to(expected))
    result = pipeline.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    }
    assert counters == {
        "lang:fi": 1,
        "lang:de": 1,
        "lang:zh-Hans": 1,
        "lang:en": 2,
        "lang:und": 3,
        "decided_by:input": 3,
        "decided_by:instruction": 1,
        "decided_by:output": 1,
        "und:input:symbols_only": 1,
        "und:script_mismatch": 1,
        "und:input:low_confidence": 1,
    }


def test_unbatched_path_and_a_model_from_a_path(tmp_path):
    model = tmp_path / "models" / "lid.176.ftz"
    model.parent.mkdir()
    shutil.copy(default_model_path(), model)
    config = LangIdConfig(model_path=str(model), batch_size=1, max_chars=120)
    records = _records()
    with BeamTestPipeline(options=PipelineOptions(IN_PROCESS)) as pipeline:
        out = pipeline | beam.Create(records) | IdentifyLanguage(config)
        assert_that(out, equal_to(_oracle(records, config)))


def test_the_dofn_pickles_without_a_model():
    fn = IdentifyLanguageFn(LangIdConfig())
    blob = pickle.dumps(fn)
    assert len(blob) < 4096  # config and path only
    fn.setup()
    assert fn._identifier is not None
    clone = pickle.loads(blob)
    assert clone._identifier is None


def test_filter_languages_routes_everything_and_loses_nothing():
    identified = _oracle(_records())
    kept_expected = [r for r in identified if r["lang"] in ("en", "zh-Hans")]
    filtered_expected = [r for r in identified if r not in kept_expected]
    pipeline = BeamTestPipeline(options=PipelineOptions(IN_PROCESS))
    routed = pipeline | beam.Create(identified) | FilterLanguages("en,zh")
    assert set(routed) == {"kept", "filtered"}
    assert_that(routed["kept"], equal_to(kept_expected), label="Kept")
    assert_that(routed["filtered"], equal_to(filtered_expected), label="Filtered")
    result = pipeline.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    }
    assert counters == {
        "kept:en": 2,
        "kept:zh-Hans": 1,
        "filtered:fi": 1,
        "filtered:de": 1,
        "filtered:und": 3,
    }
    assert sum(counters.values()) == len(identified)


def test_filter_languages_takes_exactly_one_of_languages_or_config():
    with pytest.raises(ValueError):
        FilterLanguages()
    with pytest.raises(ValueError):
        FilterLanguages("en", config=LanguageFilterConfig(languages=("en",)))
    assert FilterLanguages(config=LanguageFilterConfig(languages=("und",)))._config.keeps(None)


def test_language_agreement_and_counts():
    identified = _oracle(_records())
    with BeamTestPipeline(options=PipelineOptions(IN_PROCESS)) as pipeline:
        records = pipeline | beam.Create(identified)
        agreement = records | LanguageAgreement()
        counts = records | LanguageCounts()
        assert_that(
            agreement,
            equal_to(
                [
                    {"task": "task0", "declared_input_language": "Finnish", "lang": "fi",
                     "count": 1, "agrees": True},
                    {"task": "task1", "declared_input_language": "German", "lang": "de",
                     "count": 1, "agrees": True},
                    {"task": "task0", "declared_input_language": "Chinese", "lang": "zh-Hans",
                     "count": 1, "agrees": True},
                    {"task": "task1", "declared_input_language": "English", "lang": "en",
                     "count": 1, "agrees": True},
                    {"task": "task0", "declared_input_language": "", "lang": "en",
                     "count": 1, "agrees": None},
                    {"task": "task1", "declared_input_language": "", "lang": "und",
                     "count": 1, "agrees": None},
                    {"task": "task0", "declared_input_language": "Japanese", "lang": "und",
                     "count": 1, "agrees": None},
                    {"task": "task1", "declared_input_language": "English", "lang": "und",
                     "count": 1, "agrees": None},
                ]
            ),
            label="Agreement",
        )  # fmt: skip
        assert_that(
            counts,
            equal_to([("fi", 1), ("de", 1), ("zh-Hans", 1), ("en", 2), ("und", 3)]),
            label="Counts",
        )


def _sni_records(folder: str, limit: int) -> list[dict]:
    """SNI instances read with plain json (not the project's reader), as corpus records."""
    records = []
    for path in sorted((DATA / "sni" / folder).glob("*.json")):
        task = json.loads(path.read_text(encoding="utf-8"))
        definition = task["Definition"]
        definition = definition[0] if isinstance(definition, list) else definition
        for i, inst in enumerate(task["Instances"][:limit]):
            records.append(
                new_record(
                    id=f"{path.stem}-{i}",
                    source="sni",
                    source_file=str(path),
                    source_index=i,
                    task=path.stem,
                    input=inst["input"],
                    definition=definition,
                    output=inst["output"][0],
                    input_language=task.get("Input_language") or [],
                )
            )
    return records


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data not present")
def test_multi_process_runner_on_real_sni_reports_the_finnish_disagreement():
    records = _sni_records("finnish_translations", 20) + _sni_records("tasks_nonenglish", 10)
    expected = _oracle(records)
    agreement = {}
    for row in expected:
        key = (row["task"], ",".join(row["input_language"]), row["lang"])
        agreement[key] = agreement.get(key, 0) + 1
    fin_to_fi = sum(
        n for (task, declared, lang), n in agreement.items()
        if task.startswith("fin-") and declared == "English" and lang == "fi"
    )  # fmt: skip
    assert fin_to_fi >= 90  # of 100 Finnish instances declared English
    with BeamTestPipeline(options=PipelineOptions(MULTI_PROCESS)) as pipeline:
        identified = (
            pipeline
            | beam.Create(records)
            | "Spread" >> beam.Reshuffle()
            | IdentifyLanguage(LangIdConfig(batch_size=8))
        )
        assert_that(identified, equal_to(expected), label="Records")
        rows = identified | LanguageAgreement()
        assert_that(
            rows | beam.Map(lambda r: ((r["task"], r["declared_input_language"], r["lang"]),
                                       r["count"])),
            equal_to(list(agreement.items())),
            label="Agreement",
        )  # fmt: skip
