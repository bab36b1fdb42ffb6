"""BuildMixture end to end: formats, caps, fates, templates, inversion, leakage, readers, runners.

One 20k-record synthetic corpus (every template family, three languages, rationales on part of
it, one task far above the cap) goes through the stage once per module; the 100k measurement
is ``bench/mixture_bench.py``.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tests.conftest import IN_PROCESS, MULTI_PROCESS
from transforms.formats.promptsource import load_template_sets
from transforms.mixture import LEFT_OUT_SCHEMA, STATS_SCHEMA, BuildMixture
from transforms.parquet_io import WriteParquet
from transforms.recipe import load_recipe, recipe_from_dict
from transforms.render import MIXTURE_SCHEMA
from transforms.schema import CORPUS_SCHEMA, REMOVED_SCHEMA, new_record
from transforms.text import normalize_text, stable_hash

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
AG_NEWS = DATA / "promptsource" / "templates" / "ag_news" / "templates.yaml"

_WORDS = [f"{a}{b}" for a in ("ka", "lo", "mi", "re", "su", "ta", "ve", "zo") for b in range(400)]
_ZH = "".join(chr(0x4E00 + i) for i in range(0, 2500, 3))  # CJK ideographs
_LABELS = {
    "sentiment": ["positive", "negative"],
    "topic": ["world", "sports", "business", "science"],
    "nli": ["entailment", "neutral", "contradiction"],
}


def _text(rng: random.Random, n: int, lang: str) -> str:
    if lang == "zh":
        return "".join(rng.choice(_ZH) for _ in range(n * 2))
    words = rng.choices(_WORDS, k=n)
    return " ".join(words) if lang == "en" else " ".join(w + "inen" for w in words)


def synthetic_corpus(n: int, seed: int = 0, big_task: int | None = None) -> list[dict]:
    """About ``n`` corpus records (``CORPUS_SCHEMA`` keys): builtin classification/QA tasks, SNI
    tasks with examples, open instructions, CoT tasks with rationales (29% of records), P3
    renderings and PromptSource-able ag_news rows; en/fi/zh. The sentiment task has
    ``big_task`` records (default 22% of ``n``) so that a cap bites."""
    rng = random.Random(seed)
    plan = [  # (share of n, task, kind)
        (0.22, "big_sentiment_classification", "cls:sentiment"),
        (0.05, "topic_classification", "cls:topic"),
        (0.04, "nli_classification", "cls:nli"),
        (0.08, "trivia_question_answering", "qa"),
        (0.05, "task100_sni_classification", "sni:nli"),
        (0.05, "task200_sni_question_generation", "sni"),
        (0.03, "task300_sni_summary", "sni"),
        (0.10, "alpaca", "open"),
        (0.04, "dolly/brainstorming", "open"),
        (0.08, "cot_qasc", "cot"),
        (0.08, "cot_gsm8k", "cot"),
        (0.08, "cot_strategyqa", "cot"),
        (0.05, "ag_news", "p3"),
        (0.05, "ag_news_fields", "ps"),
    ]
    records = []
    index = 0
    for share, task, kind in plan:
        count = round(share * n)
        if big_task is not None and task.startswith("big_"):
            count = big_task
        labels = _LABELS.get(kind.split(":")[-1], [])
        sni_examples = {
            "positive_examples": [
                {
                    "input": _text(rng, 6, "en"),
                    "output": _text(rng, 3, "en"),
                    "explanation": "It follows the definition.",
                }
                for _ in range(2)
            ],
            "negative_examples": [
                {
                    "input": _text(rng, 6, "en"),
                    "output": "wrong",
                    "explanation": "It ignores the definition.",
                }
                for _ in range(2)
            ],
        }
        for i in range(count):
            lang = "en" if i % 10 < 8 else ("fi" if i % 10 == 8 else "zh")
            fields = {
                "task": task,
                "lang": lang,
                "source_file": f"synthetic/{task}.jsonl",
                "source_index": i,
            }
            if kind.startswith("cls"):
                label = labels[i % len(labels)] if i % 7 else rng.choice(labels)
                fields.update(
                    source="generic",
                    input=_text(rng, 14, lang),
                    output=label,
                    label=label,
                    label_space=list(labels),
                )
            elif kind == "qa":
                rationale = _text(rng, 12, lang) if i % 2 == 0 else None
                fields.update(
                    source="generic",
                    input=_text(rng, 10, lang) + "?",
                    output=_text(rng, 2, lang),
                    rationale=rationale,
                )
            elif kind.startswith("sni"):
                output = rng.choice(labels) if labels else _text(rng, 6, lang)
                fields.update(
                    source="sni",
                    definition=f"Definition of {task}: do the task.",
                    input=_text(rng, 12, lang),
                    output=output,
                    references=[output],
                    task_categories=["Text Categorization" if labels else "Generation"],
                    **sni_examples,
                )
            elif kind == "open":
                has_input = i % 3 != 0
                fields.update(
                    source="alpaca" if task == "alpaca" else "dolly",
                    definition=_text(rng, 8, lang),
                    input=_text(rng, 8, lang) if has_input else "",
                    output=_text(rng, 25, lang),
                )
            elif kind == "cot":
                fields.update(
                    source="flan_cot",
                    input=_text(rng, 12, lang) + "?",
                    output=_text(rng, 2, lang),
                    rationale=_text(rng, 20, lang),
                )
            elif kind == "p3":
                fields.update(
                    source="p3",
                    template_id=f"template_{i % 4}",
                    input=f"Classify: {_text(rng, 16, lang)}",
                    output=rng.choice(["World politics", "Sports"]),
                )
            else:
                fields.update(
                    source="generic",
                    input="",
                    output=str(i % 4),
                    metadata=json.dumps({"text": _text(rng, 15, lang), "label": i % 4}),
                )
            fields["id"] = stable_hash("synthetic", str(seed), task, str(index))
            index += 1
            records.append(new_record(**fields))
    rng.shuffle(records)
    return records


def template_rows() -> list[dict]:
    """ag_news PromptSource templates (real, from shared/data), bound to the ``ag_news_fields``
    task of the synthetic corpus."""
    rows = load_template_sets([str(AG_NEWS)])
    return [{**row, "task": "ag_news_fields"} for row in rows]


def small_cap_recipe(cap: int = 1500, **overrides):
    """The lecture preset with a smaller cap, so a 20k corpus exercises it."""
    raw = load_recipe("lecture").to_dict()
    raw["submixtures"][0]["cap"] = cap
    raw.update(overrides)
    return recipe_from_dict(raw)


def write_corpus(records, path: Path) -> str:
    """The corpus as the batch run leaves it: Parquet with ``CORPUS_SCHEMA``.

    (``beam.Create`` of 20k dicts would spend most of the test inferring their types.)
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records, schema=CORPUS_SCHEMA), path)
    return str(path)


