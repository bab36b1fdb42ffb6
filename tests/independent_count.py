"""An independent count of the instances in ../shared/data, with plain json/csv -- no readers.

The oracle for the readers' acceptance test: it knows the data folder's layout (see its
SOURCES.md) instead of detecting formats, and counts what each file holds:
task JSON -> len(Instances); NIv1 predictions -> len(predictions); Self-Instruct -> the
instances of every line; a JSON array -> its length; JSON Lines and TSV -> non-blank lines;
PromptSource YAML, the Flan collection table and SOURCES.md -> 0 (metadata, not instances).

    python tests/independent_count.py      # prints the per-folder counts and the total
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
METADATA_FILES = {"SOURCES.md", "templates.yaml", "flan_collection_info.csv"}


def _non_blank_lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().split(b"\n") if line.strip()]


def count_file(path: Path) -> int:
    """Instances in one file of the data folder."""
    rel = path.relative_to(DATA).as_posix()
    if path.name in METADATA_FILES:
        return 0
    if rel.startswith(("sni/", "natural_instructions_v1/tasks/")):
        return len(json.loads(path.read_bytes())["Instances"])
    if rel.startswith("natural_instructions_v1/predictions/"):
        return len(json.loads(path.read_bytes())["predictions"])
    if rel.startswith("self_instruct/"):
        return sum(len(json.loads(line)["instances"]) for line in _non_blank_lines(path))
    if path.suffix == ".tsv":
        return len(_non_blank_lines(path))
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return len(json.loads(text))
    return len(_non_blank_lines(path))


def data_files() -> list[Path]:
    """Every file under the data folder, sorted."""
    return sorted(p for p in DATA.rglob("*") if p.is_file())


def count_all() -> dict[str, int]:
    """``{path: instances}`` for every file of the data folder."""
    return {str(path): count_file(path) for path in data_files()}


if __name__ == "__main__":
    counts = count_all()
    by_folder = Counter()
    for path, n in counts.items():
        by_folder[Path(path).relative_to(DATA).parts[0]] += n
    for folder, n in sorted(by_folder.items()):
        print(f"{folder:28s} {n:7d}")
    print(f"{'total':28s} {sum(counts.values()):7d}  ({len(counts)} files)")
