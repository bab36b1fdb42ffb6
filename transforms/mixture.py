"""The mixture stage: kept corpus records -> a rendered Flan-style training mixture.

    out = records | BuildMixture(recipe=load_recipe("lecture"), template_sets=rows)
    out["mixture"]   # MIXTURE_SCHEMA rows -> OUT/mixture/split=.../lang=.../part-*.parquet
    out["left_out"]  # LEFT_OUT_SCHEMA rows: records not in the mixture, with the reason
    out["stats"]     # STATS_SCHEMA rows: realised counts/proportions beside the recipe targets
    out["removed"]   # REMOVED_SCHEMA rows: training records removed as copies of eval records

Steps: derive label spaces (per task, as the leakage audit does) -> prepare (submixture,
template set, CoT eligibility; ``no_output``/``no_submixture``/``no_template`` left out) ->
held-out split -> decontaminate training against evaluation -> count and cap each task (its
``quota`` records with the smallest seeded hash; the rest left out as ``cap``) -> deal
templates within (task, label) strata -> render (format from a seeded hash; few-shot exemplars
from a bounded per-task pool side input) -> stats.

Fates: every input record is either exactly one non-inverted row of the mixture (in one split,
in one format) or exactly one ``left_out`` row. Inverted rows are extra rows, flagged
``inverted=True``, derived from a record that is itself in the mixture.

Memory: a task's count keeps at most ``cap`` 64-bit hashes (all of them for an uncapped task);
a template-assignment group holds at most ``recipe.max_stratum`` records; the exemplar side
input holds ``few_shot.pool_size`` short exemplars per task. No step needs the whole corpus.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.pvalue import AsDict, AsSingleton

from transforms.heldout import Decontaminate, SplitPlan, assign_split, left_out_row
from transforms.labels import LabelSpaceCombineFn, apply_label_space, label_inputs, label_space
from transforms.leakage_config import LabelConfig
from transforms.mixing import (
    TRAIN,
    TaskCount,
    bound,
    choose_format,
    draws,
    format_plan,
    plan_quotas,
    row_stat_keys,
    stats_rows,
    threshold,
)
from transforms.recipe import FormatMix, MixtureRecipe
from transforms.render import (
    MIXTURE_SCHEMA,
    exemplar,
    invertible,
    output_text,
    rationale_for,
    render_inverted_row,
    render_row,
)
from transforms.templates import (
    RenderError,
    TemplateRegistry,
    assign_stratum,
    stratum_offset,
    task_category,
    task_type,
)
from transforms.text import stable_hash

__all__ = ["LEFT_OUT_SCHEMA", "MIXTURE_SCHEMA", "STATS_SCHEMA", "BuildMixture"]

NAMESPACE = "mixture"
LEFT_OUT = "left_out"
ZERO_SHOT_ONLY = FormatMix(zero_shot=1.0, few_shot=0.0, cot=0.0)

LEFT_OUT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("source_file", pa.string()),
        ("source_index", pa.int64()),
        ("task", pa.string()),
        ("split", pa.string()),  # None when left out before the split was decided
        ("reason", pa.string()),  # cap | decontaminated | no_output | no_submixture | ...
        ("detail", pa.string()),
    ]
)

STATS_SCHEMA = pa.schema(
    [
        ("split", pa.string()),
        ("dimension", pa.string()),  # rows, task, source, submixture, format, cot, lang, ...
        ("key", pa.string()),
        ("count", pa.int64()),
        ("proportion", pa.float64()),  # of the split's base rows (all rows for "rows")
        ("target", pa.float64()),  # the recipe's proportion, where it sets one
        ("target_count", pa.int64()),  # the planned count (quota, cap, templates per task)
        ("detail", pa.string()),
    ]
)


def _left(record, reason, split=None, detail=None):
    Metrics.counter(NAMESPACE, f"left_out:{reason}").inc()
    return beam.pvalue.TaggedOutput(
        LEFT_OUT, left_out_row(record, reason, split=split, detail=detail)
    )


# --------------------------------------------------------------------------------------------
# Labels (per task, as the leakage audit derives them)
# --------------------------------------------------------------------------------------------


def _label_space_items(element, config):
    task, counts = element
    space = label_space(counts, config)
    if space is not None:
        yield task, space


def _apply_labels(record, spaces):
    return apply_label_space(record, spaces)[0]


class _DeriveLabels(beam.PTransform):
    """Records -> records with ``label``/``label_space`` of classification tasks filled in."""

    def expand(self, records):
        config = LabelConfig()
        spaces = (
            records
            | "LabelInputs" >> beam.Map(label_inputs, config)
            | "LabelCounts" >> beam.CombinePerKey(LabelSpaceCombineFn(config))
            | "LabelSpaces" >> beam.FlatMap(_label_space_items, config)
        )
        return records | "ApplyLabels" >> beam.Map(_apply_labels, AsDict(spaces))


# --------------------------------------------------------------------------------------------
# Prepare and split
# --------------------------------------------------------------------------------------------


# What rendering reads; everything else stays behind (it would only be re-encoded at every
# step). Examples only travel with SNI records, dataset fields only with PromptSource ones.
_KEEP = (
    "id",
    "source",
    "source_file",
    "source_index",
    "task",
    "definition",
    "input",
    "output",
    "label",
    "label_space",
    "rationale",
    "lang",
    "template_id",
)


def slim(record: dict, family: str) -> dict:
    """The fields of a record the later steps use (``references`` cut to the first one)."""
    out = {k: record.get(k) for k in _KEEP}
    out["references"] = list((record.get("references") or [])[:1])
    if family == "sni" or record.get("positive_examples"):
        out["positive_examples"] = record.get("positive_examples") or []
        out["negative_examples"] = record.get("negative_examples") or []
    if family == "promptsource":
        out["metadata"] = record.get("metadata")
    return out


class _PrepareFn(beam.DoFn):
    """Record -> (meta, record): submixture, template set, eligibility, draws; slimmed."""

    def __init__(self, recipe: MixtureRecipe, template_rows: tuple):
        self._recipe = recipe
        self._rows = template_rows
        self._registry = None

    def setup(self):
        self._registry = TemplateRegistry(
            self._rows, seed=self._recipe.seed, per_task=self._recipe.templates_per_task
        )

    def process(self, record):
        recipe = self._recipe
        if not (output_text(record) or "").strip():
            yield _left(record, "no_output")
            return
        sub = recipe.submixture_for(record.get("source"), record.get("task"))
        if sub is None:
            yield _left(record, "no_submixture")
            return
        kind = task_type(record)
        family, tset = self._registry.template_set(record, kind)
        if not tset or not (
            (record.get("input") or "").strip()
            or (record.get("definition") or "").strip()
            or family == "promptsource"
        ):
            yield _left(record, "no_template")
            return
        draw = draws(recipe.seed, record.get("id") or "")
        meta = {
            "submixture": sub.name,
            "family": family,
            "tset": tset,
            "task_type": kind,
            "category": task_category(record, kind),
            "cot": rationale_for(record) is not None,
            "inv": invertible(record, family, recipe.inversion.min_output_tokens),
            "h": draw.select,
            "ht": draw.template,
            "he": draw.exemplar,
        }
        yield meta, slim(record, family)


class _AssignSplitFn(beam.DoFn):
    def __init__(self, recipe: MixtureRecipe):
        self._recipe = recipe

    def process(self, item, plan):
        meta, record = item
        split, tset = assign_split(
            record, meta["tset"], plan, self._recipe.heldout, self._recipe.seed
        )
        Metrics.counter(NAMESPACE, f"split:{split}").inc()
        yield {**meta, "split": split, "tset": tset}, record


# --------------------------------------------------------------------------------------------
# Count and cap
# --------------------------------------------------------------------------------------------


_UNSET = -1


def _wider(a, b):
    """The larger of two bounds (None = unbounded wins; unset loses)."""
    if a is None or b is None:
        return None
    return max(a, b)


class TaskSample:
    """Accumulator of one (split, task): count, sources, and its smallest selection hashes."""

    __slots__ = ("bound", "hashes", "n", "sources", "submixture")

    def __init__(self):
        self.n = 0
        self.sources: Counter = Counter()
        self.submixture = None
        self.bound = _UNSET  # hashes to keep: an int, or None for all of them (no cap)
        self.hashes: list[int] = []

    def compact(self):
        if self.bound is not None and self.bound >= 0 and len(self.hashes) > self.bound:
            self.hashes = heapq.nsmallest(self.bound, self.hashes)
        self.hashes.sort()
        return self


class TaskSampleCombineFn(beam.CombineFn):
    """(hash, bound, source, submixture) -> TaskSample with at most ``bound`` hashes kept."""

    def create_accumulator(self):
        return TaskSample()

    def add_input(self, acc, element):
        h, limit, source, submixture = element
        acc.n += 1
        acc.sources[source or ""] += 1
        acc.submixture = submixture if acc.submixture is None else min(acc.submixture, submixture)
        acc.bound = _wider(acc.bound, limit)
        acc.hashes.append(h)
        if acc.bound is not None and len(acc.hashes) > 2 * acc.bound + 1024:
            acc.compact()
        return acc

    def merge_accumulators(self, accumulators):
        merged = TaskSample()
        for acc in accumulators:
            merged.n += acc.n
            merged.sources.update(acc.sources)
            if acc.submixture is not None:
                merged.submixture = (
                    acc.submixture
                    if merged.submixture is None
                    else min(merged.submixture, acc.submixture)
                )
            merged.bound = _wider(merged.bound, acc.bound)
            merged.hashes.extend(acc.hashes)
            if merged.bound is not None and len(merged.hashes) > 2 * merged.bound + 1024:
                merged.compact()
        return merged

    def extract_output(self, acc):
        return acc.compact()


def _sample_element(item, recipe):
    meta, record = item
    key = (meta["split"], record.get("task") or "")
    limit = bound(recipe, meta["split"], meta["submixture"])
    return key, (meta["h"], limit, record.get("source") or "", meta["submixture"])


def _task_count(element) -> TaskCount:
    (split, task), sample = element
    source = min(sample.sources, key=lambda s: (-sample.sources[s], s))
    return TaskCount(split, task, sample.n, source, sample.submixture)


def _plan(counts, recipe):
    return plan_quotas(counts, recipe)


def _threshold_item(element, quotas):
    key, sample = element
    yield key, threshold(sample.hashes, sample.n, quotas[key].quota)


class _SelectFn(beam.DoFn):
    def process(self, item, thresholds):
        meta, record = item
        limit = thresholds[(meta["split"], record.get("task") or "")]
        if limit is None or meta["h"] <= limit:
            yield item
        else:
            yield _left(record, "cap", split=meta["split"])


class _Sample(beam.PTransform):
    """Items -> {"selected", "left_out", "quotas" (singleton dict)}: each task's quota exactly."""

    def __init__(self, *, recipe: MixtureRecipe):
        super().__init__()
        self._recipe = recipe

    def expand(self, items):
        # Output: ((split, task), TaskSample)
        samples = (
            items
            | "SampleKeys" >> beam.Map(_sample_element, self._recipe)
            | "CountPerTask" >> beam.CombinePerKey(TaskSampleCombineFn())
        )
        quotas = (
            samples
            | "TaskCounts" >> beam.Map(_task_count)
            | "AllTaskCounts" >> beam.combiners.ToList()
            | "PlanQuotas" >> beam.Map(_plan, self._recipe)
        )
        thresholds = samples | "Thresholds" >> beam.FlatMap(_threshold_item, AsSingleton(quotas))
        selected = items | "Select" >> beam.ParDo(_SelectFn(), AsDict(thresholds)).with_outputs(
            LEFT_OUT, main="selected"
        )
        return {"selected": selected.selected, "left_out": selected[LEFT_OUT], "quotas": quotas}