def run_mixture(records, recipe, out_dir: Path, argv=IN_PROCESS, rows=None) -> dict:
    """Corpus Parquet -> BuildMixture -> Parquet (mixture Hive-partitioned by split and lang)."""
    corpus = write_corpus(records, out_dir / "corpus" / "part-0.parquet")
    with beam.Pipeline(argv=argv) as p:
        built = (
            p
            | "ReadCorpus" >> beam.io.ReadFromParquet(corpus)
            | "Build" >> BuildMixture(recipe=recipe, template_sets=rows or template_rows())
        )
        built["mixture"] | "WriteMixture" >> WriteParquet(
            path=str(out_dir / "mixture"), schema=MIXTURE_SCHEMA, partition_by=("split", "lang")
        )
        built["left_out"] | "WriteLeftOut" >> WriteParquet(
            path=str(out_dir / "left_out"), schema=LEFT_OUT_SCHEMA
        )
        built["stats"] | "WriteStats" >> WriteParquet(
            path=str(out_dir / "stats"), schema=STATS_SCHEMA
        )
        built["removed"] | "WriteRemoved" >> WriteParquet(
            path=str(out_dir / "removed"), schema=REMOVED_SCHEMA
        )
    return read_outputs(out_dir)


def read_outputs(out_dir: Path) -> dict[str, list[dict]]:
    out = {}
    for name in ("mixture", "left_out", "stats", "removed"):
        partitioning = "hive" if name == "mixture" else None
        table = ds.dataset(out_dir / name, format="parquet", partitioning=partitioning).to_table()
        out[name] = table.to_pylist()
    return out


