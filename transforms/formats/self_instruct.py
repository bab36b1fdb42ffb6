"""Self-Instruct: seed tasks and machine-generated files (one JSON object per line).

Layouts read:
- seed tasks (``seed_tasks.jsonl``, BELLE's ``zh_seed_tasks.json``):
  ``{id, name, instruction, instances: [{input, output}], is_classification}`` -> one record per
  instance; ``task`` = ``self_instruct/<name>`` (``self_instruct`` without a name).
- generated instructions with instances: ``{instruction, instances: [...], ...}`` -> the same.
- generated flat examples: ``{instruction, input, output}`` plus Self-Instruct's own fields
  (``most_similar_instructions``, ``avg_similarity_score``, ``request_idx``,
  ``is_classification``) -> one record. (Without those fields the layout is Alpaca's.)
- generated instructions alone (``machine_generated_instructions.jsonl`` before instance
  generation): one record with ``definition`` only -- the ROUGE-L filter works on them.

``definition`` = instruction. ``label`` = the output when the source marks the task
``is_classification`` (the seed file states it; no label is guessed otherwise); ``label_space``
stays empty because the source lists no answer set.
"""

from __future__ import annotations

from collections.abc import Iterator

from transforms.formats.common import (
    FileContext,
    leftovers,
    metadata_json,
    optional_text,
    require_text,
)
from transforms.formats.errors import Failure, RecordError
from transforms.schema import new_record

FORMAT = "self_instruct"
DESCRIPTION = "Self-Instruct seed tasks and machine-generated files: one record per instance"


def expand(doc: object, ctx: FileContext) -> Iterator[dict | Failure]:
    """One record per instance (or per flat example / bare instruction)."""
    if not isinstance(doc, dict):
        raise RecordError("wrong_type", "a Self-Instruct record must be a JSON object")
    instruction = require_text(doc, "instruction")
    name = doc.get("name")
    task = f"self_instruct/{name}" if isinstance(name, str) and name else "self_instruct"
    is_classification = doc.get("is_classification") is True
    if "instances" in doc:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise RecordError("wrong_type", "instances must be a list")
        if not instances:
            raise RecordError("no_instances", "instruction has zero instances")
        meta = metadata_json(leftovers(doc, ("instruction", "instances")))
        for i, instance in enumerate(instances):
            where = f"instance {i}"
            try:
                if not isinstance(instance, dict):
                    raise RecordError("wrong_type", f"{where} must be an object")
                text = optional_text(instance, "input")
                output = require_text(instance, "output")
            except RecordError as err:
                yield Failure(err.reason, err.detail, where, instance)
                continue
            yield new_record(
                source="self_instruct",
                task=task,
                definition=instruction,
                input=text,
                output=output,
                label=output if is_classification else None,
                metadata=meta,
            )
        return
    text = optional_text(doc, "input")
    output = optional_text(doc, "output")
    yield new_record(
        source="self_instruct",
        task=task,
        definition=instruction,
        input=text,
        output=output,
        label=output if is_classification and output is not None else None,
        metadata=metadata_json(leftovers(doc, ("instruction", "input", "output"))),
    )
