"""Property tests of the readers against plain-Python oracles (hypothesis).

- Alpaca-like records written as a JSON array (any indentation) or as JSON Lines come back
  one record per object, text intact, whatever the extension.
- The streaming array scanner gives the same answer whatever the read chunk size, and flags
  exactly the elements whose JSON text is longer than the limit.
- Task files and chat conversations fan out to exactly one record per instance / conversation.
- Arbitrary bytes (and mutilated real files) never raise: they give records or dead letters,
  and the instance slots (source_index) are always exactly 0..n-1.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from transforms.formats import (
    DEAD_LETTER_REASONS,
    METADATA_FORMATS,
    containers,
    detect_format,
    parse_file,
)
from transforms.schema import FIELDS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text without lone surrogates (those are invalid_utf8 by design, tested elsewhere).
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
alpaca_row = st.fixed_dictionaries(
    {"instruction": text, "input": text, "output": text},
    optional={
        "history": st.lists(st.tuples(text, text).map(list), max_size=2),
        "category_note": text,
    },
)


def run(data: bytes, name: str, **kwargs) -> list[tuple[str, dict]]:
    return list(parse_file(name, io.BytesIO(data), **kwargs))


def slots(events: list[tuple[str, dict]]) -> list[int]:
    return sorted(row["source_index"] for _, row in events if row["source_index"] is not None)


@SETTINGS
@given(
    rows=st.lists(alpaca_row, min_size=1, max_size=12),
    indent=st.sampled_from([None, 0, 2, 4, "\t"]),
    ensure_ascii=st.booleans(),
    name=st.sampled_from(["a.json", "a.jsonl", "a.txt", "a"]),
)
def test_alpaca_json_array_round_trips(rows, indent, ensure_ascii, name):
    data = json.dumps(rows, indent=indent, ensure_ascii=ensure_ascii).encode()
    events = run(data, name)
    assert [kind for kind, _ in events] == ["record"] * len(rows)
    records = [r for _, r in events]
    assert [(r["definition"], r["input"], r["output"]) for r in records] == [
        (row["instruction"], row["input"], row["output"]) for row in rows
    ]
    assert [r["source_index"] for r in records] == list(range(len(rows)))
    for record, row in zip(records, rows):
        assert tuple(record) == FIELDS
        turns = len(row.get("history") or [])
        assert len(record["messages"]) == (2 * turns + 2 if turns else 0)


@SETTINGS
@given(
    rows=st.lists(alpaca_row, min_size=1, max_size=12),
    blank=st.sampled_from([b"", b"\n", b"\r\n  \n"]),
    crlf=st.booleans(),
    name=st.sampled_from(["a.json", "a.jsonl", "data"]),
)
def test_alpaca_json_lines_round_trip(rows, blank, crlf, name):
    newline = b"\r\n" if crlf else b"\n"
    data = blank.join(json.dumps(row, ensure_ascii=False).encode() + newline for row in rows)
    events = run(data, name)
    assert [kind for kind, _ in events] == ["record"] * len(rows)
    assert [r["output"] for _, r in events] == [row["output"] for row in rows]
    assert detect_format(name, data) == "alpaca"


@SETTINGS
@given(
    rows=st.lists(alpaca_row, min_size=1, max_size=10),
    chunk=st.integers(1, 64),
    limit=st.integers(20, 400),
)
def test_array_scanner_is_independent_of_chunking_and_flags_exactly_the_oversize(
    rows, chunk, limit
):
    data = json.dumps(rows, ensure_ascii=False).encode()
    expected = [
        "dead_letter" if len(json.dumps(r, ensure_ascii=False).encode()) > limit else "record"
        for r in rows
    ]
    whole = run(data, "a.json", max_record_bytes=limit)
    with small_chunks(chunk):
        chunked = run(data, "a.json", max_record_bytes=limit)
    assert chunked == whole
    # Detection needs the first record whole in the head: it is, as the head is 64 KiB.
    assert [kind for kind, _ in chunked] == expected
    assert all(row["reason"] == "oversize_record" for kind, row in chunked if kind == "dead_letter")


@contextlib.contextmanager
def small_chunks(size: int):
    """Read the stream ``size`` bytes at a time, so elements straddle many buffer refills."""
    original = containers.CHUNK
    containers.CHUNK = size
    try:
        yield
    finally:
        containers.CHUNK = original


@SETTINGS
@given(rows=st.lists(alpaca_row, min_size=1, max_size=10), limit=st.integers(20, 400))
def test_jsonl_oversize_lines_are_exactly_those_over_the_limit(rows, limit):
    lines = [json.dumps(row, ensure_ascii=False).encode() for row in rows]
    events = run(b"\n".join(lines) + b"\n", "a.jsonl", max_record_bytes=limit)
    assert [kind for kind, _ in events] == [
        "dead_letter" if len(line) > limit else "record" for line in lines
    ]


instance = st.fixed_dictionaries({"input": text, "output": st.lists(text, min_size=1, max_size=3)})


@SETTINGS
@given(
    instances=st.lists(instance, min_size=1, max_size=15),
    definition=st.one_of(text, st.lists(text, max_size=3)),
    languages=st.booleans(),
    indent=st.sampled_from([None, 2, 4]),
)
def test_sni_task_fans_out_one_record_per_instance(instances, definition, languages, indent):
    task = {
        "Definition": definition,
        "Positive Examples": [],
        "Negative Examples": [],
        "Instances": instances,
    }
    if languages:
        task["Input_language"] = ["English"]
    data = json.dumps(task, indent=indent).encode()
    events = run(data, "task042_random.json")
    assert [kind for kind, _ in events] == ["record"] * len(instances)
    for (_, record), inst in zip(events, instances):
        assert record["references"] == inst["output"] and record["output"] == inst["output"][0]
        assert record["task"] == "task042_random"
        assert record["definition"] == (
            definition if isinstance(definition, str) else "\n".join(definition)
        )


turn = st.fixed_dictionaries(
    {
        "from": st.sampled_from(
            ["human", "gpt", "system", "function_call", "observation", "Human"]
        ),
        "value": text,
    }
)


@SETTINGS
@given(conversations=st.lists(st.lists(turn, min_size=1, max_size=6), min_size=1, max_size=6))
def test_sharegpt_conversations_keep_every_turn(conversations):
    data = json.dumps(
        [{"id": str(i), "conversations": c} for i, c in enumerate(conversations)]
    ).encode()
    events = run(data, "sharegpt.json")
    assert [kind for kind, _ in events] == ["record"] * len(conversations)
    for (_, record), conversation in zip(events, conversations):
        assert [m["content"] for m in record["messages"]] == [t["value"] for t in conversation]
        users = [t["value"] for t in conversation if t["from"].lower() == "human"]
        assert record["input"] == (users[0] if users else None)


# --- robustness --------------------------------------------------------------------------------------


def check_events(events: list[tuple[str, dict]], data: bytes, name: str) -> None:
    for kind, row in events:
        assert kind in ("record", "dead_letter")
        if kind == "record":
            assert tuple(row) == FIELDS
        else:
            assert row["reason"] in DEAD_LETTER_REASONS
    assert slots(events) == list(range(len(slots(events))))
    if not events:
        assert detect_format(name, data[:65536].removeprefix(b"\xef\xbb\xbf")) in METADATA_FORMATS


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=600),
    name=st.sampled_from(["x.json", "x.jsonl", "x.tsv", "x.csv", "x.yaml", "x"]),
)
@example(data=b"[", name="x.json")
@example(data=b'{"Instances": ', name="x.json")
@example(data=b'[{"instruction": "a", "output": "b"},', name="x.json")
@example(data=b'["\\', name="x.json")
@example(data=b"PAR1garbage", name="x.parquet")
@example(data=b"dataset: x\ntemplates: 3\n", name="templates.yaml")
def test_arbitrary_bytes_never_raise(data, name):
    check_events(run(data, name), data, name)


REAL_FILES = [
    "sni/tasks_nonenglish/task485_cls_japanese_books_classification.json",
    "dolly/databricks-dolly-15k.first9.jsonl",
    "openai_chat/toy_chat_fine_tuning.jsonl",
    "self_instruct/belle_zh_seed_tasks.json",
    "flan/cot_data/qasc_train.tsv",
]


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")
@settings(max_examples=80, deadline=None)
@given(
    rel=st.sampled_from(REAL_FILES),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4),
)
def test_mutilated_real_files_never_raise(rel, cut, flips):
    data = bytearray((DATA / rel).read_bytes()[:30000])
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    data = bytes(data[: int(cut * len(data))])
    check_events(run(data, Path(rel).name), data, Path(rel).name)
