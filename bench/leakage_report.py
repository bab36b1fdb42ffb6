"""The leakage audit on the real classification data in ../shared/data, for docs/leakage.md.

    .venv/bin/python -m bench.leakage_report [--work bench/work/leakage_report] [--doc docs/leakage.md]

Reads the raw files with plain json (no ingest stage needed), writes them as Parquet corpora,
runs ``pipelines.audit.run_audit`` (the ``instructmix audit`` command) on each and rewrites
the generated part of ``docs/leakage.md`` (between the ``generated`` markers). Three audits:

* ``sni``: SNI classification tasks task1289 (English + Finnish translation, one task, two
  definitions), task352, task485, task463, task533, task137, task318. The template is the
  task's Definition (one per file), so within a file template statistics are trivially zero;
  what matters is the per-task label distribution, labels spelled in the definition, and the
  task checks.
* ``p3_verbalized``: P3/T0 rendered templates (``prompt``/``completion``); task = the dataset
  prefix of the file name, template = the rest. The template text is the PromptSource Jinja
  prompt with the example's fields left out (answer choices rendered). Label = the
  completion as the model must write it (the verbaliser), for files with few distinct ones.
* ``p3_canonical``: the same rows, labelled with the underlying class instead: P3 renders
  every template of a dataset on the same examples in the same order, so row i of every
  template is one example; its class is read from a reference template, and a template's
  rows are labelled when its completions are a function of that class.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
from collections import defaultdict
from pathlib import Path

import jinja2
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from pipelines.audit import format_summary, read_tables, run_audit
from transforms.labels import normalise_label
from transforms.leakage import SHARDS, TASKS, TOKENS
from transforms.leakage_config import LeakageConfig
from transforms.schema import CORPUS_SCHEMA, new_record

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
END_OF_TEXT = "<|endoftext|>"
SNI_FILES = [
    "sni/tasks/task1289_trec_classification.json",
    "sni/finnish_translations/fin-translated-task1289_trec_classification.json",
    "sni/tasks/task352_coda-19_classification.json",
    "sni/tasks_nonenglish/task485_cls_japanese_books_classification.json",
    "sni/tasks_nonenglish/task463_parsinlu_entailment_classification.json",
    "sni/tasks_nonenglish/task533_europarl_es-en_language_identification.json",
    "sni/contributor_drafts/task137_detoxifying-lms_classification_toxicity.json",
    "sni/contributor_drafts/task318_stereoset_classification_gender.json",
]
BEGIN, END = "<!-- generated:begin -->", "<!-- generated:end -->"


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def sni_records(relative: str) -> list[dict]:
    """One record per SNI instance; the Definition is the template text."""
    path = DATA / relative
    doc = json.loads(path.read_text(encoding="utf-8"))
    definition = "\n".join(_as_list(doc["Definition"]))
    examples = [
        {"input": e.get("input"), "output": e.get("output"), "explanation": e.get("explanation")}
        for e in doc.get("Positive Examples") or []
    ]
    task = path.stem.removeprefix("fin-translated-")
    records = []
    for i, instance in enumerate(doc["Instances"]):
        outputs = _as_list(instance.get("output"))
        records.append(
            new_record(
                id=instance.get("id"),
                source="sni",
                source_file=relative,
                source_index=i,
                task=task,
                definition=definition,
                positive_examples=examples,
                input=instance.get("input"),
                output=outputs[0] if outputs else None,
                references=outputs,
                instruction_language=_as_list(doc.get("Instruction_language")),
                input_language=_as_list(doc.get("Input_language")),
                output_language=_as_list(doc.get("Output_language")),
            )
        )
    return records


class _TemplateLoader(yaml.SafeLoader):
    """PromptSource's YAML tags (!Template, !TemplateMetadata) read as plain mappings."""


def _mapping(loader, node):
    return loader.construct_mapping(node, deep=True)


_TemplateLoader.add_constructor("!Template", _mapping)
_TemplateLoader.add_constructor("!TemplateMetadata", _mapping)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name)


