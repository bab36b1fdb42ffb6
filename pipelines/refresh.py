"""The nightly refresh: only new inputs are processed; a snapshot is published atomically.

    instructmix refresh --input RAW... --state STATE --publish PUB [--config recipe.yaml]
                        [--languages en,zh] [-- beam args]

A night, in order (each step is safe to kill; see "Crash safety" in README):

1. Lock ``STATE/LOCK`` (``pipelines.lock``); remove what killed runs left behind.
2. Fingerprint every input file (SHA-256 of its bytes). Files never read before, and files whose
   content changed, are this night's work; a changed file's earlier records are *retired*.
   Nothing new: nothing to do (and LATEST is made to name the last committed snapshot).
3. One pipeline: read, normalise and identify only the night's files (plus records removed on
   earlier nights as duplicates of a record from a file retired tonight); deduplicate them among
   themselves (``Deduplicate``) and against the kept corpus of earlier nights
   (``DedupAgainstState``: joins on the exact hashes and band keys in STATE); ROUGE-L filter
   them after every earlier kept instruction (order = night, then the configured order: earlier
   records win); write the night's additions to ``STATE/runs/<run>/`` and a full snapshot —
   corpus, mixture rebuilt from the whole kept corpus, leakage tables, this night's removed
   rows, dead letters, ledgers — to ``PUB/snapshots/<run>/``.
4. Checks: the night's records reconcile per file, the mixture ledger reconciles, every earlier
   kept record was carried over, the leakage audit is clean or waived (``publish`` section).
5. Commit: ``STATE/log.json`` is replaced in one atomic write naming the new run.
6. Publish: ``PUB/LATEST`` is replaced in one atomic write with ``snapshots/<run>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import hashlib
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from pipelines import atomic, audit, run
from pipelines import inputs as inputs_lib
from pipelines import manifest as manifest_lib
from pipelines.config import ConfigError, load_config
from pipelines.lock import DEFAULT_STALE_AFTER, StateLock
from pipelines.options import (
    TEMPLATE_STAGED,
    job_runs_later,
    pipeline_options,
    prepare_process,
    runner_description,
)
from pipelines.refresh_errors import PublishRefusedError
from pipelines.state_log import (
    REMOVED_RECORDS_SCHEMA,
    RUNS,
    ReadReconsidered,
    ReadStateRows,
    StateLog,
    parquet_files,
    remove_uncommitted,
    state_fingerprint,
)
from transforms import accounting
from transforms.dedup import Deduplicate
from transforms.dedup_state import DedupAgainstState
from transforms.parquet_io import WriteParquet, join
from transforms.rouge_filter import NEAR_DUPLICATE_TASKS_SCHEMA, RougeFilter
from transforms.schema import CORPUS_SCHEMA

SNAPSHOTS = "snapshots"
LATEST = "LATEST"
#: A record's night (ordinal of the run that first kept it): the ROUGE order's first key.
NIGHT = "_night"
#: Test hook: ``INSTRUCTMIX_REFRESH_CRASH_AT=<point>`` kills the refresh (SIGKILL) there.
CRASH_ENV = "INSTRUCTMIX_REFRESH_CRASH_AT"
CRASH_POINTS = ("planned", "after_pipeline", "before_commit", "before_publish")
CHANGES_SCHEMA = pa.schema([("change", pa.string()), ("count", pa.int64())])


def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclasses.dataclass(frozen=True)
class Night:
    """What one refresh reads: decided on the driver from the state log and fingerprints."""

    run_id: str
    ordinal: int
    new_files: tuple[str, ...]
    changed_files: tuple[str, ...]
    unchanged_files: int
    fingerprints: dict

    @property
    def files(self) -> list[str]:
        return sorted(self.new_files + self.changed_files)


def fingerprint(path: str) -> str:
    digest = hashlib.sha256()
    with FileSystems.open(path, compression_type="uncompressed") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def plan_night(log: StateLog, files: list[str]) -> Night | None:
    """The night's new and changed record files, or None when there is nothing to do."""
    record_files = [f for f in files if not run.is_template_file(f)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        prints = dict(zip(record_files, pool.map(fingerprint, record_files), strict=True))
    seen = log.files()
    new = tuple(f for f in record_files if f not in seen)
    changed = tuple(f for f in record_files if f in seen and seen[f] != prints[f])
    if not new and not changed:
        return None
    ordinal = (log.last["ordinal"] + 1) if log.last else 1
    run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-n{ordinal:04d}"
    return Night(run_id, ordinal, new, changed, len(record_files) - len(new) - len(changed),
                 {f: prints[f] for f in new + changed})


def _with_night(record: dict, ordinal: int) -> dict:
    return {**record, NIGHT: ordinal}


def _without_night(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != NIGHT}


def _is_tonight(record: dict, ordinal: int) -> bool:
    return record[NIGHT] == ordinal


def _read_prior(pipeline, log: StateLog, part: str, retiring: set[str], label: str,
                night_field: str | None = None):
    return (
        pipeline
        | f"Prior{label}Files" >> beam.Create(log.live_parts(part, retiring))
        | f"ReadPrior{label}"
        >> beam.ParDo(ReadStateRows(night_field)).with_outputs("retired", main="rows")
    )


def _base_row_key(row: dict):
    return (row["split"], row["record_id"]), None


def _mixture_change(element) -> str:
    _, sides = element
    old, new = bool(sides["old"]), bool(sides["new"])
    return "stayed" if old and new else ("added" if new else "dropped")


def _count_row(element) -> dict:
    change, count = element
    return {"change": change, "count": count}


def build_refresh_pipeline(pipeline, args: run.RunArgs, night: Night, log: StateLog,
                           template_files: list[str], previous_mixture: list[str]) -> None:
    """The night's graph: ``args.output`` is the snapshot directory."""
    config, snapshot = args.config, args.output
    run_dir = log.run_dir(night.run_id)
    retiring = set(night.changed_files)
    identified, fates = run.read_and_identify(pipeline, args, night.files)
    reconsidered = (
        pipeline
        | "RemovedRecordFiles" >> beam.Create(log.live_parts("removed_records", set()))
        | "Reconsidered" >> beam.ParDo(ReadReconsidered(night.changed_files))
    )
    run.write_ledger({"reconsidered": reconsidered},
                     join(snapshot, run.LEDGER, "reconsidered"), "Reconsidered")
    identified = (identified, reconsidered) | "WithReconsidered" >> beam.Flatten()
    dedup_config = config.section("dedup")
    deduplicated = identified | "Deduplicate" >> Deduplicate(config=dedup_config)
    prior_exact = _read_prior(pipeline, log, "exact", retiring, "Exact")
    prior_bands = _read_prior(pipeline, log, "bands", retiring, "Bands")
    prior_corpus = _read_prior(pipeline, log, "corpus", retiring, "Corpus", NIGHT)
    against = {
        "kept": deduplicated["kept"],
        "exact_state": deduplicated["exact_state"],
        "band_state": deduplicated["band_state"],
        "prior_exact": prior_exact["rows"],
        "prior_bands": prior_bands["rows"],
    } | "AgainstState" >> DedupAgainstState(dedup_config)
    run.write_dedup_state(against, run_dir)

    rouge_config = config.section("rouge")
    rouge_config = dataclasses.replace(rouge_config, order_by=(NIGHT, *rouge_config.order_by))
    tonight = against["kept"] | "Tonight" >> beam.Map(_with_night, night.ordinal)
    filtered = (prior_corpus["rows"], tonight) | "WithPrior" >> beam.Flatten() | (
        "RougeFilter" >> RougeFilter(rouge_config)
    )
    added = (
        filtered["kept"]
        | "Added" >> beam.Filter(_is_tonight, night.ordinal)
        | "AddedRecords" >> beam.Map(_without_night)
    )
    carried = (
        filtered["kept"]
        | "Carried" >> beam.Filter(lambda r, n: not _is_tonight(r, n), night.ordinal)
        | "CarriedRecords" >> beam.Map(_without_night)
    )
    added | "WriteAdded" >> WriteParquet(path=join(run_dir, "corpus"), schema=CORPUS_SCHEMA)
    filtered["near_duplicate_tasks"] | "WriteNearDuplicateTasks" >> WriteParquet(
        path=join(snapshot, "near_duplicate_tasks"), schema=NEAR_DUPLICATE_TASKS_SCHEMA
    )
    fates["corpus"] = added
    fates["removed:*"] = (
        deduplicated["removed"], against["removed"], filtered["removed"]
    ) | "AllRemoved" >> beam.Flatten()
    run.write_ledger(fates, join(snapshot, run.LEDGER, "fates"), "Fates")
    _write_removed_records(identified, fates["removed:*"], join(run_dir, "removed_records"))
    run.write_ledger(
        {"prior": prior_corpus["rows"], "carried": carried, "retired": prior_corpus["retired"]},
        join(snapshot, run.LEDGER, "state_fates"),
        "StateFates",
    )
    corpus = (carried, added) | "WholeCorpus" >> beam.Flatten()
    run.write_ledger({"corpus": corpus}, join(snapshot, run.LEDGER, "corpus_fates"), "CorpusFates")
    decontaminated, mixture = run.write_corpus_products(corpus, args, template_files)
    run.write_removed((fates["removed:*"], decontaminated), snapshot)
    _mixture_changes(pipeline, previous_mixture, mixture, snapshot)


def _removed_record(element):
    """(id, {"record": [record], "survivor": [survivor file]}) → the record with its survivor's
    file, for each record removed tonight."""
    _, sides = element
    for record in sides["record"][:1]:
        for survivor in sides["survivor"][:1]:
            yield {**_without_night(record), "survivor_source_file": survivor}


def _write_removed_records(records, removed, path: str) -> None:
    """Full rows of tonight's removed records: they come back if their survivor is retired."""
    (
        {
            "record": records | "RecordsById" >> beam.Map(lambda r: (r["id"], r)),
            "survivor": removed
            | "SurvivorFiles" >> beam.Map(lambda r: (r["id"], r["survivor_source_file"])),
        }
        | "JoinRemoved" >> beam.CoGroupByKey()
        | "RemovedRecords" >> beam.FlatMap(_removed_record)
        | "WriteRemovedRecords" >> WriteParquet(path=path, schema=REMOVED_RECORDS_SCHEMA)
    )


def _mixture_changes(pipeline, previous_files: list[str], mixture, snapshot: str) -> None:
    """Base rows (split, record) that stayed in the mixture, were added or were dropped."""
    previous = (
        pipeline
        | "PreviousMixtureFiles" >> beam.Create([(f, 0, ()) for f in previous_files])
        | "ReadPreviousMixture" >> beam.ParDo(ReadStateRows())
    )
    (
        {
            "old": previous
            | "OldBase" >> beam.Filter(run.is_base_row)
            | "OldKeys" >> beam.Map(_base_row_key),
            "new": mixture
            | "NewBase" >> beam.Filter(run.is_base_row)
            | "NewKeys" >> beam.Map(_base_row_key),
        }
        | "JoinMixtures" >> beam.CoGroupByKey()
        | "Change" >> beam.Map(_mixture_change)
        | "CountChanges" >> beam.combiners.Count.PerElement()
        | "ChangeRows" >> beam.Map(_count_row)
        | "WriteChanges"
        >> WriteParquet(path=join(snapshot, run.LEDGER, "mixture_changes"), schema=CHANGES_SCHEMA)
    )



# --------------------------------------------------------------------------------------------
# The driver: plan, run, check, commit, publish
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="instructmix refresh", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--input", nargs="+", required=True, action="extend",
        help="files, directories or globs of raw data (all of it: seen files are skipped)",
    )
    parser.add_argument("--state", required=True, help="state directory kept between nights")
    parser.add_argument("--publish", required=True, help="publication root: snapshots/, LATEST")
    parser.add_argument("--config", help="YAML run configuration (see README)")
    parser.add_argument("--languages", help="keep only these language splits, e.g. en,zh,und")
    parser.add_argument("--lock-owner", help="lock owner (default $INSTRUCTMIX_LOCK_OWNER)")
    parser.add_argument(
        "--stale-lock-hours", type=float, default=DEFAULT_STALE_AFTER / 3600,
        help="a lock older than this is taken over",
    )
    parser.add_argument("--quiet", action="store_true", help="no summary")
    return parser.parse_known_args(argv)


