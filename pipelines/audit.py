"""``instructmix audit``: the leakage statistics and task checks on any existing Parquet.

    instructmix audit OUT_OR_PARQUET [--output DIR] [-- beam args]

Reads a corpus or a mixture this pipeline wrote (or any Parquet with some of the schema's
columns: ``task``, ``template_id``, ``template``, ``definition``, ``input``, ``output``,
``label`` ...; a mixture's ``prompt``/``completion`` are understood too), runs
``LeakageAudit`` on a Beam pipeline and writes ``DIR/leakage/{tokens,shards,tasks}.parquet``.
``run_audit`` returns a summary (the worst shards and their tokens); ``format_summary`` prints
it. Given an output directory of ``instructmix run`` it audits ``mixture/`` when present, else
``corpus/``, and adds a "qa" section to that directory's ``manifest.json``.
"""

from __future__ import annotations

import argparse
import json
import posixpath
import time
from collections import Counter
from collections.abc import Mapping

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

from pipelines.options import pipeline_options, runner_description
from transforms.leakage import (
    NAMESPACE,
    SHARDS,
    SHARDS_SCHEMA,
    TASKS,
    TASKS_SCHEMA,
    TOKENS,
    TOKENS_SCHEMA,
    LeakageAudit,
)
from transforms.leakage_config import LeakageConfig
from transforms.schema import FIELDS, new_record

LEAKAGE = "leakage"
MANIFEST = "manifest.json"  # written by ``instructmix run``; the audit adds its "qa" section
TABLES = {TOKENS: TOKENS_SCHEMA, SHARDS: SHARDS_SCHEMA, TASKS: TASKS_SCHEMA}
# Sub-directories of an ``instructmix run`` output, in the order they are preferred.
AUDITABLE = ("mixture", "corpus")
END_OF_TEXT = "<|endoftext|>"
_MIXTURE_COLUMNS = ("prompt", "completion")


class AuditInputError(ValueError):
    """The path holds no Parquet file to audit."""


def _join(base: str, *parts: str) -> str:
    return FileSystems.join(base, *parts) if "://" in base else posixpath.join(base, *parts)


def _parquet_files(path: str) -> list[str]:
    """Parquet files to audit under ``path`` (a file, a directory or a run's output dir)."""
    if path.endswith(".parquet") and FileSystems.exists(path):
        return [path]
    for sub in AUDITABLE:
        candidate = _join(path, sub)
        if FileSystems.exists(candidate):
            path = candidate
            break
    root = path.rstrip("/") + "/"
    matches = FileSystems.match([_join(path, "**.parquet")])[0].metadata_list
    files = sorted(m.path for m in matches if not _skipped(m.path.removeprefix(root)))
    if not files:
        raise AuditInputError(f"no Parquet files under {path!r}")
    return files


def _skipped(relative: str) -> bool:
    """Temporary, hidden and our own output directories are not audited."""
    return any(p.startswith(("_", ".")) or p == LEAKAGE for p in relative.split("/")[:-1])


def _columns(files: list[str]) -> list[str]:
    """The wanted columns every file has (reading needs a common column set)."""
    wanted = [*FIELDS, *_MIXTURE_COLUMNS]
    common = None
    for path in files:
        with FileSystems.open(path) as handle:
            names = set(pq.read_schema(handle).names)
        common = names if common is None else common & names
    return [c for c in wanted if c in (common or set())]


def _partition_values(filename: str) -> dict[str, str]:
    """Hive partition values (``lang=en/``) from a file path."""
    out = {}
    for part in filename.split("/")[:-1]:
        if "=" in part:
            key, value = part.split("=", 1)
            out[key] = value
    return out


def to_audit_record(row: Mapping, filename: str | None = None) -> tuple[dict, str]:
    """A corpus or mixture row as a schema record, and where its template text came from.

    A mixture row's template text is its prompt with the instance input removed (when the
    row has the input and the prompt contains it), else its ``template`` column, else the
    whole prompt (then instance tokens count as template tokens: reported, not hidden).
    """
    values = {k: row[k] for k in FIELDS if row.get(k) is not None}
    origin = "template" if values.get("template") else "definition"
    prompt = row.get("prompt")
    if prompt is not None:
        instance = values.get("input")
        if instance and instance in prompt:
            values["template"] = prompt.replace(instance, "\n", 1)
            origin = "prompt_minus_input"
        elif values.get("template"):
            origin = "template"
        else:
            values["template"] = prompt
            origin = "whole_prompt"
        values.setdefault("input", prompt)
    completion = row.get("completion")
    if completion is not None and not values.get("output"):
        values["output"] = completion.removesuffix(END_OF_TEXT)
    if filename:
        values.setdefault("source_file", filename)
        lang = _partition_values(filename).get("lang")
        if lang:
            values.setdefault("lang", lang)
    return new_record(**values), origin


