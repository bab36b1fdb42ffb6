"""Render one record as a mixture row: zero-shot, few-shot, chain-of-thought, or inverted.

Pure functions over a record, its assigned template and (for few-shot) exemplars of its task:

- zero-shot: the template's header and instance, the record's output as the completion;
- few-shot: k exemplars of the same task rendered with the same template above the record --
  never the record itself nor a duplicate of it (same id or same normalised input), dropped
  from the end until the prompt fits ``max_prompt_chars``; without enough exemplars the record
  falls back to zero-shot (``requested_format`` keeps what was asked);
- chain of thought: only with a real rationale (``record["rationale"]``, or an SNI positive
  example's explanation when that example *is* this record); never made up;
- inversion (an extra row, ``inverted=True``): for free-text outputs only (no label, no label
  space, at least ``min_output_tokens`` tokens) or a rationale with its answer, the prompt
  shows the output and asks for the input.

Choices come from the record's ``mixing.Draws`` (a seeded hash of its id), never its label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa

from transforms.labels import output_value
from transforms.mixing import VARIANT, Draws, mix64
from transforms.templates import COT, INVERT, RenderError, Template, TemplateRegistry, fill
from transforms.text import normalize_text, stable_hash, tokens

# One row of the rendered mixture (``OUT/mixture/split=.../lang=.../part-*.parquet``).
MIXTURE_SCHEMA = pa.schema(
    [
        ("prompt", pa.string()),
        ("completion", pa.string()),
        ("split", pa.string()),  # train | eval (Hive partition)
        ("lang", pa.string()),  # the record's language or "und" (Hive partition)
        ("record_id", pa.string()),  # the corpus record this row renders
        ("source", pa.string()),
        ("source_file", pa.string()),
        ("source_index", pa.int64()),
        ("task", pa.string()),
        ("task_type", pa.string()),
        ("submixture", pa.string()),
        ("template_id", pa.string()),  # base template [::opt] [::cot/NN] | invert/NN
        ("template_family", pa.string()),  # promptsource | native | sni | open | builtin | invert
        ("format", pa.string()),  # zero_shot | few_shot | cot
        ("requested_format", pa.string()),  # what the recipe drew (differs on a fallback)
        ("inverted", pa.bool_()),  # an extra row derived from an included record
        ("options_in_prompt", pa.bool_()),  # answer options listed (None: no label space)
        ("label", pa.string()),  # the record's (normalised) label, classification only
        ("exemplar_ids", pa.list_(pa.string())),  # few-shot exemplars, in prompt order
        ("input", pa.string()),  # the record's instance input (lets an audit strip it)
    ]
)

SEPARATOR = "\n\n"  # between header, exemplars block and instance
# Between few-shot exemplars, and between an exemplar's prompt and its answer: FLAN's defaults
# (few_shot.py: example_separator="\n\n\n", x_y_delimiter="\n\n"); a prompt ending in a cue
# such as "Answer:" takes its answer after one space.
EXAMPLE_SEPARATOR = "\n\n\n"
ANSWER_DELIMITER = "\n\n"
_MAX_CUE = 40  # characters of a final "A:" / "Answer:" cue line


def output_text(record: Mapping) -> str | None:
    """The record's answer: ``output``, else its first reference."""
    return output_value(record)


def identity_text(record: Mapping) -> str:
    """What makes an instance itself: its input; its dataset fields or instruction without one."""
    return (
        (record.get("input") or "").strip()
        or (record.get("metadata") or "").strip()
        or (record.get("definition") or "").strip()
    )


def input_hash(record: Mapping) -> str:
    """Hash of the normalised ``identity_text``: how duplicates of a record are recognised."""
    return stable_hash(normalize_text(identity_text(record)), digest_size=8)


# --------------------------------------------------------------------------------------------
# Eligibility
# --------------------------------------------------------------------------------------------


