"""The mixture recipe: every number of a Flan-style training mixture, frozen and validated.

A recipe says how the kept corpus becomes a training mixture: which submixture each record
belongs to (by source and task name), the per-task cap and rate of each submixture, the format
proportions (zero-shot / few-shot / chain-of-thought), answer options in the prompt or not, the
input-inversion rate, templates per task, few-shot bounds, per-source weights, the held-out
split and the seed. Two presets ship beside this module (``presets/lecture.yaml``,
``presets/flan2022.yaml``), each number annotated with where it comes from.

    recipe = load_recipe("lecture")          # a preset name, or a path to a YAML file
    recipe.fingerprint()                      # short stable hash for the manifest

Errors name the file and the key path (``formats: proportions must sum to 1``, ``unknown key
'cpa' in submixtures[1]``). Nested values may be given as dataclasses, mappings or tuples of
``(key, value)`` pairs, so ``MixtureRecipe(**yaml_mapping)`` works as well as ``load_recipe``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from transforms.text import stable_hash

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
FORMATS = ("zero_shot", "few_shot", "cot")
TARGETS = ("none", "tasks", "templates", "languages")
_TOLERANCE = 1e-6


class RecipeError(ValueError):
    """The recipe is invalid; the message names the file and the key.

    (The dataclasses themselves raise ValueError for bad values and TypeError for bad types;
    ``load_recipe``/``recipe_from_dict`` turn both into a RecipeError naming the origin.)"""


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class FormatMix:
    """Share of each prompt format; the three shares sum to 1."""

    zero_shot: float = 0.5
    few_shot: float = 0.25
    cot: float = 0.25

    def __post_init__(self) -> None:
        for name in FORMATS:
            _fraction(name, getattr(self, name))
        total = self.zero_shot + self.few_shot + self.cot
        if abs(total - 1.0) > _TOLERANCE:
            raise ValueError(
                f"proportions must sum to 1, got {total:g} (zero_shot {self.zero_shot:g} + "
                f"few_shot {self.few_shot:g} + cot {self.cot:g})"
            )

    def share(self, name: str) -> float:
        return float(getattr(self, name))


@dataclass(frozen=True, kw_only=True)
class FewShot:
    """How many exemplars a few-shot prompt gets, and how long it may be."""

    min_k: int = 2
    max_k: int = 2
    max_prompt_chars: int = 7680
    pool_size: int = 16  # exemplar candidates kept per task (a bounded, hash-seeded reservoir)

    def __post_init__(self) -> None:
        _positive("min_k", self.min_k)
        _positive("max_k", self.max_k)
        if self.max_k < self.min_k:
            raise ValueError(f"max_k ({self.max_k}) must be >= min_k ({self.min_k})")
        _positive("max_prompt_chars", self.max_prompt_chars)
        _positive("pool_size", self.pool_size)
        if self.pool_size < self.max_k + 1:
            raise ValueError("pool_size must exceed max_k (a record is never its own exemplar)")


@dataclass(frozen=True, kw_only=True)
class Inversion:
    """Input inversion: an extra row asking for the input given the output."""

    rate: float = 0.1  # inverted rows per included record, made from the eligible ones
    min_output_tokens: int = 3  # shorter outputs are labels, not text to invert

    def __post_init__(self) -> None:
        _fraction("rate", self.rate)
        _positive("min_output_tokens", self.min_output_tokens)


@dataclass(frozen=True, kw_only=True)
class Submixture:
    """A group of tasks sharing a cap and a rate (Flan 2022: FLAN, T0, NIv2, CoT, Dialog)."""

    name: str
    sources: tuple[str, ...] = ("*",)  # glob patterns on record["source"]
    tasks: tuple[str, ...] = ("*",)  # glob patterns on record["task"]
    cap: int | None = 30_000  # maximum records per task (None: no cap)
    rate: float = 1.0  # rate of the submixture among submixtures (normalised)
    formats: FormatMix | None = None  # None: the recipe's
    answer_options: float | None = None  # None: the recipe's
    inversion_rate: float | None = None  # None: the recipe's inversion.rate

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("name must be a non-empty string")
        for key in ("sources", "tasks"):
            value = getattr(self, key)
            if isinstance(value, str):
                value = (value,)
                object.__setattr__(self, key, value)
            if not value or not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"{key} must be a non-empty list of glob patterns")
            object.__setattr__(self, key, tuple(value))
        if self.cap is not None:
            _positive("cap", self.cap)
        _positive_number("rate", self.rate)
        object.__setattr__(self, "formats", _coerce(self.formats, FormatMix, "formats"))
        if self.answer_options is not None:
            _fraction("answer_options", self.answer_options)
        if self.inversion_rate is not None:
            _fraction("inversion_rate", self.inversion_rate)

    def matches(self, source: str | None, task: str | None) -> bool:
        return _any_match(self.sources, source or "") and _any_match(self.tasks, task or "")


@dataclass(frozen=True, kw_only=True)
class Decontamination:
    """Which training records count as copies of evaluation records."""

    exact: bool = True  # identical normalised text
    minhash: bool = True  # MinHash/LSH near-duplicates, verified by estimated Jaccard
    threshold: float = 0.8  # estimated Jaccard at or above which a pair is a near-duplicate
    num_perm: int = 64
    word_n: int = 3  # word shingles for space-delimited text
    char_n: int = 5  # character shingles for scripts without spaces
    min_tokens: int = 5  # shorter texts are too generic to call contamination
    max_comparisons: int = 64  # evaluation members checked per bucket (bounds a huge bucket)

    def __post_init__(self) -> None:
        _fraction("threshold", self.threshold, allow_zero=False)
        _positive("num_perm", self.num_perm)
        _positive("word_n", self.word_n)
        _positive("char_n", self.char_n)
        _positive("min_tokens", self.min_tokens)
        _positive("max_comparisons", self.max_comparisons)


@dataclass(frozen=True, kw_only=True)
class Heldout:
    """The evaluation split: what generalisation it measures, and how big it is."""

    target: str = "none"  # none | tasks | templates | languages
    fraction: float = 0.1  # share of tasks / templates / languages held out
    tasks: tuple[str, ...] = ()  # explicit evaluation tasks (target: tasks)
    languages: tuple[str, ...] = ()  # explicit evaluation languages (target: languages)
    eval_cap: int | None = None  # maximum evaluation records per task (None: all)
    decontaminate: Decontamination = field(default_factory=Decontamination)

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {list(TARGETS)}, got {self.target!r}")
        _fraction("fraction", self.fraction)
        if self.fraction >= 1.0:
            raise ValueError("fraction must be < 1 (something must remain for training)")
        for key in ("tasks", "languages"):
            value = getattr(self, key)
            value = (value,) if isinstance(value, str) else tuple(value)
            if not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"{key} must be a list of names")
            object.__setattr__(self, key, value)
        if self.eval_cap is not None:
            _positive("eval_cap", self.eval_cap)
        object.__setattr__(
            self, "decontaminate", _coerce(self.decontaminate, Decontamination, "decontaminate")
        )
        if self.target == "languages" and not self.languages and self.fraction == 0:
            raise ValueError("target 'languages' needs languages or a fraction > 0")
        if self.target == "tasks" and not self.tasks and self.fraction == 0:
            raise ValueError("target 'tasks' needs tasks or a fraction > 0")
        if self.target == "templates" and self.fraction == 0:
            raise ValueError("target 'templates' needs a fraction > 0")


@dataclass(frozen=True, kw_only=True)
class MixtureRecipe:
    """Everything the mixture stage decides, in one frozen, validated, fingerprinted value."""

    name: str = "custom"
    seed: int = 0
    templates_per_task: int = 10
    temperature: float = 1.0  # seqio mixing_rate_num_examples: rate ** (1 / temperature)
    scale: float = 1.0  # seqio: multiplies the example count before the cap
    budget: int | None = None  # training rows to aim for; None: sum over tasks of min(n, cap)
    formats: FormatMix = field(default_factory=FormatMix)
    answer_options: float = 0.5  # share of classification prompts that list the options
    inversion: Inversion = field(default_factory=Inversion)
    few_shot: FewShot = field(default_factory=FewShot)
    source_weights: tuple[tuple[str, float], ...] = ()  # source -> weight (default 1.0)
    submixtures: tuple[Submixture, ...] = field(default_factory=lambda: (Submixture(name="all"),))
    heldout: Heldout = field(default_factory=Heldout)
    max_stratum: int = 20_000  # records per template-assignment group (bounds worker memory)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("name must be a non-empty string")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise TypeError(f"seed must be an integer, got {self.seed!r}")
        _positive("templates_per_task", self.templates_per_task)
        _positive_number("temperature", self.temperature)
        _positive_number("scale", self.scale)
        if self.budget is not None:
            _positive("budget", self.budget)
        _fraction("answer_options", self.answer_options)
        _positive("max_stratum", self.max_stratum)
        object.__setattr__(self, "formats", _coerce(self.formats, FormatMix, "formats"))
        object.__setattr__(self, "inversion", _coerce(self.inversion, Inversion, "inversion"))
        object.__setattr__(self, "few_shot", _coerce(self.few_shot, FewShot, "few_shot"))
        object.__setattr__(self, "heldout", _coerce(self.heldout, Heldout, "heldout"))
        weights = _pairs(self.source_weights, "source_weights")
        for source, weight in weights:
            if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
                raise ValueError(f"source_weights.{source}: weight must be >= 0, got {weight!r}")
        object.__setattr__(self, "source_weights", tuple(sorted((s, float(w)) for s, w in weights)))
        subs = self.submixtures
        if isinstance(subs, (Mapping, Submixture)):
            subs = (subs,)
        subs = tuple(_coerce(s, Submixture, f"submixtures[{i}]") for i, s in enumerate(subs))
        if not subs:
            raise ValueError("submixtures: at least one submixture is needed")
        names = [s.name for s in subs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"submixtures: duplicate names {duplicates}")
        object.__setattr__(self, "submixtures", subs)

    # -- lookups used on workers (plain attribute access, no registries) --

    def submixture_for(self, source: str | None, task: str | None) -> Submixture | None:
        """The first submixture whose patterns match, or None."""
        for sub in self.submixtures:
            if sub.matches(source, task):
                return sub
        return None

    def submixture(self, name: str) -> Submixture:
        for sub in self.submixtures:
            if sub.name == name:
                return sub
        raise KeyError(name)

    def source_weight(self, source: str | None) -> float:
        return dict(self.source_weights).get(source or "", 1.0)

    def formats_for(self, sub: Submixture) -> FormatMix:
        return sub.formats or self.formats

    def answer_options_for(self, sub: Submixture) -> float:
        return self.answer_options if sub.answer_options is None else sub.answer_options

    def inversion_rate_for(self, sub: Submixture) -> float:
        return self.inversion.rate if sub.inversion_rate is None else sub.inversion_rate

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["source_weights"] = dict(self.source_weights)
        return out

    def fingerprint(self) -> str:
        """Short stable hash of every setting, for manifests."""
        return stable_hash(json.dumps(self.to_dict(), sort_keys=True), digest_size=6)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str) -> MixtureRecipe:
    """A preset by name (``lecture``, ``flan2022``) or a YAML file by path."""
    path = PRESETS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        path = Path(name_or_path)
        if not path.is_file():
            raise RecipeError(
                f"{name_or_path}: neither a preset ({', '.join(preset_names())}) nor a file"
            )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise RecipeError(f"{path}: {error}") from error
    return recipe_from_dict(raw, origin=str(path))


def recipe_from_dict(raw: Mapping | None, origin: str = "<recipe>") -> MixtureRecipe:
    """Validate a parsed YAML mapping; errors name ``origin`` and the key path."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise RecipeError(f"{origin}: the recipe must be a mapping")
    try:
        return _coerce(dict(raw), MixtureRecipe, "")
    except (TypeError, ValueError) as error:
        raise RecipeError(f"{origin}: {error}") from None


