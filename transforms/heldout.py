"""Held-out splits by generalisation target, and decontamination of the training side.

Targets (Super-NaturalInstructions' taxonomy, the user picks one):

- ``tasks``: whole tasks are evaluation tasks. Stratified by task category: in each category
  ``fraction`` of its tasks (largest remainders, so the total is ``round(fraction * tasks)``),
  the ones with the smallest ``hash(seed, task)``; or an explicit list.
- ``templates``: per task, ``round(fraction * T)`` of its templates (at least one, never all)
  are evaluation templates; a record goes to evaluation with probability ``|eval templates| /
  T`` (a seeded hash of its id) and is then rendered with those templates only.
- ``languages``: records of the listed languages (or of ``fraction`` of the languages seen,
  by hash) are evaluation records.

Decontamination: a training record whose text equals an evaluation record's after
normalisation, or whose MinHash signature shares an LSH band with one and whose estimated
Jaccard reaches the threshold, is removed from training (left out as ``decontaminated``, with a
``removed`` row naming the evaluation record). Signatures are ``transforms.minhash``'s,
comparable with ``datasketch.MinHash``. Buckets are a GroupByKey on (band, key): no worker
needs all signatures; a huge bucket compares each training member with at most
``max_comparisons`` evaluation members.

    items | SplitPlan(recipe=recipe)            # -> singleton {"tasks": ..., "languages": ...}
    items | Decontaminate(config=..., seed=0)   # -> {"items", "left_out", "removed"}
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.minhash import (
    MinHasher,
    band_keys,
    estimate_jaccard,
    optimal_param,
    shingle_set,
    signature_from_bytes,
    signature_to_bytes,
    tokenize_normalized,
)
from transforms.mixing import EVAL, TRAIN, unit
from transforms.recipe import Decontamination, Heldout, MixtureRecipe
from transforms.templates import heldout_templates
from transforms.text import normalize_text, stable_hash

NAMESPACE = "mixture"
DECONTAMINATED = "decontaminated"


# --------------------------------------------------------------------------------------------
# Planning (pure)
# --------------------------------------------------------------------------------------------


def stratified_pick(
    seed: int, salt: str, items_by_stratum: Mapping[str, Iterable[str]], fraction: float
) -> frozenset:
    """``round(fraction * total)`` items, spread over strata by largest remainder, each stratum's
    picks being its items with the smallest ``hash(seed, salt, item)``."""
    strata = {s: sorted(set(items)) for s, items in items_by_stratum.items()}
    total = sum(len(v) for v in strata.values())
    want = math.floor(fraction * total + 0.5)
    quotas = {s: fraction * len(v) for s, v in strata.items()}
    taken = {s: math.floor(q) for s, q in quotas.items()}
    rest = want - sum(taken.values())
    order = sorted(
        strata, key=lambda s: (-(quotas[s] - taken[s]), stable_hash(str(seed), salt, "stratum", s))
    )
    for s in order:
        if rest <= 0:
            break
        if taken[s] < len(strata[s]):
            taken[s] += 1
            rest -= 1
    picked = set()
    for s, items in strata.items():
        ranked = sorted(items, key=lambda i: stable_hash(str(seed), salt, i))
        picked.update(ranked[: taken[s]])
    return frozenset(picked)


def plan_split(
    task_categories: Mapping[str, str], languages: Iterable[str], heldout: Heldout, seed: int
) -> dict:
    """The evaluation tasks and languages (empty unless the target needs them)."""
    plan = {"tasks": frozenset(), "languages": frozenset()}
    if heldout.target == "tasks":
        if heldout.tasks:
            plan["tasks"] = frozenset(heldout.tasks)
        else:
            by_category: dict[str, list[str]] = defaultdict(list)
            for task, category in task_categories.items():
                by_category[category].append(task)
            plan["tasks"] = stratified_pick(seed, "heldout-task", by_category, heldout.fraction)
    elif heldout.target == "languages":
        if heldout.languages:
            plan["languages"] = frozenset(heldout.languages)
        else:
            seen = sorted(set(languages) - {"und", ""})
            plan["languages"] = stratified_pick(
                seed, "heldout-language", {"all": seen}, heldout.fraction
            )
    return plan


def assign_split(
    record: Mapping,
    template_set: tuple[str, ...],
    plan: Mapping,
    heldout: Heldout,
    seed: int,
) -> tuple[str, tuple[str, ...]]:
    """``(split, templates the record may use)`` under the recipe's generalisation target."""
    target = heldout.target
    if target == "tasks":
        return (EVAL if record.get("task") in plan["tasks"] else TRAIN), template_set
    if target == "languages":
        lang = record.get("lang") or "und"
        return (EVAL if lang in plan["languages"] else TRAIN), template_set
    if target == "templates":
        held = heldout_templates(seed, record.get("task") or "", template_set, heldout.fraction)
        if not held:
            return TRAIN, template_set
        share = len(held) / len(template_set)
        if unit(seed, "heldout-record", record.get("id") or "") < share:
            return EVAL, held
        return TRAIN, tuple(t for t in template_set if t not in held)
    return TRAIN, template_set


