"""Template sets per task, and the label-blind assignment of a template to each record.

Five families, tried in this order for a record:

- ``promptsource``: the task's PromptSource templates (Jinja with ``|||`` between prompt and
  target, ``answer_choices``), for records that carry the dataset's own fields (the ``metadata``
  JSON, e.g. ``text`` and ``label`` for ag_news). Only templates of the original task
  (``metadata.original_task``) whose variables the record has. Rendered in a *sandboxed* Jinja
  environment; PromptSource's random ``choice`` filter is seeded per record.
- ``native``: records already rendered by their source (P3 prompt/completion files, Flan JSONL
  exports): their own template, as given. They cannot be re-templated (the fields are gone).
- ``sni``: Super-NaturalInstructions encodings from the task's own definition and examples:
  definition only; definition + k positive examples; + negative examples with explanations.
- ``open``: records with their own instruction (Alpaca, Dolly, Self-Instruct, LIMA, chat).
- ``builtin``: this project's templates per task type (classification, extraction, QA,
  generation, rewriting, summarization, translation), ten each.

Separately: ten chain-of-thought trigger/answer pairs and ten input-inversion templates.

A task keeps ``templates_per_task`` templates of its family, chosen by hash of (seed, task,
template id). Within a stratum (task x label x template set) records are ranked by a seeded
hash of their id and the templates are dealt out in rank order: every label gets every
template equally often (+-1), so template-label association is zero by construction.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from transforms.text import stable_hash

FAMILIES = ("promptsource", "native", "sni", "open", "builtin")
TASK_TYPES = (
    "classification",
    "extraction",
    "qa",
    "generation",
    "rewriting",
    "summarization",
    "translation",
)
# Sources whose records are already prompts (their fields are gone): rendered as given.
NATIVE_SOURCES = frozenset({"p3", "flan", "openai_legacy"})
# Sources with task-level definitions and positive/negative examples.
SNI_SOURCES = frozenset({"sni", "niv1"})
# Sources where every record brings its own instruction.
OPEN_SOURCES = frozenset({"alpaca", "dolly", "lima", "oasst", "self_instruct", "chat", "sharegpt"})


@dataclass(frozen=True)
class Template:
    """One template; plain data (patterns with ``{placeholders}``), safe to pickle."""

    id: str
    family: str
    instance: str = "{input}"  # one instance: {input}, {instruction}, {options}
    target: str = "{output}"
    header: str = ""  # once above exemplars and the instance: {definition} and examples
    instance_no_input: str | None = None  # open family: the instance when the input is empty
    positives: int = 0  # sni: positive examples in the header
    negatives: int = 0  # sni: negative examples in the header
    explanations: bool = False  # sni: examples carry their explanations
    options_style: int = 0  # builtin classification: how the answer options are listed
    jinja: str | None = None  # promptsource
    answer_choices: str | None = None  # promptsource
    variables: frozenset = field(default_factory=frozenset)  # promptsource: fields it needs

    @property
    def text(self) -> str:
        """The template's own words (what the leakage audit should see), without the instance."""
        if self.jinja is not None:
            return self.jinja
        return "\n\n".join(p for p in (self.header, self.instance) if p)


# --------------------------------------------------------------------------------------------
# Built-in templates per task type (written for this project). {options} renders the answer
# options for classification prompts that list them, and nothing otherwise.
# --------------------------------------------------------------------------------------------