# Nested sections per class (``few_shot`` is a section of the recipe but a share in FormatMix).
_NESTED = {
    MixtureRecipe: {
        "formats": FormatMix,
        "inversion": Inversion,
        "few_shot": FewShot,
        "heldout": Heldout,
    },
    Submixture: {"formats": FormatMix},
    Heldout: {"decontaminate": Decontamination},
}


def _coerce(value, cls, path: str):
    """A ``cls`` from an instance, a mapping or ``(key, value)`` pairs; errors carry ``path``."""
    if value is None or isinstance(value, cls):
        return value
    items = _pairs(value, path or cls.__name__)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(k for k, _ in items if k not in known)
    where = f" in {path}" if path else ""
    if unknown:
        raise ValueError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
            f"{where}; known: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for key, item in items:
        sub_path = f"{path}.{key}" if path else key
        nested = _NESTED.get(cls, {})
        if key in nested and item is not None:
            item = _coerce(item, nested[key], sub_path)
        elif key == "submixtures" and isinstance(item, (list, tuple)):
            item = tuple(_coerce(s, Submixture, f"{sub_path}[{i}]") for i, s in enumerate(item))
        elif isinstance(item, list):
            item = tuple(item)
        kwargs[key] = item
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        message = str(error)
        if message.startswith(("unknown key", "submixtures", "source_weights")) or not path:
            raise
        raise type(error)(f"{path}: {message}") from None


def _pairs(value, path: str) -> list[tuple[str, object]]:
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 for p in value
    ):
        items = [tuple(p) for p in value]
    else:
        raise TypeError(f"{path} must be a mapping, got {type(value).__name__}")
    for key, _ in items:
        if not isinstance(key, str):
            raise TypeError(f"{path}: keys must be strings, got {key!r}")
    return items


def _any_match(patterns: tuple[str, ...], value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def _positive(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _positive_number(name: str, value) -> None:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a number > 0, got {value!r}")


def _fraction(name: str, value, *, allow_zero: bool = True) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value <= 1):
        raise ValueError(f"{name} must lie in {'[' if allow_zero else '('}0, 1], got {value!r}")
