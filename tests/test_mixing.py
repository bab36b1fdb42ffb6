"""Mixing arithmetic: seqio's rates (checked against a transcription of seqio's code on concrete
numbers), FLAN-style submixtures, exact caps, hash sampling, formats, stats."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.mixing import (
    EVAL,
    TRAIN,
    TaskCount,
    choose_format,
    draws,
    fill_budget,
    format_plan,
    hash64,
    manifest_section,
    mixing_rate_num_examples,
    plan_quotas,
    row_stat_keys,
    stats_rows,
    task_probabilities,
    threshold,
    unit,
)
from transforms.recipe import FormatMix, load_recipe, recipe_from_dict

LECTURE = load_recipe("lecture")


def seqio_mixing_rate_num_examples(num_examples, maximum=None, scale=1.0, temperature=1.0):
    """Transcription of seqio/utils.py ``mixing_rate_num_examples`` (google/seqio), the task's
    cached example count standing in for ``task.get_cached_stats(split)["examples"]``:

        ret *= scale
        if maximum: ret = min(ret, maximum)
        if temperature != 1.0: ret = ret ** (1.0 / temperature)
    """
    ret = num_examples
    ret *= scale
    if maximum:
        ret = min(ret, maximum)
    if temperature != 1.0:
        ret = ret ** (1.0 / temperature)
    return ret


def seqio_flattened_rates(submixtures):
    """Transcription of seqio ``Mixture.get_rate`` for a mixture of sub-mixtures:
    ``value += rate * mix.get_rate(task) / mix.total_rate``; sampling probability = value / sum.

    ``submixtures``: {name: (rate, {task: task rate})}.
    """
    values = {}
    for rate, tasks in submixtures.values():
        total = sum(tasks.values())
        for task, task_rate in tasks.items():
            values[task] = values.get(task, 0.0) + rate * task_rate / total
    norm = sum(values.values())
    return {task: v / norm for task, v in values.items()}


@pytest.mark.parametrize(
    ("n", "kwargs", "expected"),
    [
        (100_000, {"maximum": 30_000}, 30_000.0),  # the lecture's cap bites
        (5_000, {"maximum": 30_000}, 5_000.0),
        (1_000_000, {"maximum": 30_000, "temperature": 2.0}, math.sqrt(30_000)),  # 173.205...
        (10_000, {"maximum": 30_000, "scale": 2.5}, 25_000.0),  # scale before the cap
        (20_000, {"maximum": 30_000, "scale": 2.0}, 30_000.0),  # ... and the cap after it
        (400, {"temperature": 3.0}, 400 ** (1 / 3)),  # 7.368...
        (400, {"maximum": 0}, 400.0),  # seqio: a falsy maximum is no maximum
        (7, {}, 7.0),
    ],
)
def test_rate_agrees_with_seqio_on_concrete_numbers(n, kwargs, expected):
    ours = mixing_rate_num_examples(n, **kwargs)
    assert ours == pytest.approx(expected, rel=1e-12)
    assert ours == seqio_mixing_rate_num_examples(n, **kwargs)


@given(
    n=st.integers(0, 10**7),
    maximum=st.one_of(st.none(), st.integers(0, 10**6)),
    scale=st.floats(0.01, 100),
    temperature=st.floats(0.25, 10),
)
@settings(max_examples=200, deadline=None)
def test_rate_equals_the_seqio_transcription_everywhere(n, maximum, scale, temperature):
    kwargs = {"maximum": maximum, "scale": scale, "temperature": temperature}
    assert mixing_rate_num_examples(n, **kwargs) == seqio_mixing_rate_num_examples(n, **kwargs)


FLAN_LIKE = {
    "submixtures": [
        {"name": "flan", "sources": ["flan"], "cap": 30_000, "rate": 4},
        {"name": "t0", "sources": ["p3"], "cap": 20_000, "rate": 3},
        {"name": "niv2", "sources": ["sni"], "cap": 5_000, "rate": 1},
    ]
}
FLAN_COUNTS = [
    TaskCount(TRAIN, "A", 50_000, "flan", "flan"),
    TaskCount(TRAIN, "B", 10_000, "flan", "flan"),
    TaskCount(TRAIN, "C", 40_000, "p3", "t0"),
    TaskCount(TRAIN, "D", 8_000, "sni", "niv2"),
    TaskCount(TRAIN, "E", 1_000, "sni", "niv2"),
]


def test_submixtures_combine_as_seqio_mixtures_of_mixtures():
    recipe = recipe_from_dict(FLAN_LIKE)
    ours = task_probabilities(FLAN_COUNTS, recipe)
    theirs = seqio_flattened_rates(
        {
            "flan": (
                4,
                {
                    "A": seqio_mixing_rate_num_examples(50_000, 30_000),
                    "B": seqio_mixing_rate_num_examples(10_000, 30_000),
                },
            ),
            "t0": (3, {"C": seqio_mixing_rate_num_examples(40_000, 20_000)}),
            "niv2": (
                1,
                {
                    "D": seqio_mixing_rate_num_examples(8_000, 5_000),
                    "E": seqio_mixing_rate_num_examples(1_000, 5_000),
                },
            ),
        }
    )
    assert ours == pytest.approx(theirs, rel=1e-12)
    # by hand: flan 4/8 split 30k:10k, t0 3/8, niv2 1/8 split 5k:1k
    assert ours == pytest.approx(
        {"A": 0.375, "B": 0.125, "C": 0.375, "D": 5 / 6 / 8, "E": 1 / 6 / 8}, rel=1e-12
    )


def test_flan_like_quotas_respect_rates_caps_and_availability():
    recipe = recipe_from_dict(FLAN_LIKE)

    def quotas(budget):
        raw = {**FLAN_LIKE, "budget": budget}
        return {k[1]: q.quota for k, q in plan_quotas(FLAN_COUNTS, recipe_from_dict(raw)).items()}

    # default budget = sum of min(n, cap): one epoch of the capped tasks, everything fits
    default = {k[1]: q.quota for k, q in plan_quotas(FLAN_COUNTS, recipe).items()}
    assert default == {"A": 30_000, "B": 10_000, "C": 20_000, "D": 5_000, "E": 1_000}
    # a budget the rates can shape: 40000 * p, nothing saturates
    assert quotas(40_000) == {"A": 15_000, "B": 5_000, "C": 15_000, "D": 4_167, "E": 833}
    # 60000: C, D, E reach their limits; their leftover goes to A and B at 3:1
    assert quotas(60_000) == {"A": 25_500, "B": 8_500, "C": 20_000, "D": 5_000, "E": 1_000}


@given(
    st.lists(st.tuples(st.integers(0, 5000), st.floats(0.001, 10)), min_size=1, max_size=30),
    st.integers(0, 100_000),
)
@settings(max_examples=150, deadline=None)
def test_fill_budget_is_proportional_until_tasks_run_out(tasks, budget):
    limits = {f"t{i}": n for i, (n, _) in enumerate(tasks)}
    probs = {f"t{i}": p for i, (_, p) in enumerate(tasks)}
    total = sum(probs.values())
    probs = {t: p / total for t, p in probs.items()}
    got = fill_budget(budget, probs, limits)
    assert all(-1e-6 <= got[t] <= limits[t] + 1e-6 for t in limits)
    assert sum(got.values()) == pytest.approx(
        min(budget, sum(limits.values())), abs=1e-6 * budget + 1e-6
    )
    open_tasks = [t for t in limits if got[t] < limits[t] * (1 - 1e-9)]
    ratios = {got[t] / probs[t] for t in open_tasks}
    assert not ratios or max(ratios) - min(ratios) <= 1e-6 * max(1.0, max(ratios))
    full = [t for t in limits if t not in open_tasks and limits[t] > 0]
    assert all(got[t] / probs[t] <= min(ratios) * (1 + 1e-9) for t in full) if ratios else True


@given(st.lists(st.integers(1, 200_000), min_size=1, max_size=60))
@settings(max_examples=100, deadline=None)
def test_lecture_quota_is_exactly_min_n_cap(sizes):
    recipe = LECTURE
    counts = [TaskCount(TRAIN, f"t{i}", n, "s", "all") for i, n in enumerate(sizes)]
    quotas = plan_quotas(counts, recipe)
    assert [quotas[(TRAIN, f"t{i}")].quota for i in range(len(sizes))] == [
        min(n, 30_000) for n in sizes
    ]


def test_temperature_flattens_and_budget_scales():
    counts = [
        TaskCount(TRAIN, "big", 90_000, "s", "all"),
        TaskCount(TRAIN, "small", 900, "s", "all"),
    ]
    hot = recipe_from_dict({"temperature": 2.0, "budget": 10_000})
    probs = task_probabilities(counts, hot)
    assert probs["big"] / probs["small"] == pytest.approx(math.sqrt(30_000) / math.sqrt(900))
    quotas = plan_quotas(counts, hot)
    assert quotas[(TRAIN, "small")].quota == 900  # wants 10000 * 30/(173.2+30): capped by n
    assert quotas[(TRAIN, "big")].quota == 10_000 - 900  # ... and big takes the rest


def test_source_weight_and_eval_cap():
    recipe = recipe_from_dict(
        {"source_weights": {"b": 0.5}, "heldout": {"eval_cap": 50}, "budget": 1200}
    )
    counts = [
        TaskCount(TRAIN, "x", 1000, "a", "all"),
        TaskCount(TRAIN, "y", 1000, "b", "all"),
        TaskCount(EVAL, "z", 70, "a", "all"),
    ]
    quotas = plan_quotas(counts, recipe)
    assert quotas[(TRAIN, "x")].target == pytest.approx(2 / 3)
    assert quotas[(TRAIN, "x")].quota == 800 and quotas[(TRAIN, "y")].quota == 400  # half weight
    assert quotas[(EVAL, "z")].quota == 50


@given(st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=300, unique=True), st.data())
@settings(max_examples=100, deadline=None)
def test_threshold_selects_exactly_the_quota(hashes, data):
    quota = data.draw(st.integers(0, len(hashes) + 3))
    limit = threshold(sorted(hashes), len(hashes), quota)
    selected = [h for h in hashes if limit is None or h <= limit]
    assert len(selected) == min(quota, len(hashes))


def test_a_record_stays_when_other_tasks_arrive():
    """Night after night: new tasks change nothing for an existing capped task (lecture)."""
    recipe = load_recipe("lecture")
    ids = [f"r{i}" for i in range(40_000)]
    hashes = sorted(hash64(recipe.seed, "select", i) for i in ids)

    def selected(extra_tasks):
        counts = [TaskCount(TRAIN, "t", len(ids), "s", "all")] + [
            TaskCount(TRAIN, f"new{j}", 1000 * (j + 1), "s", "all") for j in range(extra_tasks)
        ]
        quota = plan_quotas(counts, recipe)[(TRAIN, "t")].quota
        limit = threshold(hashes, len(ids), quota)
        return {i for i in ids if hash64(recipe.seed, "select", i) <= limit}

    first = selected(0)
    assert len(first) == 30_000
    assert selected(5) == first


def test_hashes_are_pinned():
    """Changing the hash would silently reshuffle every mixture: pinned values."""
    assert hash64(0, "select", "abc") == 5862961413213295304
    assert unit(0, "cot", "abc") == pytest.approx(0.5321169159555538, abs=1e-15)
    assert 0 <= hash64(12345, "x") < 2**63
    d = draws(0, "abc")
    assert (d.select, d.template, d.exemplar) == (
        9146629243569144944,
        3470766306958173206,
        6750516743762334209,
    )
    assert d.cot == pytest.approx(0.6369005154756375, abs=1e-15)
    assert d.invert_template == pytest.approx(0.43318231328755513, abs=1e-15)
    assert draws(1, "abc") != d and draws(0, "abd") != d


def test_draws_are_uniform_and_independent():
    sample = [draws(0, f"r{i}") for i in range(20_000)]
    for field in ("split", "cot", "shots", "options", "invert", "k", "cot_template"):
        values = [getattr(d, field) for d in sample]
        assert all(0 <= v < 1 for v in values)
        assert sum(v < 0.25 for v in values) / len(values) == pytest.approx(0.25, abs=0.015)
    both = sum(d.cot < 0.5 and d.shots < 0.5 for d in sample) / len(sample)
    assert both == pytest.approx(0.25, abs=0.015)


def test_formats_hit_the_recipe_when_rationales_allow():
    formats = FormatMix()
    rng = random.Random(1)
    ids = [f"id{i}" for i in range(100_000)]
    eligible = {i for i in ids if rng.random() < 0.4}
    plan = format_plan(formats, 0.1, len(ids), len(eligible), 0)
    assert plan.cot_probability == pytest.approx(0.25 * len(ids) / len(eligible), rel=1e-12)
    chosen = []
    for i in ids:
        d = draws(0, i)
        chosen.append(
            choose_format(
                d.cot, d.shots, eligible=i in eligible, formats=formats, p_cot=plan.cot_probability
            )
        )
    shares = {f: chosen.count(f) / len(ids) for f in ("zero_shot", "few_shot", "cot")}
    assert shares == pytest.approx({"zero_shot": 0.5, "few_shot": 0.25, "cot": 0.25}, abs=0.005)


def test_scarce_rationales_give_a_reported_shortfall_not_fakes():
    plan = format_plan(FormatMix(), 0.3, records=1000, cot_eligible=100, invert_eligible=200)
    assert plan.cot_probability == 1.0  # every record with a rationale, and no more
    assert plan.invert_probability == 1.0  # 0.3 * 1000 = 300 wanted > 200 eligible
    none = format_plan(FormatMix(), 0.0, records=1000, cot_eligible=0, invert_eligible=10)
    assert none.cot_probability == 0.0 and none.invert_probability == 0.0
    assert choose_format(0.0, 0.0, eligible=False, formats=FormatMix(), p_cot=1.0) == "zero_shot"
    only_cot = FormatMix(zero_shot=0, few_shot=0, cot=1)
    assert choose_format(0.9, 0.9, eligible=False, formats=only_cot, p_cot=1.0) == "zero_shot"


def _row(**kw):
    base = {
        "split": TRAIN,
        "inverted": False,
        "source": "s",
        "submixture": "all",
        "task": "t",
        "template_id": "builtin/qa/00",
        "template_family": "builtin",
        "format": "zero_shot",
        "requested_format": "zero_shot",
        "lang": "en",
        "options_in_prompt": None,
    }
    return {**base, **kw}


def test_stats_rows_put_realised_beside_targets():
    recipe = load_recipe("lecture")
    rows = (
        [_row()] * 2
        + [_row(format="few_shot", requested_format="few_shot", template_id="builtin/qa/01")]
        + [_row(format="cot", requested_format="cot", template_id="builtin/qa/01::cot/03")]
        + [_row(inverted=True, template_id="invert/02")]
    )
    counts: dict = {}
    for row in rows:
        for key in row_stat_keys(row):
            counts[key] = counts.get(key, 0) + 1
    quotas = plan_quotas([TaskCount(TRAIN, "t", 10, "s", "all")], recipe)
    plans = {(TRAIN, "all"): format_plan(recipe.formats, 0.1, 4, 1, 2)}
    out = stats_rows(counts, quotas, plans, recipe, {("none", "no_output"): 3})
    by = {(r["dimension"], r["key"]): r for r in out}
    assert by[("rows", "all")]["count"] == 5 and by[("rows", "base")]["count"] == 4
    assert by[("format", "zero_shot")]["proportion"] == 0.5
    assert by[("format", "cot")]["target"] == 0.25
    assert by[("task", "t")]["target_count"] == 10 and by[("task", "t")]["count"] == 4
    assert by[("templates_per_task", "t")]["count"] == 2  # qa/00 and qa/01 (the CoT variant)
    assert by[("inversion", "all")]["count"] == 1 and by[("inversion", "all")]["target"] == 0.1
    assert by[("left_out", "no_output")]["count"] == 3
    section = manifest_section(out, recipe)
    assert section["fingerprint"] == recipe.fingerprint()
    assert section["splits"]["train"]["format"]["cot"] == {
        "count": 1,
        "proportion": 0.25,
        "target": 0.25,
    }
