"""``instructmix demo``: generate a raw corpus in every supported format, then run on it.

    instructmix demo [--output demo-out] [--scale 1] [--seed 0] [-- beam args]

The raw files go to OUT/raw (written by ``pipelines.generate``, the project's own generator),
the run configuration (with the field mapping of the generic CSV) to OUT/run.yaml, and the
pipeline's outputs next to them. The generator's own description of what it planted is kept in
OUT/raw/description.json, and the run checks its counts against it.
"""

from __future__ import annotations

import argparse
import json
import os

import yaml

from pipelines import generate, run


def _run_config(description: dict) -> dict:
    mapping = next(d["mapping"] for d in description.values() if "mapping" in d)
    return {"ingest": {"mapping": mapping}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="instructmix demo", description=__doc__.split("\n")[0])
    parser.add_argument("--output", default="demo-out")
    parser.add_argument("--scale", type=int, default=1, help="multiplies instance counts")
    parser.add_argument("--seed", type=int, default=0)
    known, beam_args = parser.parse_known_args(argv)
    raw = os.path.join(known.output, "raw")
    description = generate.generate_corpus(raw, scale=known.scale, seed=known.seed)
    with open(os.path.join(raw, "description.json"), "w", encoding="utf-8") as handle:
        json.dump(description, handle, indent=2, ensure_ascii=False)
    config_path = os.path.join(known.output, "run.yaml")
    with open(config_path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(_run_config(description), handle, sort_keys=False)
    files = sorted(
        os.path.join(raw, path) for d in description.values() for path in d["files"]
    )
    manifest = run.run(
        ["--input", *files, "--output", known.output, "--config", config_path, *beam_args]
    )
    expected = sum(d["records"] + d["malformed"] for d in description.values())
    ingested = manifest["counts"]["totals"].get("ingested", 0)
    print(
        f"\ngenerated {expected} raw records in {len(files)} files under {raw}; "
        f"ingested {ingested}\n"
        f"corpus:       {os.path.join(known.output, 'corpus')}/lang=*/\n"
        f"dead letters: {os.path.join(known.output, 'dead_letter')}/\n"
        f"manifest:     {os.path.join(known.output, 'manifest.json')}"
    )
    return manifest
