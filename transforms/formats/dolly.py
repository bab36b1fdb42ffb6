"""databricks-dolly-15k: ``{instruction, context, response, category}`` per line.

``definition`` = instruction, ``input`` = context (``""`` when the task has none),
``output`` = response, ``task`` = ``dolly/<category>`` (``dolly`` without one) and
``task_categories`` = [category]. Dolly's ``classification`` category is a task type, not an
answer set, so ``label`` stays empty.
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
from transforms.formats.errors import RecordError
from transforms.schema import new_record

FORMAT = "dolly"
DESCRIPTION = "databricks-dolly-15k JSONL: instruction/context/response/category"


def expand(doc: object, ctx: FileContext) -> Iterator[dict]:
    """One record per Dolly line."""
    if not isinstance(doc, dict):
        raise RecordError("wrong_type", "a Dolly record must be a JSON object")
    instruction = require_text(doc, "instruction")
    response = require_text(doc, "response")
    context = optional_text(doc, "context")
    category = optional_text(doc, "category")
    yield new_record(
        source="dolly",
        task=f"dolly/{category}" if category else "dolly",
        task_categories=[category] if category else [],
        definition=instruction,
        input=context,
        output=response,
        metadata=metadata_json(leftovers(doc, ("instruction", "context", "response", "category"))),
    )