def rationale_for(record: Mapping) -> str | None:
    """A real rationale for this record, or None.

    ``record["rationale"]`` (CoT sources), else the explanation of an SNI positive example
    whose input and output are this record's (an explanation of *another* instance explains
    nothing here).
    """
    rationale = record.get("rationale")
    if rationale and rationale.strip():
        return rationale.strip()
    own_input = normalize_text(record.get("input") or "")
    own_output = normalize_text(output_text(record) or "")
    if not own_input:
        return None
    for example in record.get("positive_examples") or []:
        explanation = (example or {}).get("explanation")
        if (
            explanation
            and normalize_text(example.get("input") or "") == own_input
            and normalize_text(example.get("output") or "") == own_output
        ):
            return explanation.strip()
    return None


def invertible(record: Mapping, family: str, min_output_tokens: int) -> bool:
    """Input inversion makes sense: an input to recover, and free text to recover it from.

    Free text is an output of at least ``min_output_tokens`` tokens that is not a label, or a
    rationale with its answer (as FLAN's CoT-II sets invert chain-of-thought data, whose
    answers are often option letters).
    """
    if family in ("native", "promptsource"):
        return False  # the input is a whole prompt, or lives in dataset fields
    if not (record.get("input") or "").strip():
        return False
    if (record.get("rationale") or "").strip():
        return True
    if record.get("label") or record.get("label_space"):
        return False
    return len(tokens(output_text(record) or "")) >= min_output_tokens


# --------------------------------------------------------------------------------------------
# Pieces of a prompt
# --------------------------------------------------------------------------------------------


def options_text(labels: Sequence[str], style: int) -> str:
    """The answer options block (FLAN's "opt" prompts)."""
    labels = [str(x) for x in labels]
    if style == 0:
        return "\n\nOptions:\n" + "\n".join(f"- {x}" for x in labels)
    if style == 1:
        return "\n\nChoose from: " + ", ".join(labels) + "."
    return "\n\nAnswer with one of: " + " | ".join(labels)


def instance_values(record: Mapping, template: Template, options: bool) -> dict[str, str]:
    """Placeholder values of one instance for a (non-Jinja) template."""
    text = record.get("input") or ""
    instruction = record.get("definition") or ""
    if template.family == "open" and not instruction:
        instruction, text = text, ""  # a chat turn without a system prompt is the instruction
    labels = record.get("label_space") or []
    return {
        "input": text,
        "instruction": instruction,
        "options": options_text(labels, template.options_style) if options and labels else "",
    }


def render_instance(record: Mapping, template: Template, options: bool) -> str:
    values = instance_values(record, template, options)
    pattern = template.instance
    if template.family == "open" and not values["input"] and template.instance_no_input:
        pattern = template.instance_no_input
    return fill(pattern, values).strip()


def render_header(record: Mapping, template: Template) -> str:
    """The SNI header: the definition and the examples the encoding shows.

    Examples identical to the record itself are skipped (they would give the answer away).
    """
    if template.family != "sni":
        return ""
    own = normalize_text(record.get("input") or "")
    parts = []
    if template.header:
        parts.append(fill(template.header, {"definition": record.get("definition") or ""}))
    for kind, wanted in (("Positive", template.positives), ("Negative", template.negatives)):
        pool = record.get(f"{kind.lower()}_examples") or []
        shown = [e for e in pool if normalize_text((e or {}).get("input") or "") != own][:wanted]
        for i, example in enumerate(shown, 1):
            block = (
                f"{kind} Example {i} -\nInput: {example.get('input') or ''}\n"
                f"Output: {example.get('output') or ''}"
            )
            if template.explanations and example.get("explanation"):
                block += f"\nExplanation: {example['explanation']}"
            parts.append(block)
    return SEPARATOR.join(p.strip() for p in parts if p.strip())


def _join(*parts: str) -> str:
    return SEPARATOR.join(p for p in parts if p)


def _answer_joiner(instance: str) -> str:
    return " " if instance.endswith(":") else ANSWER_DELIMITER


