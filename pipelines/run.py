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
from pipelines.options import (
    job_runs_later,
    pipeline_options,
    prepare_process,
    runner_description,
)
from transforms import accounting
from transforms.dedup import BAND_STATE_SCHEMA, EXACT_STATE_SCHEMA, Deduplicate
from transforms.formats import load_template_sets
from transforms.ingest import FILES_SCHEMA, ReadInputs
from transforms.langid_stage import (
    AGREEMENT_SCHEMA,
    FilterLanguages,
    IdentifyLanguage,
    LanguageAgreement,
)
from transforms.leakage import LeakageAudit
from transforms.mixture import STATS_SCHEMA, BuildMixture
from transforms.normalize import Normalize
from transforms.parquet_io import WriteParquet, join
from transforms.render import MIXTURE_SCHEMA
from transforms.rouge_filter import NEAR_DUPLICATE_TASKS_SCHEMA, RougeFilter
from transforms.schema import CORPUS_SCHEMA, DEAD_LETTER_SCHEMA, REMOVED_SCHEMA

# Output layout (later stages add to it; these names are a contract).
CORPUS = "corpus"
DEAD_LETTER = "dead_letter"
LEDGER = "_ledger"
REMOVED = "removed"
MIXTURE = "mixture"
LANGUAGE_AGREEMENT = "language/agreement"
STATE = "state"
OUTPUT_DIRS = (
    CORPUS, DEAD_LETTER, REMOVED, MIXTURE, "language", "leakage", STATE, "near_duplicate_tasks",
    LEDGER,
)


def is_template_file(path: str) -> bool:
    """PromptSource template sets feed the mixture; they are not records."""
    return path.rsplit("/", 1)[-1] == "templates.yaml"


@dataclasses.dataclass(frozen=True)
class RunArgs:
    inputs: tuple[str, ...]
    output: str
    config: RunConfig
    languages: str | None = None


def build_pipeline(pipeline: beam.Pipeline, args: RunArgs, files: list[str]) -> None:
    """Add the whole batch graph to ``pipeline``."""
    out, config = args.output, args.config
    identified, fates = read_and_identify(pipeline, args, files)
    deduplicated = identified | "Deduplicate" >> Deduplicate(config=config.section("dedup"))
    filtered = deduplicated["kept"] | "RougeFilter" >> RougeFilter(config.section("rouge"))
    corpus = filtered["kept"]
    fates["corpus"] = corpus
    fates["removed:*"] = (deduplicated["removed"], filtered["removed"]) | (
        "AllRemoved" >> beam.Flatten()
    )
    write_dedup_state(deduplicated, join(out, STATE))
    filtered["near_duplicate_tasks"] | "WriteNearDuplicateTasks" >> WriteParquet(
        path=join(out, "near_duplicate_tasks"), schema=NEAR_DUPLICATE_TASKS_SCHEMA
    )
    write_ledger(fates, join(out, LEDGER, "fates"), "Fates")
    decontaminated, _ = write_corpus_products(corpus, args, files)
    write_removed((fates["removed:*"], decontaminated), out)


def read_and_identify(pipeline: beam.Pipeline, args: RunArgs, files: list[str]):
    """Ingest, normalise and identify languages of ``files``; writes the dead letters, the
    language agreement table and the files ledger under ``args.output``.

    Returns (identified records, fates dict with the dead letters and language-filtered)."""
    out, config = args.output, args.config
    ingest = (
        pipeline
        | "InputFiles" >> beam.Create(sorted(f for f in files if not is_template_file(f)))
        | "Ingest" >> ReadInputs(config=config.section("ingest"))
    )
    normalized = ingest["records"] | "Normalize" >> Normalize()
    identified = normalized["records"] | "IdentifyLanguage" >> IdentifyLanguage(
        config.section("langid")
    )
    (
        identified
        | "LanguageAgreement" >> LanguageAgreement()
        | "WriteAgreement"
        >> WriteParquet(path=join(out, LANGUAGE_AGREEMENT), schema=AGREEMENT_SCHEMA)
    )
    fates = {
        "dead_letter:ingest": ingest["dead_letters"],
        "dead_letter:normalize": normalized["dead_letters"],
    }
    if args.languages:
        split = identified | "FilterLanguages" >> FilterLanguages(args.languages)
        identified, fates["filtered:language"] = split["kept"], split["filtered"]
    dead_letters = (ingest["dead_letters"], normalized["dead_letters"]) | (
        "AllDeadLetters" >> beam.Flatten()
    )
    dead_letters | "WriteDeadLetters" >> WriteParquet(
        path=join(out, DEAD_LETTER), schema=DEAD_LETTER_SCHEMA
    )
    ingest["files"] | "WriteFiles" >> WriteParquet(
        path=join(out, LEDGER, "files"), schema=FILES_SCHEMA
    )
    return identified, fates


