"""Language ID on the real data: accuracy against declared languages, prefix length, speed.

Accuracy reads ../shared/data with plain ``json`` (not the pipeline's readers, so the
measurement does not depend on them); throughput reads it as the pipeline does (every file,
the project's readers and normaliser). Writes ``bench/results/langid.md``:

    .venv/bin/python bench/langid_bench.py all --baseline-rev de6578b   # ~3-4 min on 2 cores
    .venv/bin/python bench/langid_bench.py speed  # one: accuracy|settings|prefix|speed|beam

Speed figures are single-process (one core) CPU time, each beside a bare fastText predict loop
run in the same rounds (the calibration); the machine has 2 shared cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transforms.langid import (
    UND,
    LanguageIdentifier,
    declared_codes,
    language_code,
    languages_agree,
    load_model,
    predict,
    prepare_text,
)
from transforms.langid_config import LangIdConfig

DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results" / "langid.md"
FULL = 1_000_000  # max_chars that never truncates: the "full-text decision"


# --------------------------------------------------------------------------------------------
# Records, read with plain json. Each: source, task, input, definition, output, declared (codes
# of the declared input language, [] when the source declares none), names (as declared).


def _text(value) -> str:
    if isinstance(value, list):
        return "\n".join(v for v in value if isinstance(v, str))
    return value or ""


def sni_records() -> Iterator[dict]:
    for path in sorted((DATA / "sni").glob("*/*.json")):
        task = json.loads(path.read_text(encoding="utf-8"))
        names = task.get("Input_language") or []
        for inst in task["Instances"]:
            outputs = inst.get("output") or [""]
            output = outputs[0] if isinstance(outputs, list) else outputs
            record = {
                "source": f"sni/{path.parent.name}",
                "task": path.stem,
                "input": inst.get("input", ""),
                "definition": _text(task.get("Definition")),
                "output": output,
                "names": names,
                "declared": declared_codes(names),
                "declared_output": declared_codes(task.get("Output_language") or []),
            }
            # task533 declares both English and Spanish; each instance's label says which.
            if len(names) > 1 and output in names:
                record["truth"] = language_code(output)
            yield record


def alpaca_like(path: Path, source: str, declared: list[str]) -> Iterator[dict]:
    for i, row in enumerate(json.loads(path.read_text(encoding="utf-8"))):
        yield {
            "source": source,
            "task": source,
            "input": row.get("input", ""),
            "definition": row.get("instruction", ""),
            "output": row.get("output", ""),
            "names": [],
            "declared": declared,
            "index": i,
        }


def belle_records() -> Iterator[dict]:
    path = DATA / "self_instruct" / "belle_zh_seed_tasks.json"  # JSON Lines despite the name
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        inst = (row.get("instances") or [{}])[0]
        yield {
            "source": "self_instruct/belle_zh",
            "task": row.get("name", ""),
            "input": inst.get("input", ""),
            "definition": row.get("instruction", ""),
            "output": inst.get("output", ""),
            "names": [],
            "declared": ["zh"],
        }


def chat_records(path: Path, source: str, declared: list[str]) -> Iterator[dict]:
    for row in json.loads(path.read_text(encoding="utf-8")):
        turns = row.get("conversations") or []
        system = next((t["value"] for t in turns if t.get("from") == "system"), "")
        user = next((i for i, t in enumerate(turns) if t.get("from") == "human"), None)
        reply = ""
        if user is not None:
            reply = next((t["value"] for t in turns[user + 1 :] if t.get("from") == "gpt"), "")
        yield {
            "source": source,
            "task": source,
            "input": turns[user]["value"] if user is not None else "",
            "definition": system,
            "output": reply,
            "names": [],
            "declared": declared,
            "id": row.get("id"),
        }


def other_records() -> dict[str, list[dict]]:
    return {
        "alpaca/zh": list(
            alpaca_like(DATA / "alpaca/zh/alpaca_data-0-3252-zh.json", "alpaca/zh", ["zh"])
        ),
        "self_instruct/belle_zh": list(belle_records()),
        "oasst_zh": list(
            alpaca_like(DATA / "oasst_zh/oaast_sft_zh.first50.json", "oasst_zh", ["zh"])
        ),
        "sharegpt/sample300": list(
            chat_records(
                DATA / "sharegpt/sharegpt_v3_unfiltered_cleaned_split.sample300.json",
                "sharegpt/sample300",
                [],
            )
        ),
        "sharegpt/fastchat_dummy": list(
            chat_records(
                DATA / "sharegpt/fastchat_dummy_conversation.json",
                "sharegpt/fastchat_dummy",
                ["en"],
            )
        ),
        "sharegpt/glaive_toolcall": list(
            chat_records(
                DATA / "sharegpt/glaive_toolcall_en_demo.function_call_subset.json",
                "sharegpt/glaive_toolcall",
                ["en"],
            )
        ),
    }


def english_records() -> list[dict]:
    """Extra English text for the speed mix (Alpaca en)."""
    return list(alpaca_like(DATA / "alpaca/en/alpaca_data-0-3252.json", "alpaca/en", ["en"]))


# --------------------------------------------------------------------------------------------
# Accuracy.


def _fmt_counter(counter: Counter, top: int = 6) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.most_common(top)) or "-"


def _pct(num: int, den: int) -> str:
    return f"{100.0 * num / den:.1f}%" if den else "-"


def accuracy_section(identifier: LanguageIdentifier) -> list[str]:
    out = ["## Accuracy against declared languages", ""]
    cfg = identifier.config
    out.append(
        f"Config: max_chars={cfg.max_chars}, threshold={cfg.threshold}, "
        f"min_chars={cfg.min_chars}, min_script_share={cfg.min_script_share}, "
        f"model=bundled lid.176.ftz. `lang` is the split key (input, falling back to the "
        "instruction, then the output, only when the earlier text has no language signal)."
    )
    out.append("")

    sni = [dict(r, **identifier.identify(r)) for r in sni_records()]
    # per task
    out += [
        "### Super-NaturalInstructions, per task (input side)",
        "",
        "| task | folder | n | declared Input_language | detected `lang` | agrees | und |",
        "|---|---|---|---|---|---|---|",
    ]
    by_task: dict[str, list[dict]] = defaultdict(list)
    for r in sni:
        by_task[r["task"]].append(r)
    for task, rows in sorted(by_task.items(), key=lambda kv: (kv[1][0]["source"], kv[0])):
        agree = sum(1 for r in rows if _agrees(r) is True)
        und = sum(1 for r in rows if r["lang"] == UND)
        declared = ",".join(rows[0]["names"]) or "(none declared)"
        out.append(
            f"| {task} | {rows[0]['source'].split('/')[1]} | {len(rows)} | {declared} | "
            f"{_fmt_counter(Counter(r['lang'] for r in rows), 4)} | "
            f"{_pct(agree, len(rows)) if rows[0]['declared'] else '-'} | {und} |"
        )
    out.append("")

    # per declared language (task533 per instance)
    out += [
        "### Super-NaturalInstructions, per declared input language",
        "",
        (
            "task533 declares English and Spanish; its instance labels say which, and that is "
            "the reference there. Finnish translations declare English (their metadata was not "
            "translated): they are counted under the declared English *and* shown apart."
        ),
        "",
        "| declared | folder | n | correct | und | wrong | detected (top) |",
        "|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in sni:
        ref = r.get("truth") or (r["declared"][0] if len(r["declared"]) == 1 else None)
        if ref is None:
            continue
        folder = "finnish_translations" if "finnish" in r["source"] else "original"
        groups[(ref, folder)].append(dict(r, ref=ref))
    for (ref, folder), rows in sorted(groups.items()):
        correct = sum(1 for r in rows if languages_agree([r["ref"]], r["lang"]))
        und = sum(1 for r in rows if r["lang"] == UND)
        out.append(
            f"| {ref} | {folder} | {len(rows)} | {correct} ({_pct(correct, len(rows))}) | {und} | "
            f"{len(rows) - correct - und} | {_fmt_counter(Counter(r['lang'] for r in rows))} |"
        )
    out.append("")
    out += _confusion(
        "### SNI confusion summary (declared -> detected, wrong or und only)",
        [(r.get("truth") or ",".join(r["declared"]) or "(none)", r["lang"]) for r in sni],
    )
    out += _reasons("### SNI: why `und`", sni)
    out += _output_side(sni)

    # other sets
    out += [
        "### Other multilingual sets",
        "",
        "Declared = the language the dataset is published as (per file, not per record).",
        "",
        "| set | n | declared | `lang` agrees | und | wrong | detected (top) | input only: agrees |",
        "|---|---|---|---|---|---|---|---|",
    ]
    others = other_records()
    all_other = []
    for name, records in others.items():
        rows = [dict(r, **identifier.identify(r)) for r in records]
        all_other += rows
        declared = ",".join(records[0]["declared"]) if records[0]["declared"] else "-"
        agree = sum(1 for r in rows if _agrees(r) is True)
        und = sum(1 for r in rows if r["lang"] == UND)
        wrong = sum(1 for r in rows if _agrees(r) is False and r["lang"] != UND)
        input_agree = sum(
            1 for r in rows if languages_agree(r["declared"], identifier.decide(r["input"]).lang)
        )
        out.append(
            f"| {name} | {len(rows)} | {declared} | "
            f"{_pct(agree, len(rows)) if records[0]['declared'] else '-'} | {und} | "
            f"{wrong if records[0]['declared'] else '-'} | "
            f"{_fmt_counter(Counter(r['lang'] for r in rows))} | "
            f"{_pct(input_agree, len(rows)) if records[0]['declared'] else '-'} |"
        )
    out.append("")
    out += _confusion(
        "### Other sets: confusion summary (declared -> detected, wrong or und only)",
        [(",".join(r["declared"]) or "(none)", r["lang"]) for r in all_other],
    )
    out += _reasons("### Other sets: why `und`", all_other)
    out += _examples(all_other + sni)
    return out


def _agrees(r: dict) -> bool | None:
    return languages_agree([r["truth"]] if r.get("truth") else r["declared"], r["lang"])


def _confusion(title: str, pairs: list[tuple[str, str]]) -> list[str]:
    counter = Counter((d, g) for d, g in pairs if not languages_agree(d.split(",") if d else [], g))
    lines = [title, "", "| declared | detected | count |", "|---|---|---|"]
    for (d, g), n in counter.most_common(25):
        lines.append(f"| {d} | {g} | {n} |")
    return lines + [""]


def _reasons(title: str, rows: list[dict]) -> list[str]:
    counter = Counter(r["lang_reason"] for r in rows if r["lang"] == UND)
    decided = Counter(r["lang_reason"] for r in rows if r["lang"] != UND)
    return [
        title,
        "",
        f"und: {_fmt_counter(counter, 12)}. Decided by: {_fmt_counter(decided)}.",
        "",
    ]


def _output_side(sni: list[dict]) -> list[str]:
    lines = [
        "### SNI output side (`lang_output` vs declared Output_language)",
        "",
        "| folder | n | agrees | und | wrong | detected (top) |",
        "|---|---|---|---|---|---|",
    ]
    by_folder: dict[str, list[dict]] = defaultdict(list)
    for r in sni:
        if r["declared_output"]:
            by_folder[r["source"].split("/")[1]].append(r)
    for folder, rows in sorted(by_folder.items()):
        agree = sum(1 for r in rows if languages_agree(r["declared_output"], r["lang_output"]))
        und = sum(1 for r in rows if r["lang_output"] == UND)
        lines.append(
            f"| {folder} | {len(rows)} | {_pct(agree, len(rows))} | {und} | "
            f"{len(rows) - agree - und} | {_fmt_counter(Counter(r['lang_output'] for r in rows))} |"
        )
    return lines + [
        "",
        (
            "Classification outputs are label words (`POS`, `Entailment`, `HUM`): short, so "
            "mostly `too_short`; Finnish outputs under a declared English are the expected "
            "disagreement."
        ),
        "",
    ]


def _examples(rows: list[dict], per_kind: int = 3) -> list[str]:
    lines = ["### Examples of disagreements (first input characters)", ""]
    shown: Counter = Counter()
    for r in rows:
        agrees = _agrees(r)
        if agrees is not False or r["lang"] == UND:
            continue
        kind = (r["source"], r["lang"])
        if shown[kind] >= per_kind or len(shown) > 30:
            continue
        shown[kind] += 1
        text = prepare_text(r["input"] or r["definition"], 90).replace("|", "/")
        lines.append(
            f"- {r['source']} declared {r['declared']} -> {r['lang']} "
            f"({r['lang_reason']}, {r['lang_score']:.2f}): `{text}`"
        )
    return lines + [""]


# --------------------------------------------------------------------------------------------
# Settings: how each default was chosen (agree / und / wrong against the declared language).

SETTINGS = [
    ("defaults", {}),
    ("no script gate", {"script_gate": False}),
    ("no lowercasing", {"lowercase": False}),
    ("min_chars=10", {"min_chars": 10}),
    ("min_chars=15", {"min_chars": 15}),
    ("min_chars=30", {"min_chars": 30}),
    ("threshold=0.3", {"threshold": 0.3}),
    ("threshold=0.4", {"threshold": 0.4}),
    ("threshold=0.6", {"threshold": 0.6}),
    ("threshold=0.8", {"threshold": 0.8}),
    ("min_script_share=0.8", {"min_script_share": 0.8}),
    ("no fallback-conflict check", {"fallback_conflict_threshold": 1.0}),
]


def settings_section(config: LangIdConfig) -> list[str]:
    sets: dict[str, list[dict]] = defaultdict(list)
    for r in sni_records():
        if "finnish" in r["source"]:
            sets["SNI fi (declared en)"].append(dict(r, truth="fi"))
        elif r["declared"] == ["en"]:
            sets["SNI en"].append(r)
        elif r["declared"]:
            sets["SNI fa/ja/es"].append(r)
    for name, records in other_records().items():
        if records[0]["declared"]:
            sets[name].extend(records)
    model = load_model(config.model_path)
    out = [
        "## Settings: agree / und / wrong (%) against the declared language, per set",
        "",
        (
            "Each row changes one setting from the defaults. The Finnish SNI translations are "
            "scored against Finnish (their text), not their declared English. 'wrong' on the "
            "zh sets includes correct English detections of English inputs (translation "
            "tasks)."
        ),
        "",
        "| setting | " + " | ".join(sets) + " |",
        "|---|" + "---|" * len(sets),
    ]
    for label, change in SETTINGS:
        identifier = LanguageIdentifier(model, dataclasses.replace(config, **change))
        cells = []
        for records in sets.values():
            agree = und = wrong = 0
            for r in records:
                lang = identifier.identify(r)["lang"]
                ok = languages_agree([r["truth"]] if r.get("truth") else r["declared"], lang)
                if lang == UND:
                    und += 1
                elif ok:
                    agree += 1
                else:
                    wrong += 1
            n = len(records)
            cells.append(f"{100 * agree / n:.1f} / {100 * und / n:.1f} / {100 * wrong / n:.1f}")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out.append("")
    return out


# --------------------------------------------------------------------------------------------
# Prefix length: agreement with the full-text decision vs speed.


def _pool() -> list[str]:
    """Distinct real texts (inputs, instructions, outputs) from every multilingual set."""
    texts: dict[str, None] = {}
    records = list(sni_records())
    for rows in other_records().values():
        records += rows
    for r in records:
        for field in ("input", "definition", "output"):
            if r[field] and r[field].strip():
                texts[r[field]] = None
    return list(texts)


def _timed_decide(texts: list[str], config: LangIdConfig, repeat: int = 3) -> tuple[list, float]:
    best = float("inf")
    decisions = []
    for _ in range(repeat):
        identifier = LanguageIdentifier(load_model(config.model_path), config)  # cold memo
        start = time.process_time()
        decisions = identifier.decide_many(texts)
        best = min(best, time.process_time() - start)
    return decisions, len(texts) / best


def prefix_section(lengths=(40, 60, 80, 100, 120, 160, 200, 300, 500)) -> list[str]:
    texts = _pool()
    lens = [len(t) for t in texts]
    records = speed_records()
    model = load_model(None)
    full, full_speed = _timed_decide(texts, LangIdConfig(max_chars=FULL, cache_size=0))
    out = [
        "## Prefix length: agreement with the full-text decision vs speed",
        "",
        (
            f"{len(texts)} distinct real texts (every input, instruction and output of SNI, "
            "Alpaca zh, BELLE, OASST zh and the three ShareGPT files); length median "
            f"{statistics.median(lens):.0f}, mean {statistics.mean(lens):.0f}, max {max(lens)} "
            "characters. Decisions with the default settings otherwise, `und` included; "
            "agreement = same code (or both und). 'Long texts' are those longer than the "
            "prefix, the only ones a prefix can change. texts/s: the whole decision (analysis + "
            "predict) per distinct text, memo off. records/s: the stage kernel "
            f"(`identify_records`, three texts per record, memo on) over {len(records)} real "
            "records. One process, CPU time, best of 3."
        ),
        "",
        (
            "| max_chars | agreement | long texts | agreement on long | und changes | texts/s "
            "| records/s |"
        ),
        "|---|---|---|---|---|---|---|",
    ]

    def stage_speed(cfg: LangIdConfig) -> float:
        best = float("inf")
        for _ in range(3):
            identifier = LanguageIdentifier(model, cfg)
            start = time.process_time()
            identifier.identify_records(records)
            best = min(best, time.process_time() - start)
        return len(records) / best

    for n in lengths:
        got, speed = _timed_decide(texts, LangIdConfig(max_chars=n, cache_size=0))
        same = sum(1 for a, b in zip(got, full) if a.lang == b.lang)
        long_idx = [i for i, t in enumerate(texts) if len(t) > n]
        same_long = sum(1 for i in long_idx if got[i].lang == full[i].lang)
        und_changes = sum(1 for a, b in zip(got, full) if (a.lang == UND) != (b.lang == UND))
        out.append(
            f"| {n} | {_pct(same, len(texts))} | {len(long_idx)} | "
            f"{_pct(same_long, len(long_idx))} | {und_changes} | {speed:,.0f} | "
            f"{stage_speed(LangIdConfig(max_chars=n)):,.0f} |"
        )
    out.append(
        f"| full | 100% | - | - | 0 | {full_speed:,.0f} | "
        f"{stage_speed(LangIdConfig(max_chars=FULL)):,.0f} |"
    )
    out.append("")
    return out


# --------------------------------------------------------------------------------------------
# Throughput of the stage's predict path (records/s, one core).


def speed_records() -> list[dict]:
    records = list(sni_records()) + english_records()
    for rows in other_records().values():
        records += rows
    return records


def pipeline_records() -> list[dict]:
    """Every record of ../shared/data as the pipeline sees it: the project's readers
    (``parse_path``, format by content) and ``normalize_record``, templates left out."""
    from pipelines.inputs import expand_inputs
    from pipelines.run import is_template_file
    from transforms.normalize import normalized_records

    paths = [path for path in expand_inputs([str(DATA)]) if not is_template_file(path)]
    return list(normalized_records(paths))


def speed_streams(records: list[dict]) -> dict[str, list[dict]]:
    """The whole corpus, its task-structured part, and the per-record sources."""

    def of(*sources: str) -> list[dict]:
        return [r for r in records if r["source"] in sources]

    alpaca = of("alpaca")
    return {
        "whole corpus": records,
        "task-structured (SNI, NIv1, P3, Flan CoT)": of("sni", "niv1", "p3", "flan_cot"),
        "per-record (Alpaca en+zh, Dolly)": of("alpaca", "dolly"),
        "Alpaca en": [r for r in alpaca if "/en/" in r["source_file"]],
        "Alpaca zh": [r for r in alpaca if "/zh/" in r["source_file"]],
    }


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _round_robin(runs: dict[str, object], repeat: int) -> dict[str, float]:
    """Best CPU seconds of each run, the runs taking turns so they share the load."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for name, fn in runs.items():
            start = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - start)
    return best


