"""Every threshold of the leakage audit and of the task checks, frozen and validated when built.

The audit is the lecture's instruction-QA workflow made a pipeline stage: PMI between template
tokens and labels, template-label association, a template-only baseline and the checks the
Super-NaturalInstructions maintainers run on each submission (``src/test_all.py`` there). The
defaults below are theirs and the lecture's; ``fingerprint`` goes into the manifest so a reader
knows what was audited.

Note: the lecture's "flag a token with PMI > 0.5 for a single label" only makes sense for
*normalised* PMI (NPMI, in [-1, 1]); raw PMI is unbounded and depends on the label prior. The
threshold here is on NPMI.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from transforms.text import stable_hash


@dataclass(frozen=True, kw_only=True)
class LabelConfig:
    """When a task without a ``label`` column counts as classification, and its labels."""

    derive: bool = True  # derive labels for tasks whose outputs take few distinct values
    max_distinct: int = 10  # at most this many distinct normalised outputs ...
    min_coverage: float = 0.95  # ... covering at least this share of the task's records
    min_records: int = 10  # fewer records than this: never derive
    max_label_tokens: int = 8  # a longer output is never a label
    max_tracked_values: int = 1000  # distinct short outputs counted per task (bounded memory)
    max_label_space: int = 50  # labels kept per task for the "label spelled in template" check

    def __post_init__(self) -> None:
        _positive("max_distinct", self.max_distinct)
        _fraction("min_coverage", self.min_coverage, allow_zero=False)
        _positive("min_records", self.min_records)
        _positive("max_label_tokens", self.max_label_tokens)
        if self.max_tracked_values < self.max_distinct:
            raise ValueError("max_tracked_values must be >= max_distinct")
        _positive("max_label_space", self.max_label_space)


@dataclass(frozen=True, kw_only=True)
class TaskCheckConfig:
    """The SNI maintainers' per-task checks (defaults from their ``test_all.py``)."""

    min_instances: int = 26  # SNI asserts "more than 25 instances"
    max_instances: int = 6500  # SNI asserts "at most 6.5k instances"
    min_label_entropy: float = 0.8  # normalised entropy below this: skewed labels
    balance_max_classes: int = 14  # SNI checks balance only below 15 distinct outputs
    max_evidence: int = 3  # examples quoted per finding
    evidence_chars: int = 80  # characters of each quoted example

    def __post_init__(self) -> None:
        _positive("min_instances", self.min_instances)
        if self.max_instances < self.min_instances:
            raise ValueError("max_instances must be >= min_instances")
        _fraction("min_label_entropy", self.min_label_entropy)
        if self.balance_max_classes < 2:
            raise ValueError("balance_max_classes must be >= 2")
        _positive("max_evidence", self.max_evidence)
        _positive("evidence_chars", self.evidence_chars)


@dataclass(frozen=True, kw_only=True)
class LeakageConfig:
    """Template-leakage statistics per shard (task x template, task, file)."""

    npmi_threshold: float = 0.5  # flag NPMI above this (normalised PMI, see module docstring)
    min_count: int = 5  # ... and at least this many records with the token and the label
    require_significance: bool = True  # ... and significant (Gardner z; baseline binomial z)
    alpha: float = 0.01  # significance level of those tests
    bonferroni: bool = True  # divide alpha by the number of token-label tests in the shard
    association_threshold: float = 0.5  # flag bias-corrected Cramér's V above this
    baseline_margin: float = 0.10  # flag a template-only baseline this far above majority
    spelled_threshold: float = 0.5  # share of a label's records whose template spells it
    nb_smoothing: float = 1.0  # Laplace smoothing of the naive-Bayes baseline
    nb_folds: int = 5  # cross-validation folds of the baseline (records hashed by id)
    max_signatures: int = 10_000  # distinct (template tokens, label) pairs kept per shard
    shard_by_file: bool = True  # also one shard per source file
    top_tokens: int = 10  # tokens quoted per shard in shards.parquet and the summary
    labels: LabelConfig = field(default_factory=LabelConfig)
    checks: TaskCheckConfig = field(default_factory=TaskCheckConfig)

    def __post_init__(self) -> None:
        if not -1.0 <= self.npmi_threshold <= 1.0:
            raise ValueError("npmi_threshold is a normalised PMI: it must lie in [-1, 1]")
        _positive("min_count", self.min_count)
        _fraction("alpha", self.alpha, allow_zero=False)
        _fraction("association_threshold", self.association_threshold)
        _fraction("baseline_margin", self.baseline_margin)
        _fraction("spelled_threshold", self.spelled_threshold, allow_zero=False)
        if self.nb_smoothing <= 0:
            raise ValueError("nb_smoothing must be > 0")
        if not isinstance(self.nb_folds, int) or self.nb_folds < 2:
            raise ValueError("nb_folds must be an integer >= 2")
        _positive("max_signatures", self.max_signatures)
        _positive("top_tokens", self.top_tokens)
        if not isinstance(self.labels, LabelConfig):
            raise TypeError("labels must be a LabelConfig")
        if not isinstance(self.checks, TaskCheckConfig):
            raise TypeError("checks must be a TaskCheckConfig")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """Short stable hash of every setting, for manifests."""
        return stable_hash(json.dumps(self.to_dict(), sort_keys=True), digest_size=6)


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _fraction(name: str, value: float, *, allow_zero: bool = True) -> None:
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value <= 1):
        raise ValueError(f"{name} must lie in {'[' if allow_zero else '('}0, 1], got {value!r}")
