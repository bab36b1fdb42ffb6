"""The batch run: raw files → normalised, checked corpus, dead letters, ledger and manifest.

    instructmix run --input 'data/**/*.json*' --output out/ [--config recipe.yaml] [-- beam args]

``run(argv)`` is what the CLI, the tests and the runner integration tests all call.
``build_pipeline`` only adds transforms to a pipeline (it does not run it), so the same graph
is used by the batch run, the Dataflow template and the tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import apache_beam as beam

from pipelines import audit
from pipelines import inputs as inputs_lib
from pipelines import manifest as manifest_lib
from pipelines.config import RunConfig, load_config
from pipelines.options import pipeline_options, runner_description
from transforms import accounting
from transforms.ingest import FILES_SCHEMA, ReadInputs
from transforms.leakage import LeakageAudit
from transforms.normalize import Normalize
from transforms.parquet_io import WriteParquet, join
from transforms.schema import CORPUS_SCHEMA, DEAD_LETTER_SCHEMA

# Output layout (later stages add to it; these names are a contract).
CORPUS = "corpus"
DEAD_LETTER = "dead_letter"
LEDGER = "_ledger"
OUTPUT_DIRS = (CORPUS, DEAD_LETTER, "removed", "leakage", "state", LEDGER)


@dataclasses.dataclass(frozen=True)
class RunArgs:
    inputs: tuple[str, ...]
    output: str
    config: RunConfig


def build_pipeline(pipeline: beam.Pipeline, args: RunArgs, files: list[str]) -> None:
    """Add the whole batch graph to ``pipeline``."""
    out = args.output
    ingest = (
        pipeline
        | "InputFiles" >> beam.Create(sorted(files))
        | "Ingest" >> ReadInputs(config=args.config.section("ingest"))
    )
    normalized = ingest["records"] | "Normalize" >> Normalize()
    corpus = normalized["records"]
    dead_letters = (ingest["dead_letters"], normalized["dead_letters"]) | (
        "AllDeadLetters" >> beam.Flatten()
    )

    corpus | "WriteCorpus" >> WriteParquet(
        path=join(out, CORPUS), schema=CORPUS_SCHEMA, partition_by="lang"
    )
    dead_letters | "WriteDeadLetters" >> WriteParquet(
        path=join(out, DEAD_LETTER), schema=DEAD_LETTER_SCHEMA
    )
    fates = {
        "corpus": corpus,
        "dead_letter:ingest": ingest["dead_letters"],
        "dead_letter:normalize": normalized["dead_letters"],
    }
    (
        fates
        | "CountFates" >> accounting.CountFates()
        | "WriteFates"
        >> WriteParquet(path=join(out, LEDGER, "fates"), schema=accounting.FATES_SCHEMA)
    )
    ingest["files"] | "WriteFiles" >> WriteParquet(
        path=join(out, LEDGER, "files"), schema=FILES_SCHEMA
    )
    leakage = corpus | "LeakageAudit" >> LeakageAudit(args.config.section("leakage"))
    audit.write_tables(leakage, out)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="instructmix run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--input", nargs="+", required=True, action="extend",
        help="files, directories or globs (local, gs://, s3://); .gz/.bz2/.zst are decompressed",
    )
    parser.add_argument("--output", required=True, help="output directory (local or gs://…)")
    parser.add_argument("--config", help="YAML run configuration (see README)")
    parser.add_argument("--quiet", action="store_true", help="no summary table")
    return parser.parse_known_args(argv)


def run(argv: list[str] | None = None) -> dict:
    """Build and run the batch pipeline; returns the manifest (also written to OUT)."""
    known, beam_args = parse_args(argv)
    beam_args = [a for a in beam_args if a != "--"]
    started = time.time()
    args = RunArgs(tuple(known.input), known.output, load_config(known.config))
    files = inputs_lib.expand_inputs(args.inputs)
    inputs_lib.clear_outputs(args.output, OUTPUT_DIRS + (manifest_lib.MANIFEST,))
    options = pipeline_options(beam_args)
    with beam.Pipeline(options=options) as pipeline:
        build_pipeline(pipeline, args, files)
    qa = audit.summarize(args.output)
    manifest = manifest_lib.finish(
        output=args.output,
        inputs=args.inputs,
        config=args.config,
        runner=runner_description(options),
        seconds=time.time() - started,
        extra={"qa": audit.qa_section(qa)},
    )
    if not known.quiet:
        print(manifest_lib.format_summary(manifest))
        print(audit.format_summary(qa))
    return manifest
