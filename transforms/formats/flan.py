"""Flan 2022: exported JSONL, the chain-of-thought TSVs, and the collection's task table.

- ``flan_jsonl``: ``{"inputs", "targets", "task_name", "template_type", ...}`` per line (also
  the underscore-prefixed ``_task_name``/``_template_type``/``_template_idx`` spelling of some
  exports). ``task`` = task_name (``flan`` when absent), ``template_id`` = the template index
  when the export has one; ``template_type`` (zs_opt, fs_noopt, ...) and the task source go to
  ``metadata``.
- ``flan_cot_tsv``: FLAN's ``cot_data/<dataset>_<split>.tsv``: no header, three tab-separated
  fields per line -- question, answer, rationale (checked on ``qasc_train.tsv``). Newlines inside
  fields are written as the two characters ``\\n``; they are turned back into newlines, as
  FLAN's own loader does. ``task`` = ``cot_<dataset>`` (``qasc_train.tsv`` -> ``cot_qasc``, the
  naming of ``flan_collection_info.csv``), ``rationale`` = the third field.
- ``flan_collection_info``: ``flan_collection_info.csv`` (Source, Dataset, Specific/Generic Task
  Category, Languages) describes tasks, it holds no instances: it is recognised, logged and
  yields nothing (0 records, not a dead letter). ``load_collection_info`` reads it for stages
  that want task categories.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

from transforms.formats.common import (
    FileContext,
    leftovers,
    metadata_json,
    optional_text,
    require_text,
)
from transforms.formats.errors import RecordError
from transforms.schema import new_record

FORMATS = {
    "flan_jsonl": "Flan 2022 JSONL (inputs/targets/task_name/template_type): one record per line",
    "flan_cot_tsv": "Flan chain-of-thought TSV (question, answer, rationale; no header)",
    "flan_collection_info": "Flan collection task table (CSV): task metadata, yields no records",
}

_SPLIT_SUFFIX = re.compile(r"_(train|dev|val|validation|test)$")


def _field(doc: dict, name: str) -> str:
    return name if name in doc else f"_{name}"


def expand_jsonl(doc: object, ctx: FileContext) -> Iterator[dict]:
    """One record per exported Flan example."""
    if not isinstance(doc, dict):
        raise RecordError("wrong_type", "a Flan record must be a JSON object")
    inputs_key, targets_key = _field(doc, "inputs"), _field(doc, "targets")
    task_key, idx_key = _field(doc, "task_name"), _field(doc, "template_idx")
    inputs = require_text(doc, inputs_key)
    targets = require_text(doc, targets_key)
    task = optional_text(doc, task_key)
    template_idx = doc.get(idx_key)
    yield new_record(
        source="flan",
        task=task or "flan",
        template_id=None if template_idx is None else str(template_idx),
        input=inputs,
        output=targets,
        metadata=metadata_json(leftovers(doc, (inputs_key, targets_key, task_key, idx_key))),
    )


def cot_task(stem: str) -> str:
    """``qasc_train`` -> ``cot_qasc`` (the dataset names of the Flan collection table)."""
    dataset = _SPLIT_SUFFIX.sub("", stem)
    return dataset if dataset.startswith("cot_") else f"cot_{dataset}"


def _unescape(text: str) -> str:
    return text.replace("\\n", "\n")


def expand_cot(doc: object, ctx: FileContext) -> Iterator[dict]:
    """One record per TSV line: question, answer, rationale."""
    if not isinstance(doc, list) or len(doc) != 3:
        raise RecordError("malformed_row", "expected question, answer, rationale")
    question, answer, rationale = (_unescape(field) for field in doc)
    if not question.strip() or not answer.strip():
        raise RecordError("missing_field", "question and answer must not be empty")
    stem = ctx.stem
    split = _SPLIT_SUFFIX.search(stem)
    yield new_record(
        source="flan_cot",
        task=cot_task(stem),
        input=question,
        output=answer,
        rationale=rationale or None,
        metadata=metadata_json({"split": split.group(1)} if split else {}),
    )


def load_collection_info(data: bytes) -> list[dict]:
    """Rows of ``flan_collection_info.csv`` as dicts (Source, Dataset, categories, Languages)."""
    text = data.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))