def _before_cue(prompt: str, text: str) -> str:
    """``text`` appended to a prompt, but above its final answer cue ("A:") when it has one."""
    head, _, last = prompt.rpartition("\n")
    if head.strip() and last.endswith(":") and len(last) <= _MAX_CUE:
        return f"{head.rstrip()}\n\n{text}\n{last}"
    return _join(prompt, text)


def pair(
    record: Mapping, template: Template, options: bool, registry: TemplateRegistry, rng_key: str
) -> tuple[str, str]:
    """(prompt without header, target) of one instance under a template."""
    if template.family == "promptsource":
        from transforms.templates import example_fields

        return registry.render_promptsource(template, example_fields(record), rng_key)
    output = output_text(record) or ""
    return render_instance(record, template, options), fill(template.target, {"output": output})


def zero_shot(
    record: Mapping, template: Template, options: bool, registry: TemplateRegistry, seed: int
) -> tuple[str, str]:
    prompt, target = pair(record, template, options, registry, f"{seed}:{record.get('id')}")
    return _join(render_header(record, template), prompt), target


def few_shot(
    record: Mapping,
    template: Template,
    options: bool,
    exemplars: Sequence[Mapping],
    registry: TemplateRegistry,
    *,
    seed: int,
    min_k: int,
    max_prompt_chars: int,
) -> tuple[str, str, list[str]] | None:
    """(prompt, target, exemplar ids), or None when fewer than ``min_k`` exemplars fit."""
    header = render_header(record, template)
    prompt, target = pair(record, template, options, registry, f"{seed}:{record.get('id')}")
    blocks: list[tuple[str, str]] = []
    for exemplar in exemplars:
        try:
            ex_prompt, ex_target = pair(
                exemplar, template, options, registry, f"{seed}:{exemplar.get('id')}"
            )
        except RenderError:
            continue
        blocks.append((exemplar["id"], ex_prompt + _answer_joiner(ex_prompt) + ex_target))
    while len(blocks) >= min_k:
        shots_text = EXAMPLE_SEPARATOR.join(b for _, b in blocks)
        text = _join(header, shots_text + EXAMPLE_SEPARATOR + prompt if shots_text else prompt)
        if len(text) <= max_prompt_chars:
            return text, target, [i for i, _ in blocks]
        blocks.pop()
    return None


def chain_of_thought(
    record: Mapping,
    template: Template,
    options: bool,
    rationale: str,
    registry: TemplateRegistry,
    seed: int,
    choice: float,
) -> tuple[str, str, str]:
    """(prompt, completion, CoT suffix of the template id); ``choice`` in [0, 1) picks the pair."""
    prompt, target = zero_shot(record, template, options, registry, seed)
    index = int(choice * len(COT))
    trigger, answer = COT[index]
    return (
        _before_cue(prompt, trigger),
        fill(answer, {"rationale": rationale, "output": target}),
        f"{VARIANT}cot/{index:02d}",
    )


def inverted(record: Mapping, choice: float) -> tuple[str, str, str]:
    """(prompt, completion, template id) of the inverted row: output in, input out."""
    index = int(choice * len(INVERT))
    instruction = (record.get("definition") or "").strip()
    task_block = f"Task: {instruction}\n\n" if instruction else ""
    shown = (output_text(record) or "").strip()
    rationale = (record.get("rationale") or "").strip()
    if rationale:
        shown = f"{rationale}\nAnswer: {shown}"
    prompt = fill(INVERT[index], {"task_block": task_block, "output": shown})
    return prompt.strip(), (record.get("input") or "").strip(), f"invert/{index:02d}"


# --------------------------------------------------------------------------------------------
# Exemplars
# --------------------------------------------------------------------------------------------


def exemplar(record: Mapping, family: str, max_chars: int, h: int = 0) -> dict | None:
    """The compact form of a record kept in its task's exemplar pool, or None if too long.

    ``h`` is the record's ``exemplar`` draw: its place in the pool and its share of the order.
    """
    out = {
        "id": record.get("id"),
        "h": h,
        "nh": input_hash(record),
        "input": record.get("input") or "",
        "output": output_text(record) or "",
        "label_space": list(record.get("label_space") or []),
    }
    if family == "open":
        out["definition"] = record.get("definition") or ""
    if family == "promptsource":
        out["metadata"] = record.get("metadata")
    size = sum(len(v) for v in out.values() if isinstance(v, str))
    if not out["output"] or size > max_chars:
        return None
    return out


