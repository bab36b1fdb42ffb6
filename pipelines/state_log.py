"""The refresh's STATE directory: which nights were committed, and what each one added.

    STATE/LOCK                       pipelines.lock (one refresh at a time)
    STATE/log.json                   the committed runs, replaced atomically at the very end
    STATE/runs/<run_id>/corpus/      records the night added to the kept corpus
    STATE/runs/<run_id>/exact/       their exact hashes  (transforms.dedup EXACT_STATE_SCHEMA)
    STATE/runs/<run_id>/bands/       their band keys and signatures (BAND_STATE_SCHEMA)
    STATE/runs/<run_id>/removed_records/  records the night removed, with their survivor's file

A run directory counts only once ``log.json`` names it: a run killed before that leaves a
directory nobody reads, removed by the next refresh. Each run's entry lists the input files it
read (path → content fingerprint) and the files it *retired*: files read by an earlier night
whose content has changed. Rows from a retired file are ignored in every earlier run's
directory, so the kept corpus is "every committed run's rows minus those of files retired
later" — known from the log alone, never by loading records on the driver. A record removed
as the duplicate of a record whose file is later retired is *reconsidered* on that night: it
re-enters dedup and the ROUGE-L filter with the night's new records (``ReadReconsidered``).
"""

from __future__ import annotations

import dataclasses
import json
import time

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipelines import atomic
from pipelines.config import ConfigError, RunConfig
from transforms.parquet_io import TEMP_DIR, join
from transforms.schema import CORPUS_SCHEMA

LOG = "log.json"
RUNS = "runs"
FORMAT = 1
#: Sections whose settings decide what STATE holds; the others (mixture, leakage) may change
#: from one night to the next.
STATE_SECTIONS = ("ingest", "langid", "dedup", "rouge")


def state_fingerprint(config: RunConfig) -> str:
    from transforms.text import stable_hash

    sections = {name: config.as_dict()[name] for name in STATE_SECTIONS}
    return stable_hash(json.dumps(sections, sort_keys=True, default=str))[:12]


@dataclasses.dataclass
class StateLog:
    state: str
    fingerprint: str | None = None
    runs: list[dict] = dataclasses.field(default_factory=list)

    @classmethod
    def load(cls, state: str) -> StateLog:
        text = atomic.read_text(join(state, LOG))
        if text is None:
            return cls(state)
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ConfigError(f"{join(state, LOG)}: unknown state format {data.get('format')!r}")
        return cls(state, data["state_fingerprint"], data["runs"])

    def check_compatible(self, config: RunConfig) -> None:
        """STATE built with other ingest/langid/dedup/rouge settings cannot be extended."""
        ours = state_fingerprint(config)
        if self.fingerprint not in (None, ours):
            raise ConfigError(
                f"{self.state} was built with other ingest/langid/dedup/rouge settings "
                f"(state fingerprint {self.fingerprint}, this configuration {ours}); use a new "
                "--state directory, or the configuration that built it"
            )

    @property
    def last(self) -> dict | None:
        return self.runs[-1] if self.runs else None

    def files(self) -> dict[str, str]:
        """Every input file read by a committed run → its fingerprint when last read."""
        seen: dict[str, str] = {}
        for run in self.runs:
            seen.update(run["files"])
        return seen

    def run_dir(self, run_id: str) -> str:
        return join(self.state, RUNS, run_id)

    def live_parts(self, part: str, retiring: set[str]) -> list[tuple[str, int, tuple[str, ...]]]:
        """(parquet file, night ordinal, files retired since) of ``part`` in every committed run;
        ``retiring`` are this night's changed files, retired from every earlier run."""
        out = []
        for index, run in enumerate(self.runs):
            retired = set(retiring)
            for later in self.runs[index + 1 :]:
                retired.update(later["retired_files"])
            for path in parquet_files(join(self.run_dir(run["run_id"]), part)):
                out.append((path, run["ordinal"], tuple(sorted(retired))))
        return out

    def commit(self, entry: dict, fingerprint: str) -> None:
        """Append a run and replace log.json in one atomic write: the night now counts."""
        data = {
            "format": FORMAT,
            "state_fingerprint": fingerprint,
            "runs": [*self.runs, entry],
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        atomic.write_text(join(self.state, LOG), json.dumps(data, indent=1, sort_keys=True))
        self.runs.append(entry)
        self.fingerprint = fingerprint


def parquet_files(directory: str) -> list[str]:
    if not FileSystems.exists(directory):
        return []
    found = FileSystems.match([join(directory, "**")])[0].metadata_list
    return sorted(
        m.path for m in found if m.path.endswith(".parquet") and f"/{TEMP_DIR}" not in m.path
    )


def child_names(directory: str) -> set[str]:
    """Names of the entries directly below ``directory`` (directories on any filesystem)."""
    if atomic.is_local(directory):
        import os

        return set(os.listdir(directory)) if os.path.isdir(directory) else set()
    prefix = directory.rstrip("/") + "/"
    found = FileSystems.match([prefix + "**"])[0].metadata_list
    return {m.path[len(prefix):].split("/", 1)[0] for m in found}


def remove_uncommitted(directory: str, committed: set[str]) -> list[str]:
    """Delete what killed runs left below ``directory``: entries no committed run names."""
    stale = sorted(child_names(directory) - committed)
    if stale:
        FileSystems.delete([join(directory, name) for name in stale])
    return stale


class ReadStateRows(beam.DoFn):
    """(parquet file, ordinal, retired files) → its rows, minus rows of retired files (tagged
    ``retired``); ``ordinal_field`` stores the night's ordinal in each row when set."""

    def __init__(self, ordinal_field: str | None = None, batch_rows: int = 4096):
        self.ordinal_field = ordinal_field
        self.batch_rows = batch_rows

    def process(self, element):
        path, ordinal, retired = element
        retired = frozenset(retired)
        with FileSystems.open(path) as handle:
            parquet = pq.ParquetFile(handle)
            for batch in parquet.iter_batches(batch_size=self.batch_rows):
                for row in batch.to_pylist():
                    if row.get("source_file") in retired:
                        yield beam.pvalue.TaggedOutput("retired", row)
                        continue
                    if self.ordinal_field:
                        row[self.ordinal_field] = ordinal
                    yield row


#: STATE/runs/<run>/removed_records: full rows of the night's removed records and the file of
#: the record they lost to, so they can come back if that file is retired.
REMOVED_RECORDS_SCHEMA = CORPUS_SCHEMA.append(pa.field("survivor_source_file", pa.string()))


class ReadReconsidered(beam.DoFn):
    """Removed records of earlier nights whose survivor's file is retired tonight.

    Element: (parquet file of a night's ``removed_records``, its ordinal, files retired after
    that night and before tonight). A row comes back iff its survivor's file is retired tonight
    and neither its own file nor its survivor's file was retired in between (then it came back,
    or left, on that night)."""

    def __init__(self, tonight: tuple[str, ...]):
        self.tonight = frozenset(tonight)

    def process(self, element):
        path, _, between = element
        between = frozenset(between)
        with FileSystems.open(path) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=4096):
                for row in batch.to_pylist():
                    survivor = row.pop("survivor_source_file")
                    own = row.get("source_file")
                    if survivor in self.tonight and survivor not in between and (
                        own not in between and own not in self.tonight
                    ):
                        yield row