def promptsource_templates() -> dict[str, dict[str, dict]]:
    """dataset slug -> template slug -> template, from the PromptSource YAML files."""
    out: dict[str, dict[str, dict]] = {}
    for path in sorted(
        glob.glob(str(DATA / "promptsource/templates/**/templates.yaml"), recursive=True)
    ):
        with open(path, encoding="utf-8") as handle:
            doc = yaml.load(handle, Loader=_TemplateLoader)
        dataset = doc["dataset"] + (f"_{doc['subset']}" if doc.get("subset") else "")
        templates = {_slug(t["name"]): t for t in doc["templates"].values()}
        out[_slug(dataset)] = templates
    return out


_JINJA = jinja2.Environment(undefined=jinja2.ChainableUndefined)


def template_text(template: dict | None) -> str:
    """The prompt side of a PromptSource template with the example's fields left empty."""
    if not template:
        return ""
    prompt = template["jinja"].split("|||")[0]
    choices = [c.strip() for c in (template.get("answer_choices") or "").split("|||") if c.strip()]
    try:
        return _JINJA.from_string(prompt).render(answer_choices=choices)
    except Exception:  # noqa: BLE001 - a template using the example's fields in code
        return re.sub(r"{{.*?}}|{%.*?%}", " ", prompt, flags=re.DOTALL)


def p3_files() -> dict[str, list[tuple[str, Path]]]:
    """dataset -> [(template name, file)], by the longest dataset prefix of the file name."""
    templates = promptsource_templates()
    out: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    for path in sorted((DATA / "p3_t0_gpt3ft" / "data_per_template").glob("*.jsonl")):
        stem = path.stem
        dataset = max((d for d in templates if stem.startswith(d + "_")), key=len)
        out[dataset].append((stem[len(dataset) + 1 :], path))
    return dict(out)


def p3_records(*, canonical: bool, max_labels: int = 10) -> list[dict]:
    """P3 rows as records; labels verbalised (the completion) or canonical (the class)."""
    templates = promptsource_templates()
    records = []
    for dataset, files in p3_files().items():
        rows = {}
        for name, path in files:
            lines = path.read_text(encoding="utf-8").splitlines()
            rows[name] = [json.loads(line) for line in lines if line.strip()]
        outputs = {
            name: [normalise_label(r["completion"].removesuffix(END_OF_TEXT)) for r in rs]
            for name, rs in rows.items()
        }
        few = {
            name: len(set(values)) <= max_labels and len(values) > 0 and all(values)
            for name, values in outputs.items()
        }
        reference = canonical_reference(outputs, few)
        for name, rs in rows.items():
            labels = outputs[name] if few[name] else [None] * len(rs)
            if canonical and few[name]:
                labels = canonical_labels(outputs, reference, name)
            template = templates.get(dataset, {}).get(name)
            text = template_text(template)
            for i, row in enumerate(rs):
                records.append(
                    new_record(
                        source="p3",
                        source_file=f"p3_t0_gpt3ft/data_per_template/{dataset}_{name}.jsonl",
                        source_index=i,
                        task=dataset,
                        template_id=name,
                        template=text,
                        input=row["prompt"],
                        output=row["completion"].removesuffix(END_OF_TEXT),
                        label=labels[i],
                        input_language=["English"],
                    )
                )
    return records


def canonical_reference(outputs: dict[str, list], few: dict[str, bool]) -> str | None:
    """The first few-valued template with the most rows: its completion names the class."""
    candidates = [n for n in sorted(outputs) if few[n] and len(set(outputs[n])) > 1]
    if not candidates:
        candidates = [n for n in sorted(outputs) if few[n]]
    return max(candidates, key=lambda n: len(outputs[n]), default=None)


def canonical_labels(outputs: dict[str, list], reference: str | None, name: str) -> list:
    """Row-aligned class of each row of ``name``, or None where the alignment does not hold."""
    values = outputs[name]
    if reference is None or len(values) != len(outputs[reference]):
        return [None] * len(values)
    ref = outputs[reference]
    mapping: dict = {}
    for mine, theirs in zip(values, ref, strict=True):
        if mapping.setdefault(mine, theirs) != theirs:
            return [None] * len(values)  # completions are not a function of the class
    return list(ref)


