"""Natural Instructions v1: task files and the GPT-3 prediction files released with them.

Task files (``Title``, ``Prompt``, ``Definition``, ``Things to Avoid``, ``Emphasis & Caution``,
``Examples: {Positive Examples, Negative Examples}``, ``Instances``) fan out to one record per
instance, like Super-NaturalInstructions: ``definition`` = Definition, ``constraints`` = the
"Things to Avoid" and "Emphasis & Caution" texts (placeholders such as "-" dropped), example
explanations = ``reason`` (+ ``suggestion`` for negative examples), Title and Prompt in
``metadata``.

Prediction files (``{"predictions": [{"index", "input", "output"}]}``, named
``<task>@<encoding>@<from>_<to>.json``) hold GPT-3's *outputs* for v1 prompts: one record per
prediction with ``input`` = the encoded prompt and ``output`` = the model's text, verbatim.
They are model outputs, not references: ``metadata`` says so (``"kind": "gpt3_prediction"``),
with the instance ``index`` and the prompt ``encoding``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from transforms.formats.common import (
    FileContext,
    as_text,
    examples,
    leftovers,
    metadata_json,
    sni_task_name,
)
from transforms.formats.errors import Failure, RecordError
from transforms.formats.sni import definition_text, instance_fields
from transforms.schema import new_record

FORMATS = {
    "niv1_task": "Natural Instructions v1 task JSON (Title/Prompt/Examples): one record per instance",
    "niv1_predictions": "Natural Instructions v1 GPT-3 prediction file: one record per prediction",
}

_TASK_KEYS = {"Definition", "Instances", "Examples", "Things to Avoid", "Emphasis & Caution"}
_PLACEHOLDER = re.compile(r"^[\s\-–—.]*$")


def _constraints(doc: dict) -> str | None:
    parts = []
    for key in ("Things to Avoid", "Emphasis & Caution"):
        text = as_text(doc.get(key))
        if text and not _PLACEHOLDER.match(text):
            parts.append(f"{key}: {text.strip()}")
    return "\n".join(parts) or None


def expand_task(doc: object, ctx: FileContext) -> Iterator[dict | Failure]:
    """One record per instance of a v1 task object."""
    if not isinstance(doc, dict):
        raise RecordError("wrong_type", "a task file must hold a JSON object")
    instances = doc.get("Instances")
    if not isinstance(instances, list):
        raise RecordError(
            "missing_field" if instances is None else "wrong_type", "Instances must be a list"
        )
    if not instances:
        raise RecordError("no_instances", "task has zero instances")
    if "Definition" not in doc:
        raise RecordError("missing_field", "task has no Definition")
    demos = doc.get("Examples") if isinstance(doc.get("Examples"), dict) else {}
    shared = {
        "source": "niv1",
        "task": sni_task_name(ctx.stem),
        "definition": definition_text(doc["Definition"]),
        "constraints": _constraints(doc),
        "positive_examples": examples(demos.get("Positive Examples"), explanation_keys=("reason",)),
        "negative_examples": examples(
            demos.get("Negative Examples"), explanation_keys=("reason", "suggestion")
        ),
    }
    task_meta = leftovers(doc, _TASK_KEYS)
    for i, instance in enumerate(instances):
        where = f"instance {i}"
        try:
            ctx.check_size(instance, where)
            text, outputs, extra = instance_fields(instance, where)
        except RecordError as err:
            yield Failure(err.reason, err.detail, where, instance)
            continue
        yield new_record(
            **shared,
            input=text,
            output=outputs[0],
            references=outputs,
            metadata=metadata_json({**task_meta, **extra}),
        )


def expand_predictions(doc: object, ctx: FileContext) -> Iterator[dict | Failure]:
    """One record per GPT-3 prediction."""
    if not isinstance(doc, dict):
        raise RecordError("wrong_type", "a prediction file must hold a JSON object")
    predictions = doc.get("predictions")
    if not isinstance(predictions, list):
        raise RecordError(
            "missing_field" if predictions is None else "wrong_type", "predictions must be a list"
        )
    if not predictions:
        raise RecordError("no_instances", "prediction file has zero predictions")
    task, _, rest = ctx.stem.partition("@")
    encoding, _, span = rest.partition("@")
    file_meta = {"kind": "gpt3_prediction"}
    if encoding:
        file_meta["encoding"] = encoding
    if span:
        file_meta["span"] = span
    file_meta.update(leftovers(doc, ("predictions",)))
    for i, item in enumerate(predictions):
        where = f"prediction {i}"
        if not isinstance(item, dict):
            yield Failure("wrong_type", f"{where} must be an object", where, item)
            continue
        text, output = item.get("input"), item.get("output")
        if text is None or output is None:
            yield Failure("missing_field", f"{where} needs input and output", where, item)
            continue
        if not isinstance(text, str) or not isinstance(output, str):
            yield Failure("wrong_type", f"{where}: input and output must be strings", where, item)
            continue
        try:
            ctx.check_size(item, where)
        except RecordError as err:
            yield Failure(err.reason, err.detail, where, item)
            continue
        yield new_record(
            source="niv1",
            task=sni_task_name(task),
            template_id=encoding or None,
            input=text,
            output=output,
            metadata=metadata_json({**file_meta, **leftovers(item, ("input", "output"))}),
        )
