"""Throughput and acceptance figures of the mixture stage (BuildMixture) at >= 100k records.

    .venv/bin/python -m bench.mixture_bench --records 100000
    .venv/bin/python -m bench.mixture_bench --records 100000 --workers 2 --compare
    .venv/bin/python -m bench.mixture_bench --records 100000 --recipe flan2022 --budget 60000

The corpus is ``tests.test_mixture.synthetic_corpus`` (every template family, en/fi/zh,
rationales on 29% of records) with the sentiment task at 40% of ``--records`` so the lecture's
30,000 cap bites; it is written as corpus Parquet first (what the batch run leaves), then read
by the pipeline. Timed: read -> BuildMixture -> write ``mixture/split=.../lang=...`` (+ left_out,
stats); a read-only pipeline is timed too and subtracted. Then, on the written output: format
shares, caps, inversion share, templates per task, per-label template balance, and (unless
``--no-audit``) the leakage audit of the rendered mixture. ``--compare`` runs the in-process
runner as well and checks the two mixtures are identical.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import shutil
import time
from collections import Counter, defaultdict
from pathlib import Path

import apache_beam as beam
import pyarrow.dataset as ds

from tests.test_mixture import synthetic_corpus, template_rows, write_corpus
from transforms.mixing import base_template
from transforms.mixture import LEFT_OUT_SCHEMA, STATS_SCHEMA, BuildMixture
from transforms.parquet_io import WriteParquet
from transforms.recipe import load_recipe
from transforms.render import MIXTURE_SCHEMA


def cpu_seconds() -> float:
    """CPU of this process and its reaped children (multi-process workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def argv_for(workers: int) -> list[str]:
    argv = ["--runner=FnApiRunner"]
    if workers > 1:
        argv += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    return argv


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.time(), cpu_seconds()
    fn()
    return time.time() - wall, cpu_seconds() - cpu


def read_only(corpus: str, argv: list[str]) -> None:
    with beam.Pipeline(argv=argv) as p:
        _ = (
            p
            | "Read" >> beam.io.ReadFromParquet(corpus)
            | "Count" >> beam.combiners.Count.Globally()
        )


def build(corpus: str, out: Path, recipe, rows, argv: list[str]) -> None:
    with beam.Pipeline(argv=argv) as p:
        built = (
            p
            | "Read" >> beam.io.ReadFromParquet(corpus)
            | "Build" >> BuildMixture(recipe=recipe, template_sets=rows)
        )
        built["mixture"] | "WriteMixture" >> WriteParquet(
            path=str(out / "mixture"), schema=MIXTURE_SCHEMA, partition_by=("split", "lang")
        )
        built["left_out"] | "WriteLeftOut" >> WriteParquet(
            path=str(out / "left_out"), schema=LEFT_OUT_SCHEMA
        )
        built["stats"] | "WriteStats" >> WriteParquet(path=str(out / "stats"), schema=STATS_SCHEMA)


def table(path: Path, hive: bool = False) -> list[dict]:
    return (
        ds.dataset(path, format="parquet", partitioning="hive" if hive else None)
        .to_table()
        .to_pylist()
    )


def figures(out: Path, records: list[dict], recipe) -> list[str]:
    mixture = table(out / "mixture", hive=True)
    stats = {(s["split"], s["dimension"], s["key"]): s for s in table(out / "stats")}
    base = [r for r in mixture if not r["inverted"] and r["split"] == "train"]
    inverted = [r for r in mixture if r["inverted"]]
    lines = [f"- rows: {len(mixture):,} ({len(base):,} base + {len(inverted):,} inverted)"]
    shares = Counter(r["format"] for r in base)
    for name in ("zero_shot", "few_shot", "cot"):
        target = stats[("train", "format", name)]["target"]
        lines.append(
            f"- {name}: {shares[name] / len(base):.4f} (target {target:.4f}, "
            f"{100 * (shares[name] / len(base) - target):+.2f} points)"
        )
    lines.append(
        f"- CoT detail: {stats[('train', 'cot', recipe.submixtures[0].name)]['detail']}"
        if len(recipe.submixtures) == 1
        else "- CoT by submixture: "
        + "; ".join(
            f"{k[2]} {s['proportion']:.3f} (target {s['target']})"
            for k, s in sorted(stats.items())
            if k[1] == "cot"
        )
    )
    available = Counter(r["task"] for r in records)
    realised = Counter(r["task"] for r in base)
    quota = {k[2]: s["target_count"] for k, s in stats.items() if k[:2] == ("train", "task")}
    exact = all(realised[t] == quota[t] for t in quota)
    capped = {t: (available[t], realised[t]) for t in available if available[t] > realised[t]}
    lines.append(
        f"- caps: realised == planned quota for all {len(quota)} tasks: {exact}; "
        f"capped tasks (available -> kept): {capped}"
    )
    lines.append(
        f"- inversion: {len(inverted):,} rows = {len(inverted) / len(mixture):.4f} of all rows, "
        f"{len(inverted) / len(base):.4f} per base row"
    )
    per_task = {k[2]: s["count"] for k, s in stats.items() if k[1] == "templates_per_task"}
    lines.append(f"- templates per task: {dict(sorted(per_task.items()))}")
    # Dealt templates only: a native (P3/Flan) row keeps the template its source file gave it.
    cells = defaultdict(Counter)
    for r in base:
        if r["label"] and r["template_family"] != "native":
            cells[(r["task"], r["label"])][base_template(r["template_id"])] += 1
    worst = max(max(c.values()) - min(c.values()) for c in cells.values())
    tasks = len({task for task, _ in cells})
    lines.append(
        f"- per-label template counts over {tasks} dealt classification tasks, "
        f"{len(cells)} (task, label) cells: max - min = {worst}"
    )
    lines.append(f"- languages: {dict(Counter(r['lang'] for r in mixture))}")
    subs = sorted(k[2] for k in stats if k[:2] == ("train", "submixture"))
    if len(subs) > 1:
        lines.append(
            "- submixtures (realised share of base rows vs seqio mixing probability): "
            + "; ".join(
                f"{k} {stats[('train', 'submixture', k)]['proportion']:.3f} vs "
                f"{stats[('train', 'submixture', k)]['target']:.3f}"
                for k in subs
            )
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--recipe", default="lecture")
    parser.add_argument("--budget", type=int, help="override the recipe's training budget")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--compare", action="store_true", help="also run in-process; diff")
    parser.add_argument("--no-audit", action="store_true")
    parser.add_argument("--work", default="bench/work/mixture")
    args = parser.parse_args(argv)

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    print(f"load average before: {os.getloadavg()}")
    t = time.time()
    records = synthetic_corpus(args.records, big_task=int(0.4 * args.records))
    corpus = write_corpus(records, work / "corpus" / "part-0.parquet")
    print(f"corpus: {len(records):,} records generated and written in {time.time() - t:.1f} s")
    recipe = load_recipe(args.recipe)
    if args.budget:
        recipe = dataclasses.replace(recipe, budget=args.budget)
    rows = template_rows()
    runner = argv_for(args.workers)

    read_wall, read_cpu = timed(lambda: read_only(corpus, runner))
    wall, cpu = timed(lambda: build(corpus, work / "out", recipe, rows, runner))
    stage_wall, stage_cpu = wall - read_wall, cpu - read_cpu
    print(f"\n## {len(records):,} records, recipe {recipe.name}, runner {' '.join(runner)}\n")
    print("| pipeline | wall | CPU |\n|---|---|---|")
    print(f"| read corpus only | {read_wall:.1f} s | {read_cpu:.1f} s |")
    print(f"| read + BuildMixture + write | {wall:.1f} s | {cpu:.1f} s |")
    print(
        f"| **the stage (difference)** | **{stage_wall:.1f} s -> "
        f"{len(records) / stage_wall:,.0f} records/s** | **{stage_cpu:.1f} s -> "
        f"{len(records) / stage_cpu:,.0f} records per CPU-second** |"
    )
    print()
    print("\n".join(figures(work / "out", records, recipe)))

    if args.compare:
        other = argv_for(1 if args.workers > 1 else 2)
        wall2, cpu2 = timed(lambda: build(corpus, work / "out2", recipe, rows, other))

        def key(r):
            return r["split"], r["record_id"], r["inverted"]

        first = sorted(table(work / "out" / "mixture", hive=True), key=key)
        second = sorted(table(work / "out2" / "mixture", hive=True), key=key)
        print(
            f"\n- second run on {' '.join(other)}: {wall2:.1f} s wall, {cpu2:.1f} s CPU; "
            f"identical mixture: {first == second} ({len(first):,} rows)"
        )

    if not args.no_audit:
        from pipelines.audit import run_audit

        t = time.time()
        summary = run_audit(
            str(work / "out" / "mixture"),
            str(work / "audit"),
            pipeline_args=["--runner=FnApiRunner"],
        )
        print(
            f"\n- leakage audit of the rendered mixture ({time.time() - t:.1f} s): "
            f"{summary['records']:,} rows, {summary['labelled']:,} labelled, "
            f"{summary['classification_tasks']} classification tasks; flagged shards: "
            f"{summary['flagged_shards'] or 'none'} of {summary['shards']}"
        )
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