def write_dedup_state(deduplicated, state: str) -> None:
    """The exact hashes and band keys of the kept records: what tomorrow's refresh joins."""
    deduplicated["exact_state"] | "WriteExactState" >> WriteParquet(
        path=join(state, "exact"), schema=EXACT_STATE_SCHEMA
    )
    deduplicated["band_state"] | "WriteBandState" >> WriteParquet(
        path=join(state, "bands"), schema=BAND_STATE_SCHEMA
    )


def write_corpus_products(corpus, args: RunArgs, files: list[str]):
    """The corpus (by language), its leakage audit and its mixture, under ``args.output``.

    Output: (the training records removed by decontamination as REMOVED_SCHEMA rows, the
    mixture rows)."""
    corpus | "WriteCorpus" >> WriteParquet(
        path=join(args.output, CORPUS), schema=CORPUS_SCHEMA, partition_by="lang"
    )
    leakage = corpus | "LeakageAudit" >> LeakageAudit(args.config.section("leakage"))
    audit.write_tables(leakage, args.output)
    return _build_mixture(corpus, args, [f for f in files if is_template_file(f)])


def write_removed(removed: tuple, out: str) -> None:
    """Every removed row of the run, by stage."""
    removed | "AllRemovedRows" >> beam.Flatten() | (
        "WriteRemoved"
        >> WriteParquet(path=join(out, REMOVED), schema=REMOVED_SCHEMA, partition_by="stage")
    )


def write_ledger(fates: dict, path: str, label: str) -> None:
    (
        fates
        | f"Count{label}" >> accounting.CountFates()
        | f"Write{label}" >> WriteParquet(path=path, schema=accounting.FATES_SCHEMA)
    )


def _build_mixture(corpus, args: RunArgs, template_files: list[str]):
    """The Flan-style mixture of the kept corpus, and its own ledger: every corpus record is
    in the mixture once (per split) or left out with a reason.

    Output: the training records removed by decontamination (REMOVED_SCHEMA rows); they stay
    in the corpus and count in the mixture ledger as ``left_out:decontaminated``."""
    out = args.output
    built = corpus | "BuildMixture" >> BuildMixture(
        recipe=args.config.section("mixture"),
        template_sets=load_template_sets(template_files) if template_files else (),
    )
    built["mixture"] | "WriteMixture" >> WriteParquet(
        path=join(out, MIXTURE), schema=MIXTURE_SCHEMA, partition_by=("split", "lang")
    )
    built["stats"] | "WriteMixtureStats" >> WriteParquet(
        path=join(out, LEDGER, "mixture_stats"), schema=STATS_SCHEMA
    )
    in_mixture = built["mixture"] | "BaseRows" >> beam.Filter(is_base_row)
    write_ledger(
        {"mixture": in_mixture, "left_out:*": built["left_out"]},
        join(out, LEDGER, "mixture_fates"),
        "MixtureFates",
    )
    return built["removed"], built["mixture"]


def is_base_row(row: dict) -> bool:
    return not row["inverted"]


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="instructmix run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--input", nargs="+", required=True, action="extend",
        help="files, directories or globs (local, gs://, s3://); .gz/.bz2/.zst are decompressed",
    )
    parser.add_argument("--output", required=True, help="output directory (local or gs://…)")
    parser.add_argument("--config", help="YAML run configuration (see README)")
    parser.add_argument(
        "--languages", help="keep only these language splits, e.g. en,zh,und (others: filtered)"
    )
    parser.add_argument("--quiet", action="store_true", help="no summary table")
    return parser.parse_known_args(argv)


def run(argv: list[str] | None = None) -> dict:
    """Build and run the batch pipeline; returns the manifest (also written to OUT)."""
    known, beam_args = parse_args(argv)
    beam_args = [a for a in beam_args if a != "--"]
    started = time.time()
    args = RunArgs(
        tuple(known.input), known.output, load_config(known.config), known.languages
    )
    files = inputs_lib.expand_inputs(args.inputs)
    inputs_lib.clear_outputs(args.output, OUTPUT_DIRS + (manifest_lib.MANIFEST,))
    options = pipeline_options(beam_args)
    prepare_process(options)
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, args, files)
    result = pipeline.run()
    later = job_runs_later(options)
    if later:
        # The outputs do not exist yet: check them with `instructmix audit` once the job ran.
        print(f"instructmix run: {later}; outputs not checked")
        return {"submitted": True, "reason": later, "output": args.output}
    result.wait_until_finish()
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
