"""Rendering one record: zero-shot per family, few-shot without self or duplicates and within
the length bound, CoT only from real rationales, inversion only for free-text outputs."""

from __future__ import annotations

import json

import pytest

from transforms.mixing import draws
from transforms.render import (
    MIXTURE_SCHEMA,
    choose_exemplars,
    exemplar,
    invertible,
    rationale_for,
    render_inverted_row,
    render_row,
    shots,
)
from transforms.schema import new_record
from transforms.templates import TemplateRegistry

REGISTRY = TemplateRegistry(
    [
        {
            "task": "cb",
            "template_id": "t1",
            "answer_choices": "Yes ||| Maybe ||| No",
            "jinja": 'Suppose {{premise}} Can we infer "{{hypothesis}}"? ||| '
            "{{ answer_choices[label] }}",
            "metadata": {"original_task": True},
        },
    ]
)
META = {"split": "train", "submixture": "all", "task_type": "qa", "family": "builtin"}


def _rec(i=0, **kw):
    kw.setdefault("id", f"r{i}")
    kw.setdefault("task", "trivia_qa")
    kw.setdefault("source", "generic")
    kw.setdefault("input", f"What is item number {i}?")
    kw.setdefault("output", f"answer {i}")
    return new_record(**kw)


def _render(record, template_id, fmt="zero_shot", options=None, pool=(), **kw):
    params = {"seed": 0, "min_k": 2, "max_k": 2, "max_prompt_chars": 4000} | kw
    return render_row(
        record,
        META,
        template=REGISTRY.get(template_id),
        fmt=fmt,
        options=options,
        pool=pool,
        registry=REGISTRY,
        draw=draws(params["seed"], record["id"]),
        **params,
    )


def _pool(records, max_chars=3000):
    return [exemplar(r, "builtin", max_chars, draws(0, r["id"]).exemplar) for r in records]


def test_row_has_exactly_the_schema_columns():
    row = _render(_rec(), "builtin/qa/02")
    assert set(row) == set(MIXTURE_SCHEMA.names)
    assert row["prompt"] == "Question: What is item number 0?\nAnswer:"
    assert row["completion"] == "answer 0" and row["format"] == row["requested_format"]
    inverted = render_inverted_row(_rec(output="a long free text answer"), META, 0.5)
    assert set(inverted) == set(MIXTURE_SCHEMA.names) and inverted["inverted"]


def test_zero_shot_per_family():
    cls = _rec(
        input="great film",
        output="positive",
        label="positive",
        label_space=["positive", "negative"],
    )
    with_options = _render(cls, "builtin/classification/01", options=True)
    assert "positive" in with_options["prompt"] and "negative" in with_options["prompt"]
    assert with_options["template_id"] == "builtin/classification/01::opt"
    without = _render(cls, "builtin/classification/01", options=False)
    assert "negative" not in without["prompt"] and without["options_in_prompt"] is False
    sni = _rec(
        source="sni",
        definition="Answer the question.",
        positive_examples=[{"input": "2+2?", "output": "4", "explanation": "Sum."}] * 2,
        negative_examples=[{"input": "3+3?", "output": "7", "explanation": "Wrong."}] * 2,
    )
    text = _render(sni, "sni/def+pos2+neg2+expl")["prompt"]
    assert text.startswith("Definition: Answer the question.")
    assert "Positive Example 2 -" in text and "Negative Example 2 -" in text
    assert "Explanation: Wrong." in text and text.endswith("Input: What is item number 0?\nOutput:")
    alpaca = _rec(source="alpaca", definition="Write a haiku.", input="")
    assert _render(alpaca, "open/01")["prompt"] == "Instruction: Write a haiku.\nResponse:"
    chat = _rec(source="sharegpt", input="hello there", definition=None)
    assert _render(chat, "open/00")["prompt"] == "hello there"
    native = _rec(source="p3", input="Already a prompt:", output="yes")
    assert _render(native, "native/x")["prompt"] == "Already a prompt:"
    cb = _rec(
        task="cb",
        input="",
        metadata=json.dumps({"premise": "It rained.", "hypothesis": "It is wet.", "label": 2}),
    )
    row = _render(cb, "promptsource/cb/t1")
    assert row["prompt"] == 'Suppose It rained. Can we infer "It is wet."?'
    assert row["completion"] == "No"


def test_sni_examples_identical_to_the_record_are_not_shown():
    rec = _rec(
        source="sni",
        definition="D",
        input="the instance",
        positive_examples=[
            {"input": "the instance", "output": "x", "explanation": "e"},
            {"input": "another", "output": "y", "explanation": "f"},
        ],
    )
    text = _render(rec, "sni/def+pos1")["prompt"]
    assert "Input: another" in text and text.count("the instance") == 1


