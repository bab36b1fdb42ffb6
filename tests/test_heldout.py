"""Held-out splits (tasks stratified by category, templates, languages) and decontamination of
the training side: exact and MinHash near-copies of evaluation records removed and reported."""

from __future__ import annotations

from collections import Counter

import apache_beam as beam
import datasketch
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tests.conftest import IN_PROCESS
from transforms.heldout import (
    Decontaminate,
    KeyMaker,
    assign_split,
    bucket_hits,
    plan_split,
    stratified_pick,
)
from transforms.minhash import shingle_set, signature_from_bytes
from transforms.recipe import Decontamination, Heldout
from transforms.schema import new_record
from transforms.text import normalize_text


def test_stratified_pick_spreads_over_strata():
    strata = {
        "qa": [f"qa{i}" for i in range(10)],
        "cls": [f"c{i}" for i in range(7)],
        "gen": ["g0", "g1", "g2"],
    }
    picked = stratified_pick(0, "t", strata, 0.25)
    assert len(picked) == 5  # round(0.25 * 20)
    per = Counter(next(s for s, items in strata.items() if p in items) for p in picked)
    for s, items in strata.items():
        assert int(0.25 * len(items)) <= per[s] <= int(0.25 * len(items)) + 1
    assert stratified_pick(0, "t", strata, 0.25) == picked
    assert any(stratified_pick(seed, "t", strata, 0.25) != picked for seed in range(1, 5))


def test_plan_split_tasks_languages_and_explicit_lists():
    categories = {f"task{i}": ("QA" if i % 2 else "Classification") for i in range(20)}
    plan = plan_split(categories, ["en"], Heldout(target="tasks", fraction=0.2), seed=0)
    assert len(plan["tasks"]) == 4 and not plan["languages"]
    held_categories = Counter(categories[t] for t in plan["tasks"])
    assert held_categories == {"QA": 2, "Classification": 2}
    explicit = plan_split(categories, [], Heldout(target="tasks", tasks=("task3",)), seed=0)
    assert explicit["tasks"] == {"task3"}
    langs = plan_split(
        {}, ["en", "fi", "zh", "ja", "und"], Heldout(target="languages", fraction=0.5), seed=0
    )
    assert len(langs["languages"]) == 2 and "und" not in langs["languages"]
    none = plan_split(categories, ["en"], Heldout(), seed=0)
    assert none == {"tasks": frozenset(), "languages": frozenset()}


def test_unseen_templates_split_records_and_templates():
    heldout = Heldout(target="templates", fraction=0.2)
    tset = tuple(f"builtin/qa/{i:02d}" for i in range(10))
    splits = Counter()
    train_templates, eval_templates = set(), set()
    for i in range(4000):
        record = new_record(id=f"id{i}", task="t", input="x")
        split, allowed = assign_split(record, tset, {}, heldout, seed=0)
        splits[split] += 1
        (eval_templates if split == "eval" else train_templates).update(allowed)
    assert len(eval_templates) == 2 and not eval_templates & train_templates
    assert splits["eval"] / 4000 == pytest.approx(0.2, abs=0.02)
    single = assign_split(new_record(id="x", task="t"), ("native/a",), {}, heldout, seed=0)
    assert single == ("train", ("native/a",))  # one template: nothing to hold out


def test_language_and_task_targets():
    plan = {"tasks": frozenset({"t2"}), "languages": frozenset({"fi"})}
    rec = new_record(id="a", task="t2", lang="en")
    assert assign_split(rec, ("x",), plan, Heldout(target="tasks", tasks=("t2",)), 0)[0] == "eval"
    assert (
        assign_split(rec, ("x",), plan, Heldout(target="languages", languages=("fi",)), 0)[0]
        == "train"
    )
    assert (
        assign_split(
            {**rec, "lang": "fi"}, ("x",), plan, Heldout(target="languages", languages=("fi",)), 0
        )[0]
        == "eval"
    )


