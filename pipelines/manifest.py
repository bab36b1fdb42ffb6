"""After the run: reconcile the ledger, write ``OUT/manifest.json``, print the summary table.

The manifest is the run's receipt: inputs with fingerprints, the config and its fingerprint,
counts per source and per fate, dead letters by reason, records per language, which runner
ran, versions and time. It is written only after the counts reconcile.
"""

from __future__ import annotations

import datetime
import io
import json
import platform
from collections import Counter

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

import pipelines
from pipelines.config import RunConfig
from pipelines.inputs import read_parquet_dir
from transforms import accounting, mixing
from transforms.ingest import FILES_SCHEMA
from transforms.parquet_io import join

MANIFEST = "manifest.json"


def _partition_counts(path: str, column: str) -> dict[str, int]:
    """Rows per Hive partition value, from Parquet footers only (no data read)."""
    counts: Counter = Counter()
    for metadata in FileSystems.match([join(path, f"{column}=*", "*.parquet")])[0].metadata_list:
        value = metadata.path.rsplit(f"{column}=", 1)[1].split("/", 1)[0]
        with FileSystems.open(metadata.path) as handle:
            counts[value] += pq.read_metadata(io.BytesIO(handle.read())).num_rows
    return dict(sorted(counts.items()))


def _reason_counts(path: str) -> dict[str, int]:
    table = read_parquet_dir(path)
    if table.num_rows == 0:
        return {}
    pairs = zip(table.column("stage").to_pylist(), table.column("reason").to_pylist())
    return dict(sorted(Counter(f"{stage}:{reason}" for stage, reason in pairs).items()))


def _disagreements(path: str) -> list[dict]:
    """Per task: declared input language vs detected, where they disagree (never resolved)."""
    rows = read_parquet_dir(path).to_pylist()
    return sorted(
        (r for r in rows if r["agrees"] is False),
        key=lambda r: (-r["count"], str(r["task"]), str(r["lang"])),
    )


def _totals(ledger: dict) -> dict[str, int]:
    totals: Counter = Counter()
    for counts in ledger.values():
        for fate, n in counts.items():
            totals[fate.split(":", 1)[0]] += n
    return dict(totals)


def finish(
    *, output: str, inputs: tuple[str, ...], config: RunConfig, runner: dict, seconds: float,
    extra: dict | None = None, corpus_ledger: str = "fates",
    produced_ledgers: tuple[str, ...] = (),
) -> dict:
    """Reconcile the run's ledger and write its manifest; raises if records went missing.

    The mixture is reconciled against the ``corpus`` fates of ``_ledger/<corpus_ledger>`` (a
    refresh's corpus holds earlier nights' records too, so it has its own ledger).
    ``produced_ledgers`` count records that entered the run without being read from a file
    tonight (a refresh's reconsidered records): they must end in a fate like the others."""
    files = read_parquet_dir(join(output, "_ledger", "files"), FILES_SCHEMA).to_pylist()
    fates = read_parquet_dir(join(output, "_ledger", "fates"), accounting.FATES_SCHEMA)
    produced = {f["path"]: dict(f) for f in files}
    for name in produced_ledgers:
        for row in read_parquet_dir(join(output, "_ledger", name), accounting.FATES_SCHEMA).to_pylist():
            entry = produced.setdefault(
                row["source_file"], {"path": row["source_file"], "records": 0, "dead_letters": 0}
            )
            entry["records"] += row["count"]
    ledger = accounting.reconcile(list(produced.values()), fates.to_pylist())
    mixture_fates = read_parquet_dir(join(output, "_ledger", "mixture_fates"), accounting.FATES_SCHEMA)
    corpus_fates = fates if corpus_ledger == "fates" else read_parquet_dir(
        join(output, "_ledger", corpus_ledger), accounting.FATES_SCHEMA
    )
    mixture_ledger = accounting.reconcile_mixture(
        corpus_fates.to_pylist(), mixture_fates.to_pylist()
    )
    stats = read_parquet_dir(join(output, "_ledger", "mixture_stats")).to_pylist()
    manifest = {
        "instructmix_version": pipelines.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "runner": runner,
        "versions": {"apache_beam": beam.__version__, "python": platform.python_version()},
        "seconds": round(seconds, 2),
        "inputs": {"patterns": list(inputs), "files": sorted(files, key=lambda f: f["path"])},
        "config": {"fingerprint": config.fingerprint(), "sections": config.as_dict()},
        "counts": {"totals": _totals(ledger), "per_source": ledger},
        "dead_letters_by_reason": _reason_counts(join(output, "dead_letter")),
        "languages": _partition_counts(join(output, "corpus"), "lang"),
        "language_disagreements": _disagreements(join(output, "language", "agreement")),
        "mixture": {
            **mixing.manifest_section(stats, config.section("mixture")),
            "ledger": mixture_ledger,
        },
        "reconciled": True,
    }
    manifest.update(extra or {})
    with FileSystems.create(join(output, MANIFEST)) as handle:
        handle.write(json.dumps(manifest, indent=2, ensure_ascii=False, default=str).encode())
    return manifest


def format_summary(manifest: dict) -> str:
    """The table printed at the end of every run."""
    ledger = manifest["counts"]["per_source"]
    fate_groups = ["corpus", "dead_letter", "removed", "filtered"]
    header = ["source", "ingested", *fate_groups]
    rows = []
    for source, counts in ledger.items():
        grouped = Counter()
        for fate, n in counts.items():
            grouped[fate.split(":", 1)[0]] += n
        rows.append([source, counts["ingested"], *(grouped[g] for g in fate_groups)])
    totals = manifest["counts"]["totals"]
    rows.append(["TOTAL", sum(r[1] for r in rows), *(totals.get(g, 0) for g in fate_groups)])
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]

    def line(cells):
        return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in
                         enumerate(zip(cells, widths)))

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    if manifest["dead_letters_by_reason"]:
        out.append("dead letters by reason: " + ", ".join(
            f"{k} {v}" for k, v in manifest["dead_letters_by_reason"].items()))
    if manifest["languages"]:
        out.append("languages: " + ", ".join(f"{k} {v}" for k, v in manifest["languages"].items()))
    for split, stats in manifest.get("mixture", {}).get("splits", {}).items():
        rows = stats.get("rows", {})
        formats = ", ".join(
            f"{name} {v['proportion']:.3f}" + (f" (target {v['target']:.2f})" if v.get("target") else "")
            for name, v in stats.get("format", {}).items()
        )
        out.append(
            f"mixture {split}: {rows.get('all', {}).get('count', 0)} rows "
            f"({rows.get('base', {}).get('count', 0)} records"
            f", {stats.get('inverted', {}).get('rows', {}).get('count', 0)} inverted); {formats}"
        )
    runner = manifest["runner"]
    out.append(
        f"runner: {runner['runner']}"
        + (f" ({runner.get('mode')}, {runner.get('workers')} workers)" if "mode" in runner else "")
        + f" · {manifest['seconds']:.1f} s · counts reconcile: {manifest['reconciled']}"
    )
    return "\n".join(out)