def _row_key(row: dict) -> tuple:
    return row["split"], row["record_id"], row["inverted"]


# --------------------------------------------------------------------------------------------
# One 20k run, many checks
# --------------------------------------------------------------------------------------------

N_RECORDS = 20_000
CAP = 1_500


@pytest.fixture(scope="module")
def corpus():
    return synthetic_corpus(N_RECORDS)


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("mixture20k")
    recipe = small_cap_recipe(CAP)
    return {"out": out, "recipe": recipe, **run_mixture(corpus, recipe, out)}


def _base(rows, split="train"):
    return [r for r in rows if not r["inverted"] and r["split"] == split]


def test_every_record_has_exactly_one_fate(corpus, built):
    base_ids = Counter(r["record_id"] for r in built["mixture"] if not r["inverted"])
    left_ids = Counter(r["id"] for r in built["left_out"])
    assert max(base_ids.values()) == 1 and max(left_ids.values()) == 1
    assert not set(base_ids) & set(left_ids)
    assert set(base_ids) | set(left_ids) == {r["id"] for r in corpus}
    assert Counter(r["reason"] for r in built["left_out"]) == {"cap": len(left_ids)}


def test_caps_are_exact(corpus, built):
    available = Counter(r["task"] for r in corpus)
    realised = Counter(r["task"] for r in _base(built["mixture"]))
    assert realised == {task: min(n, CAP) for task, n in available.items()}
    assert available["big_sentiment_classification"] > 2 * CAP  # the cap did bite
    stats = {(s["dimension"], s["key"]): s for s in built["stats"]}
    for task, n in realised.items():
        assert stats[("task", task)]["count"] == stats[("task", task)]["target_count"] == n


def test_format_proportions_within_one_point_of_the_recipe(built):
    base = _base(built["mixture"])
    eligible = sum(1 for r in base if r["format"] == "cot") / len(base)
    stats = {(s["dimension"], s["key"]): s for s in built["stats"]}
    assert "eligible" in stats[("cot", "all")]["detail"]
    shares = Counter(r["format"] for r in base)
    recipe = built["recipe"].formats
    for name, target in (
        ("zero_shot", recipe.zero_shot),
        ("few_shot", recipe.few_shot),
        ("cot", recipe.cot),
    ):
        assert abs(shares[name] / len(base) - target) < 0.01, (name, shares[name] / len(base))
        assert stats[("format", name)]["target"] == target
    assert eligible > 0.2 and stats[("cot", "all")]["detail"].endswith("shortfall 0.0000")


def test_cot_rows_only_from_records_with_rationales(corpus, built):
    with_rationale = {r["id"] for r in corpus if r["rationale"]}
    cot = [r for r in built["mixture"] if r["format"] == "cot"]
    assert cot and {r["record_id"] for r in cot} <= with_rationale
    by_id = {r["id"]: r for r in corpus}
    for row in cot:
        record = by_id[row["record_id"]]
        assert record["rationale"] in row["completion"] and record["output"] in row["completion"]


def test_templates_per_task_and_zero_association_within_labels(built):
    stats = {(s["dimension"], s["key"]): s for s in built["stats"]}
    per_task = {k[1]: s["count"] for k, s in stats.items() if k[0] == "templates_per_task"}
    assert per_task["big_sentiment_classification"] == 10
    assert per_task["alpaca"] == per_task["task100_sni_classification"] == 10
    assert per_task["ag_news_fields"] == 7  # all of ag_news's PromptSource templates
    assert per_task["ag_news"] == 4  # P3 renderings keep their own (4) templates
    for task in (
        "big_sentiment_classification",
        "topic_classification",
        "nli_classification",
        "task100_sni_classification",
    ):
        table = defaultdict(Counter)
        for row in _base(built["mixture"]):
            if row["task"] == task:
                table[row["label"]][row["template_id"].split("::")[0]] += 1
        assert len(table) >= 2
        for label, counts in table.items():
            assert len(counts) == 10 and max(counts.values()) - min(counts.values()) <= 1, (
                task,
                label,
                counts,
            )


