"""The fast path decides exactly as the plain text-by-text composition does, on real data.

The stage kernel batches a list of records, answers repeated texts (one SNI definition per
task, label words as outputs) from a bounded memo and calls fastText in one tight loop. None
of that may change a decision: here every record of the real SNI tasks, Alpaca zh and the
ShareGPT sample, read as the pipeline reads them, is decided both ways and compared field by
field.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms import langid
from transforms.langid import (
    LOW_CONFIDENCE,
    OK,
    TOO_SHORT,
    UND,
    Decision,
    LanguageIdentifier,
    allowed_labels,
    analyse,
    base_language,
    normalize_label,
    predict,
    script_label,
    split_key,
)
from transforms.langid_config import TEXT_FIELDS, LangIdConfig
from transforms.langid_stage import IdentifyLanguageFn
from transforms.normalize import normalized_records

REAL_SETS = ("sni", "alpaca/zh", "sharegpt/sharegpt_v3_unfiltered_cleaned_split.sample300.json")


@pytest.fixture(scope="module")
def real_records(shared_data: Path) -> list[dict]:
    """Records of the real files, parsed and normalised as the pipeline does."""
    records = []
    for name in REAL_SETS:
        root = shared_data / name
        files = sorted(p for p in root.rglob("*.json")) if root.is_dir() else [root]
        records += normalized_records(files)
    sources = {r["source"] for r in records}
    assert {"sni", "alpaca", "sharegpt"} <= sources and len(records) > 8000
    return records


def _reference(model, config: LangIdConfig, record: dict) -> dict:
    """The ``lang*`` fields from the public kernels, one text at a time, nothing remembered."""
    gate = config.script_gate

    def decide(text):
        analysis = analyse(text[: config.window_chars] if text else "", config)
        if analysis.decision is not None:
            return analysis
        label, prob = predict(model, analysis.prepared, analysis.script if gate else None)
        if label == UND or prob < config.threshold:
            decision = Decision(UND, prob, LOW_CONFIDENCE)
        else:
            decision = Decision(normalize_label(label, analysis.prepared), prob, OK)
        return analysis._replace(decision=decision)

    texts = {}
    for name, field in TEXT_FIELDS.items():
        value = record.get(field)
        assert value is None or isinstance(value, str)  # normalised records hold strings
        texts[name] = decide(value)
    order = config.split_key_order
    key = split_key(
        {n: a.decision for n, a in texts.items()}, {n: a.script for n, a in texts.items()}, order
    )
    short = texts[order[0]]
    if (
        key.lang != UND
        and key.reason != order[0]
        and short.decision.reason == TOO_SHORT
        and config.fallback_conflict_threshold < 1.0
        and short.letters * 2 >= config.min_chars
    ):
        label, prob = predict(model, short.prepared, short.script if gate else None)
        if prob >= config.fallback_conflict_threshold and base_language(
            normalize_label(label)
        ) != base_language(key.lang):
            key = Decision(UND, None, "fallback_conflict")
    return {
        "lang": key.lang,
        "lang_score": key.score,
        "lang_instruction": texts["instruction"].decision.lang,
        "lang_output": texts["output"].decision.lang,
        "lang_reason": key.reason,
    }


CONFIGS = {
    "defaults": LangIdConfig(),
    "memo cleared within a batch": LangIdConfig(cache_size=5),
    "no memo": LangIdConfig(cache_size=0),
    "no script gate, instruction first": LangIdConfig(
        script_gate=False, split_key_order=("instruction", "input", "output")
    ),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_batched_memoised_decisions_equal_text_by_text_decisions(real_records, name):
    config = CONFIGS[name]
    model = langid.load_model(None)
    expected = [_reference(model, config, record) for record in real_records]

    identifier = LanguageIdentifier(model, config)
    batched = []
    for start in range(0, len(real_records), 256):
        batched += identifier.identify_many(real_records[start : start + 256])
    assert batched == expected
    # the memo is warm now: a second pass answers from it and still agrees
    assert identifier.identify_many(real_records) == expected
    assert len(identifier._memo) <= config.cache_size
    # one record at a time (the unbatched stage) agrees too
    single = LanguageIdentifier(model, config)
    assert [single.identify(record) for record in real_records[::7]] == expected[::7]
    # the data exercises what matters: shared definitions, fallbacks and several reasons
    assert len({r["definition"] for r in real_records}) < len(real_records) / 2
    reasons = {fields["lang_reason"] for fields in expected}
    assert {"input", "instruction"} <= reasons and any(":" in reason for reason in reasons)


def test_the_stage_dofn_after_pickling_equals_the_reference(real_records):
    """The DoFn as a runner gets it: pickled, set up, fed lists of records."""
    config = LangIdConfig()
    fn = pickle.loads(pickle.dumps(IdentifyLanguageFn(config)))
    fn.setup()
    records = real_records[:2000]
    out = []
    for start in range(0, len(records), config.batch_size):
        out += fn.process(records[start : start + config.batch_size])
    model = langid.load_model(None)
    assert out == [{**r, **_reference(model, config, r)} for r in records]


@given(
    st.text(
        alphabet=st.sampled_from("今天气很好我们阿伊拉侬覅搿嘅唔咗佢冇，。 a"),
        min_size=1,
        max_size=30,
    )
)
def test_han_shortcut_agrees_with_the_allowed_labels(text):
    allowed = allowed_labels("Hani", text)
    expected = next(iter(allowed)) if len(allowed) == 1 else None
    assert script_label("Hani", text) == expected


@pytest.mark.parametrize("script", ["Latn", "Cyrl", "Arab", "Kana", "Hang", "Thai", "Grek", None])
def test_script_shortcut_agrees_with_the_allowed_labels(script):
    allowed = allowed_labels(script, "text")
    if allowed is None or len(allowed) > 1:
        assert script_label(script, "text") is None
    else:
        assert script_label(script, "text") == next(iter(allowed))
