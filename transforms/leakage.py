"""Leakage audit stage: template-label statistics per shard and the SNI task checks.

``LeakageAudit(config)`` takes record dicts (``CORPUS_SCHEMA`` keys) and returns
``{"tokens", "shards", "tasks"}``: row dicts for ``leakage/tokens.parquet``,
``leakage/shards.parquet`` and ``leakage/tasks.parquet`` (schemas below). Everything is a
CombinePerKey over exact integer counts (``leakage_counts``, ``labels``, ``task_checks``), the
statistics a pure function of the merged counts (``leakage_stats``), so the tables are the same
on every runner and every input sharding.

    # Output: (shard key, RecordFeatures) -> (shard key, ShardCounts) -> shard row + token rows
    records | LeakageAudit(LeakageConfig())

Run on existing Parquet with ``pipelines.audit.run_audit`` (``instructmix audit``).
"""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.pvalue import AsDict

from transforms.labels import (
    LabelSpaceCombineFn,
    TaskLabelCounts,
    apply_label_space,
    label_inputs,
    label_space,
)
from transforms.leakage_config import LeakageConfig, TaskCheckConfig
from transforms.leakage_counts import (
    FeatureExtractor,
    ShardCountsCombineFn,
    count_shards,
    shard_keys,
)
from transforms.leakage_stats import shard_stats
from transforms.task_checks import (
    DuplicateSummaryCombineFn,
    InputKeyCombineFn,
    TaskStatsCombineFn,
    check_tasks,
    input_key_elements,
    is_reportable,
    task_check_inputs,
    task_findings,
)

NAMESPACE = "leakage"
TOKENS, SHARDS, TASKS = "tokens", "shards", "tasks"

_SHARD_IDENTITY = [
    ("shard", pa.string()),  # "task=X|template=Y", "task=X" or "file=PATH"
    ("shard_kind", pa.string()),  # task_template | task | file
    ("task", pa.string()),
    ("template_id", pa.string()),
    ("source_file", pa.string()),
]

TOKENS_SCHEMA = pa.schema(
    _SHARD_IDENTITY
    + [
        ("token", pa.string()),
        ("label", pa.string()),
        ("n_shard", pa.int64()),  # labelled records in the shard
        ("n_token", pa.int64()),  # ... whose template contains the token
        ("n_label", pa.int64()),  # ... with the label
        ("n_pair", pa.int64()),  # ... with both
        ("p_label_given_token", pa.float64()),
        ("prior", pa.float64()),  # p(label) in the shard
        ("pmi", pa.float64()),  # bits
        ("npmi", pa.float64()),  # normalised PMI in [-1, 1]
        ("z", pa.float64()),  # Gardner et al. (2021) z of p(label|token) vs the prior
        ("significant", pa.bool_()),  # z above the Bonferroni-corrected critical value
        ("flagged", pa.bool_()),  # NPMI > threshold for this label only, count, significance
    ]
)


def _count_list(field: str) -> pa.DataType:
    return pa.list_(pa.struct([(field, pa.string()), ("n", pa.int64())]))


SHARDS_SCHEMA = pa.schema(
    _SHARD_IDENTITY
    + [
        ("n_records", pa.int64()),
        ("n_labelled", pa.int64()),
        ("n_skipped_unlabelled", pa.int64()),  # generation records: no label statistics
        ("n_labels", pa.int64()),
        ("n_templates", pa.int64()),
        ("label_counts", _count_list("label")),  # the mixture audit: label proportions ...
        ("template_counts", _count_list("template")),  # ... and template proportions
        ("label_entropy", pa.float64()),  # normalised, 1.0 = balanced
        ("majority_label", pa.string()),
        ("majority_rate", pa.float64()),
        ("template_baseline", pa.float64()),  # k-fold CV accuracy of template-only naive Bayes
        ("baseline_lift", pa.float64()),  # baseline - majority_rate
        ("baseline_p", pa.float64()),  # chi-square p of token set x label independence
        ("cramers_v", pa.float64()),
        ("cramers_v_corrected", pa.float64()),  # Bergsma (2013) bias correction
        ("mutual_info", pa.float64()),  # bits, template x label
        ("normalized_mi", pa.float64()),  # MI / H(label)
        ("association_p", pa.float64()),  # chi-square p of template x label independence
        ("n_tokens", pa.int64()),
        ("n_flagged_tokens", pa.int64()),
        ("max_npmi", pa.float64()),
        (
            "top_tokens",
            pa.list_(
                pa.struct(
                    [
                        ("token", pa.string()),
                        ("label", pa.string()),
                        ("npmi", pa.float64()),
                        ("z", pa.float64()),
                        ("n_pair", pa.int64()),
                        ("flagged", pa.bool_()),
                    ]
                )
            ),
        ),
        ("labels_in_own_template", pa.list_(pa.string())),  # answer leaks
        ("labels_listed", pa.list_(pa.string())),  # choices listed in every template
        ("flagged", pa.bool_()),
        ("reasons", pa.list_(pa.string())),
        ("notes", pa.list_(pa.string())),
        ("leak_score", pa.float64()),  # for ranking the worst shards
    ]
)

