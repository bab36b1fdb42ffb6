"""Mergeable per-shard counts behind the leakage statistics, and their Beam CombineFn.

A shard is a task x template, a task, or a source file. Per shard we count records, labels,
template-token presence per labelled record and token-label pairs, plus what the association,
"label spelled in the template" and template-only baseline need. Every field is an integer
count summed on merge, so the result is exact on any runner, any sharding, any merge order.

Template tokens are the Unicode-aware ``transforms.text.tokens`` of the instruction text (the
record's ``template`` when rendered, else its ``definition``), never of the instance input.

Records of one template share one token set, so tokens are counted per distinct
(token set, label, fold) "signature" and expanded only when statistics are computed: adding a
record is O(1) however long its instruction. The fold (a hash of the record id into
``n_folds``) lets the template-only baseline be cross-validated from counts alone. Past
``max_signatures`` distinct signatures in a shard (e.g. few-shot prompts where every template
differs) the signatures are expanded into token counts for good; token statistics stay exact,
only the baseline (which needs the signatures) is then unavailable. Whether that happens
depends on the shard's content, not on merge order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import apache_beam as beam

from transforms.labels import normalise_label, task_key
from transforms.text import stable_hash, tokens

TASK_TEMPLATE = "task_template"
TASK = "task"
FILE = "file"

ShardKey = tuple[str, ...]  # (TASK_TEMPLATE, task, template) | (TASK, task) | (FILE, path)


class RecordFeatures(NamedTuple):
    """What one record contributes to a shard."""

    label: str | None  # normalised; None for unlabelled (generation) records
    template: str  # template key: template_id, else a hash of the template text
    signature: tuple[str, ...]  # sorted distinct template tokens
    spelled: tuple[str, ...]  # labels (own or of the label space) spelled in the template
    fold: int  # cross-validation fold of the baseline, from the record id


def template_text(record: Mapping) -> str:
    """The instruction text a record was shown with: its template, else its definition."""
    return record.get("template") or record.get("definition") or ""


def template_key(record: Mapping, text: str) -> str:
    """The template's id, else a short hash of its text ("(none)" when there is no text)."""
    if record.get("template_id"):
        return str(record["template_id"])
    return "#" + stable_hash(text, digest_size=6) if text else "(none)"


def fold_of(record: Mapping, n_folds: int) -> int:
    """The record's cross-validation fold: a stable hash of its id, else of its content (not
    of its location, so the same data gives the same folds wherever it is read from)."""
    key = record.get("id") or stable_hash(
        str(record.get("task")), str(record.get("input")), str(record.get("output"))
    )
    return int(stable_hash(key, digest_size=4), 16) % n_folds


def shard_keys(record: Mapping, template: str, *, by_file: bool = True) -> list[ShardKey]:
    """The shards a record belongs to."""
    task = task_key(record)
    keys: list[ShardKey] = [(TASK_TEMPLATE, task, template), (TASK, task)]
    if by_file and record.get("source_file"):
        keys.append((FILE, str(record["source_file"])))
    return keys


def shard_name(key: ShardKey) -> str:
    """Readable shard id used in the output tables."""
    if key[0] == TASK_TEMPLATE:
        return f"task={key[1]}|template={key[2]}"
    if key[0] == TASK:
        return f"task={key[1]}"
    return f"file={key[1]}"


def spelled_labels(template_tokens: Sequence[str], candidates: Iterable[str]) -> tuple[str, ...]:
    """Candidate labels whose tokens occur contiguously in the template's tokens."""
    found = []
    n = len(template_tokens)
    for label in candidates:
        label_tokens = tokens(label)
        k = len(label_tokens)
        if k == 0 or k > n:
            continue
        first = label_tokens[0]
        for i in range(n - k + 1):
            if template_tokens[i] == first and list(template_tokens[i : i + k]) == label_tokens:
                found.append(label)
                break
    return tuple(sorted(found))


