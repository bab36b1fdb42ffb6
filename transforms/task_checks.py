"""The checks the Super-NaturalInstructions maintainers run on every submitted task, at scale.

SNI's ``src/test_all.py`` rejects a task with repeated instance inputs, with every instance
mapped to one output, with skewed classes (normalised entropy <= 0.8 when there are fewer than
15 distinct outputs), with positive examples that reappear as instances, with empty inputs or
outputs, with too few (<= 25) or too many (> 6,500) instances, or with declared languages that
are not ISO 639 names. Here the same checks run on every task of every source, from mergeable
counts, and each failure is a row ``(task, check, severity, value, evidence)`` rather than an
assertion. Inputs are compared after ``normalize_text`` (SNI compares raw strings; case and
spacing variants are duplicates for training too).

Two mergeable structures feed the findings: ``TaskStats`` per task (counts, output and label
distributions, declared languages) and, per (task, input hash), instance/positive-example
counts (``InputKeyCombineFn``), summarised per task by ``DuplicateSummaryCombineFn``. The
second is keyed by input so that no worker needs a whole task's inputs in memory.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping

import apache_beam as beam

from transforms.labels import normalise_label, task_key
from transforms.leakage_config import TaskCheckConfig
from transforms.leakage_stats import normalized_entropy
from transforms.text import normalize_text, stable_hash

ERROR, WARNING, INFO = "error", "warning", "info"

DUPLICATE_INPUTS = "duplicate_inputs"
SINGLE_OUTPUT = "single_output"
LABEL_IMBALANCE = "label_imbalance"
POSITIVE_IN_INSTANCES = "positive_example_in_instances"
EMPTY_INPUT = "empty_input"
EMPTY_OUTPUT = "empty_output"
TOO_FEW = "too_few_instances"
TOO_MANY = "too_many_instances"
UNKNOWN_LANGUAGE = "unknown_language"
MISSING_LANGUAGE = "missing_language"

LANGUAGE_FIELDS = ("instruction_language", "input_language", "output_language")
_MAX_TRACKED = 1000  # distinct outputs/labels tracked per task; more cannot be "few classes"
_LONG_OUTPUT = 200  # longer outputs are tracked by hash only
_PAREN = re.compile(r"\s*\([^)]*\)")


@functools.lru_cache(maxsize=1)
def iso_language_names() -> frozenset[str]:
    """Case-folded ISO 639 codes and names (pycountry's ISO 639-3 table), as SNI checks them."""
    import pycountry  # data-only dependency, loaded on first use

    names = set()
    for lang in pycountry.languages:
        for attr in ("alpha_2", "alpha_3", "bibliographic", "name", "common_name"):
            value = getattr(lang, attr, None)
            if value:
                names.add(value.casefold())
                names.add(_PAREN.sub("", value).casefold())  # "Swahili (macrolanguage)"
        inverted = getattr(lang, "inverted_name", None)
        if inverted:  # "Greek, Modern (1453-)" -> "greek"
            names.add(_PAREN.sub("", inverted).split(",")[0].strip().casefold())
    return frozenset(names)


def is_known_language(value: str) -> bool:
    """An ISO 639 name or code, or a BCP-47 tag whose primary subtag is an ISO code."""
    folded = value.strip().casefold()
    names = iso_language_names()
    if folded in names:
        return True
    primary = re.split(r"[-_]", folded, maxsplit=1)[0]
    return len(primary) in (2, 3) and primary in names and primary != folded


def _location(record: Mapping) -> tuple[str, int, str]:
    index = record.get("source_index")
    return (record.get("source_file") or "", -1 if index is None else index, record.get("id") or "")


def _output_values(record: Mapping) -> tuple[str, ...]:
    """Every valid output, normalised (long ones by hash), as SNI flattens ``output`` lists."""
    values = [r for r in record.get("references") or [] if r and r.strip()]
    if not values and record.get("output") and record["output"].strip():
        values = [record["output"]]
    out = []
    for value in values:
        if len(value) > _LONG_OUTPUT:
            out.append("#" + stable_hash(normalize_text(value), digest_size=8))
        else:
            out.append(normalise_label(value) or normalize_text(value))
    return tuple(out)


def task_check_inputs(record: Mapping) -> tuple[str, tuple]:
    """``(task, summary)``: the little a task's ``TaskStats`` needs from one record."""
    languages = tuple(
        (field, value)
        for field in LANGUAGE_FIELDS
        for value in (record.get(field) or [])
        if value is not None
    )
    outputs = _output_values(record)
    summary = (
        not (record.get("input") or "").strip(),
        not outputs,
        outputs,
        normalise_label(record.get("label")),
        languages,
        _location(record),
    )
    return task_key(record), summary


def _bounded_min(items: Iterable, k: int) -> list:
    return sorted(set(items))[:k]


class TaskStats:
    """Mergeable per-task counts behind every check except duplicates."""

    def __init__(self) -> None:
        self.n = 0
        self.n_empty_input = 0
        self.n_empty_output = 0
        self.outputs: dict[str, int] | None = {}  # normalised output values (flattened)
        self.labels: dict[str, int] | None = {}
        self.languages: dict[tuple[str, str], int] = {}  # (field, declared value) -> records
        self.n_no_language = 0
        self.empty_input_at: list[tuple] = []  # smallest locations, as evidence
        self.empty_output_at: list[tuple] = []

    def add(self, summary: tuple, config: TaskCheckConfig) -> None:
        empty_input, empty_output, outputs, label, languages, location = summary
        self.n += 1
        if empty_input:
            self.n_empty_input += 1
            self.empty_input_at = _bounded_min(
                [*self.empty_input_at, tuple(location)], config.max_evidence
            )
        if empty_output:
            self.n_empty_output += 1
            self.empty_output_at = _bounded_min(
                [*self.empty_output_at, tuple(location)], config.max_evidence
            )
        if self.outputs is not None:
            for value in outputs:
                self.outputs[value] = self.outputs.get(value, 0) + 1
            if len(self.outputs) > _MAX_TRACKED:
                self.outputs = None
        if label is not None and self.labels is not None:
            self.labels[label] = self.labels.get(label, 0) + 1
            if len(self.labels) > _MAX_TRACKED:
                self.labels = None
        if not languages:
            self.n_no_language += 1
        for pair in set(languages):
            self.languages[pair] = self.languages.get(pair, 0) + 1

    def merge(self, other: TaskStats, config: TaskCheckConfig) -> None:
        self.n += other.n
        self.n_empty_input += other.n_empty_input
        self.n_empty_output += other.n_empty_output
        self.n_no_language += other.n_no_language
        self.outputs = _merge_capped(self.outputs, other.outputs)
        self.labels = _merge_capped(self.labels, other.labels)
        for pair, count in other.languages.items():
            self.languages[pair] = self.languages.get(pair, 0) + count
        self.empty_input_at = _bounded_min(
            self.empty_input_at + other.empty_input_at, config.max_evidence
        )
        self.empty_output_at = _bounded_min(
            self.empty_output_at + other.empty_output_at, config.max_evidence
        )


def _merge_capped(a: dict | None, b: dict | None) -> dict | None:
    if a is None or b is None:
        return None
    for key, count in b.items():
        a[key] = a.get(key, 0) + count
    return None if len(a) > _MAX_TRACKED else a


def input_key_elements(
    record: Mapping, config: TaskCheckConfig, *, with_positives: bool = True
) -> list[tuple[tuple[str, str], tuple[int, int, str]]]:
    """``((task, input hash), (instances, positive examples, snippet))`` for one record.

    The instance's own input counts once; each positive example's input counts as "seen in
    the task's examples" (repeated on every record of the task: the combine only asks > 0).
    """
    task = task_key(record)
    out = []
    text = record.get("input") or ""
    if text.strip():
        out.append(((task, _input_hash(text)), (1, 0, _snippet(text, config))))
    if with_positives:
        for example in record.get("positive_examples") or []:
            example_input = (example or {}).get("input") or ""
            if example_input.strip():
                key = (task, _input_hash(example_input))
                out.append((key, (0, 1, _snippet(example_input, config))))
    return out


def _input_hash(text: str) -> str:
    return stable_hash(normalize_text(text), digest_size=8)


def _snippet(text: str, config: TaskCheckConfig) -> str:
    """The text, or its head and tail (prompts share heads; their ends tell them apart)."""
    flat = " ".join(text.split())
    limit = config.evidence_chars
    if len(flat) <= limit:
        return flat
    half = (limit - 1) // 2
    return flat[:half] + "…" + flat[-half:]


class InputKeyCombineFn(beam.CombineFn):
    """Per (task, input hash): summed (instances, positive examples) and the smallest snippet."""

    def create_accumulator(self):
        return (0, 0, None)

    def add_input(self, acc, element):
        return self.merge_accumulators([acc, element])

    def merge_accumulators(self, accumulators):
        n_inst, n_pos, snippet = 0, 0, None
        for i, p, s in accumulators:
            n_inst += i
            n_pos += p
            if s is not None and (snippet is None or s < snippet):
                snippet = s
        return (n_inst, n_pos, snippet)

    def extract_output(self, acc):
        return acc


def is_reportable(counts: tuple[int, int, str]) -> bool:
    """A (task, input) worth keeping: repeated among instances, or also a positive example."""
    n_inst, n_pos, _ = counts
    return n_inst > 1 or (n_inst > 0 and n_pos > 0)


class DuplicateStats:
    """Per task: repeated inputs and positive examples found among the instances."""

    def __init__(self) -> None:
        self.n_repeated_inputs = 0  # distinct inputs occurring more than once
        self.n_extra_records = 0  # records beyond the first of each repeated input
        self.n_positive_reused = 0  # distinct positive-example inputs found among instances
        self.n_positive_instances = 0  # instances carrying such an input
        self.repeated: list[tuple[int, str]] = []  # (-count, snippet), smallest first
        self.positives: list[str] = []

    def add(self, counts: tuple[int, int, str], config: TaskCheckConfig) -> None:
        n_inst, n_pos, snippet = counts
        if n_inst > 1:
            self.n_repeated_inputs += 1
            self.n_extra_records += n_inst - 1
            self.repeated = _bounded_min([*self.repeated, (-n_inst, snippet)], config.max_evidence)
        if n_inst > 0 and n_pos > 0:
            self.n_positive_reused += 1
            self.n_positive_instances += n_inst
            self.positives = _bounded_min([*self.positives, snippet], config.max_evidence)

    def merge(self, other: DuplicateStats, config: TaskCheckConfig) -> None:
        self.n_repeated_inputs += other.n_repeated_inputs
        self.n_extra_records += other.n_extra_records
        self.n_positive_reused += other.n_positive_reused
        self.n_positive_instances += other.n_positive_instances
        self.repeated = _bounded_min(self.repeated + other.repeated, config.max_evidence)
        self.positives = _bounded_min(self.positives + other.positives, config.max_evidence)


class TaskStatsCombineFn(beam.CombineFn):
    """Per task: ``task_check_inputs`` summaries -> ``TaskStats``."""

    def __init__(self, config: TaskCheckConfig) -> None:
        self._config = config

    def create_accumulator(self) -> TaskStats:
        return TaskStats()

    def add_input(self, acc: TaskStats, summary) -> TaskStats:
        acc.add(summary, self._config)
        return acc

    def merge_accumulators(self, accumulators) -> TaskStats:
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for acc in accumulators:
            merged.merge(acc, self._config)
        return merged

    def extract_output(self, acc: TaskStats) -> TaskStats:
        return acc


class DuplicateSummaryCombineFn(beam.CombineFn):
    """Per task: reportable (instances, positives, snippet) triples -> ``DuplicateStats``."""

    def __init__(self, config: TaskCheckConfig) -> None:
        self._config = config

    def create_accumulator(self) -> DuplicateStats:
        return DuplicateStats()

    def add_input(self, acc: DuplicateStats, counts) -> DuplicateStats:
        acc.add(counts, self._config)
        return acc

    def merge_accumulators(self, accumulators) -> DuplicateStats:
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for acc in accumulators:
            merged.merge(acc, self._config)
        return merged

    def extract_output(self, acc: DuplicateStats) -> DuplicateStats:
        return acc


def _finding(task: str, check: str, severity: str, value: float, evidence: str) -> dict:
    return {
        "task": task,
        "check": check,
        "severity": severity,
        "value": value,
        "evidence": evidence,
    }


def _where(locations: list[tuple]) -> str:
    return "; ".join(f"{f or '?'}#{i}" + (f" ({rid})" if rid else "") for f, i, rid in locations)


def _distribution(table: Mapping[str, int], limit: int = 8) -> str:
    items = sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{k!r}: {v}" for k, v in items[:limit])
    return shown + (f", … ({len(items) - limit} more)" if len(items) > limit else "")


def task_findings(
    task: str,
    stats: TaskStats | None,
    dups: DuplicateStats | None,
    config: TaskCheckConfig,
) -> list[dict]:
    """Every failed check of one task as a row (task, check, severity, value, evidence)."""
    rows: list[dict] = []
    if stats is None:
        return rows
    n = stats.n
    if dups is not None and dups.n_repeated_inputs:
        examples = "; ".join(f"{s!r} x{-c}" for c, s in dups.repeated)
        rows.append(
            _finding(
                task,
                DUPLICATE_INPUTS,
                ERROR,
                dups.n_extra_records,
                f"{dups.n_repeated_inputs} inputs occur more than once "
                f"({dups.n_extra_records} extra of {n} records), e.g. {examples}",
            )
        )
    if dups is not None and dups.n_positive_reused:
        rows.append(
            _finding(
                task,
                POSITIVE_IN_INSTANCES,
                ERROR,
                dups.n_positive_instances,
                f"{dups.n_positive_reused} positive-example inputs reappear as "
                f"{dups.n_positive_instances} instances, e.g. "
                + "; ".join(repr(s) for s in dups.positives),
            )
        )
    outputs = stats.outputs
    if outputs is not None and n > 1 and len(outputs) == 1:
        (value,) = outputs
        rows.append(
            _finding(task, SINGLE_OUTPUT, ERROR, 1, f"all {n} instances have the output {value!r}")
        )
    labels = stats.labels
    if labels is not None and len(labels) == 1 and (outputs is None or len(outputs) > 1):
        ((label, count),) = labels.items()
        if count > 1:
            rows.append(
                _finding(
                    task,
                    SINGLE_OUTPUT,
                    ERROR,
                    1,
                    f"all {count} labelled instances have the label {label!r} "
                    f"(written {len(outputs) if outputs else 'many'} ways)",
                )
            )
    classes = stats.labels if stats.labels else outputs
    if classes is not None and 2 <= len(classes) <= config.balance_max_classes:
        entropy = normalized_entropy([classes[k] for k in sorted(classes)])
        if entropy is not None and entropy <= config.min_label_entropy:
            source = "labels" if stats.labels else "outputs"
            rows.append(
                _finding(
                    task,
                    LABEL_IMBALANCE,
                    WARNING,
                    entropy,
                    f"normalised entropy {entropy:.3f} <= {config.min_label_entropy} over "
                    f"{source}: {_distribution(classes)}",
                )
            )
    if stats.n_empty_input:
        rows.append(
            _finding(
                task,
                EMPTY_INPUT,
                ERROR,
                stats.n_empty_input,
                f"{stats.n_empty_input} of {n} instances have an empty input, e.g. "
                + _where(stats.empty_input_at),
            )
        )
    if stats.n_empty_output:
        rows.append(
            _finding(
                task,
                EMPTY_OUTPUT,
                ERROR,
                stats.n_empty_output,
                f"{stats.n_empty_output} of {n} instances have an empty output, e.g. "
                + _where(stats.empty_output_at),
            )
        )
    if n < config.min_instances:
        rows.append(_finding(task, TOO_FEW, WARNING, n, f"{n} instances < {config.min_instances}"))
    if n > config.max_instances:
        rows.append(_finding(task, TOO_MANY, WARNING, n, f"{n} instances > {config.max_instances}"))
    unknown = sorted(
        {(field, value) for field, value in stats.languages if not is_known_language(value)}
    )
    if unknown:
        rows.append(
            _finding(
                task,
                UNKNOWN_LANGUAGE,
                WARNING,
                len(unknown),
                "not ISO 639 names: " + ", ".join(f"{f}={v!r}" for f, v in unknown),
            )
        )
    if stats.n_no_language:
        rows.append(
            _finding(
                task,
                MISSING_LANGUAGE,
                INFO,
                stats.n_no_language,
                f"{stats.n_no_language} of {n} instances declare no language "
                f"(fields: {', '.join(LANGUAGE_FIELDS)})",
            )
        )
    return rows


def check_tasks(records: Iterable[Mapping], config: TaskCheckConfig) -> list[dict]:
    """Plain-Python oracle of the Beam task checks: findings sorted by (task, check)."""
    stats: dict[str, TaskStats] = {}
    keyed: dict[tuple[str, str], tuple[int, int, str]] = {}
    combine = InputKeyCombineFn()
    for record in records:
        task, summary = task_check_inputs(record)
        stats.setdefault(task, TaskStats()).add(summary, config)
        for key, counts in input_key_elements(record, config):
            keyed[key] = combine.merge_accumulators([keyed.get(key, (0, 0, None)), counts])
    dups: dict[str, DuplicateStats] = {}
    for (task, _), counts in sorted(keyed.items()):
        if is_reportable(counts):
            dups.setdefault(task, DuplicateStats()).add(counts, config)
    rows = []
    for task in sorted(stats):
        rows.extend(task_findings(task, stats[task], dups.get(task), config))
    return sorted(rows, key=lambda r: (r["task"], r["check"]))
