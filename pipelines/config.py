"""The run configuration: one YAML file, one section per stage, validated when loaded.

Each section maps onto the frozen config dataclass of its stage; unknown sections or keys are
errors that name the file and the key. Lists become tuples (frozen configs stay hashable).

    ingest:   {max_record_bytes: 16777216, mapping: {input: text, output: label}}
    dedup:    {threshold: 0.7, num_perm: 128}
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import typing

import yaml
from apache_beam.io.filesystems import FileSystems

from transforms.text import stable_hash

# section name -> "module:ConfigClass"; modules are imported only when the section is used.
SECTIONS = {
    "ingest": "transforms.ingest:IngestConfig",
    "langid": "transforms.langid_config:LangIdConfig",
    "dedup": "transforms.dedup_config:DedupConfig",
    "rouge": "transforms.rouge_config:RougeConfig",
    "leakage": "transforms.leakage_config:LeakageConfig",
    "publish": "pipelines.publish_config:PublishConfig",
}
# The mixture section is a recipe: ``{preset: lecture}`` plus any overrides of its keys.
MIXTURE = "mixture"
DEFAULT_PRESET = "lecture"


class ConfigError(ValueError):
    """The configuration file is invalid; the message names the file and the key."""


def _freeze(value):
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _freeze(v)) for k, v in value.items())
    return value


def _section_class(name: str):
    module, cls = SECTIONS[name].split(":")
    return getattr(importlib.import_module(module), cls)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One config object per stage section (defaults for sections the file leaves out)."""

    sections: tuple[tuple[str, object], ...]

    def section(self, name: str):
        return dict(self.sections)[name]

    def as_dict(self) -> dict:
        return {name: dataclasses.asdict(cfg) for name, cfg in self.sections}

    def fingerprint(self) -> str:
        return stable_hash(json.dumps(self.as_dict(), sort_keys=True, default=str))[:12]


def _build_dataclass(cls, values: dict, where: str):
    """``cls(**values)``, recursing into nested config dataclasses, with errors naming keys."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    bad = sorted(set(values) - set(fields))
    if bad:
        raise ConfigError(f"unknown key(s) {bad} in '{where}'; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        hint = hints.get(key)
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build_dataclass(hint, value or {}, f"{where}.{key}")
        else:
            kwargs[key] = _freeze(value)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"section '{where}': {error}") from error


def build_config(raw: dict | None, origin: str = "<config>") -> RunConfig:
    """Validate a parsed YAML mapping into a RunConfig."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping of sections")
    unknown = sorted(set(raw) - set(SECTIONS) - {MIXTURE})
    if unknown:
        known = sorted([*SECTIONS, MIXTURE])
        raise ConfigError(f"{origin}: unknown section(s) {unknown}; known: {known}")
    sections = []
    for name in SECTIONS:
        try:
            config = _build_dataclass(_section_class(name), raw.get(name) or {}, name)
        except ConfigError as error:
            raise ConfigError(f"{origin}: {error}") from error
        sections.append((name, config))
    sections.append((MIXTURE, _build_recipe(raw.get(MIXTURE) or {}, origin)))
    return RunConfig(tuple(sections))


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _build_recipe(raw: dict, origin: str):
    """The mixture recipe: a preset (default ``lecture``) with the section's overrides."""
    from transforms import recipe

    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: section 'mixture' must be a mapping")
    overrides = dict(raw)
    preset = overrides.pop("preset", DEFAULT_PRESET)
    try:
        base = yaml.safe_load((recipe.PRESETS_DIR / f"{preset}.yaml").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{origin}: mixture preset {preset!r} unknown; known: {recipe.preset_names()}"
        ) from None
    try:
        return recipe.recipe_from_dict(_merge(base, overrides), origin=f"{origin}: mixture")
    except recipe.RecipeError as error:
        raise ConfigError(str(error)) from error


def load_config(path: str | None) -> RunConfig:
    """Read and validate a YAML config file; None gives every stage's defaults."""
    if path is None:
        return build_config({})
    try:
        with FileSystems.open(path) as handle:  # local, gs://, s3:// alike
            raw = yaml.safe_load(handle.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: {error}") from error
    return build_config(raw, origin=path)
