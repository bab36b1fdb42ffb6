"""A record's label: the source's own, or derived for tasks whose outputs take few values.

Classification tasks carry ``label`` when the source states it. Many sources (SNI, P3, Flan)
only give the answer text; a task whose normalised outputs take at most ``max_distinct`` values
covering ``min_coverage`` of its records is treated as classification and those values become
its labels. Deciding that needs the whole task's output counts, so it is a CombineFn per task
(``LabelSpaceCombineFn``) whose result is applied to each record (``apply_label_space``).
Generation tasks get no label and are skipped (and counted) by the label statistics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import apache_beam as beam

from transforms.leakage_config import LabelConfig
from transforms.text import normalize_text, tokens

# Punctuation around an answer ("Yes.", '"positive"') is not part of the label.
_STRIP = " \t\n.!?,;:'\"`"
# Outputs longer than this many characters are never labels: skip the tokenizer for them.
_MAX_LABEL_CHARS = 200


class LabelSpace(NamedTuple):
    """A task's labels, most frequent first; ``derived`` when they came from outputs."""

    labels: tuple[str, ...]
    derived: bool


def normalise_label(text: object) -> str | None:
    """Case-folded, NFKC, whitespace-collapsed label without surrounding punctuation."""
    if text is None:
        return None
    value = normalize_text(str(text)).strip(_STRIP)
    return value or None


def task_key(record: Mapping) -> str:
    """The task a record belongs to ("" when the source has no task notion)."""
    return record.get("task") or ""


def output_value(record: Mapping) -> str | None:
    """The record's answer text: ``output``, else its first reference."""
    output = record.get("output")
    if output:
        return output
    references = record.get("references") or []
    return references[0] if references else None


def short_output(record: Mapping, config: LabelConfig) -> str | None:
    """The normalised output when it is short enough to be a label, else None."""
    text = output_value(record)
    if not text or len(text) > _MAX_LABEL_CHARS:
        return None
    value = normalise_label(text)
    if value is None or len(tokens(value)) > config.max_label_tokens:
        return None
    return value


def label_inputs(record: Mapping, config: LabelConfig) -> tuple[str, tuple[str | None, str | None]]:
    """``(task, (given label, short output))``: what the per-task label counts need."""
    return task_key(record), (normalise_label(record.get("label")), short_output(record, config))


class TaskLabelCounts:
    """Mergeable per-task counts of given labels and of short normalised outputs.

    Distinct values are tracked up to ``max_tracked_values``; past that the task cannot be
    classification under any threshold we allow, and the table is dropped (``None``). Whether a
    table overflows depends only on the set of values, never on merge order.
    """

    def __init__(self) -> None:
        self.n = 0  # records
        self.given: dict[str, int] | None = {}  # the source's labels
        self.outputs: dict[str, int] | None = {}  # short normalised outputs
        self.n_long = 0  # outputs missing, empty or too long to be a label

    def add(self, given: str | None, output: str | None, config: LabelConfig) -> None:
        self.n += 1
        if given is not None and self.given is not None:
            self.given[given] = self.given.get(given, 0) + 1
            if len(self.given) > config.max_tracked_values:
                self.given = None
        if output is None:
            self.n_long += 1
        elif self.outputs is not None:
            self.outputs[output] = self.outputs.get(output, 0) + 1
            if len(self.outputs) > config.max_tracked_values:
                self.outputs = None

    def merge(self, other: TaskLabelCounts, config: LabelConfig) -> None:
        self.n += other.n
        self.n_long += other.n_long
        self.given = _merge_capped(self.given, other.given, config.max_tracked_values)
        self.outputs = _merge_capped(self.outputs, other.outputs, config.max_tracked_values)


def _merge_capped(a: dict | None, b: dict | None, cap: int) -> dict | None:
    if a is None or b is None:
        return None
    for key, count in b.items():
        a[key] = a.get(key, 0) + count
    return None if len(a) > cap else a


def _by_count(table: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))


def derived_labels(counts: TaskLabelCounts, config: LabelConfig) -> tuple[str, ...] | None:
    """The task's labels when its outputs take few values covering most records, else None."""
    if not config.derive or counts.outputs is None or counts.n < config.min_records:
        return None
    top = _by_count(counts.outputs)[: config.max_distinct]
    if not top or sum(c for _, c in top) < config.min_coverage * counts.n:
        return None
    return tuple(value for value, _ in top)


def label_space(counts: TaskLabelCounts, config: LabelConfig) -> LabelSpace | None:
    """Given labels when the source has them, else derived ones, else None (generation)."""
    if counts.given:
        top = _by_count(counts.given)[: config.max_label_space]
        return LabelSpace(tuple(v for v, _ in top), derived=False)
    derived = derived_labels(counts, config)
    return None if derived is None else LabelSpace(derived, derived=True)


def apply_label_space(record: dict, spaces: Mapping[str, LabelSpace]) -> tuple[dict, str]:
    """A copy of the record with a derived label and label space filled in, and what happened.

    Status: "given" (the source's label), "derived", "outside_space" (a classification task's
    rare output that is none of its labels: left unlabelled) or "unlabelled" (generation).
    """
    space = spaces.get(task_key(record))
    given = normalise_label(record.get("label"))
    if space is None:
        return record, "given" if given else "unlabelled"
    out = dict(record)
    if not out.get("label_space"):
        out["label_space"] = list(space.labels)
    if given:
        return out, "given"
    if not space.derived:
        return out, "unlabelled"
    value = normalise_label(output_value(record))
    if value in space.labels:
        out["label"] = value
        return out, "derived"
    return out, "outside_space"


class LabelSpaceCombineFn(beam.CombineFn):
    """Per task: ``(given label, short output)`` pairs -> ``TaskLabelCounts``."""

    def __init__(self, config: LabelConfig) -> None:
        self._config = config

    def create_accumulator(self) -> TaskLabelCounts:
        return TaskLabelCounts()

    def add_input(self, acc: TaskLabelCounts, element) -> TaskLabelCounts:
        given, output = element
        acc.add(given, output, self._config)
        return acc

    def merge_accumulators(self, accumulators) -> TaskLabelCounts:
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for acc in accumulators:
            merged.merge(acc, self._config)
        return merged

    def extract_output(self, acc: TaskLabelCounts) -> TaskLabelCounts:
        return acc