def test_inversion_is_counted_and_derived_from_included_records(corpus, built):
    mixture = built["mixture"]
    inverted = [r for r in mixture if r["inverted"]]
    included = {(r["split"], r["record_id"]) for r in mixture if not r["inverted"]}
    assert inverted and all((r["split"], r["record_id"]) in included for r in inverted)
    by_id = {r["id"]: r for r in corpus}
    assert all(
        not by_id[r["record_id"]]["label_space"] or by_id[r["record_id"]]["rationale"]
        for r in inverted
    )
    assert all(r["completion"] == by_id[r["record_id"]]["input"].strip() for r in inverted)
    stats = {(s["dimension"], s["key"]): s for s in built["stats"]}
    assert stats[("inverted", "rows")]["count"] == len(inverted)
    share = stats[("inversion", "all")]
    assert abs(share["proportion"] - 0.1) < 0.01 and share["target"] == 0.1


def test_few_shot_exemplars_come_from_the_same_task_never_the_record(built):
    base = {r["record_id"]: r for r in _base(built["mixture"])}
    few = [r for r in base.values() if r["format"] == "few_shot"]
    assert len(few) > 1000
    for row in few:
        assert row["exemplar_ids"] and row["record_id"] not in row["exemplar_ids"]
        for ex in row["exemplar_ids"]:
            assert base[ex]["task"] == row["task"]
            assert normalize_text(base[ex]["input"] or "") != normalize_text(
                row["input"] or ""
            ) or (not row["input"])
        assert len(row["prompt"]) <= built["recipe"].few_shot.max_prompt_chars


def test_rendered_mixture_shows_no_template_label_association(built, tmp_path):
    """The leakage audit on the written mixture flags nothing; the same rows with one template
    per label (the lecture's leaky NLI example) are flagged: the audit can see it."""
    from pipelines.audit import run_audit

    summary = run_audit(
        str(built["out"] / "mixture"), str(tmp_path / "clean"), pipeline_args=IN_PROCESS
    )
    assert summary["classification_tasks"] >= 5
    assert summary["flagged_shards"] == {}, summary["worst_shards"]

    leaky = []
    for row in _base(built["mixture"]):
        if row["task"] == "big_sentiment_classification":
            cue = {"positive": "Say POSITIVE:", "negative": "Say NEGATIVE:"}[row["label"]]
            leaky.append(
                {**row, "template_id": f"leaky/{row['label']}", "prompt": f"{cue}\n{row['input']}"}
            )
    path = tmp_path / "leaky" / "part-0.parquet"
    path.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(leaky, schema=MIXTURE_SCHEMA), path)
    flagged = run_audit(str(path.parent), str(tmp_path / "leaky_out"), pipeline_args=IN_PROCESS)
    assert flagged["flagged_shards"].get("task", 0) == 1


def test_readers_see_the_partitioned_mixture(built):
    import datasets
    import duckdb
    import polars as pl

    root = built["out"] / "mixture"
    assert {p.name for p in root.iterdir()} == {"split=train"}
    assert {p.name for p in (root / "split=train").iterdir()} == {"lang=en", "lang=fi", "lang=zh"}
    expected = Counter(r["lang"] for r in built["mixture"])
    hf = datasets.load_dataset(
        "parquet", data_files={"train": str(root / "split=train" / "**" / "*.parquet")}
    )["train"]
    assert hf.num_rows == len(built["mixture"]) and set(MIXTURE_SCHEMA.names) <= set(
        hf.column_names
    )
    assert Counter(hf["lang"]) == expected
    rows = duckdb.sql(
        f"SELECT split, lang, count(*) FROM read_parquet('{root}/**/*.parquet', "
        "hive_partitioning = true) GROUP BY ALL"
    ).fetchall()
    assert {(s, lang): n for s, lang, n in rows} == {("train", k): v for k, v in expected.items()}
    frame = (
        pl.scan_parquet(f"{root}/**/*.parquet", hive_partitioning=True)
        .group_by("split", "lang")
        .len()
        .collect()
    )
    assert {(r["split"], r["lang"]): r["len"] for r in frame.to_dicts()} == {
        ("train", k): v for k, v in expected.items()
    }