_BUILTIN_PATTERNS: dict[str, tuple[str, ...]] = {
    "classification": (
        "{input}\n\nWhich category best describes the text above?{options}",
        "Classify the following text.{options}\n\nText: {input}\nCategory:",
        "Read this and decide which label applies.\n\n{input}{options}\n\nLabel:",
        "Text: {input}\n\nWhat is the right label for this text?{options}\nAnswer:",
        "Assign a label to the passage below.{options}\n\n{input}",
        "{input}\n\nHow would you categorize this?{options}",
        "Here is a piece of text: {input}\n\nPick the class that fits it best.{options}",
        "Determine the correct class for the input.\n\nInput: {input}{options}\nClass:",
        'What label should this example get?\n"{input}"{options}',
        "Input text:\n{input}\n\nChoose the label that suits it.{options}\nLabel:",
    ),
    "extraction": (
        "Extract the requested information from the text below.\n\n{input}",
        "{input}\n\nWhich spans of this text does the task ask for?",
        "Text: {input}\nExtracted items:",
        "Identify and list the key elements mentioned here:\n{input}",
        "From the following passage, pull out the information asked for.\n\n{input}\n\nAnswer:",
        "Find the entities or phrases this input is about.\n\nInput: {input}\nOutput:",
        "{input}\n\nList what should be extracted from the text above.",
        "Read the text and extract the relevant spans.\n{input}",
        "Passage:\n{input}\n\nExtraction:",
        "Please extract the relevant words or phrases from this input: {input}",
    ),
    "qa": (
        "{input}",
        "Answer the following question.\n\n{input}",
        "Question: {input}\nAnswer:",
        "Q: {input}\nA:",
        "{input}\n\nWhat is the answer?",
        "Please answer this: {input}",
        "Here is a question. Give the correct answer.\n\n{input}\n\nAnswer:",
        "Solve this:\n{input}",
        "{input}\nThe answer is:",
        "Respond to the question below with a short, correct answer.\n{input}",
    ),
    "generation": (
        "{input}",
        "Generate an appropriate output for this input.\n\n{input}",
        "Input: {input}\nOutput:",
        "{input}\n\nWrite a suitable response.",
        "Given the following, produce the expected text.\n\n{input}",
        "Here is the input: {input}\n\nWhat should be generated?",
        "Complete the task for this input:\n{input}\n\nResult:",
        "Write the output that corresponds to this input.\n{input}",
        "{input}\n\nGenerate:",
        "Using the text below, create the appropriate output.\n\n{input}\n\nOutput:",
    ),
    "rewriting": (
        "Rewrite the following text.\n\n{input}",
        "{input}\n\nRewrite this as the task requires.",
        "Original: {input}\nRewritten:",
        "Please rephrase the text below.\n{input}",
        "Transform this text: {input}",
        "Input sentence: {input}\n\nRevised sentence:",
        "Edit the following so that it meets the requirements.\n\n{input}",
        "{input}\n\nHow could this be rewritten?",
        "Here is some text to rewrite:\n{input}\n\nNew version:",
        "Produce a rewritten version of: {input}",
    ),
    "summarization": (
        "Summarize the following text.\n\n{input}",
        "{input}\n\nTL;DR:",
        "Text: {input}\n\nSummary:",
        "Write a short summary of this:\n{input}",
        "{input}\n\nWhat is a brief summary of the text above?",
        "Condense the passage below into a few words.\n\n{input}",
        "Give this text a concise summary or title.\n{input}",
        "Article:\n{input}\n\nIn short:",
        "Here is a document: {input}\n\nSummarize it.",
        "{input}\n\nSum up the main point.",
    ),
    "translation": (
        "Translate the following text.\n\n{input}",
        "{input}\n\nTranslate this.",
        "Source: {input}\nTranslation:",
        "How would you say this in the target language?\n{input}",
        "Translate: {input}",
        "Text to translate:\n{input}\n\nTranslated text:",
        "{input}\n\nGive the translation of the sentence above.",
        "Please provide a translation for: {input}",
        "Input: {input}\nOutput (translated):",
        "Render this text in the other language.\n\n{input}",
    ),
}

OPTION_STYLES = 3  # "Options:\n- a\n- b" | "Choose from: a, b" | "Answer with one of: a | b"

BUILTIN = tuple(
    Template(
        id=f"builtin/{task_type}/{i:02d}",
        family="builtin",
        instance=pattern,
        options_style=i % OPTION_STYLES,
    )
    for task_type, patterns in _BUILTIN_PATTERNS.items()
    for i, pattern in enumerate(patterns)
)