TEXT = "the quick brown fox jumps over the lazy dog near the river bank today"


def test_keys_exact_and_minhash_comparable_with_datasketch():
    maker = KeyMaker(Decontamination(num_perm=64, threshold=0.8))
    keys, signature = maker.keys({"input": TEXT})
    same, _ = maker.keys(
        {"input": "  The QUICK brown fox jumps over the lazy dog near the river bank today "}
    )
    assert keys == same  # normalised text: same exact key, same bands
    assert maker.keys({"input": "too short"}) == ([], None)
    reference = datasketch.MinHash(num_perm=64, seed=1)
    reference.update_batch(list(shingle_set([normalize_text(TEXT)], 3, 5)))
    assert list(reference.hashvalues) == list(signature_from_bytes(signature))
    assert keys[0][0] == "x" and all(k[0] == "b" for k in keys[1:])


def test_bucket_hits_verify_near_copies_and_bound_comparisons():
    config = Decontamination(num_perm=64, threshold=0.8, max_comparisons=1)
    maker = KeyMaker(config)
    _, sig_a = maker.keys({"input": TEXT})
    _, sig_b = maker.keys({"input": TEXT + " again"})
    _, sig_c = maker.keys({"input": "an entirely different sentence about cooking rice well"})
    members = [
        (True, "e1", sig_a, "f", 1),
        (False, "t1", sig_b, "f", 2),
        (False, "t2", sig_c, "f", 3),
    ]
    hits = dict(bucket_hits(("b", 0, 1), members, config))
    assert set(hits) == {"t1"} and hits["t1"][1] == "e1" and hits["t1"][2] == "minhash"
    exact = dict(bucket_hits(("x", "k"), members, config))
    assert set(exact) == {"t1", "t2"} and exact["t2"][0] == 1.0
    assert bucket_hits(("x", "k"), members[1:], config) == []  # no evaluation member


def _item(rid, split, text, task="t"):
    record = new_record(
        id=rid,
        task=task,
        input=text,
        source="s",
        source_file="f.jsonl",
        source_index=int(rid[1:]) if rid[1:].isdigit() else 0,
    )
    return {"split": split}, record


def test_decontaminate_removes_exact_and_near_copies_only_from_training():
    items = [
        _item("e1", "eval", TEXT),
        _item("e2", "eval", "one two three four five six seven eight nine ten eleven"),
        _item("t1", "train", TEXT.upper()),  # exact copy after normalisation
        _item("t2", "train", TEXT.replace("today", "tonight")),  # near copy
        _item("t3", "train", "completely unrelated words about gardening and tomato plants"),
        _item("t4", "train", "short"),  # too short to judge
        _item("t5", "train", "one two three four five six seven eight nine ten eleven twelve"),
    ]
    with TestPipeline(argv=IN_PROCESS) as p:
        out = p | beam.Create(items) | Decontaminate(config=Decontamination(threshold=0.7))
        kept = out["items"] | "KeptIds" >> beam.Map(lambda item: item[1]["id"])
        assert_that(kept, equal_to(["e1", "e2", "t3", "t4"]), label="Kept")
        left = out["left_out"] | "LeftIds" >> beam.Map(lambda r: (r["id"], r["reason"]))
        assert_that(
            left,
            equal_to(
                [("t1", "decontaminated"), ("t2", "decontaminated"), ("t5", "decontaminated")]
            ),
            label="LeftOut",
        )
        removed = out["removed"] | "Removed" >> beam.Map(
            lambda r: (
                r["id"],
                r["survivor_id"],
                r["stage"],
                r["detail"].split(":")[0],
                r["similarity"] == 1.0,
            )
        )
        assert_that(
            removed,
            equal_to(
                [
                    ("t1", "e1", "decontaminate", "exact", True),
                    ("t2", "e1", "decontaminate", "minhash", False),
                    ("t5", "e2", "decontaminate", "minhash", False),
                ]
            ),
            label="RemovedRows",
        )