# --------------------------------------------------------------------------------------------
# Decontamination kernels (pure)
# --------------------------------------------------------------------------------------------


def contamination_text(record: Mapping) -> str:
    """What is compared across the split: the instance input (the instruction when empty).

    Not the task definition: thousands of instances share it, and sharing it is not leakage.
    """
    return (record.get("input") or "").strip() or (record.get("definition") or "").strip()


class KeyMaker:
    """Bucket keys of a record: its exact-text key and its LSH band keys (one per worker)."""

    def __init__(self, config: Decontamination):
        self.config = config
        self.hasher = MinHasher(config.num_perm, seed=1) if config.minhash else None
        self.bands, self.rows = (
            optimal_param(config.threshold, config.num_perm) if config.minhash else (0, 0)
        )

    def keys(self, record: Mapping) -> tuple[list[tuple], bytes | None]:
        """``([bucket key, ...], signature bytes or None)``; short texts get no key."""
        cfg = self.config
        norm = normalize_text(contamination_text(record))
        if len(tokenize_normalized(norm)) < cfg.min_tokens:
            return [], None
        out: list[tuple] = []
        if cfg.exact:
            out.append(("x", stable_hash(norm, digest_size=8)))
        signature = None
        if self.hasher is not None:
            sig = self.hasher.signature(shingle_set([norm], cfg.word_n, cfg.char_n))
            signature = signature_to_bytes(sig)
            keys = band_keys(sig[None, :], self.bands, self.rows)[0]
            out.extend(("b", i, int(k)) for i, k in enumerate(keys.tolist()))
        return out, signature


def bucket_hits(
    key: tuple, members: Iterable[tuple], config: Decontamination
) -> list[tuple[str, tuple]]:
    """``(train id, (similarity, eval id, method, eval file, eval index))`` for one bucket."""
    evals, trains = [], []
    for member in members:
        (evals if member[0] else trains).append(member)
    if not evals or not trains:
        return []
    evals.sort(key=lambda m: m[1])
    out = []
    if key[0] == "x":
        first = evals[0]
        for _, rid, _, _, _ in trains:
            out.append((rid, (1.0, first[1], "exact", first[3], first[4])))
        return out
    checked = [(m, signature_from_bytes(m[2])) for m in evals[: config.max_comparisons]]
    for _, rid, sig_bytes, _, _ in trains:
        sig = signature_from_bytes(sig_bytes)
        best = None
        for member, eval_sig in checked:
            similarity = float(estimate_jaccard(sig, eval_sig))
            if similarity >= config.threshold and (best is None or similarity > best[0]):
                best = (similarity, member[1], "minhash", member[3], member[4])
        if best is not None:
            out.append((rid, best))
    return out


def best_hit(hits: Iterable[tuple]) -> tuple:
    """The strongest evidence against a training record (ties: smallest evaluation id)."""
    return min(hits, key=lambda h: (-h[0], h[1], h[2]))


# --------------------------------------------------------------------------------------------
# Beam
# --------------------------------------------------------------------------------------------


def _plan_inputs(item) -> tuple[str, str, str]:
    meta, record = item
    return record.get("task") or "", meta["category"], record.get("lang") or "und"


class PlanInputsCombineFn(beam.CombineFn):
    """Task -> category (smallest seen) and the set of languages: bounded by tasks + languages."""

    def create_accumulator(self):
        return {}, set()

    def add_input(self, acc, element):
        categories, languages = acc
        task, category, lang = element
        if task not in categories or category < categories[task]:
            categories[task] = category
        languages.add(lang)
        return acc

    def merge_accumulators(self, accumulators):
        categories, languages = {}, set()
        for other_categories, other_languages in accumulators:
            for task, category in other_categories.items():
                if task not in categories or category < categories[task]:
                    categories[task] = category
            languages |= other_languages
        return categories, languages

    def extract_output(self, acc):
        return acc


class _PlanFn(beam.DoFn):
    def __init__(self, heldout: Heldout, seed: int):
        self._heldout = heldout
        self._seed = seed

    def process(self, acc):
        categories, languages = acc
        plan = plan_split(categories, languages, self._heldout, self._seed)
        Metrics.counter(NAMESPACE, "heldout:tasks").inc(len(plan["tasks"]))
        Metrics.counter(NAMESPACE, "heldout:languages").inc(len(plan["languages"]))
        yield plan