# --------------------------------------------------------------------------------------------
# Determinism and runners
# --------------------------------------------------------------------------------------------


def _canonical(outputs):
    keys = {
        "mixture": _row_key,
        "left_out": lambda r: (r["id"],),
        "stats": lambda r: (r["split"], r["dimension"], r["key"]),
        "removed": lambda r: (r["id"],),
    }
    return {name: sorted(rows, key=keys[name]) for name, rows in outputs.items()}


def test_two_runs_and_two_runners_give_identical_mixtures(tmp_path):
    """Held-out tasks with decontamination, so every step runs: one run in-process, one on the
    multi-process runner (2 workers, other bundles, other merge orders) -- identical rows."""
    records = synthetic_corpus(1500, seed=3)
    copies = [
        {**r, "id": f"copy-{r['id']}", "task": "copies", "label": None, "label_space": []}
        for r in records[:200]
        if r["input"]
    ]
    recipe = small_cap_recipe(120, heldout={"target": "tasks", "fraction": 0.3})
    first = _canonical(run_mixture(records + copies, recipe, tmp_path / "a"))
    multi = _canonical(run_mixture(records + copies, recipe, tmp_path / "b", argv=MULTI_PROCESS))
    assert first == multi
    assert {r["split"] for r in first["mixture"]} == {"train", "eval"}
    assert first["removed"] and all(r["stage"] == "decontaminate" for r in first["removed"])
    eval_tasks = {r["task"] for r in first["mixture"] if r["split"] == "eval"}
    assert not eval_tasks & {r["task"] for r in first["mixture"] if r["split"] == "train"}


def test_left_out_reasons_with_test_pipeline():
    records = [
        new_record(
            id="ok",
            task="qa_task",
            source="sni",
            input="What is two plus two?",
            output="four",
            lang="en",
        ),
        new_record(id="no-output", task="qa_task", source="sni", input="Question?", output=None),
        new_record(
            id="elsewhere", task="other", source="alpaca", definition="Write.", output="text"
        ),
        new_record(id="nothing-to-prompt", task="qa_task", source="sni", input="", output="x"),
    ]
    recipe = recipe_from_dict({"submixtures": [{"name": "sni", "sources": ["sni"]}]})
    with TestPipeline(argv=IN_PROCESS) as p:
        out = p | beam.Create(records) | BuildMixture(recipe=recipe)
        assert_that(
            out["mixture"] | beam.Map(lambda r: (r["record_id"], r["split"], r["format"])),
            equal_to([("ok", "train", "zero_shot")]),
            label="Mixture",
        )
        assert_that(
            out["left_out"] | beam.Map(lambda r: (r["id"], r["reason"])),
            equal_to(
                [
                    ("no-output", "no_output"),
                    ("elsewhere", "no_submixture"),
                    ("nothing-to-prompt", "no_template"),
                ]
            ),
            label="LeftOut",
        )
        assert_that(
            out["stats"]
            | beam.Filter(lambda s: s["dimension"] in ("task", "left_out"))
            | beam.Map(lambda s: (s["dimension"], s["key"], s["count"])),
            equal_to(
                [
                    ("task", "qa_task", 1),
                    ("left_out", "no_output", 1),
                    ("left_out", "no_submixture", 1),
                    ("left_out", "no_template", 1),
                ]
            ),
            label="Stats",
        )