def _baseline_kernel(rev: str):
    """``transforms/langid.py`` as it was at git ``rev``, imported under another name."""
    import importlib.util
    import subprocess
    import tempfile

    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:transforms/langid.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="langid-baseline-")) / "langid_baseline.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("langid_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dofn_loop(config: LangIdConfig, records: list[dict]):
    """The stage as a runner drives it: the DoFn pickled, set up once, fed fixed batches."""
    import pickle

    from transforms.langid_stage import IdentifyLanguageFn

    batches = [
        records[i : i + config.batch_size] for i in range(0, len(records), config.batch_size)
    ]

    def run() -> None:
        fn = pickle.loads(pickle.dumps(IdentifyLanguageFn(config)))
        fn.setup()  # the model comes from the per-process cache: this times the memo cold
        for batch in batches:
            for _ in fn.process(batch):
                pass

    return run


def speed_section(config: LangIdConfig, baseline_rev: str | None, repeat: int = 5) -> list[str]:
    records = pipeline_records()
    model = load_model(config.model_path)
    calib_texts = [" ".join(r["input"].split())[:200] for r in sni_records()]
    out = [
        "## Throughput (one process, one core of 2 shared)",
        "",
        (
            f"Streams: the {len(records):,} records of `../shared/data` as the pipeline sees "
            "them (`parse_path` + `normalize_record`; P3, SNI, NIv1 and Flan share one "
            "definition across many instances), and the per-record sources, where every "
            "instruction is new. records/s = records / best CPU time of the process over "
            f"{repeat} rounds; in each round every row of a stream runs once, in turn, so the "
            "rows of one stream see the same load. `calibration` is a bare fastText predict "
            "loop over the SNI inputs cut to 200 characters (texts/s), run in the same rounds: "
            "the ratio stage / calibration is what to compare across runs. Load averages "
            "(1/5/15 min) were read after each stream. The machine's 2 cores were shared "
            "with other benchmarks."
        ),
        "",
        (
            "DoFn loop: `IdentifyLanguageFn` pickled, `setup()`, `process()` over batches of "
            f"{config.batch_size} (counters included, memo starts cold). Kernel: "
            "`LanguageIdentifier.identify_records` per batch."
        ),
        "",
    ]
    baseline = _baseline_kernel(baseline_rev) if baseline_rev else None
    header = "| stream | records | distinct texts / record | path | records/s | vs calibration |"
    rows = [header, "|---|---|---|---|---|---|"]
    for stream, rows_of in speed_streams(records).items():
        n = len(rows_of)
        distinct = len({(r[f] or "")[: config.window_chars] for r in rows_of for f in _FIELDS_READ})
        batches = [rows_of[i : i + config.batch_size] for i in range(0, n, config.batch_size)]
        size = config.cache_size
        runs = {
            "calibration": partial(_bare_predict, model, calib_texts),
            "**stage DoFn loop (defaults)**": _dofn_loop(config, rows_of),
            "kernel (defaults)": partial(_kernel, LanguageIdentifier, model, config, batches, size),
            "kernel, memo off": partial(_kernel, LanguageIdentifier, model, config, batches, 0),
            "kernel, one record per call (no batching)": partial(
                _kernel, LanguageIdentifier, model, config, [[r] for r in rows_of], size
            ),
        }
        if baseline is not None:
            runs[f"kernel at {baseline_rev} (before this change)"] = partial(
                _kernel, baseline.LanguageIdentifier, model, config, batches, size
            )
        if stream == "whole corpus":
            whole = [
                " ".join(f"{r['definition'] or ''} {r['input'] or ''}".split()) for r in rows_of
            ]
            runs["bare predict, whole definition + input, 1 call/record"] = partial(
                _bare_predict, model, whole
            )
            runs["bare predict, first 80 characters, 1 call/record"] = partial(
                _bare_predict, model, [t[:80] for t in whole]
            )
        best = _round_robin(runs, repeat)
        load = _load()
        calib = len(calib_texts) / best["calibration"]
        for name, seconds in best.items():
            if name == "calibration":
                continue
            rate = n / seconds
            rows.append(
                f"| {stream} | {n:,} | {distinct / n:.2f} | {name} | {rate:,.0f} | "
                f"{rate / calib:.3f} |"
            )
        rows.append(f"| {stream} | | | calibration (texts/s), load {load} | {calib:,.0f} | 1 |")
    return out + rows + [""]