def latest(publish: str) -> str | None:
    """The snapshot ``PUB/LATEST`` names (relative to PUB), or None."""
    text = atomic.read_text(join(publish, LATEST))
    return text.strip() if text else None


def _publish(publish: str, snapshot: str) -> None:
    if latest(publish) != snapshot:
        atomic.write_text(join(publish, LATEST), snapshot + "\n")


def _read_counts(path: str) -> dict[tuple[str, str], int]:
    rows = inputs_lib.read_parquet_dir(path, accounting.FATES_SCHEMA).to_pylist()
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row["source_file"], row["fate"])
        counts[key] = counts.get(key, 0) + row["count"]
    return counts


def check_carried(snapshot: str) -> dict[str, int]:
    """Every earlier kept record that was not retired is in tonight's corpus, per file."""
    counts = _read_counts(join(snapshot, run.LEDGER, "state_fates"))
    files = {f for f, _ in counts}
    lost = {
        f: (counts.get((f, "prior"), 0), counts.get((f, "carried"), 0))
        for f in files
        if counts.get((f, "prior"), 0) != counts.get((f, "carried"), 0)
    }
    if lost:
        lines = [f"  {f}: kept before {a}, carried {b}" for f, (a, b) in sorted(lost.items())]
        raise accounting.ReconciliationError(
            "earlier kept records were not carried over:\n" + "\n".join(lines)
        )
    totals: dict[str, int] = {}
    for (_, fate), n in counts.items():
        totals[fate] = totals.get(fate, 0) + n
    return totals