class ToAuditRecordFn(beam.DoFn):
    """(filename, row) -> record; counts where each template text came from."""

    def process(self, element):
        filename, row = element
        record, origin = to_audit_record(row, filename)
        Metrics.counter(NAMESPACE, f"template_from:{origin}").inc()
        yield record


def build_audit(pipeline: beam.Pipeline, files: list[str], columns: list[str], out: str, config):
    """Add read -> LeakageAudit -> write to ``pipeline`` (does not run it)."""
    records = (
        pipeline
        | "AuditFiles" >> beam.Create(files)
        | "ReadParquet" >> beam.io.ReadAllFromParquet(columns=columns, with_filename=True)
        | "ToRecords" >> beam.ParDo(ToAuditRecordFn())
    )
    tables = records | "LeakageAudit" >> LeakageAudit(config)
    write_tables(tables, out)


def write_tables(tables: dict, out: str) -> None:
    """Write LeakageAudit's outputs as ``out/leakage/{tokens,shards,tasks}.parquet``."""
    for name, schema in TABLES.items():
        tables[name] | f"Write_{name}" >> beam.io.WriteToParquet(
            _join(out, LEAKAGE, name),
            schema=schema,
            file_name_suffix=".parquet",
            num_shards=1,
            shard_name_template="",
            codec="zstd",
        )


def run_audit(
    path: str,
    output_dir: str,
    config: LeakageConfig | None = None,
    pipeline_args: list[str] | None = None,
) -> dict:
    """Audit the Parquet under ``path``; write ``output_dir/leakage/*.parquet``; summarise."""
    config = config or LeakageConfig()
    started = time.time()
    files = _parquet_files(path)
    columns = _columns(files)
    stale = [_join(output_dir, LEAKAGE, f"{name}.parquet") for name in TABLES]
    stale = [p for p in stale if FileSystems.exists(p)]
    if stale:
        FileSystems.delete(stale)
    options = pipeline_options(list(pipeline_args or []))
    pipeline = beam.Pipeline(options=options)
    build_audit(pipeline, files, columns, output_dir, config)
    result = pipeline.run()
    result.wait_until_finish()
    summary = summarize(output_dir)
    summary["counters"] = counters(result)
    summary.update(
        {
            "input": path,
            "files": len(files),
            "columns": columns,
            "runner": runner_description(options),
            "seconds": round(time.time() - started, 2),
            "config_fingerprint": config.fingerprint(),
        }
    )
    add_qa_to_manifest(output_dir, summary)
    return summary


def counters(result) -> dict[str, int]:
    """The stage's Beam counters (labels given/derived, skipped, template text origin...)."""
    try:
        queried = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    except Exception:  # noqa: BLE001 - a runner without metrics support: report none
        return {}
    totals: dict[str, int] = {}
    for counter in queried:
        value = counter.committed if counter.committed is not None else counter.attempted
        name = counter.key.metric.name
        totals[name] = totals.get(name, 0) + (value or 0)
    return dict(sorted(totals.items()))


def add_qa_to_manifest(output_dir: str, summary: dict) -> bool:
    """Put ``qa_section(summary)`` under "qa" in ``output_dir/manifest.json`` if one exists."""
    path = _join(output_dir, MANIFEST)
    if not FileSystems.exists(path):
        return False
    with FileSystems.open(path) as handle:
        manifest = json.loads(handle.read().decode("utf-8"))
    manifest["qa"] = qa_section(summary)
    with FileSystems.create(path) as handle:
        handle.write(json.dumps(manifest, indent=2, ensure_ascii=False, default=str).encode())
    return True


def read_tables(output_dir: str) -> dict[str, list[dict]]:
    """The three leakage tables as row lists, sorted for stable comparison."""
    out = {}
    for name in TABLES:
        with FileSystems.open(_join(output_dir, LEAKAGE, f"{name}.parquet")) as handle:
            rows = pq.read_table(handle).to_pylist()
        out[name] = sorted_rows(rows)
    return out


def sorted_rows(rows: list[dict]) -> list[dict]:
    """Rows of any leakage table in a stable order (for comparison and display)."""
    keys = ("shard", "task", "token", "label", "check", "evidence")
    return sorted(rows, key=lambda row: tuple(str(row.get(k)) for k in keys))