def choose_exemplars(record: Mapping, pool: Sequence[Mapping], k: int, order: int) -> list[Mapping]:
    """Up to ``k`` exemplars from the task's pool: not the record, not a duplicate of its input,
    in an order mixed from the record's ``shot_order`` draw and each exemplar's draw."""
    rid = record.get("id") or ""
    own = input_hash(record)
    candidates = [e for e in pool if e["id"] != rid and e["nh"] != own]
    candidates.sort(key=lambda e: (mix64(order, e["h"]), e["id"]))
    return candidates[:k]


def shots(choice: float, min_k: int, max_k: int) -> int:
    """How many exemplars a few-shot prompt gets: uniform in [min_k, max_k] for ``choice``."""
    return min_k + int(choice * (max_k - min_k + 1))


# --------------------------------------------------------------------------------------------
# The row
# --------------------------------------------------------------------------------------------


def base_row(record: Mapping, meta: Mapping) -> dict:
    """The metadata columns every row of a record shares."""
    return {
        "split": meta["split"],
        "lang": record.get("lang") or "und",
        "record_id": record.get("id"),
        "source": record.get("source"),
        "source_file": record.get("source_file"),
        "source_index": record.get("source_index"),
        "task": record.get("task"),
        "task_type": meta.get("task_type"),
        "submixture": meta.get("submixture"),
        "label": record.get("label"),
        "input": record.get("input"),
        "exemplar_ids": [],
        "inverted": False,
    }


def render_row(
    record: Mapping,
    meta: Mapping,
    *,
    template: Template,
    fmt: str,
    options: bool | None,
    pool: Sequence[Mapping],
    registry: TemplateRegistry,
    draw: Draws,
    seed: int,
    min_k: int,
    max_k: int,
    max_prompt_chars: int,
) -> dict:
    """One mixture row for a record in the requested format (few-shot may fall back)."""
    row = base_row(record, meta)
    use_options = bool(options)
    template_id = template.id + (f"{VARIANT}opt" if use_options else "")
    realised = fmt
    exemplar_ids: list[str] = []
    if fmt == "cot":
        rationale = rationale_for(record)
        if rationale is None:
            raise ValueError(f"record {record.get('id')} has no rationale: it cannot be CoT")
        prompt, completion, suffix = chain_of_thought(
            record, template, use_options, rationale, registry, seed, draw.cot_template
        )
        template_id += suffix
    elif fmt == "few_shot":
        chosen = choose_exemplars(record, pool, shots(draw.k, min_k, max_k), draw.shot_order)
        shot = few_shot(
            record,
            template,
            use_options,
            chosen,
            registry,
            seed=seed,
            min_k=min_k,
            max_prompt_chars=max_prompt_chars,
        )
        if shot is None:
            realised = "zero_shot"
            prompt, completion = zero_shot(record, template, use_options, registry, seed)
        else:
            prompt, completion, exemplar_ids = shot
    else:
        prompt, completion = zero_shot(record, template, use_options, registry, seed)
    row.update(
        prompt=prompt,
        completion=completion,
        template_id=template_id,
        template_family=template.family,
        format=realised,
        requested_format=fmt,
        options_in_prompt=options,
        exemplar_ids=exemplar_ids,
    )
    return row


def render_inverted_row(record: Mapping, meta: Mapping, choice: float) -> dict:
    """The extra, inverted row of an included record; ``choice`` picks the template."""
    row = base_row(record, meta)
    prompt, completion, template_id = inverted(record, choice)
    row.update(
        prompt=prompt,
        completion=completion,
        template_id=template_id,
        template_family="invert",
        format="zero_shot",
        requested_format="zero_shot",
        options_in_prompt=None,
        label=None,
        inverted=True,
    )
    return row