TASKS_SCHEMA = pa.schema(
    [
        ("task", pa.string()),
        ("check", pa.string()),  # duplicate_inputs, single_output, label_imbalance, ...
        ("severity", pa.string()),  # error | warning | info
        ("value", pa.float64()),  # the measured quantity (count, entropy, ...)
        ("evidence", pa.string()),
    ]
)


class ApplyLabelsFn(beam.DoFn):
    """Fills derived labels and label spaces from the per-task side input; counts each case."""

    def __init__(self) -> None:
        self._counters = {}

    def setup(self) -> None:
        self._counters = {
            status: Metrics.counter(NAMESPACE, f"labels:{status}")
            for status in ("given", "derived", "outside_space", "unlabelled")
        }

    def process(self, record, spaces):
        out, status = apply_label_space(record, spaces)
        self._counters[status].inc()
        yield out


class ShardFeaturesFn(beam.DoFn):
    """Record -> (shard key, features) for each of its shards; unlabelled ones are counted."""

    def __init__(self, config: LeakageConfig) -> None:
        self._by_file = config.shard_by_file
        self._n_folds = config.nb_folds
        self._extract = None

    def setup(self) -> None:
        self._extract = FeatureExtractor(self._n_folds)
        self._records = Metrics.counter(NAMESPACE, "records")
        self._skipped = Metrics.counter(NAMESPACE, "skipped:no_label")

    def process(self, record):
        features = self._extract(record)
        self._records.inc()
        if features.label is None:
            self._skipped.inc()
        for key in shard_keys(record, features.template, by_file=self._by_file):
            yield key, tuple(features)


class ShardStatsFn(beam.DoFn):
    """(shard key, counts) -> shard row; token rows to the ``tokens`` output."""

    def __init__(self, config: LeakageConfig) -> None:
        self._config = config

    def setup(self) -> None:
        self._flagged = Metrics.counter(NAMESPACE, "shards:flagged")

    def process(self, element):
        key, counts = element
        shard, rows = shard_stats(key, counts, self._config)
        if shard["flagged"]:
            self._flagged.inc()
        for row in rows:
            yield beam.pvalue.TaggedOutput(TOKENS, row)
        yield shard


class InputKeysFn(beam.DoFn):
    """Record -> ((task, input hash), counts); positive examples once per task per bundle."""

    def __init__(self, config: TaskCheckConfig) -> None:
        self._config = config
        self._seen_positives: set = set()

    def start_bundle(self) -> None:
        self._seen_positives = set()  # bundle-local: each record repeats its task's examples

    def process(self, record):
        fresh = (record.get("task") or "", _examples_key(record))
        with_positives = fresh not in self._seen_positives
        self._seen_positives.add(fresh)
        yield from input_key_elements(record, self._config, with_positives=with_positives)


def _examples_key(record) -> tuple:
    return tuple((ex or {}).get("input") or "" for ex in record.get("positive_examples") or [])


class TaskFindingsFn(beam.DoFn):
    """(task, {stats, dups}) -> finding rows; counted per check."""

    def __init__(self, config: TaskCheckConfig) -> None:
        self._config = config

    def process(self, element):
        task, grouped = element
        stats = next(iter(grouped["stats"]), None)
        dups = next(iter(grouped["dups"]), None)
        for row in task_findings(task, stats, dups, self._config):
            Metrics.counter(NAMESPACE, f"findings:{row['check']}").inc()
            yield row


