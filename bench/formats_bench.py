"""Throughput and memory of the format readers (``transforms.formats.parse_file``), no Beam.

    .venv/bin/python -m bench.formats_bench                 # shared data + synthetic files
    .venv/bin/python -m bench.formats_bench --scale 0.25    # smaller synthetic files
    .venv/bin/python -m bench.formats_bench --decoder orjson  # the same with orjson.loads

Cases: every file of ../shared/data (34,146 records, 194 files, 20.5 MB), then synthetic files
written to a temporary folder: an Alpaca JSON array and the same records as JSON Lines
(200,000 records), ShareGPT conversations as a JSON array (20,000 x 6 turns) and a
Super-NaturalInstructions task file with 6,000 instances (read whole, as task files are).
Each synthetic case runs in a fresh process so that its peak RSS is its own: the streamed
containers (JSONL, JSON arrays) should stay far below the file size, the whole task document
should not. Results: bench/results/formats.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WORDS = [
    "the",
    "a",
    "model",
    "answer",
    "question",
    "review",
    "sentence",
    "classify",
    "label",
    "whether",
    "text",
    "summary",
    "article",
    "explain",
    "reason",
    "because",
    "therefore",
    "translate",
    "猫",
    "犬",
    "Katze",
    "chien",
    "雨",
    "über",
    "naïve",
    "café",
]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write_synthetic(folder: Path, scale: float) -> dict[str, Path]:
    """The synthetic input files; returns {case: path}."""
    rng = random.Random(13)
    n_alpaca, n_chat, n_task = int(200_000 * scale), int(20_000 * scale), int(6_000 * scale)
    rows = [
        {
            "instruction": _sentence(rng, rng.randint(5, 25)),
            "input": _sentence(rng, rng.randint(0, 40)),
            "output": _sentence(rng, rng.randint(5, 120)) + '\n"quoted"',
        }
        for _ in range(n_alpaca)
    ]
    paths = {
        "alpaca_json_array": folder / "alpaca_data.json",
        "alpaca_jsonl": folder / "alpaca_data.jsonl",
    }
    paths["alpaca_json_array"].write_text(json.dumps(rows, indent=4, ensure_ascii=False))
    with paths["alpaca_jsonl"].open("w") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    conversations = [
        {
            "id": f"c{i}",
            "conversations": [
                {
                    "from": "human" if t % 2 == 0 else "gpt",
                    "value": _sentence(rng, rng.randint(5, 150)),
                }
                for t in range(6)
            ],
        }
        for i in range(n_chat)
    ]
    paths["sharegpt_json_array"] = folder / "sharegpt.json"
    paths["sharegpt_json_array"].write_text(json.dumps(conversations, indent=2, ensure_ascii=False))
    task = {
        "Contributors": ["bench"],
        "Definition": [_sentence(rng, 60)],
        "Input_language": ["English"],
        "Positive Examples": [{"input": "a", "output": "b", "explanation": "c"}] * 3,
        "Negative Examples": [{"input": "a", "output": "d", "explanation": "e"}] * 2,
        "Instances": [
            {
                "id": f"task999-{i}",
                "input": _sentence(rng, rng.randint(10, 80)),
                "output": [_sentence(rng, 3)],
            }
            for i in range(n_task)
        ],
        "Instance License": ["Unknown"],
    }
    paths["sni_task_6000"] = folder / "task999_bench_task.json"
    paths["sni_task_6000"].write_text(json.dumps(task, indent=4, ensure_ascii=False))
    return paths


def use_decoder(decoder: str) -> None:
    """Swap the JSON decoder the containers use (stdlib json is the shipped default)."""
    if decoder == "json":
        return
    import types

    import orjson

    from transforms.formats import containers

    containers.json = types.SimpleNamespace(
        loads=orjson.loads, dumps=json.dumps, JSONDecodeError=orjson.JSONDecodeError
    )


def parse_files(paths: list[str]) -> tuple[int, int]:
    """``(records, dead letters)`` of parsing the files."""
    from transforms.formats import parse_path

    records = dead = 0
    for path in paths:
        for kind, _ in parse_path(path):
            if kind == "record":
                records += 1
            else:
                dead += 1
    return records, dead


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM; ``ru_maxrss`` would include the parent's peak, since
    Linux keeps it across fork and exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_case(args: tuple[list[str], str]) -> dict:
    """One case in a fresh process: time, counts, peak RSS."""
    paths, decoder = args
    import transforms.formats  # noqa: F401 - imports (pyarrow...) are not part of the timing

    use_decoder(decoder)
    start = time.perf_counter()
    records, dead = parse_files(paths)
    seconds = time.perf_counter() - start
    size = sum(os.path.getsize(p) for p in paths)
    return {
        "records": records,
        "dead_letters": dead,
        "seconds": seconds,
        "mb": size / 2**20,
        "peak_rss_mb": peak_rss_mb(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size of the synthetic files")
    parser.add_argument("--decoder", choices=["json", "orjson"], default="json")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (best is reported)")
    args = parser.parse_args(argv)

    cases: dict[str, list[str]] = {}
    if DATA.is_dir():
        cases["shared_data_all_files"] = [str(p) for p in sorted(DATA.rglob("*")) if p.is_file()]
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        for case, path in write_synthetic(Path(tmp), args.scale).items():
            cases[case] = [str(path)]
        print(
            f"# formats_bench: python {platform.python_version()}, {os.cpu_count()} cores, "
            f"decoder={args.decoder}, scale={args.scale}"
        )
        print(
            f"{'case':24s} {'records':>9s} {'dead':>5s} {'MB':>7s} {'best s':>7s} "
            f"{'records/s':>10s} {'MB/s':>6s} {'peak RSS MB':>11s}"
        )
        for case, paths in cases.items():
            runs = []
            for _ in range(args.repeat):
                with context.Pool(1) as pool:
                    runs.append(pool.map(run_case, [(paths, args.decoder)])[0])
            best = min(runs, key=lambda r: r["seconds"])
            print(
                f"{case:24s} {best['records']:9d} {best['dead_letters']:5d} {best['mb']:7.1f} "
                f"{best['seconds']:7.2f} {best['records'] / best['seconds']:10.0f} "
                f"{best['mb'] / best['seconds']:6.1f} {max(r['peak_rss_mb'] for r in runs):11.0f}"
            )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