# Open-instruction templates: (with input, without input).
_OPEN_PATTERNS = (
    ("{instruction}\n\n{input}", "{instruction}"),
    (
        "Instruction: {instruction}\nInput: {input}\nResponse:",
        "Instruction: {instruction}\nResponse:",
    ),
    (
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:",
        "### Instruction:\n{instruction}\n\n### Response:",
    ),
    (
        (
            "Below is a task and some context. Write a response that completes the task.\n\n"
            "Task: {instruction}\nContext: {input}\n\nResponse:"
        ),
        "Below is a task. Write a response that completes it.\n\nTask: {instruction}\n\nResponse:",
    ),
    ("Task: {instruction}\n\nInput: {input}", "Task: {instruction}"),
    (
        "User request: {instruction}\n{input}\n\nAssistant:",
        "User request: {instruction}\n\nAssistant:",
    ),
    (
        "Please help with the following.\n{instruction}\n\n{input}",
        "Please help with the following.\n{instruction}",
    ),
    (
        (
            "Here is an instruction, followed by an input.\nInstruction: {instruction}\n"
            "Input: {input}\nWrite the appropriate response."
        ),
        "Here is an instruction.\n{instruction}\nWrite the appropriate response.",
    ),
    ("Context:\n{input}\n\nRequest:\n{instruction}\n\nReply:", "Request:\n{instruction}\n\nReply:"),
    ("{instruction}\nInput: {input}\nOutput:", "{instruction}\nOutput:"),
)

OPEN = tuple(
    Template(id=f"open/{i:02d}", family="open", instance=with_input, instance_no_input=no_input)
    for i, (with_input, no_input) in enumerate(_OPEN_PATTERNS)
)

# SNI encodings (Wang et al. 2022): (id, header, instance, positives, negatives, explanations).
_SNI = (
    (
        "def-0",
        "Definition: {definition}",
        "Now complete the following example -\nInput: {input}\nOutput:",
        0,
        0,
        False,
    ),
    ("def-1", "{definition}", "Input: {input}\nOutput:", 0, 0, False),
    ("def-2", "Task: {definition}", "Problem: {input}\nSolution:", 0, 0, False),
    (
        "def+pos1",
        "Definition: {definition}",
        "Now complete the following example -\nInput: {input}\nOutput:",
        1,
        0,
        False,
    ),
    (
        "def+pos2",
        "Definition: {definition}",
        "Now complete the following example -\nInput: {input}\nOutput:",
        2,
        0,
        False,
    ),
    ("def+pos2+expl", "{definition}", "Input: {input}\nOutput:", 2, 0, True),
    ("def+pos2+neg2", "Task: {definition}", "Problem: {input}\nSolution:", 2, 2, False),
    (
        "def+pos1+neg1+expl",
        "Definition: {definition}",
        "Now complete the following example -\nInput: {input}\nOutput:",
        1,
        1,
        True,
    ),
    (
        "def+pos2+neg2+expl",
        "Definition: {definition}",
        "Now complete the following example -\nInput: {input}\nOutput:",
        2,
        2,
        True,
    ),
    ("pos2", "", "Input: {input}\nOutput:", 2, 0, False),
)

SNI = tuple(
    Template(
        id=f"sni/{name}",
        family="sni",
        header=header,
        instance=instance,
        positives=pos,
        negatives=neg,
        explanations=expl,
    )
    for name, header, instance, pos, neg, expl in _SNI
)

# Chain of thought: (trigger appended to the zero-shot prompt, completion pattern).
COT = (
    ("Let's think step by step.", "{rationale}\nSo the answer is: {output}"),
    (
        "Explain your reasoning, then give the answer.",
        "{rationale}\nTherefore, the answer is {output}",
    ),
    ("Think it through before answering.", "Reasoning: {rationale}\nAnswer: {output}"),
    (
        "Give a step-by-step explanation and then the final answer.",
        "{rationale}\nFinal answer: {output}",
    ),
    ("Show your work.", "{rationale}\nThe answer: {output}"),
    ("Answer with your reasoning.", "{rationale} So the final answer is {output}"),
    ("First reason about it, then answer.", "{rationale}\nThus the answer is {output}"),
    ("Work through the problem carefully.", "Step by step: {rationale}\nAnswer: {output}"),
    ("Justify your answer.", "{rationale}\nThat is why the answer is {output}"),
    ("Reason step by step and give your answer at the end.", "{rationale}\nMy answer: {output}"),
)