class FeatureExtractor:
    """Record -> ``RecordFeatures``, tokenising each distinct template text once.

    Thousands of instances share one instruction, so the tokens and the spelled-label check are
    cached per text (bounded; cleared when full). Lives on one worker: built in ``setup``.
    """

    def __init__(self, n_folds: int = 5, max_cache: int = 4096) -> None:
        self._n_folds = n_folds
        self._max_cache = max_cache
        self._templates: dict[str, tuple[list[str], tuple[str, ...]]] = {}
        self._spelled: dict[tuple[str, frozenset], tuple[str, ...]] = {}
        self._spaces: dict[tuple, frozenset] = {}

    def __call__(self, record: Mapping) -> RecordFeatures:
        label = normalise_label(record.get("label"))
        text = template_text(record)
        cached = self._templates.get(text)
        if cached is None:
            toks = tokens(text)
            cached = (toks, tuple(sorted(set(toks))))
            if len(self._templates) >= self._max_cache:
                self._templates.clear()
            self._templates[text] = cached
        toks, signature = cached
        space = tuple(record.get("label_space") or ())
        normalised = self._spaces.get(space)
        if normalised is None:
            normalised = frozenset(normalise_label(x) for x in space) - {None}
            if len(self._spaces) >= self._max_cache:
                self._spaces.clear()
            self._spaces[space] = normalised
        candidates = normalised if label is None or label in normalised else normalised | {label}
        spelled_key = (text, candidates)
        spelled = self._spelled.get(spelled_key)
        if spelled is None:
            spelled = spelled_labels(toks, sorted(candidates))
            if len(self._spelled) >= self._max_cache:
                self._spelled.clear()
            self._spelled[spelled_key] = spelled
        fold = fold_of(record, self._n_folds) if label is not None else 0
        return RecordFeatures(label, template_key(record, text), signature, spelled, fold)


def record_features(record: Mapping, n_folds: int = 5) -> RecordFeatures:
    """Uncached ``FeatureExtractor`` for one record (tests, small inputs)."""
    return FeatureExtractor(n_folds, max_cache=1)(record)


def _inc(table: dict, key, by: int = 1) -> None:
    table[key] = table.get(key, 0) + by


def _add_all(into: dict, other: Mapping) -> None:
    for key, count in other.items():
        into[key] = into.get(key, 0) + count