def summarize(output_dir: str, *, top: int = 10) -> dict:
    """Counts, flagged shards per kind, the worst shards with their tokens, task findings."""
    tables = read_tables(output_dir)
    shards, tasks = tables[SHARDS], tables[TASKS]
    task_shards = [s for s in shards if s["shard_kind"] == "task"]
    flagged = [s for s in shards if s["flagged"]]
    worst = sorted(flagged, key=lambda s: (-s["leak_score"], -s["n_labelled"], s["shard"]))
    return {
        "output": _join(output_dir, LEAKAGE),
        "records": sum(s["n_records"] for s in task_shards),
        "labelled": sum(s["n_labelled"] for s in task_shards),
        "skipped_unlabelled": sum(s["n_skipped_unlabelled"] for s in task_shards),
        "tasks": len(task_shards),
        "classification_tasks": sum(1 for s in task_shards if s["n_labels"] >= 2),
        "shards": dict(Counter(s["shard_kind"] for s in shards)),
        "flagged_shards": dict(Counter(s["shard_kind"] for s in flagged)),
        "worst_shards": [
            {
                "shard": s["shard"],
                "n_labelled": s["n_labelled"],
                "reasons": s["reasons"],
                "template_baseline": s["template_baseline"],
                "majority_rate": s["majority_rate"],
                "cramers_v_corrected": s["cramers_v_corrected"],
                "labels_in_own_template": s["labels_in_own_template"],
                "tokens": [t for t in s["top_tokens"] if t["flagged"]],
            }
            for s in worst[:top]
        ],
        "task_findings": dict(sorted(Counter(r["check"] for r in tasks).items())),
        "tasks_with_errors": len({r["task"] for r in tasks if r["severity"] == "error"}),
    }


def qa_section(summary: dict) -> dict:
    """The QA block for ``manifest.json``."""
    keys = (
        "records",
        "labelled",
        "skipped_unlabelled",
        "tasks",
        "classification_tasks",
        "shards",
        "flagged_shards",
        "task_findings",
        "tasks_with_errors",
        "counters",
        "config_fingerprint",
    )
    section = {k: summary[k] for k in keys if k in summary}
    section["worst_shards"] = [
        {"shard": w["shard"], "reasons": w["reasons"]} for w in summary["worst_shards"]
    ]
    return section


def _fmt(value, pattern: str = "{:.2f}") -> str:
    return "-" if value is None else pattern.format(value)


def format_summary(summary: dict) -> str:
    """A readable end-of-run report: totals, the worst shards and their tokens, findings."""
    lines = [
        (
            f"leakage audit: {summary['records']} records, {summary['labelled']} labelled, "
            f"{summary['skipped_unlabelled']} unlabelled (generation, skipped); "
            f"{summary['tasks']} tasks ({summary['classification_tasks']} classification)"
        ),
    ]
    if "runner" in summary:
        lines.append(f"runner: {summary['runner']}  time: {summary.get('seconds', '-')} s")
    kinds = sorted(summary["shards"])
    lines.append(
        "flagged shards: "
        + ", ".join(
            f"{summary['flagged_shards'].get(k, 0)}/{summary['shards'][k]} {k}" for k in kinds
        )
    )
    if summary["worst_shards"]:
        lines.append("worst shards:")
    for shard in summary["worst_shards"]:
        lines.append(
            f"  {shard['shard']}  n={shard['n_labelled']}  {','.join(shard['reasons'])}  "
            f"baseline {_fmt(shard['template_baseline'])} vs majority "
            f"{_fmt(shard['majority_rate'])}  V {_fmt(shard['cramers_v_corrected'])}"
        )
        for token in shard["tokens"]:
            lines.append(
                f"      {token['token']!r} -> {token['label']!r}  NPMI {token['npmi']:.2f}  "
                f"z {token['z']:.1f}  n {token['n_pair']}"
            )
        if shard["labels_in_own_template"]:
            lines.append(
                f"      labels spelled in their own template: {shard['labels_in_own_template']}"
            )
    counts = summary.get("counters") or {}
    if counts:
        lines.append("counters: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if counts.get("template_from:whole_prompt"):
        lines.append(
            f"  note: {counts['template_from:whole_prompt']} rows had no input to cut from the "
            "prompt: their whole prompt counted as template text"
        )
    findings = summary["task_findings"]
    lines.append(
        "task checks: "
        + (", ".join(f"{k} {v}" for k, v in findings.items()) if findings else "no findings")
        + f"; {summary['tasks_with_errors']} tasks with errors"
    )
    lines.append(f"tables: {summary['output']}/{{tokens,shards,tasks}}.parquet")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """``instructmix audit`` arguments -> ``run_audit``; prints the summary."""
    parser = argparse.ArgumentParser(prog="instructmix audit", description=__doc__.split("\n")[0])
    parser.add_argument("path", help="a Parquet file or directory, or an `instructmix run` output")
    parser.add_argument("--output", help="where leakage/ goes (default: PATH when a directory)")
    parser.add_argument("--quiet", action="store_true", help="no summary")
    known, beam_args = parser.parse_known_args(argv)
    output = known.output or (
        known.path if not known.path.endswith(".parquet") else posixpath.dirname(known.path)
    )
    summary = run_audit(known.path, output, pipeline_args=[a for a in beam_args if a != "--"])
    if not known.quiet:
        print(format_summary(summary))
    return summary