def _total(ledger: str) -> int:
    return sum(_read_counts(ledger).values())


def check_leakage(qa: dict, waived: tuple[str, ...]) -> list[str]:
    """Flagged leakage shards not waived by ``publish.waive_leakage`` (fnmatch patterns);
    ``qa`` is ``audit.summarize`` with every flagged shard listed."""
    flagged = [w["shard"] for w in qa["worst_shards"]]
    return [s for s in flagged if not any(fnmatch.fnmatchcase(s, p) for p in waived)]


def removed_for_older(snapshot: str, older_files: set[str]) -> dict[str, int]:
    """Tonight's removed records whose survivor was kept on an earlier night, by stage."""
    import pyarrow.dataset as ds

    path = join(snapshot, run.REMOVED)
    if not parquet_files(path):
        return {}
    table = ds.dataset(path, format="parquet", partitioning="hive").to_table(
        columns=["stage", "survivor_source_file"]
    )
    counts: dict[str, int] = {}
    stages = table.column("stage").to_pylist()
    for stage, survivor in zip(stages, table.column("survivor_source_file").to_pylist()):
        if survivor in older_files:
            counts[stage] = counts.get(stage, 0) + 1
    return dict(sorted(counts.items()))


def _mixture_changes_summary(snapshot: str) -> dict[str, int]:
    rows = inputs_lib.read_parquet_dir(join(snapshot, run.LEDGER, "mixture_changes")).to_pylist()
    return {row["change"]: row["count"] for row in sorted(rows, key=lambda r: r["change"])}