class ShardCounts:
    """Exact, mergeable counts of one shard (see the module docstring)."""

    def __init__(self) -> None:
        self.n_records = 0  # every record, labelled or not
        self.n_unlabelled = 0  # skipped by the label statistics
        self.labels: dict[str, int] = {}
        self.templates: dict[str, int] = {}  # template key -> records (labelled or not)
        self.template_labels: dict[tuple[str, str], int] = {}
        self.own_spelled: dict[str, int] = {}  # label -> its records whose template spells it
        self.other_spelled: dict[str, int] = {}  # label -> other labels' records spelling it
        self.signatures: dict[tuple[tuple[str, ...], str, int], int] = {}  # until overflow
        self.overflow = False
        self.flushed_tokens: dict[str, int] = {}  # token presence of flushed signatures
        self.flushed_pairs: dict[tuple[str, str], int] = {}  # (token, label) of the same

    @property
    def n_labelled(self) -> int:
        return self.n_records - self.n_unlabelled

    def add(self, features: RecordFeatures, max_signatures: int) -> None:
        self.n_records += 1
        _inc(self.templates, features.template)
        label = features.label
        if label is None:
            self.n_unlabelled += 1
            return
        _inc(self.labels, label)
        _inc(self.template_labels, (features.template, label))
        for spelled in features.spelled:
            _inc(self.own_spelled if spelled == label else self.other_spelled, spelled)
        if self.overflow:
            self._add_tokens(features.signature, label, 1)
        else:
            _inc(self.signatures, (features.signature, label, features.fold))
            if len(self.signatures) > max_signatures:
                self._flush()

    def merge(self, other: ShardCounts, max_signatures: int) -> None:
        self.n_records += other.n_records
        self.n_unlabelled += other.n_unlabelled
        _add_all(self.labels, other.labels)
        _add_all(self.templates, other.templates)
        _add_all(self.template_labels, other.template_labels)
        _add_all(self.own_spelled, other.own_spelled)
        _add_all(self.other_spelled, other.other_spelled)
        _add_all(self.flushed_tokens, other.flushed_tokens)
        _add_all(self.flushed_pairs, other.flushed_pairs)
        if self.overflow or other.overflow:
            for (signature, label, _), count in other.signatures.items():
                self._add_tokens(signature, label, count)
            self._flush()
        else:
            _add_all(self.signatures, other.signatures)
            if len(self.signatures) > max_signatures:
                self._flush()

    def _add_tokens(self, signature: tuple[str, ...], label: str, count: int) -> None:
        for token in signature:
            _inc(self.flushed_tokens, token, count)
            _inc(self.flushed_pairs, (token, label), count)

    def _flush(self) -> None:
        for (signature, label, _), count in self.signatures.items():
            self._add_tokens(signature, label, count)
        self.signatures = {}
        self.overflow = True

    def token_tables(self) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        """``(token -> labelled records with it, (token, label) -> records)``, exact."""
        token_counts = dict(self.flushed_tokens)
        pairs = dict(self.flushed_pairs)
        for (signature, label, _), count in self.signatures.items():
            for token in signature:
                _inc(token_counts, token, count)
                _inc(pairs, (token, label), count)
        return token_counts, pairs

    def canonical(self) -> dict:
        """Order-free content (token tables expanded): equal iff the counts are equal."""
        token_counts, pairs = self.token_tables()
        return {
            "n_records": self.n_records,
            "n_unlabelled": self.n_unlabelled,
            "labels": sorted(self.labels.items()),
            "templates": sorted(self.templates.items()),
            "template_labels": sorted(self.template_labels.items()),
            "own_spelled": sorted(self.own_spelled.items()),
            "other_spelled": sorted(self.other_spelled.items()),
            "overflow": self.overflow,
            "signatures": sorted(self.signatures.items()),
            "token_counts": sorted(token_counts.items()),
            "token_labels": sorted(pairs.items()),
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShardCounts) and self.canonical() == other.canonical()

    def __repr__(self) -> str:
        return (
            f"ShardCounts(n={self.n_records}, unlabelled={self.n_unlabelled}, "
            f"labels={self.labels}, templates={len(self.templates)}, overflow={self.overflow})"
        )


def count_shards(
    records: Iterable[Mapping],
    *,
    by_file: bool = True,
    max_signatures: int = 10_000,
    n_folds: int = 5,
) -> dict[ShardKey, ShardCounts]:
    """Plain-Python oracle of the Beam combine: every shard's counts over ``records``."""
    extract = FeatureExtractor(n_folds)
    shards: dict[ShardKey, ShardCounts] = {}
    for record in records:
        features = extract(record)
        for key in shard_keys(record, features.template, by_file=by_file):
            shards.setdefault(key, ShardCounts()).add(features, max_signatures)
    return shards


class ShardCountsCombineFn(beam.CombineFn):
    """Per shard: ``RecordFeatures`` -> ``ShardCounts``."""

    def __init__(self, max_signatures: int) -> None:
        self._max_signatures = max_signatures

    def create_accumulator(self) -> ShardCounts:
        return ShardCounts()

    def add_input(self, acc: ShardCounts, features: RecordFeatures) -> ShardCounts:
        acc.add(RecordFeatures(*features), self._max_signatures)
        return acc

    def merge_accumulators(self, accumulators) -> ShardCounts:
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for acc in accumulators:
            merged.merge(acc, self._max_signatures)
        return merged

    def extract_output(self, acc: ShardCounts) -> ShardCounts:
        return acc