_FIELDS_READ = ("input", "definition", "output")


def _bare_predict(model, texts: list[str]) -> None:
    for text in texts:
        predict(model, text)


def _kernel(cls, model, config: LangIdConfig, batches: list[list[dict]], cache_size: int):
    identifier = cls(model, dataclasses.replace(config, cache_size=cache_size))
    for batch in batches:
        identifier.identify_records(batch)


_BEAM_RECORDS: list[dict] = []  # filled before the in-process pipeline runs


def _emit_records(_: int) -> list[dict]:
    """The bench records, read from this process (the in-process runner shares it): keeps
    Create's type inference and pickling of 34k dicts out of the measurement. Used through
    ``bench.langid_bench`` (imported, not ``__main__``) so that cloudpickle pickles it by
    reference: a ``__main__`` function is pickled by value, with the records it reads."""
    return _BEAM_RECORDS


def beam_section(config: LangIdConfig) -> list[str]:
    """The Beam stage end to end on the in-process FnApiRunner (includes Beam's overhead)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from bench import langid_bench as importable  # noqa: PLW0406 (not __main__: _emit_records)
    from transforms.langid_stage import IdentifyLanguage

    records = pipeline_records()
    importable._BEAM_RECORDS[:] = records
    model = load_model(config.model_path)
    calib_texts = [" ".join(r["input"].split())[:200] for r in sni_records()]
    out = [
        "## The Beam stage end to end",
        "",
        (
            f"The {len(records):,} corpus records emitted by a FlatMap and sent through "
            "`IdentifyLanguage | Count.Globally` on the in-process FnApiRunner (one SDK "
            "worker); a run of the same graph without `IdentifyLanguage` is subtracted to "
            "leave the stage's own cost. Wall time includes pipeline construction and "
            "start-up; CPU is this process's CPU time (the runner runs in-process). Best of 3."
        ),
        "",
        (
            "| graph | wall s | CPU s | stage CPU s (minus no-stage graph) | stage records/s "
            "(CPU) | vs calibration | load |"
        ),
        "|---|---|---|---|---|---|---|",
    ]

    def run(batch_size: int | None) -> tuple[float, float]:
        best_wall = best_cpu = float("inf")
        for _ in range(3):
            wall, cpu = time.perf_counter(), time.process_time()
            with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
                emitted = (
                    p
                    | beam.Create([0])
                    | beam.FlatMap(importable._emit_records).with_output_types(dict)
                )
                if batch_size is not None:
                    cfg = dataclasses.replace(config, batch_size=batch_size)
                    emitted = emitted | IdentifyLanguage(config=cfg)
                _ = emitted | beam.combiners.Count.Globally()
            best_wall = min(best_wall, time.perf_counter() - wall)
            best_cpu = min(best_cpu, time.process_time() - cpu)
        return best_wall, best_cpu

    start = time.process_time()
    for text in calib_texts:
        predict(model, text)
    calib = len(calib_texts) / (time.process_time() - start)
    base_wall, base_cpu = run(None)
    out.append(
        f"| no stage (FlatMap, Count) | {base_wall:.1f} | {base_cpu:.1f} | - | - | - | {_load()} |"
    )
    for batch_size in (config.batch_size, 1):
        wall, cpu = run(batch_size)
        stage = max(cpu - base_cpu, 1e-9)
        label = f"BatchElements({batch_size})" if batch_size > 1 else "no batching (batch_size=1)"
        rate = len(records) / stage
        out.append(
            f"| {label} | {wall:.1f} | {cpu:.1f} | {stage:.1f} | {rate:,.0f} | "
            f"{rate / calib:.3f} | {_load()} |"
        )
    out += ["", f"Calibration in this section: {calib:,.0f} texts/s.", ""]
    return out


def calibration() -> str:
    """A load-independent yardstick: bare predict over SNI inputs cut to 200 characters.

    The machine's 2 cores are shared; this figure next to the others tells how loaded it was
    (about 49,000/s when nothing else ran)."""
    model = load_model(None)
    texts = [" ".join(r["input"].split())[:200] for r in sni_records()]
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for text in texts:
            predict(model, text)
        best = min(best, time.process_time() - start)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"Calibration: bare predict over {len(texts)} SNI inputs cut to 200 characters ran at "
        f"{len(texts) / best:,.0f}/s (about 49,000/s on an idle machine); load average {load}."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "section",
        nargs="?",
        default="all",
        choices=["all", "accuracy", "settings", "prefix", "speed", "beam"],
    )
    parser.add_argument("--max-chars", type=int, default=LangIdConfig().max_chars)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--baseline-rev",
        help="git revision whose transforms/langid.py is timed beside the current one",
    )
    args = parser.parse_args(argv)
    config = LangIdConfig(max_chars=args.max_chars)
    identifier = LanguageIdentifier(load_model(None), config)
    lines = [
        "# Language-ID benchmark results",
        "",
        (
            f"Generated by `bench/langid_bench.py {' '.join(argv or sys.argv[1:])}` on "
            f"{platform.machine()} "
            f"({platform.python_version()}, {_cores()} cores, shared). Model: bundled "
            "lid.176.ftz."
        ),
        "",
    ]
    lines += [calibration(), ""]
    if args.section in ("all", "accuracy"):
        lines += accuracy_section(identifier)
    if args.section in ("all", "settings"):
        lines += settings_section(config)
    if args.section in ("all", "prefix"):
        lines += prefix_section()
    if args.section in ("all", "speed"):
        lines += speed_section(config, args.baseline_rev)
    if args.section in ("all", "beam"):
        lines += beam_section(config)
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)


def _cores() -> int:
    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