# Input inversion: the prompt shows the output (and the task, when known) and asks for the input.
INVERT = (
    "{task_block}Here is an output: {output}\n\nWrite the input it was produced from.",
    "{task_block}Output: {output}\n\nWhat input would lead to this output?\nInput:",
    "Work backwards. {task_block}The answer was:\n{output}\n\nWhat was the question or input?",
    "{task_block}Given this response, reconstruct the request that produced it.\n\n{output}",
    "Response: {output}\n\n{task_block}Write a plausible input for this response.",
    "{task_block}Here is the result:\n{output}\n\nWhat was the original input?",
    "Generate the input for the following output.\n{task_block}Output: {output}\nInput:",
    '{task_block}Someone wrote this as the answer: "{output}"\nWhat were they given?',
    "Reverse the task. {task_block}Target text:\n{output}\n\nSource text:",
    "{task_block}{output}\n\nThe text above is an output. Write the input.",
)

STATIC = {t.id: t for t in (*BUILTIN, *OPEN, *SNI)}
_BUILTIN_IDS = {
    kind: tuple(t.id for t in BUILTIN if t.id.startswith(f"builtin/{kind}/"))
    for kind in _BUILTIN_PATTERNS
}
_OPEN_IDS = tuple(t.id for t in OPEN)


# --------------------------------------------------------------------------------------------
# Task types
# --------------------------------------------------------------------------------------------

_TYPE_KEYWORDS = (
    ("translation", ("translation", "translate")),
    ("summarization", ("summar", "title_generation", "headline")),
    (
        "rewriting",
        (
            "simplification",
            "paraphras",
            "style_transfer",
            "rewrit",
            "correction",
            "grammar_err",
            "compression",
            "text_simplification",
            "detoxif",
        ),
    ),
    ("extraction", ("extraction", "entity", "keyword", "tagging", "span", "_ner", "recognition")),
    (
        "classification",
        (
            "classification",
            "categorization",
            "sentiment",
            "entailment",
            "detection",
            "identification",
            "verification",
            "stance",
            "_polarity",
            "textual_entailment",
        ),
    ),
    ("generation", ("question_generation", "dialogue", "story", "writing")),
    (
        "qa",
        (
            "question_answering",
            "answer",
            "_qa",
            "qa_",
            "arithmetic",
            "math",
            "reasoning",
            "commonsense",
            "reading_comprehension",
            "cot_",
        ),
    ),
    ("generation", ("generation",)),
)


def task_type(record: Mapping) -> str:
    """The built-in type of a record's task: from its labels, categories and task name."""
    if record.get("label") or record.get("label_space"):
        return "classification"
    return _type_from_names(record.get("task") or "", tuple(record.get("task_categories") or ()))


@functools.lru_cache(maxsize=4096)
def _type_from_names(task: str, categories: tuple) -> str:
    text = " ".join(str(n) for n in (task, *categories)).casefold()
    text = text.replace(" ", "_").replace("-", "_")
    for kind, keywords in _TYPE_KEYWORDS:
        if any(k in text for k in keywords):
            return kind
    return "generation"


def task_category(record: Mapping, kind: str | None = None) -> str:
    """The category a held-out-tasks split stratifies by: the first declared one, else the type."""
    categories = record.get("task_categories") or []
    return str(categories[0]) if categories else (kind or task_type(record))


# --------------------------------------------------------------------------------------------
# PromptSource
# --------------------------------------------------------------------------------------------

_JINJA_NAMES = frozenset({"answer_choices", "zip", "enumerate", "range", "loop", "_rng"})


def jinja_environment():
    """A sandboxed Jinja environment with PromptSource's helpers (``choice`` seeded per record)."""
    from jinja2 import StrictUndefined, pass_context
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    @pass_context
    def choice(context, values):
        values = list(values)
        rng = context.get("_rng")
        return values[rng.randrange(len(values))] if rng is not None else values[0]

    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    env.filters["choice"] = choice
    env.globals.update(zip=zip, enumerate=enumerate)
    return env


def jinja_variables(env, source: str) -> frozenset:
    """Names a Jinja template reads from the example (PromptSource's own names excluded)."""
    from jinja2 import meta

    return frozenset(meta.find_undeclared_variables(env.parse(source))) - _JINJA_NAMES


