"""Chat JSONL/JSON: OpenAI ``messages`` and ShareGPT/Vicuna ``conversations``.

Every turn is normalised to ``{role, content}`` with role in system/user/assistant/tool:
- OpenAI roles: system/developer -> system, user, assistant, tool/function -> tool.
- ShareGPT ``from``: human -> user, gpt (chatgpt, bard, bing, model) -> assistant, system,
  ``function_call`` -> assistant (a tool call: its JSON text is the content), ``observation``
  -> tool. Roles are matched case-insensitively; an unknown role is ``invalid_value``.
- An OpenAI assistant turn with ``tool_calls`` (or legacy ``function_call``) gets the call(s)
  as JSON ``{"name", "arguments"}`` (a list when several) after any text; ``content: null`` is
  ``""``; content given as a list of parts keeps its text parts.

The record: ``messages`` = all turns; ``input`` = the first user turn; ``output`` = the first
assistant turn after it (tool calls included; None when there is none -- e.g. OpenAI's toy file
has a conversation with no user turn, kept as a record: judging it is a filter's job);
``definition`` = the first system prompt (None without one). ``task`` = the source name
(``chat`` or ``sharegpt``). Top-level fields (ShareGPT ``id``, the ``tools`` JSON string) and
per-turn extras (``name``, ``tool_call_id``, ``weight``..., and the source role of tool turns:
function_call, observation) go to ``metadata``, keyed by the turn's index in the source list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from transforms.formats.common import FileContext, leftovers, metadata_json, optional_text, require
from transforms.formats.errors import RecordError
from transforms.schema import new_record

FORMATS = {
    "chat": "chat JSONL with OpenAI-style messages (role/content, tool calls)",
    "sharegpt": "ShareGPT/Vicuna conversations (from/value, function_call/observation, tools)",
}

ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
    "function_call": "assistant",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
    "ipython": "tool",
}
# Source roles worth remembering after normalisation (a tool call is not just any reply).
_KEEP_RAW_ROLE = frozenset({"function_call", "observation", "function", "ipython", "developer"})


def _content_text(content: object, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                parts.append(json.dumps(part, ensure_ascii=False, sort_keys=True))
        return "\n".join(parts)
    raise RecordError("wrong_type", f"{where}: content must be text, got {type(content).__name__}")


def _calls_text(turn: dict) -> str | None:
    calls = turn.get("tool_calls")
    if calls is None and turn.get("function_call") is not None:
        calls = [turn["function_call"]]
    if not calls:
        return None
    if not isinstance(calls, list):
        calls = [calls]
    rendered = []
    for call in calls:
        if isinstance(call, dict) and isinstance(call.get("function"), dict):
            call = call["function"]
        if isinstance(call, dict):
            call = {k: call[k] for k in ("name", "arguments") if k in call}
        rendered.append(call)
    return json.dumps(rendered[0] if len(rendered) == 1 else rendered, ensure_ascii=False)


def normalise_turns(
    turns: object, *, role_key: str, content_key: str, field: str
) -> tuple[list[dict], dict]:
    """``(messages, per-turn extras by index)`` of a list of turn objects."""
    if not isinstance(turns, list):
        raise RecordError("wrong_type", f"{field} must be a list of turns")
    if not turns:
        raise RecordError("missing_field", f"{field} is empty")
    messages, extras = [], {}
    for i, turn in enumerate(turns):
        where = f"{field}[{i}]"
        if not isinstance(turn, dict):
            raise RecordError("wrong_type", f"{where} must be an object")
        keys = (role_key, content_key) if role_key in turn else ("role", "content")
        if keys[0] not in turn:
            keys = ("from", "value") if "from" in turn else keys
        raw_role = turn.get(keys[0])
        if not isinstance(raw_role, str):
            raise RecordError(
                "missing_field" if raw_role is None else "wrong_type", f"{where} has no role"
            )
        role = ROLES.get(raw_role.strip().lower())
        if role is None:
            raise RecordError("invalid_value", f"{where}: unknown role {raw_role!r}")
        content = _content_text(turn.get(keys[1]), where)
        calls = _calls_text(turn)
        if calls is not None:
            content = f"{content}\n{calls}" if content else calls
        messages.append({"role": role, "content": content})
        extra = leftovers(turn, keys)
        if raw_role.strip().lower() in _KEEP_RAW_ROLE:
            extra["role"] = raw_role
        if extra:
            extras[str(i)] = extra
    return messages, extras


def record_fields(messages: list[dict]) -> dict:
    """``input``/``output``/``definition`` from normalised messages."""
    system = next((m["content"] for m in messages if m["role"] == "system"), None)
    first_user = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
    output = None
    if first_user is not None:
        output = next(
            (m["content"] for m in messages[first_user + 1 :] if m["role"] == "assistant"), None
        )
    return {
        "definition": system,
        "input": None if first_user is None else messages[first_user]["content"],
        "output": output,
    }


def _record(source: str, messages: list[dict], meta: dict) -> dict:
    return new_record(
        source=source,
        task=source,
        messages=messages,
        metadata=metadata_json(meta),
        **record_fields(messages),
    )


def expand_messages(doc: object, ctx: FileContext) -> Iterator[dict]:
    """One record per OpenAI-style ``messages`` conversation."""
    if not isinstance(doc, dict):
        raise RecordError("wrong_type", "a chat record must be a JSON object")
    messages, extras = normalise_turns(
        require(doc, "messages"), role_key="role", content_key="content", field="messages"
    )
    meta = leftovers(doc, ("messages",))
    if extras:
        meta["message_extras"] = extras
    yield _record("chat", messages, meta)


def expand_sharegpt(doc: object, ctx: FileContext) -> Iterator[dict]:
    """One record per ShareGPT conversation."""
    if not isinstance(doc, dict):
        raise RecordError("wrong_type", "a ShareGPT record must be a JSON object")
    messages, extras = normalise_turns(
        require(doc, "conversations"), role_key="from", content_key="value", field="conversations"
    )
    system = optional_text(doc, "system")
    if system:
        messages.insert(0, {"role": "system", "content": system})
    meta = leftovers(doc, ("conversations", "system"))
    if extras:
        meta["turn_extras"] = extras
    yield _record("sharegpt", messages, meta)