def _is_reportable_item(element) -> bool:
    return is_reportable(element[1])


def _by_task(element):
    (task, _), counts = element
    return task, counts


def _label_space_items(element, config):
    task, counts = element
    space = label_space(counts, config)
    if space is not None:
        yield task, space


class TaskChecks(beam.PTransform):
    """Record dicts -> SNI task-check finding rows (``TASKS_SCHEMA``)."""

    def __init__(self, config: TaskCheckConfig | None = None) -> None:
        super().__init__()
        self._config = config or TaskCheckConfig()

    def expand(self, records):
        cfg = self._config
        stats = (
            records
            | "Summaries" >> beam.Map(task_check_inputs)
            | "StatsPerTask" >> beam.CombinePerKey(TaskStatsCombineFn(cfg))
        )
        # Output: ((task, input hash), (instances, positives, snippet)), keyed so no worker
        # holds a whole task's inputs.
        dups = (
            records
            | "InputKeys" >> beam.ParDo(InputKeysFn(cfg))
            | "CountPerInput" >> beam.CombinePerKey(InputKeyCombineFn())
            | "Reportable" >> beam.Filter(_is_reportable_item)
            | "ByTask" >> beam.Map(_by_task)
            | "DuplicatesPerTask" >> beam.CombinePerKey(DuplicateSummaryCombineFn(cfg))
        )
        return (
            {"stats": stats, "dups": dups}
            | "JoinPerTask" >> beam.CoGroupByKey()
            | "Findings" >> beam.ParDo(TaskFindingsFn(cfg))
        )


class LeakageAudit(beam.PTransform):
    """Record dicts -> {"tokens", "shards", "tasks"} rows (see the module docstring)."""

    def __init__(self, config: LeakageConfig | None = None) -> None:
        super().__init__()
        self._config = config or LeakageConfig()

    def expand(self, records):
        cfg = self._config
        spaces = (
            records
            | "LabelInputs" >> beam.Map(label_inputs, cfg.labels)
            | "LabelCountsPerTask" >> beam.CombinePerKey(LabelSpaceCombineFn(cfg.labels))
            | "LabelSpaces" >> beam.FlatMap(_label_space_items, cfg.labels)
        )
        labelled = records | "ApplyLabels" >> beam.ParDo(ApplyLabelsFn(), AsDict(spaces))
        stats = (
            labelled
            | "ShardFeatures" >> beam.ParDo(ShardFeaturesFn(cfg))
            | "CountPerShard" >> beam.CombinePerKey(ShardCountsCombineFn(cfg.max_signatures))
            | "ShardStats" >> beam.ParDo(ShardStatsFn(cfg)).with_outputs(TOKENS, main=SHARDS)
        )
        tasks = labelled | "TaskChecks" >> TaskChecks(cfg.checks)
        return {TOKENS: stats[TOKENS], SHARDS: stats[SHARDS], TASKS: tasks}


def audit_in_memory(records: list[dict], config: LeakageConfig | None = None) -> dict[str, list]:
    """Plain-Python reference of ``LeakageAudit`` (same kernels, no Beam): small data, tests."""
    cfg = config or LeakageConfig()
    per_task: dict[str, TaskLabelCounts] = {}
    for record in records:
        task, (given, output) = label_inputs(record, cfg.labels)
        per_task.setdefault(task, TaskLabelCounts()).add(given, output, cfg.labels)
    spaces = {}
    for task, counts in per_task.items():
        spaces.update(_label_space_items((task, counts), cfg.labels))
    labelled = [apply_label_space(record, spaces)[0] for record in records]
    shards = count_shards(
        labelled,
        by_file=cfg.shard_by_file,
        max_signatures=cfg.max_signatures,
        n_folds=cfg.nb_folds,
    )
    shard_rows, token_rows = [], []
    for key in sorted(shards):
        shard, rows = shard_stats(key, shards[key], cfg)
        shard_rows.append(shard)
        token_rows.extend(rows)
    return {TOKENS: token_rows, SHARDS: shard_rows, TASKS: check_tasks(labelled, cfg.checks)}