def promptsource_template(row: Mapping, env) -> Template | None:
    """A usable template from a ``load_template_sets`` row, or None (not the original task,
    no ``|||`` between prompt and target, or unparsable Jinja)."""
    jinja = row.get("jinja")
    metadata = row.get("metadata") or {}
    if not isinstance(jinja, str) or "|||" not in jinja:
        return None
    if metadata.get("original_task") is False:
        return None  # e.g. "generate a review that is {{answer_choices[label]}}": label in prompt
    try:
        variables = jinja_variables(env, jinja)
        choices = row.get("answer_choices")
        if isinstance(choices, str):
            variables |= jinja_variables(env, choices)
    except Exception:  # noqa: BLE001 - a template that does not parse is not usable
        return None
    return Template(
        id=f"promptsource/{row.get('task')}/{row.get('template_id')}",
        family="promptsource",
        jinja=jinja,
        answer_choices=row.get("answer_choices"),
        variables=variables,
    )


def example_fields(record: Mapping) -> dict:
    """The dataset's own fields of a record (its ``metadata`` JSON object), for PromptSource."""
    raw = record.get("metadata")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


class RenderError(ValueError):
    """A template could not be rendered for a record (counted, the record is left out)."""


def render_jinja(env, cache: dict, template: Template, fields: Mapping, rng_key: str):
    """``(prompt, target)`` of a PromptSource template for one example."""
    rng = random.Random(rng_key)
    try:
        values = dict(fields)
        values["_rng"] = rng
        choices = None
        if template.answer_choices:
            compiled = _compiled(env, cache, template.answer_choices)
            choices = [c.strip() for c in compiled.render(values).split("|||")]
        values["answer_choices"] = choices
        text = _compiled(env, cache, template.jinja).render(values)
    except Exception as error:  # noqa: BLE001 - any Jinja failure is a render error
        raise RenderError(f"{template.id}: {type(error).__name__}: {error}") from None
    parts = text.split("|||")
    prompt, target = parts[0].strip(), "|||".join(parts[1:]).strip()
    if not prompt or not target:
        raise RenderError(f"{template.id}: empty prompt or target")
    return prompt, target


def _compiled(env, cache: dict, source: str):
    compiled = cache.get(source)
    if compiled is None:
        if len(cache) > 4096:
            cache.clear()
        compiled = cache[source] = env.from_string(source)
    return compiled


# --------------------------------------------------------------------------------------------
# The registry: a record's template set, and any template by id
# --------------------------------------------------------------------------------------------


