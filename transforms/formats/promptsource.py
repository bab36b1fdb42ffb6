"""PromptSource ``templates.yaml``: template sets for the mixture stage, not corpus records.

A file is ``{dataset, subset?, templates: {uuid: !Template {...}}}``; the custom tags
(``!Template``, ``!TemplateMetadata``) are read by a *safe* loader that maps any tag to a plain
dict/list/str -- no Python object is ever constructed from the file.

``load_template_sets(path_or_paths)`` returns one row per template::

    dataset, subset, task, template_id, name, p3_template, jinja, answer_choices,
    answer_choice_list, reference, metadata, source_file

``task`` is P3's ``dataset_subset`` name and ``p3_template`` the template name as P3 file names
spell it (non-word characters -> ``_``), so rendered P3 records (``prompt_completion``: task +
template_id) join to their template. ``answer_choice_list`` is ``answer_choices`` split on
``|||`` when it is a fixed list (None when absent or itself a Jinja expression).

``parse_file`` recognises these files as ``promptsource_templates`` and yields no records (a
malformed file is one ``malformed_yaml`` dead letter).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import yaml

FORMAT = "promptsource_templates"
DESCRIPTION = "PromptSource templates.yaml: template sets (no records; see load_template_sets)"

_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _TemplateLoader(_BASE_LOADER):
    """A safe loader that reads every custom tag as the plain node underneath."""


def _plain(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> object:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_TemplateLoader.add_multi_constructor("!", _plain)


class TemplateFileError(ValueError):
    """The YAML parses but is not a PromptSource templates file."""


_P3_NAME = re.compile(r"[^\w.]+")


def p3_name(text: str) -> str:
    """A PromptSource name as P3 file names spell it (runs of non-word characters -> ``_``)."""
    return _P3_NAME.sub("_", text)


def parse_templates(data: bytes | str, source_file: str) -> list[dict]:
    """Template rows of one templates.yaml text; raises ``yaml.YAMLError`` or
    ``TemplateFileError``."""
    doc = yaml.load(data, Loader=_TemplateLoader)
    if not isinstance(doc, dict) or not isinstance(doc.get("templates"), dict):
        raise TemplateFileError("not a PromptSource templates file: no `templates` mapping")
    dataset = doc.get("dataset")
    subset = doc.get("subset")
    if not isinstance(dataset, str):
        raise TemplateFileError("`dataset` must be a string")
    task = p3_name(f"{dataset}_{subset}" if subset else dataset)
    rows = []
    for key, template in doc["templates"].items():
        if not isinstance(template, dict):
            raise TemplateFileError(f"template {key!r} is not a mapping")
        name = template.get("name")
        choices = template.get("answer_choices")
        choice_list = None
        if isinstance(choices, str) and "{{" not in choices and "{%" not in choices:
            choice_list = [c.strip() for c in choices.split("|||")]
        metadata = template.get("metadata")
        rows.append(
            {
                "dataset": dataset,
                "subset": None if subset is None else str(subset),
                "task": task,
                "template_id": str(template.get("id", key)),
                "name": None if name is None else str(name),
                "p3_template": None if name is None else p3_name(str(name)),
                "jinja": template.get("jinja"),
                "answer_choices": choices,
                "answer_choice_list": choice_list,
                "reference": template.get("reference"),
                "metadata": metadata if isinstance(metadata, dict) else {},
                "source_file": source_file,
            }
        )
    return rows


def load_template_sets(path_or_paths: str | Iterable[str]) -> list[dict]:
    """Template rows from one or more templates.yaml files (local paths or Beam filesystems)."""
    from apache_beam.io.filesystems import FileSystems

    paths = [path_or_paths] if isinstance(path_or_paths, str) else list(path_or_paths)
    rows: list[dict] = []
    for path in paths:
        with FileSystems.open(path) as handle:
            rows.extend(parse_templates(handle.read(), path))
    return rows