# --------------------------------------------------------------------------------------------
# Formats (CoT odds per submixture) and exemplar pools
# --------------------------------------------------------------------------------------------


def _plan_element(item):
    meta, _ = item
    return (meta["split"], meta["submixture"]), (1, int(meta["cot"]), int(meta["inv"]))


def _sum_triples(triples):
    total = [0, 0, 0]
    for triple in triples:
        for i, value in enumerate(triple):
            total[i] += value
    return tuple(total)


def _format_plans(elements, recipe):
    plans = {}
    for (split, sub), (records, cot, inv) in elements:
        submixture = recipe.submixture(sub)
        if split == TRAIN:
            formats, rate = recipe.formats_for(submixture), recipe.inversion_rate_for(submixture)
        else:
            formats, rate = ZERO_SHOT_ONLY, 0.0  # evaluation: zero-shot, nothing inverted
        plans[(split, sub)] = format_plan(formats, rate, records, cot, inv)
    return plans


def _pool_candidates(item, recipe):
    meta, record = item
    if meta["split"] != TRAIN:
        return  # evaluation is zero-shot
    few = recipe.few_shot
    compact = exemplar(record, meta["family"], few.max_prompt_chars // (few.max_k + 1), meta["he"])
    if compact is not None:
        yield (meta["split"], record.get("task") or ""), (meta["he"], compact)


class BottomKCombineFn(beam.CombineFn):
    """The ``k`` (hash, exemplar) pairs with the smallest hashes: a bounded, seeded reservoir."""

    def __init__(self, k: int):
        self._k = k

    def _key(self, pair):
        return pair[0], pair[1]["id"] or ""

    def create_accumulator(self):
        return []

    def add_input(self, acc, element):
        acc.append(element)
        if len(acc) > 4 * self._k:
            acc[:] = heapq.nsmallest(self._k, acc, key=self._key)
        return acc

    def merge_accumulators(self, accumulators):
        merged = [pair for acc in accumulators for pair in acc]
        return heapq.nsmallest(self._k, merged, key=self._key)

    def extract_output(self, acc):
        return [pair[1] for pair in heapq.nsmallest(self._k, acc, key=self._key)]


# --------------------------------------------------------------------------------------------
# Templates: dealt out within (split, task, label, template set) strata
# --------------------------------------------------------------------------------------------


def _stratum_element(item, quotas, recipe):
    meta, record = item
    split, task = meta["split"], record.get("task") or ""
    rid = record.get("id") or ""
    h = meta["ht"]
    quota = quotas[(split, task)].quota
    buckets = max(1, math.ceil(quota / recipe.max_stratum))
    tset_key = stable_hash(*meta["tset"], digest_size=6)
    key = (split, task, record.get("label") or "", tset_key, h % buckets)
    return key, (h, rid, meta, record)


def _assign_templates(element, recipe):
    (split, task, _label, tset_key, bucket), members = element
    members = list(members)
    tset = members[0][2]["tset"]
    # The offset leaves the label out: the deal is the same for every label of the stratum.
    offset = stratum_offset(recipe.seed, split, task, tset_key, str(bucket))
    indices = assign_stratum(((h, rid) for h, rid, _, _ in members), len(tset), offset)
    for _, rid, meta, record in members:
        yield {**meta, "template": tset[indices[rid]]}, record


# --------------------------------------------------------------------------------------------
# Render
# --------------------------------------------------------------------------------------------


class _RenderFn(beam.DoFn):
    """(meta, record) -> mixture row(s); a record whose template fails to render is left out."""

    def __init__(self, recipe: MixtureRecipe, template_rows: tuple):
        self._recipe = recipe
        self._rows = template_rows
        self._registry = None

    def setup(self):
        recipe = self._recipe
        self._registry = TemplateRegistry(
            self._rows, seed=recipe.seed, per_task=recipe.templates_per_task
        )
        self._counters = {}

    def _count(self, name):
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = Metrics.counter(NAMESPACE, name)
        counter.inc()

    def process(self, item, pools, plans):
        meta, record = item
        recipe = self._recipe
        seed = recipe.seed
        draw = draws(seed, record.get("id") or "")
        split = meta["split"]
        sub = recipe.submixture(meta["submixture"])
        template = self._registry.get(meta["template"])
        plan = plans[(split, sub.name)]
        if split == TRAIN:
            fmt = choose_format(
                draw.cot,
                draw.shots,
                eligible=meta["cot"],
                formats=recipe.formats_for(sub),
                p_cot=plan.cot_probability,
            )
        else:
            fmt = "zero_shot"
        options = None
        if (
            template.family == "builtin"
            and record.get("label_space")
            and "{options}" in (template.instance)
        ):
            options = draw.options < recipe.answer_options_for(sub)
        few = recipe.few_shot
        try:
            row = render_row(
                record,
                meta,
                template=template,
                fmt=fmt,
                options=options,
                pool=pools.get((split, record.get("task") or ""), ()),
                registry=self._registry,
                draw=draw,
                seed=seed,
                min_k=few.min_k,
                max_k=few.max_k,
                max_prompt_chars=few.max_prompt_chars,
            )
        except RenderError as error:
            yield _left(record, "render_error", split=split, detail=str(error)[:500])
            return
        self._count(f"rows:{row['format']}")
        if row["format"] != row["requested_format"]:
            self._count("few_shot_fallback")
        yield row
        if meta["inv"] and draw.invert < plan.invert_probability:
            self._count("rows:inverted")
            yield render_inverted_row(record, meta, draw.invert_template)


# --------------------------------------------------------------------------------------------
# Stats
# --------------------------------------------------------------------------------------------


def _left_key(row):
    return row.get("split") or "none", row["reason"]


def _stats(counts, left, quotas, plans, recipe):
    return stats_rows(dict(counts), quotas, plans, recipe, dict(left))


class _Stats(beam.PTransform):
    def __init__(self, *, recipe, quotas, plans, left_out):
        super().__init__()
        self._recipe = recipe
        self._quotas = quotas
        self._plans = plans
        self._left_out = left_out

    def expand(self, rows):
        counts = (
            rows
            | "StatKeys" >> beam.FlatMap(row_stat_keys)
            | "CountKeys" >> beam.combiners.Count.PerElement()
            | "AllCounts" >> beam.combiners.ToList()
        )
        left = (
            self._left_out
            | "LeftKeys" >> beam.Map(_left_key)
            | "CountLeft" >> beam.combiners.Count.PerElement()
            | "AllLeft" >> beam.combiners.ToList()
        )
        return (
            counts
            | "StatsRows"
            >> beam.Map(
                _stats,
                AsSingleton(left),
                AsSingleton(self._quotas),
                AsSingleton(self._plans),
                self._recipe,
            )
            | "EachRow" >> beam.FlatMap(iter)
        )


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


class BuildMixture(beam.PTransform):
    """Kept corpus records -> {"mixture", "left_out", "stats", "removed"} (module docstring).

    ``template_sets``: PromptSource template rows (``transforms.formats.promptsource.
    load_template_sets``); plain dicts, so they pickle. The recipe is a frozen dataclass.
    """

    def __init__(self, *, recipe: MixtureRecipe, template_sets=()):
        super().__init__()
        if not isinstance(recipe, MixtureRecipe):
            raise TypeError("recipe must be a MixtureRecipe (see transforms.recipe.load_recipe)")
        self._recipe = recipe
        self._rows = tuple(dict(row) for row in template_sets)

    def expand(self, records):
        recipe = self._recipe
        labelled = records | "DeriveLabels" >> _DeriveLabels()
        prepared = labelled | "Prepare" >> beam.ParDo(_PrepareFn(recipe, self._rows)).with_outputs(
            LEFT_OUT, main="items"
        )
        plan = prepared.items | "SplitPlan" >> SplitPlan(recipe=recipe)
        items = prepared.items | "AssignSplit" >> beam.ParDo(
            _AssignSplitFn(recipe), AsSingleton(plan)
        )
        decon = recipe.heldout.decontaminate
        if recipe.heldout.target != "none" and (decon.exact or decon.minhash):
            cleaned = items | "Decontaminate" >> Decontaminate(config=decon)
            items, decon_left, removed = cleaned["items"], cleaned["left_out"], cleaned["removed"]
        else:
            decon_left = records.pipeline | "NoDecontaminationLeftOut" >> beam.Create([])
            removed = records.pipeline | "NoDecontaminationRemoved" >> beam.Create([])
        sampled = items | "Sample" >> _Sample(recipe=recipe)
        selected, quotas = sampled["selected"], sampled["quotas"]
        plans = (
            selected
            | "EligibleKeys" >> beam.Map(_plan_element)
            | "EligibleCounts" >> beam.CombinePerKey(_sum_triples)
            | "AllEligibleCounts" >> beam.combiners.ToList()
            | "FormatPlans" >> beam.Map(_format_plans, recipe)
        )
        pools = (
            selected
            | "PoolCandidates" >> beam.FlatMap(_pool_candidates, recipe)
            | "ExemplarPools" >> beam.CombinePerKey(BottomKCombineFn(recipe.few_shot.pool_size))
        )
        assigned = (
            selected
            | "StratumKeys" >> beam.Map(_stratum_element, AsSingleton(quotas), recipe)
            | "GroupStrata" >> beam.GroupByKey()
            | "AssignTemplates" >> beam.FlatMap(_assign_templates, recipe)
        )
        rendered = assigned | "Render" >> beam.ParDo(
            _RenderFn(recipe, self._rows), AsDict(pools), AsSingleton(plans)
        ).with_outputs(LEFT_OUT, main="mixture")
        left_out = (
            prepared[LEFT_OUT],
            decon_left,
            sampled["left_out"],
            rendered[LEFT_OUT],
        ) | "AllLeftOut" >> beam.Flatten()
        stats = rendered.mixture | "Stats" >> _Stats(
            recipe=recipe, quotas=quotas, plans=plans, left_out=left_out
        )
        return {
            "mixture": rendered.mixture,
            "left_out": left_out,
            "stats": stats,
            "removed": removed,
        }