class TemplateRegistry:
    """Templates by id and template sets per record. Built on each worker (``DoFn.setup``)
    from the plain PromptSource rows; never pickled itself."""

    def __init__(
        self, promptsource_rows: Iterable[Mapping] = (), *, seed: int = 0, per_task: int = 10
    ):
        self.seed = seed
        self.per_task = per_task
        self.env = jinja_environment()
        self.jinja_cache: dict = {}
        self._by_id: dict[str, Template] = dict(STATIC)
        # Rows per task; a task's Jinja is parsed the first time one of its records shows up.
        self._rows: dict[str, list[Mapping]] = {}
        for row in promptsource_rows:
            self._rows.setdefault(str(row.get("task")), []).append(row)
        self._promptsource: dict[str, list[Template]] = {}
        self._chosen: dict[tuple, tuple[str, ...]] = {}

    def _task_templates(self, task: str) -> list[Template]:
        templates = self._promptsource.get(task)
        if templates is None:
            templates = []
            for row in self._rows.get(task, ()):
                template = promptsource_template(row, self.env)
                if template is not None:
                    self._by_id[template.id] = template
                    templates.append(template)
            self._promptsource[task] = templates
        return templates

    @property
    def promptsource_tasks(self) -> frozenset:
        return frozenset(t for t in self._rows if self._task_templates(t))

    def get(self, template_id: str) -> Template:
        template = self._by_id.get(template_id)
        if template is None and template_id.startswith("promptsource/"):
            self._task_templates(template_id.split("/")[1])
            template = self._by_id.get(template_id)
        if template is None and template_id.startswith("native/"):
            template = Template(id=template_id, family="native")
            self._by_id[template_id] = template
        if template is None:
            raise KeyError(template_id)
        return template

    def family(self, record: Mapping) -> str:
        """The family a record's templates come from (see the module docstring)."""
        if self._promptsource_ids(record):
            return "promptsource"
        source = record.get("source") or ""
        if source in NATIVE_SOURCES:
            return "native"
        if record.get("definition") and (source in SNI_SOURCES or record.get("positive_examples")):
            return "sni"
        if source in OPEN_SOURCES or record.get("definition"):
            return "open"
        return "builtin"

    def template_set(self, record: Mapping, kind: str | None = None) -> tuple[str, tuple[str, ...]]:
        """``(family, template ids)``: the ids a record may be rendered with, in a fixed order.

        ``kind``: the record's ``task_type`` when the caller has it already.
        """
        family = self.family(record)
        task = record.get("task") or ""
        if family == "native":
            return family, (f"native/{record.get('template_id') or 'default'}",)
        if family == "promptsource":
            candidates = self._promptsource_ids(record)
        elif family == "sni":
            n_pos = len(record.get("positive_examples") or [])
            n_neg = len(record.get("negative_examples") or [])
            candidates = tuple(t.id for t in SNI if t.positives <= n_pos and t.negatives <= n_neg)
        elif family == "open":
            candidates = _OPEN_IDS
        else:
            candidates = _BUILTIN_IDS[kind or task_type(record)]
        return family, self.choose(task, candidates)

    def choose(self, task: str, candidates: Sequence[str]) -> tuple[str, ...]:
        """The task's ``per_task`` templates out of ``candidates``, by hash of (seed, task, id)."""
        key = (task, tuple(candidates))
        chosen = self._chosen.get(key)
        if chosen is None:
            ranked = sorted(candidates, key=lambda t: stable_hash(str(self.seed), task, t))
            chosen = tuple(sorted(ranked[: self.per_task]))
            if len(self._chosen) > 65536:
                self._chosen.clear()
            self._chosen[key] = chosen
        return chosen

    def _promptsource_ids(self, record: Mapping) -> tuple[str, ...]:
        task = record.get("task") or ""
        if task not in self._rows:
            return ()
        templates = self._task_templates(task)
        if not templates:
            return ()
        keys = set(example_fields(record))
        return tuple(t.id for t in templates if t.variables <= keys)

    def render_promptsource(self, template: Template, fields: Mapping, rng_key: str):
        return render_jinja(self.env, self.jinja_cache, template, fields, rng_key)


# --------------------------------------------------------------------------------------------
# Label-blind, stratified assignment
# --------------------------------------------------------------------------------------------


def stratum_offset(seed: int, *parts: str) -> int:
    """Where the deal starts in a stratum: a hash of the stratum *without* its label."""
    return int(stable_hash(str(seed), "template-offset", *parts, digest_size=8), 16)


def assign_stratum(
    members: Iterable[tuple[int, str]], n_templates: int, offset: int
) -> dict[str, int]:
    """Template index per record id: ranks by ``(hash, id)``, dealt round-robin from ``offset``.

    The hash is of (seed, record id) only, so the order -- and the template -- never depends on
    the record's label; within a stratum every template gets floor or ceil of n / T records.
    """
    if n_templates < 1:
        raise ValueError("a stratum needs at least one template")
    ordered = sorted(members)
    return {rid: (offset + rank) % n_templates for rank, (_, rid) in enumerate(ordered)}


def heldout_templates(seed: int, task: str, template_ids: Sequence[str], fraction: float) -> tuple:
    """Templates of a set held out for evaluation (unseen templates): round(f * T), at least one
    when the set has two or more, never all of them; chosen by hash of (seed, task, id)."""
    n = len(template_ids)
    if n < 2 or fraction <= 0:
        return ()
    k = min(n - 1, max(1, round(fraction * n)))
    ranked = sorted(template_ids, key=lambda t: stable_hash(str(seed), "heldout-template", task, t))
    return tuple(sorted(ranked[:k]))


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill(pattern: str, values: Mapping[str, str]) -> str:
    """Replace ``{name}`` placeholders; values are inserted verbatim (never re-scanned)."""

    def replace(match: re.Match) -> str:
        value = values.get(match.group(1))
        return match.group(0) if value is None else value

    return _PLACEHOLDER.sub(replace, pattern)
