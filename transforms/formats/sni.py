"""Super-NaturalInstructions task JSON: one task object, fanned out to one record per instance.

Every schema generation seen in the wild is read: ``Definition`` as a string (2021 drafts,
older non-English tasks) or a list of strings (current files, joined with newlines); with or
without ``Input_language``/``Output_language``/``Instruction_language``, ``Domains``,
``Reasoning``, instance ``id`` and ``Instance License``; any key order (the Finnish translations
start with ``Definition``). The file is one JSON value, so it is read whole.

Per record: ``task`` is the ``taskNNN_name`` in the file name (``fin-translated-task1289_trec_
classification.json`` -> ``task1289_trec_classification``: the same task in another language
stays the same task, which matters for unseen-task splits); ``output`` is the first element of
the instance's output list and ``references`` the whole list; ``label``/``label_space`` stay
empty (SNI states no answer set; the leakage stage derives them). Fields without a column
(Contributors, Source, URL, Reasoning, the instance ``id``...) go to ``metadata``.

    python -c "from transforms.formats import parse_path; print(next(parse_path('task.json')))"
"""

from __future__ import annotations

from collections.abc import Iterator

from transforms.formats.common import (
    FileContext,
    examples,
    leftovers,
    lenient_text_list,
    metadata_json,
    sni_task_name,
)
from transforms.formats.errors import Failure, RecordError
from transforms.schema import new_record

FORMAT = "sni_task"
DESCRIPTION = (
    "Super-NaturalInstructions task JSON (every schema generation): one record per instance"
)

_TASK_KEYS = {
    "Definition",
    "Instances",
    "Positive Examples",
    "Negative Examples",
    "Categories",
    "Domains",
    "Input_language",
    "Output_language",
    "Instruction_language",
    "Instance License",
}


def definition_text(value: object) -> str:
    """``Definition`` as text: a list of strings joined with newlines."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    raise RecordError("wrong_type", "Definition must be a string or a list of strings")


def instance_fields(instance: object, where: str) -> tuple[str, list[str], dict]:
    """``(input, outputs, other fields)`` of one task instance (SNI and NIv1 share the layout)."""
    if not isinstance(instance, dict):
        raise RecordError("wrong_type", f"{where} must be an object, got {type(instance).__name__}")
    if "input" not in instance or instance["input"] is None:
        raise RecordError("missing_field", f"{where} has no input")
    if "output" not in instance or instance["output"] is None:
        raise RecordError("missing_field", f"{where} has no output")
    text, outputs = instance["input"], instance["output"]
    if not isinstance(text, str):
        raise RecordError("wrong_type", f"{where}: input must be a string")
    if isinstance(outputs, str):
        outputs = [outputs]
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
        raise RecordError("wrong_type", f"{where}: output must be a list of strings")
    if not outputs:
        raise RecordError("missing_field", f"{where}: output is an empty list")
    return text, outputs, leftovers(instance, ("input", "output"))


def expand(doc: object, ctx: FileContext) -> Iterator[dict | Failure]:
    """One record per instance of a task object (Failures for instances that cannot be)."""
    if not isinstance(doc, dict):
        raise RecordError("wrong_type", "a task file must hold a JSON object")
    instances = doc.get("Instances")
    if instances is None:
        raise RecordError("missing_field", "task has no Instances")
    if not isinstance(instances, list):
        raise RecordError("wrong_type", "Instances must be a list")
    if not instances:
        raise RecordError("no_instances", "task has zero instances")
    if "Definition" not in doc:
        raise RecordError("missing_field", "task has no Definition")
    definition = definition_text(doc["Definition"])
    licence = lenient_text_list(doc.get("Instance License"))
    task_meta = leftovers(doc, _TASK_KEYS)
    shared = {
        "source": "sni",
        "task": sni_task_name(ctx.stem),
        "task_categories": lenient_text_list(doc.get("Categories")),
        "domains": lenient_text_list(doc.get("Domains")),
        "definition": definition,
        "positive_examples": examples(doc.get("Positive Examples")),
        "negative_examples": examples(doc.get("Negative Examples")),
        "instruction_language": lenient_text_list(doc.get("Instruction_language")),
        "input_language": lenient_text_list(doc.get("Input_language")),
        "output_language": lenient_text_list(doc.get("Output_language")),
        "license": "; ".join(licence) if licence else None,
    }
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