def test_few_shot_never_shows_the_record_or_its_duplicates():
    record = _rec(7)
    duplicate = _rec(99, input="  WHAT is item number 7? ")  # same normalised input
    pool = _pool([record, duplicate, *(_rec(i) for i in range(5))])
    orders = set()
    for seed in range(20):
        chosen = choose_exemplars(record, pool, 3, draws(seed, "r7").shot_order)
        orders.add(tuple(e["id"] for e in chosen))
        assert len(chosen) == 3
        assert all(e["id"] not in ("r7", "r99") for e in chosen)
    assert len(orders) > 5  # the order depends on the record's draw
    row = _render(record, "builtin/qa/02", fmt="few_shot", pool=pool)
    assert row["format"] == "few_shot" and len(row["exemplar_ids"]) == 2
    assert "r7" not in row["exemplar_ids"] and "r99" not in row["exemplar_ids"]
    assert row["prompt"].count("Question:") == 3
    assert row["prompt"].endswith("Question: What is item number 7?\nAnswer:")
    for ex in row["exemplar_ids"]:
        i = ex[1:]
        assert f"Question: What is item number {i}?\nAnswer: answer {i}" in row["prompt"]


def test_few_shot_is_length_bounded_and_falls_back():
    record = _rec(0)
    pool = _pool([_rec(i, output="long " * 60) for i in range(1, 6)], 5000)
    bounded = _render(
        record, "builtin/qa/02", fmt="few_shot", pool=pool, min_k=1, max_k=3, max_prompt_chars=800
    )
    assert len(bounded["prompt"]) <= 800 and bounded["format"] == "few_shot"
    assert 1 <= len(bounded["exemplar_ids"]) < 3
    fallback = _render(record, "builtin/qa/02", fmt="few_shot", pool=pool, max_prompt_chars=100)
    assert fallback["format"] == "zero_shot" and fallback["requested_format"] == "few_shot"
    assert fallback["exemplar_ids"] == []
    alone = _render(record, "builtin/qa/02", fmt="few_shot", pool=_pool([record]))
    assert alone["format"] == "zero_shot"


def test_shot_counts_cover_the_range():
    assert {shots(draws(0, f"id{i}").k, 1, 5) for i in range(200)} == {1, 2, 3, 4, 5}
    assert {shots(draws(0, f"id{i}").k, 2, 2) for i in range(50)} == {2}
    assert shots(0.0, 1, 5) == 1 and shots(0.999999, 1, 5) == 5


def test_cot_only_from_real_rationales():
    cot = _rec(rationale="Items are numbered; this one is 0.")
    row = _render(cot, "builtin/qa/02", fmt="cot")
    assert row["format"] == "cot" and row["template_id"].startswith("builtin/qa/02::cot/")
    assert row["completion"].startswith("Items are numbered; this one is 0.")
    assert row["completion"].rstrip(".").endswith("answer 0")
    # the trigger sits above the final answer cue
    assert row["prompt"].startswith("Question: What is item number 0?\n\n")
    assert row["prompt"].endswith("\nAnswer:")
    with pytest.raises(ValueError, match="no rationale"):
        _render(_rec(), "builtin/qa/02", fmt="cot")


def test_sni_explanations_are_rationales_only_for_their_own_instance():
    own = {"input": "What is item number 0?", "output": "answer 0", "explanation": "Because."}
    other = {"input": "Another question?", "output": "x", "explanation": "Not this one."}
    assert rationale_for(_rec(source="sni", positive_examples=[other, own])) == "Because."
    assert rationale_for(_rec(source="sni", positive_examples=[other])) is None
    assert rationale_for(_rec(rationale="  ")) is None


def test_inversion_only_for_free_text_outputs():
    assert invertible(_rec(output="a reasonably long free text answer"), "builtin", 3)
    assert not invertible(_rec(output="two words"), "builtin", 3)
    assert invertible(_rec(output="yes", rationale="Because it is."), "builtin", 3)
    assert invertible(_rec(output="(C)", label="(c)", rationale="C fits."), "builtin", 3)
    assert not invertible(_rec(output="positive review text", label="positive"), "builtin", 3)
    assert not invertible(_rec(output="long text here", label_space=["a", "b"]), "builtin", 3)
    assert not invertible(_rec(input="", output="long text here"), "open", 3)
    assert not invertible(_rec(output="long text here"), "native", 3)
    rec = _rec(definition="Summarise.", output="A short summary of the text.")
    row = render_inverted_row(rec, META, 0.35)
    assert "A short summary of the text." in row["prompt"] and "Summarise." in row["prompt"]
    assert row["completion"] == rec["input"] and row["template_id"].startswith("invert/")
    assert row["label"] is None and row["format"] == "zero_shot"