def refresh(argv: list[str] | None = None) -> dict:
    """One night; returns its summary (the snapshot's manifest, or a no-op summary)."""
    known, beam_args = parse_args(argv)
    beam_args = [a for a in beam_args if a != "--"]
    started = time.time()
    config = load_config(known.config)
    files = inputs_lib.expand_inputs(tuple(known.input))
    state, publish = known.state, known.publish
    lock = StateLock(state, known.lock_owner, known.stale_lock_hours * 3600)
    with lock:
        log = StateLog.load(state)
        log.check_compatible(config)
        committed = {r["run_id"] for r in log.runs}
        remove_uncommitted(join(state, RUNS), committed)
        remove_uncommitted(join(publish, SNAPSHOTS), committed)
        night = plan_night(log, files)
        if night is None:
            return _nothing_new(log, publish, len(files), known.quiet)
        _crash_point("planned")
        snapshot = join(SNAPSHOTS, night.run_id)
        out = join(publish, snapshot)
        args = run.RunArgs(tuple(known.input), out, config, known.languages)
        previous = parquet_files(join(publish, log.last["snapshot"], run.MIXTURE)) if log.last else []
        options = pipeline_options(beam_args)
        later = job_runs_later(options)
        if later == TEMPLATE_STAGED:
            raise ConfigError(
                f"refresh cannot publish after {later}: it checks, commits and publishes after "
                "its job, so it needs a driver that waits (deploy/README.md, Dataflow)"
            )
        prepare_process(options)
        pipeline = beam.Pipeline(options=options)
        build_refresh_pipeline(
            pipeline, args, night, log, [f for f in files if run.is_template_file(f)], previous
        )
        result = pipeline.run()
        if later:
            print(f"instructmix refresh: {later}; nothing committed or published")
            return {"submitted": True, "reason": later}
        result.wait_until_finish()
        _crash_point("after_pipeline")
        state_totals = check_carried(out)
        qa = audit.summarize(out, top=10**9)
        unwaived = check_leakage(qa, config.section("publish").waive_leakage)
        summary = {
            "run_id": night.run_id,
            "night": night.ordinal,
            "snapshot": snapshot,
            "previous_snapshot": log.last["snapshot"] if log.last else None,
            "new_files": list(night.new_files),
            "changed_files": list(night.changed_files),
            "unchanged_files": night.unchanged_files,
            "carried_records": state_totals.get("carried", 0),
            "retired_records": state_totals.get("retired", 0),
            "reconsidered_records": _total(join(out, run.LEDGER, "reconsidered")),
            "removed_as_duplicates_of_older": removed_for_older(
                out, set(log.files()) - set(night.files)
            ),
            "mixture_changes": _mixture_changes_summary(out),
            "leakage_unwaived": unwaived,
            "lock_taken_over": lock.took_over,
        }
        manifest = manifest_lib.finish(
            output=out, inputs=args.inputs, config=config,
            runner=runner_description(options), seconds=time.time() - started,
            extra={"qa": audit.qa_section(qa), "refresh": summary},
            corpus_ledger="corpus_fates", produced_ledgers=("reconsidered",),
        )
        if unwaived:
            raise PublishRefusedError(
                f"leakage audit flagged {len(unwaived)} shard(s) not waived in the config "
                f"(publish.waive_leakage): {', '.join(unwaived[:5])}; nothing was published, "
                f"see {out}/leakage and {out}/manifest.json"
            )
        _crash_point("before_commit")
        log.commit(
            {
                "run_id": night.run_id,
                "ordinal": night.ordinal,
                "snapshot": snapshot,
                "files": night.fingerprints,
                "retired_files": list(night.changed_files),
                "counts": manifest["counts"]["totals"],
                "committed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            state_fingerprint(config),
        )
        _crash_point("before_publish")
        _publish(publish, snapshot)
    if not known.quiet:
        print(manifest_lib.format_summary(manifest))
        print(format_night(summary))
    return manifest


def _nothing_new(log: StateLog, publish: str, n_files: int, quiet: bool) -> dict:
    """No new or changed file: publish the last committed snapshot if a crash left it unnamed."""
    snapshot = log.last["snapshot"] if log.last else None
    if snapshot:
        _publish(publish, snapshot)
    summary = {"refresh": {"nothing_new": True, "files": n_files, "snapshot": snapshot}}
    if not quiet:
        print(f"instructmix refresh: nothing new in {n_files} input files; "
              f"LATEST = {snapshot or '(nothing published yet)'}")
    return summary


def format_night(summary: dict) -> str:
    changes = ", ".join(f"{k} {v}" for k, v in summary["mixture_changes"].items())
    return (
        f"night {summary['night']} ({summary['run_id']}): {len(summary['new_files'])} new, "
        f"{len(summary['changed_files'])} changed, {summary['unchanged_files']} unchanged files; "
        f"{summary['carried_records']} records carried, {summary['retired_records']} retired, "
        f"{sum(summary['removed_as_duplicates_of_older'].values())} removed as duplicates of "
        "older ones; "
        f"mixture: {changes}; published {summary['snapshot']}"
    )
