"""Alpaca layout (JSON array or JSONL) and LIMA's original ``conversations`` JSONL.

``alpaca``: ``{instruction, input, output}`` with optional ``history`` (``[[user, assistant],
...]`` earlier turns) and ``system`` -- Stanford Alpaca and its translations, and LLaMA-Factory's
conversions of LIMA, OpenAssistant and others. ``definition`` = instruction, ``input``/``output``
as given (``""`` stays ``""``). With a history (or a system prompt) ``messages`` holds the whole
conversation: system, the history turns, then the final user turn (instruction and input joined
by a newline, LLaMA-Factory's rule) and the output; without one ``messages`` is empty.

The layout does not name its origin, so ``source`` comes from the file name: ``lima`` when it
contains "lima", ``oasst`` for "oasst"/"oaast", else ``alpaca``. ``task`` = the source name.

``lima``: the original release, ``{"conversations": [str, ...], "source": "stackexchange"}``:
turns alternate user/assistant starting with the user; ``input`` = the first turn, ``output`` =
the second (None for a prompt-only conversation); LIMA's ``source`` goes to ``metadata``.
"""

from __future__ import annotations

from collections.abc import Iterator

from transforms.formats.common import (
    FileContext,
    leftovers,
    metadata_json,
    optional_text,
    require,
    require_text,
)
from transforms.formats.errors import RecordError
from transforms.schema import new_record

FORMATS = {
    "alpaca": "Alpaca instruction/input/output (JSON array or JSONL, optional history/system)",
    "lima": "LIMA original JSONL: conversations (list of strings) + source",
}


def source_from_name(name: str) -> str:
    """The source of an Alpaca-layout file, from its name."""
    lowered = name.lower()
    if "lima" in lowered:
        return "lima"
    if "oasst" in lowered or "oaast" in lowered:
        return "oasst"
    return "alpaca"


def _history(value: object) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError("wrong_type", "history must be a list of [user, assistant] pairs")
    pairs = []
    for turn in value:
        if (
            not isinstance(turn, (list, tuple))
            or len(turn) != 2
            or not all(isinstance(t, str) for t in turn)
        ):
            raise RecordError("wrong_type", "history must be a list of [user, assistant] pairs")
        pairs.append((turn[0], turn[1]))
    return pairs


def expand_alpaca(doc: object, ctx: FileContext) -> Iterator[dict]:
    """One record per Alpaca-layout object."""
    if not isinstance(doc, dict):
        raise RecordError("wrong_type", "an Alpaca record must be a JSON object")
    instruction = require_text(doc, "instruction")
    text = optional_text(doc, "input")
    output = require_text(doc, "output")
    system = optional_text(doc, "system")
    history = _history(doc.get("history"))
    messages = []
    if history or system:
        if system:
            messages.append({"role": "system", "content": system})
        for user, assistant in history:
            messages.append({"role": "user", "content": user})
            messages.append({"role": "assistant", "content": assistant})
        prompt = f"{instruction}\n{text}" if text else instruction
        messages.append({"role": "user", "content": prompt})
        messages.append({"role": "assistant", "content": output})
    source = source_from_name(ctx.name)
    yield new_record(
        source=source,
        task=source,
        definition=instruction,
        input=text,
        output=output,
        messages=messages,
        metadata=metadata_json(
            leftovers(doc, ("instruction", "input", "output", "history", "system"))
        ),
    )


def expand_lima(doc: object, ctx: FileContext) -> Iterator[dict]:
    """One record per LIMA conversation."""
    if not isinstance(doc, dict):
        raise RecordError("wrong_type", "a LIMA record must be a JSON object")
    turns = require(doc, "conversations")
    if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
        raise RecordError("wrong_type", "conversations must be a list of strings")
    if not turns:
        raise RecordError("missing_field", "conversations is empty")
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": turn}
        for i, turn in enumerate(turns)
    ]
    yield new_record(
        source="lima",
        task="lima",
        input=turns[0],
        output=turns[1] if len(turns) > 1 else None,
        messages=messages,
        metadata=metadata_json(leftovers(doc, ("conversations",))),
    )
