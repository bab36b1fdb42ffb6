"""Leakage statistics from merged counts: the lecture's examples, hand-checked numbers,
significance, the cross-validated baseline against a brute-force oracle, and exactness of the
counts under any partition and merge order (hypothesis)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.labels import (
    LabelSpace,
    TaskLabelCounts,
    apply_label_space,
    derived_labels,
    label_space,
    normalise_label,
)
from transforms.leakage_config import LabelConfig, LeakageConfig
from transforms.leakage_counts import (
    ShardCounts,
    count_shards,
    fold_of,
    record_features,
    spelled_labels,
)
from transforms.leakage_stats import (
    LABEL_IN_TEMPLATE,
    TEMPLATE_BASELINE,
    TEMPLATE_LABEL_ASSOCIATION,
    TOKEN_LABEL_LEAK,
    association,
    chi2_sf,
    pmi_npmi,
    shard_stats,
    template_baseline,
    token_rows,
)
from transforms.schema import new_record
from transforms.text import tokens

NLI = {
    "entailment": "Given the premise, does the hypothesis follow? Answer yes.",
    "contradiction": "Given the premise, does the hypothesis conflict? Answer no.",
    "neutral": "Given the premise, is the hypothesis related? Answer maybe.",
}
SENTIMENT = {"positive": "Say POSITIVE:", "negative": "Say NEGATIVE:"}


def make_records(templates: dict[str, str], n: int, *, randomise: bool, seed: int = 0):
    """``n`` labelled records cycling through the labels; templates by label or at random."""
    rng = random.Random(seed)
    labels = list(templates)
    out = []
    for i in range(n):
        label = labels[i % len(labels)]
        chosen = rng.choice(labels) if randomise else label
        out.append(
            new_record(
                id=f"r{i}",
                task="t",
                template_id=f"tpl_{chosen}",
                template=templates[chosen],
                input=f"instance {i}",
                output=label,
                label=label,
                label_space=labels,  # LeakageAudit fills it from the task's labels
                source_file="data.jsonl",
            )
        )
    return out


def task_shard(records, config=None):
    counts = count_shards(records)[("task", "t")]
    return shard_stats(("task", "t"), counts, config or LeakageConfig())


def test_lecture_nli_one_template_per_label_is_flagged_with_npmi_one():
    shard, rows = task_shard(make_records(NLI, 600, randomise=False))
    flagged = {(r["token"], r["label"]): r["npmi"] for r in rows if r["flagged"]}
    # The lecture's five, plus the other two tokens that only one template has.
    assert flagged == {
        ("follow", "entailment"): 1.0,
        ("yes", "entailment"): 1.0,
        ("conflict", "contradiction"): 1.0,
        ("no", "contradiction"): 1.0,
        ("related", "neutral"): 1.0,
        ("maybe", "neutral"): 1.0,
        ("is", "neutral"): 1.0,
    }
    assert shard["template_baseline"] == pytest.approx(1.0)
    assert shard["majority_rate"] == pytest.approx(1 / 3)
    assert shard["cramers_v_corrected"] == pytest.approx(1.0)
    assert shard["normalized_mi"] == pytest.approx(1.0)
    assert shard["flagged"]
    assert {TOKEN_LABEL_LEAK, TEMPLATE_LABEL_ASSOCIATION, TEMPLATE_BASELINE} <= set(
        shard["reasons"]
    )
    # Tokens shared by every template carry no information.
    by_token = {(r["token"], r["label"]): r for r in rows}
    assert by_token[("premise", "neutral")]["npmi"] == 0.0
    # "does" is in two of the three templates: some association, not a single label.
    assert by_token[("does", "entailment")]["npmi"] == pytest.approx(math.log2(1.5) / math.log2(3))
    assert not by_token[("does", "entailment")]["flagged"]


def test_lecture_nli_random_templates_flag_nothing_and_baseline_sits_at_majority():
    shard, rows = task_shard(make_records(NLI, 600, randomise=True))
    assert not [r for r in rows if r["flagged"]]
    assert shard["reasons"] == []
    assert not shard["flagged"]
    assert abs(shard["template_baseline"] - shard["majority_rate"]) < 0.06
    assert shard["cramers_v_corrected"] < 0.1


def test_say_positive_negative_flags_tokens_and_labels_spelled_in_their_own_template():
    shard, rows = task_shard(make_records(SENTIMENT, 400, randomise=False))
    flagged = {(r["token"], r["label"]): r["npmi"] for r in rows if r["flagged"]}
    assert flagged == {("positive", "positive"): 1.0, ("negative", "negative"): 1.0}
    assert shard["labels_in_own_template"] == ["negative", "positive"]
    assert LABEL_IN_TEMPLATE in shard["reasons"]
    assert shard["template_baseline"] == pytest.approx(1.0)
    assert shard["majority_rate"] == pytest.approx(0.5)


def test_say_positive_negative_at_random_flags_nothing():
    shard, rows = task_shard(make_records(SENTIMENT, 400, randomise=True))
    assert not [r for r in rows if r["flagged"]]
    assert shard["reasons"] == []
    assert shard["labels_in_own_template"] == []
    assert abs(shard["template_baseline"] - shard["majority_rate"]) < 0.06


def test_labels_listed_in_every_template_are_reported_not_flagged():
    template = "Is the review positive or negative?"
    records = make_records({"positive": template, "negative": template}, 100, randomise=False)
    for record in records:
        record["template_id"] = None  # one template (keyed by its text) for both labels
    shard, _ = task_shard(records)
    assert shard["labels_listed"] == ["negative", "positive"]
    assert shard["labels_in_own_template"] == []
    assert not shard["flagged"]


def _small_leak(n_records: int, n_with_token: int):
    """Balanced labels; the first ``n_with_token`` records of label "a" say "kindly"."""
    records = []
    for i in range(n_records):
        label = "a" if i % 2 == 0 else "b"
        marked = label == "a" and i // 2 < n_with_token
        text = "Classify kindly." if marked else "Classify."
        records.append(new_record(task="t", template=text, label=label, input=str(i)))
    return records


def test_significance_tells_chance_from_artifact_at_equal_npmi():
    config = LeakageConfig(min_count=3)
    small = token_rows(count_shards(_small_leak(10, 3))[("task", "t")], config)
    large = token_rows(count_shards(_small_leak(1000, 300))[("task", "t")], config)
    kindly_small = next(r for r in small if r["token"] == "kindly")
    kindly_large = next(r for r in large if r["token"] == "kindly")
    # Same NPMI (1 / log2(10/3)) in both: effect size alone cannot tell them apart ...
    assert kindly_small["npmi"] == pytest.approx(kindly_large["npmi"])
    assert kindly_small["npmi"] > 0.5
    # ... Gardner's z can: 3 of 3 at prior 0.5 is chance, 300 of 300 is not.
    assert kindly_small["z"] == pytest.approx(0.5 / math.sqrt(0.25 / 3))
    assert not kindly_small["significant"] and not kindly_small["flagged"]
    assert kindly_large["significant"] and kindly_large["flagged"]
    lenient = LeakageConfig(min_count=3, require_significance=False)
    small_lenient = token_rows(count_shards(_small_leak(10, 3))[("task", "t")], lenient)
    assert next(r for r in small_lenient if r["token"] == "kindly")["flagged"]


def test_min_count_blocks_flags():
    records = make_records(NLI, 12, randomise=False)  # 4 records per template
    _, rows = task_shard(records, LeakageConfig(min_count=5, require_significance=False))
    assert not [r for r in rows if r["flagged"]]
    _, rows = task_shard(records, LeakageConfig(min_count=4, require_significance=False))
    assert {r["token"] for r in rows if r["flagged"]} == {
        "follow",
        "yes",
        "conflict",
        "no",
        "related",
        "maybe",
        "is",
    }


def test_pmi_npmi_by_hand():
    pmi, npmi = pmi_npmi(n_pair=20, n_token=40, n_label=50, n=100)
    assert pmi == pytest.approx(0.0)
    assert npmi == pytest.approx(0.0)
    pmi, npmi = pmi_npmi(n_pair=30, n_token=40, n_label=50, n=100)
    assert pmi == pytest.approx(math.log2(1.5))
    assert npmi == pytest.approx(math.log2(1.5) / math.log2(100 / 30))
    assert pmi_npmi(n_pair=25, n_token=25, n_label=25, n=100) == (2.0, 1.0)


def test_association_on_a_known_table():
    # 2 templates x 2 labels, [[30, 10], [10, 30]]: chi2 = 20, V = 0.5.
    counts = ShardCounts()
    for template, label, n in [("A", "x", 30), ("A", "y", 10), ("B", "x", 10), ("B", "y", 30)]:
        for _ in range(n):
            counts.add(record_features(new_record(template_id=template, label=label)), 100)
    assoc = association(counts)
    assert assoc["n_templates"] == 2 and assoc["n_labels"] == 2
    assert assoc["cramers_v"] == pytest.approx(0.5)
    expected_mi = 0.75 * math.log2(1.5) + 0.25 * math.log2(0.5)
    assert assoc["mutual_info"] == pytest.approx(expected_mi)
    assert assoc["normalized_mi"] == pytest.approx(expected_mi / 1.0)
    phi2 = max(0.0, 20 / 80 - 1 / 79)
    assert assoc["cramers_v_corrected"] == pytest.approx(math.sqrt(phi2 / (2 - 1 / 79 - 1)))


@pytest.mark.parametrize(
    ("x", "df", "p"),
    [(3.841459, 1, 0.05), (5.991465, 2, 0.05), (18.307038, 10, 0.05), (0.5, 4, 0.973501)],
)
def test_chi_square_tail_matches_tables(x, df, p):
    assert chi2_sf(x, df) == pytest.approx(p, abs=1e-6)


def test_random_templates_rarely_flag_the_baseline_at_alpha():
    """Small random tasks: the baseline beats the majority by chance; the test holds."""
    flagged = 0
    for seed in range(40):
        shard, _ = task_shard(make_records(NLI, 60, randomise=True, seed=seed))
        flagged += TEMPLATE_BASELINE in shard["reasons"]
    assert flagged <= 2


def _brute_force_cv(records, smoothing=1.0, n_folds=5):
    """Naive Bayes retrained without each fold (token counts), straight from the records."""
    data = [
        (tuple(sorted(set(tokens(r["template"])))), r["label"], fold_of(r, n_folds))
        for r in records
    ]
    labels = sorted({y for _, y, _ in data})
    vocab = {t for s, _, _ in data for t in s}
    correct = 0
    for signature, y_true, fold in data:
        scores = {}
        for y in labels:
            rows = [s for s, lab, f in data if lab == y and f != fold]
            total = sum(len(s) for s in rows)
            prior = sum(1 for _, lab, _ in data if lab == y)  # the prior keeps every record
            score = math.log(prior + smoothing)
            for t in signature:
                c = sum(1 for s in rows if t in s)
                score += math.log(c + smoothing) - math.log(total + smoothing * len(vocab))
            scores[y] = round(score, 9)
        best = max(labels, key=lambda y: (scores[y], y))
        correct += best == y_true
    return correct / len(data)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cross_validated_baseline_matches_brute_force(seed):
    rng = random.Random(seed)
    words = ["classify", "answer", "yes", "no", "maybe", "label", "review", "say"]
    templates = [" ".join(rng.sample(words, rng.randint(1, 4))) for _ in range(5)]
    records = []
    for i in range(60):
        label = rng.choice(["p", "q", "r"])
        # Templates lean towards labels, not perfectly.
        pick = templates[(["p", "q", "r"].index(label) + rng.randint(0, 2)) % 5]
        records.append(new_record(id=f"r{i}", task="t", template=pick, label=label))
    counts = count_shards(records)[("task", "t")]
    assert template_baseline(counts, LeakageConfig()) == pytest.approx(
        _brute_force_cv(records), abs=1e-12
    )


def test_single_template_baseline_equals_the_majority_rate_even_when_balanced():
    records = [
        new_record(task="t", template="Pick A or B.", label="ab"[i % 2], input=str(i))
        for i in range(300)
    ]
    counts = count_shards(records)[("task", "t")]
    assert template_baseline(counts, LeakageConfig()) == pytest.approx(0.5)


def test_baseline_unavailable_after_signature_overflow_but_tokens_stay_exact():
    records = [
        new_record(task="t", template=f"Template number {i}", label="ab"[i % 2], input=str(i))
        for i in range(40)
    ]
    exact = count_shards(records, max_signatures=1000)[("task", "t")]
    capped = count_shards(records, max_signatures=10)[("task", "t")]
    assert capped.overflow and not exact.overflow
    assert capped.token_tables() == exact.token_tables()
    assert template_baseline(capped, LeakageConfig()) is None
    shard, _ = shard_stats(("task", "t"), capped, LeakageConfig())
    assert "baseline_unavailable:too_many_signatures" in shard["notes"]


def test_unlabelled_records_are_skipped_and_counted():
    records = make_records(SENTIMENT, 20, randomise=False)
    records += [new_record(task="t", template="Write a poem.", output="...") for _ in range(5)]
    shard, _ = task_shard(records)
    assert shard["n_records"] == 25
    assert shard["n_labelled"] == 20
    assert shard["n_skipped_unlabelled"] == 5
    assert "skipped_unlabelled:5" in shard["notes"]


def test_template_falls_back_to_definition_and_ignores_the_instance_input():
    record = new_record(definition="Answer yes or no.", input="Is the sky green?", label="no")
    features = record_features(record)
    assert features.signature == ("answer", "no", "or", "yes")
    assert features.spelled == ("no",)


def test_spelled_labels_needs_contiguous_tokens():
    toks = tokens('Are the sentences "equivalent" or "not equivalent"?')
    assert spelled_labels(toks, ["not equivalent", "equivalent", "maybe"]) == (
        "equivalent",
        "not equivalent",
    )
    assert spelled_labels(tokens("not at all equivalent"), ["not equivalent"]) == ()
    assert spelled_labels(tokens("答案是正面"), ["正面", "负面"]) == ("正面",)


# --- labels ---------------------------------------------------------------------------------


def _label_counts(outputs, given=None, config=None):
    config = config or LabelConfig()
    counts = TaskLabelCounts()
    for i, output in enumerate(outputs):
        counts.add(given[i] if given else None, normalise_label(output), config)
    return counts


def test_labels_are_derived_for_few_distinct_outputs():
    outputs = ["Yes"] * 30 + ["no."] * 25 + ["YES"] * 5
    assert derived_labels(_label_counts(outputs), LabelConfig()) == ("yes", "no")


def test_generation_tasks_get_no_labels():
    outputs = [f"a different sentence {i}" for i in range(50)]
    assert label_space(_label_counts(outputs), LabelConfig()) is None


def test_coverage_threshold_decides_derivation():
    outputs = [str(i % 3) for i in range(90)] + [f"rare {i}" for i in range(10)]
    assert derived_labels(_label_counts(outputs), LabelConfig(max_distinct=3)) is None
    assert derived_labels(_label_counts(outputs), LabelConfig(max_distinct=3, min_coverage=0.9))


def test_given_labels_win_and_apply_reports_status():
    counts = _label_counts(["x"] * 20, given=["pos", "neg"] * 10)
    space = label_space(counts, LabelConfig())
    assert space == LabelSpace(("neg", "pos"), derived=False)
    record, status = apply_label_space(new_record(task="", label="pos"), {"": space})
    assert status == "given" and record["label_space"] == ["neg", "pos"]
    spaces = {"t": LabelSpace(("yes", "no"), derived=True)}
    record, status = apply_label_space(new_record(task="t", output="Yes."), spaces)
    assert (record["label"], status) == ("yes", "derived")
    record, status = apply_label_space(new_record(task="t", output="perhaps"), spaces)
    assert (record["label"], status) == (None, "outside_space")
    record, status = apply_label_space(new_record(task="u", output="text"), spaces)
    assert status == "unlabelled"


def test_tracked_values_overflow_is_merge_order_free():
    config = LabelConfig(max_distinct=2, max_tracked_values=5)
    values = [str(i) for i in range(8)]
    whole = _label_counts(values, config=config)
    left, right = _label_counts(values[:4], config=config), _label_counts(values[4:], config=config)
    left.merge(right, config)
    assert whole.outputs is None and left.outputs is None


def test_config_validation():
    with pytest.raises(ValueError):
        LeakageConfig(npmi_threshold=1.5)
    with pytest.raises(ValueError):
        LabelConfig(min_coverage=0)
    assert LeakageConfig().fingerprint() == LeakageConfig().fingerprint()
    assert LeakageConfig().fingerprint() != LeakageConfig(min_count=6).fingerprint()


# --- exactness under any partition and merge order --------------------------------------------

_TEMPLATES = ["Say yes:", "Say no:", "Is it related? Answer maybe.", "Classify: 分类", ""]

record_strategy = st.builds(
    lambda t, label, tid, f: new_record(
        task="t",
        template=_TEMPLATES[t],
        template_id=tid,
        label=label,
        input="x",
        source_file=f,
    ),
    st.integers(0, len(_TEMPLATES) - 1),
    st.sampled_from(["yes", "no", "maybe", None]),
    st.sampled_from([None, "a", "b"]),
    st.sampled_from(["f1", "f2"]),
)


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(record_strategy, min_size=1, max_size=40),
    parts=st.integers(1, 6),
    cap=st.sampled_from([2, 5, 1000]),
    seed=st.integers(0, 10_000),
)
def test_counts_and_statistics_do_not_depend_on_partition_or_merge_order(records, parts, cap, seed):
    rng = random.Random(seed)
    whole = count_shards(records, max_signatures=cap)
    shuffled = records[:]
    rng.shuffle(shuffled)
    chunks = [shuffled[i::parts] for i in range(parts)]
    partials = [count_shards(chunk, max_signatures=cap) for chunk in chunks]
    rng.shuffle(partials)
    merged: dict = {}
    for partial in partials:
        for key, counts in partial.items():
            if key in merged:
                merged[key].merge(counts, cap)
            else:
                merged[key] = counts
    assert merged.keys() == whole.keys()
    config = LeakageConfig(max_signatures=cap, min_count=1)
    for key in whole:
        assert merged[key] == whole[key]
        assert shard_stats(key, merged[key], config) == shard_stats(key, whole[key], config)