class SplitPlan(beam.PTransform):
    """(meta, record) items -> one plan dict {"tasks", "languages"} (empty sets when unused)."""

    def __init__(self, *, recipe: MixtureRecipe):
        super().__init__()
        self._recipe = recipe

    def expand(self, items):
        heldout = self._recipe.heldout
        if heldout.target not in ("tasks", "languages") or heldout.tasks or heldout.languages:
            empty = ({}, set())
            return (
                items.pipeline
                | "FixedPlan" >> beam.Create([empty])
                | "Plan" >> beam.ParDo(_PlanFn(heldout, self._recipe.seed))
            )
        return (
            items
            | "TaskCategoryLanguage" >> beam.Map(_plan_inputs)
            | "Collect" >> beam.CombineGlobally(PlanInputsCombineFn())
            | "Plan" >> beam.ParDo(_PlanFn(heldout, self._recipe.seed))
        )


class _BucketKeysFn(beam.DoFn):
    """(meta, record) -> (bucket key, (is_eval, id, signature, source_file, source_index))."""

    def __init__(self, config: Decontamination):
        self._config = config
        self._maker = None

    def setup(self):
        self._maker = KeyMaker(self._config)
        self._short = Metrics.counter(NAMESPACE, "decontaminate:too_short")

    def process(self, item):
        meta, record = item
        keys, signature = self._maker.keys(record)
        if not keys:
            self._short.inc()
            return
        value = (
            meta["split"] == EVAL,
            record.get("id"),
            signature,
            record.get("source_file"),
            record.get("source_index"),
        )
        for key in keys:
            yield key, value


class _BucketHitsFn(beam.DoFn):
    def __init__(self, config: Decontamination):
        self._config = config

    def process(self, element):
        key, members = element
        yield from bucket_hits(key, members, self._config)


def _by_id(item):
    return item[1].get("id"), item


def _is_train(item) -> bool:
    return item[0]["split"] == TRAIN


def _is_eval(item) -> bool:
    return item[0]["split"] != TRAIN


class _JoinHitsFn(beam.DoFn):
    """(id, {items, hits}) -> surviving items; left_out and removed rows for the others."""

    LEFT_OUT, REMOVED = "left_out", "removed"

    def setup(self):
        self._removed = Metrics.counter(NAMESPACE, f"left_out:{DECONTAMINATED}")

    def process(self, element):
        _, grouped = element
        hits = list(grouped["hits"])
        for meta, record in grouped["items"]:
            if not hits:
                yield meta, record
                continue
            similarity, eval_id, method, eval_file, eval_index = hits[0]
            self._removed.inc()
            yield beam.pvalue.TaggedOutput(
                self.LEFT_OUT,
                left_out_row(
                    record,
                    DECONTAMINATED,
                    split=TRAIN,
                    detail=f"{method} copy of evaluation record {eval_id}",
                ),
            )
            yield beam.pvalue.TaggedOutput(
                self.REMOVED,
                {
                    "id": record.get("id"),
                    "source": record.get("source"),
                    "source_file": record.get("source_file"),
                    "source_index": record.get("source_index"),
                    "task": record.get("task"),
                    "stage": "decontaminate",
                    "survivor_id": eval_id,
                    "survivor_source_file": eval_file,
                    "survivor_source_index": eval_index,
                    "similarity": similarity,
                    "detail": f"{method}: training copy of an evaluation record",
                },
            )


def left_out_row(record: Mapping, reason: str, *, split: str | None, detail: str | None = None):
    """A row of ``LEFT_OUT_SCHEMA``: a corpus record that is not in the mixture, and why."""
    return {
        "id": record.get("id"),
        "source": record.get("source"),
        "source_file": record.get("source_file"),
        "source_index": record.get("source_index"),
        "task": record.get("task"),
        "split": split,
        "reason": reason,
        "detail": detail,
    }


class Decontaminate(beam.PTransform):
    """(meta, record) items -> {"items": kept, "left_out": rows, "removed": REMOVED_SCHEMA rows}.

    Training items that copy an evaluation item are removed; evaluation items pass untouched.
    """

    def __init__(self, *, config: Decontamination):
        super().__init__()
        self._config = config

    def expand(self, items):
        cfg = self._config
        # Output: (train id, best (similarity, eval id, method, eval file, eval index))
        hits = (
            items
            | "BucketKeys" >> beam.ParDo(_BucketKeysFn(cfg))
            | "GroupBuckets" >> beam.GroupByKey()
            | "BucketHits" >> beam.ParDo(_BucketHitsFn(cfg))
            | "BestHit" >> beam.CombinePerKey(best_hit)
        )
        train = items | "Train" >> beam.Filter(_is_train) | "TrainById" >> beam.Map(_by_id)
        joined = (
            {"items": train, "hits": hits}
            | "JoinHits" >> beam.CoGroupByKey()
            | "Remove"
            >> beam.ParDo(_JoinHitsFn()).with_outputs(
                _JoinHitsFn.LEFT_OUT, _JoinHitsFn.REMOVED, main="items"
            )
        )
        evals = items | "Eval" >> beam.Filter(_is_eval)
        kept = (joined["items"], evals) | "Kept" >> beam.Flatten()
        return {
            "items": kept,
            "left_out": joined[_JoinHitsFn.LEFT_OUT],
            "removed": joined[_JoinHitsFn.REMOVED],
        }