def write_corpus(records: list[dict], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.parquet"):
        old.unlink()
    pq.write_table(
        pa.Table.from_pylist(records, schema=CORPUS_SCHEMA), directory / "part-0.parquet"
    )


def _f(value, pattern: str = "{:.2f}") -> str:
    return "–" if value is None else pattern.format(value)


def shard_table(shards: list[dict], kind: str) -> list[str]:
    header = (
        "| shard | n (labelled / skipped) | labels | templates | baseline vs majority "
        "| Cramér's V (corr.) | NMI | flagged: reasons | top flagged tokens | notes |"
    )
    rows = [
        header,
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in sorted((s for s in shards if s["shard_kind"] == kind), key=lambda s: s["shard"]):
        tokens = ", ".join(
            f"`{t['token']}`→{t['label']} ({t['npmi']:.2f}, z {t['z']:.0f})"
            for t in s["top_tokens"]
            if t["flagged"]
        )
        labels = ", ".join(f"{c['label']} {c['n']}" for c in s["label_counts"][:6])
        if len(s["label_counts"]) > 6:
            labels += f", … ({len(s['label_counts'])} labels)"
        rows.append(
            f"| {s['shard']} | {s['n_labelled']} / {s['n_skipped_unlabelled']} | {labels or '–'} "
            f"| {s['n_templates']} | {_f(s['template_baseline'])} vs {_f(s['majority_rate'])} "
            f"| {_f(s['cramers_v_corrected'])} | {_f(s['normalized_mi'])} "
            f"| {', '.join(s['reasons']) or '–'} | {tokens or '–'} "
            f"| {'; '.join(s['notes']) or '–'} |"
        )
    return rows


def findings_table(tasks: list[dict]) -> list[str]:
    rows = ["| task | check | severity | value | evidence |", "|---|---|---|---|---|"]
    for r in sorted(tasks, key=lambda r: (r["task"], r["check"])):
        evidence = r["evidence"].replace("|", "\\|").replace("\n", " ")
        rows.append(
            f"| {r['task']} | {r['check']} | {r['severity']} | {r['value']:g} | {evidence} |"
        )
    return rows


def section(title: str, summary: dict, tables: dict, kinds: list[str]) -> list[str]:
    flagged_tokens = sum(1 for t in tables[TOKENS] if t["flagged"])
    totals = (
        f"{summary['records']} records, {summary['labelled']} labelled, "
        f"{summary['skipped_unlabelled']} skipped as unlabelled; {summary['tasks']} tasks "
        f"({summary['classification_tasks']} with two or more labels); "
        f"{sum(summary['flagged_shards'].values())} of {sum(summary['shards'].values())} shards "
        f"flagged; {flagged_tokens} flagged token-label pairs; runner {summary['runner']}, "
        f"{summary['seconds']} s."
    )
    lines = [f"### {title}", "", totals, ""]
    for kind in kinds:
        lines += [f"Shards of kind `{kind}`:", "", *shard_table(tables[SHARDS], kind), ""]
    lines += ["Task checks:", "", *findings_table(tables[TASKS]), ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default=str(REPO / "bench" / "work" / "leakage_report"))
    parser.add_argument("--doc", default=str(REPO / "docs" / "leakage.md"))
    parser.add_argument("--beam-args", nargs="*", default=["--runner=FnApiRunner"])
    args = parser.parse_args()
    work = Path(args.work)
    config = LeakageConfig()
    audits = {
        "sni": [r for f in SNI_FILES for r in sni_records(f)],
        "p3_verbalized": p3_records(canonical=False),
        "p3_canonical": p3_records(canonical=True),
    }
    generated = [BEGIN, "", f"Config fingerprint `{config.fingerprint()}` (defaults).", ""]
    titles = {
        "sni": ("SNI classification tasks (definition = template)", ["task", "file"]),
        "p3_verbalized": ("P3 / PromptSource, verbalised labels", ["task", "task_template"]),
        "p3_canonical": ("P3 / PromptSource, canonical (row-aligned) labels", ["task"]),
    }
    for name, records in audits.items():
        directory = work / name
        write_corpus(records, directory / "corpus")
        summary = run_audit(str(directory), str(directory), config, args.beam_args)
        print(f"== {name}\n{format_summary(summary)}\n")
        title, kinds = titles[name]
        generated += section(title, summary, read_tables(str(directory)), kinds)
    generated.append(END)
    doc = Path(args.doc)
    text = doc.read_text(encoding="utf-8") if doc.exists() else f"{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    doc.write_text(head + "\n".join(generated) + tail, encoding="utf-8")
    print(f"wrote {doc} ({len(audits)} audits); tables under {work}")


if __name__ == "__main__":
    main()
