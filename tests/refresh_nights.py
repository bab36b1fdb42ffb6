"""Three simulated nights built from ../shared/data (real records), for the refresh tests.

    night 1: dolly/ and self_instruct/                       (the first dump)
    night 2: + z2_lima/ and z2_copies/ — an Alpaca-format file whose records are exact
             and lightly edited copies of night-1 Self-Instruct records, plus new ones
    night 3: dolly/ changed (its first record deleted, one response edited): the night-2 copy
             of that first record, removed on night 2, must come back

Night-2 folders sort after night-1 ones, and the config ranks night-1 sources first, so the
from-scratch run's survivor policy (source priority; file order for ROUGE) agrees with the
refresh's "earlier records win": the final corpora must then be equal id for id.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

CONFIG = """\
dedup:
  source_priority: [dolly, self_instruct, lima, alpaca]
publish:
  waive_leakage: ["*"]
"""


def _seed_tasks(shared: Path) -> list[dict]:
    lines = (shared / "self_instruct" / "seed_tasks.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def copies_of_night_one(shared: Path) -> list[dict]:
    """Alpaca records: 5 exact copies and 5 one-word edits of seed tasks, 5 seed instances
    rewritten enough to be new records, and an exact copy of dolly's first record."""
    tasks = _seed_tasks(shared)
    out = []
    for task in tasks[:5]:
        inst = task["instances"][0]
        out.append({"instruction": task["instruction"], "input": inst["input"],
                    "output": inst["output"]})
    for task in tasks[10:15]:
        inst = task["instances"][0]
        words = task["instruction"].split()
        words[-1] = words[-1] + "!"
        out.append({"instruction": " ".join(words), "input": inst["input"],
                    "output": inst["output"]})
    for task in tasks[20:25]:
        inst = task["instances"][0]
        out.append({"instruction": f"Write a question whose answer is: {inst['output'][:150]}",
                    "input": "", "output": task["instruction"]})
    dolly = (shared / "dolly").glob("*.jsonl")
    first = json.loads(next(dolly).read_text().splitlines()[0])
    # Night 3 deletes this record from dolly/: then the copy is the only one and comes back.
    out.append({"instruction": first["instruction"], "input": first["context"],
                "output": first["response"]})
    return out


def night_inputs(shared: Path, raw: Path, night: int) -> None:
    """Make ``raw`` hold the inputs of ``night`` (1, 2 or 3), cumulatively."""
    if night == 1:
        shutil.copytree(shared / "dolly", raw / "dolly")
        shutil.copytree(shared / "self_instruct", raw / "self_instruct")
    elif night == 2:
        shutil.copytree(shared / "lima", raw / "z2_lima")
        (raw / "z2_copies").mkdir()
        (raw / "z2_copies" / "alpaca_copies.json").write_text(
            json.dumps(copies_of_night_one(shared), indent=1)
        )
    elif night == 3:
        path = next((raw / "dolly").glob("*.jsonl"))
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()][1:]
        rows[2]["response"] = rows[2]["response"] + " (Edited on night 3.)"
        path.chmod(0o644)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        raise ValueError(night)
    for p in raw.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
