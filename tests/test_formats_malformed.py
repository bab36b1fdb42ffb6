"""Malformed inputs: each gives dead letters (never an exception) and the counts reconcile.

"Reconcile" means: every instance of the file is exactly one record or one dead letter, so the
``source_index`` values of records and per-instance dead letters are exactly 0..n-1, where n is
the number of instances written into the test file.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from transforms.formats import parse_file, parse_path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MB = 2**20


def run(data: bytes, name: str = "input.jsonl", **kwargs) -> tuple[list[dict], list[dict]]:
    records, dead = [], []
    for kind, row in parse_file(name, io.BytesIO(data), **kwargs):
        (records if kind == "record" else dead).append(row)
    return records, dead


def reasons(dead: list[dict]) -> list[str]:
    return [d["reason"] for d in dead]


def assert_reconciles(records: list[dict], dead: list[dict], instances: int) -> None:
    slots = sorted(
        [r["source_index"] for r in records]
        + [d["source_index"] for d in dead if d["source_index"] is not None]
    )
    assert slots == list(range(instances))


def alpaca(n: int, start: int = 0) -> list[dict]:
    return [
        {"instruction": f"Task {i}", "input": "", "output": f"Answer {i}"}
        for i in range(start, start + n)
    ]


def jsonl(rows: list[object]) -> bytes:
    return b"".join(json.dumps(row, ensure_ascii=False).encode() + b"\n" for row in rows)


def sni_task(instances: list[object], **fields) -> dict:
    task = {
        "Definition": ["Answer the question."],
        "Positive Examples": [],
        "Negative Examples": [],
    }
    task.update(fields)
    task["Instances"] = instances
    return task


# --- truncated JSON -------------------------------------------------------------------------------


def test_truncated_task_json_is_one_dead_letter_for_the_file():
    data = (DATA / "sni/tasks/task1146_country_capital.json").read_bytes()
    records, dead = run(data[: len(data) // 2], "task1146_country_capital.json")
    assert records == []
    assert len(dead) == 1 and dead[0]["reason"] == "malformed_json"
    assert dead[0]["position"] == "file" and dead[0]["source_index"] is None
    assert "truncated or malformed" in dead[0]["detail"]
    assert dead[0]["raw"]


def test_truncated_json_array_keeps_complete_elements():
    rows = alpaca(10)
    text = json.dumps(rows, indent=2).encode()
    cut = text.index(b'"Answer 7"')  # inside element 7
    records, dead = run(text[:cut], "alpaca.json")
    assert [r["output"] for r in records] == [f"Answer {i}" for i in range(7)]
    assert reasons(dead) == ["malformed_json"] and dead[0]["position"] == "element 7"
    assert_reconciles(records, dead, 8)


def test_json_array_without_closing_bracket():
    text = json.dumps(alpaca(3), indent=2).encode()[:-1]
    records, dead = run(text, "alpaca.json")
    assert len(records) == 3 and reasons(dead) == ["malformed_json"]
    assert "truncated" in dead[0]["detail"]


def test_truncated_last_json_line():
    data = jsonl(alpaca(5))[:-12]
    records, dead = run(data)
    assert len(records) == 4 and reasons(dead) == ["malformed_json"]
    assert dead[0]["position"] == "line 5" and dead[0]["source_index"] == 4
    assert_reconciles(records, dead, 5)


def test_one_bad_element_in_the_middle_of_an_array_costs_only_itself():
    good = json.dumps(alpaca(1)[0])
    data = f'[{good}, {{"instruction": "x" "output": "y"}}, {good}, 17, {good}]'.encode()
    records, dead = run(data, "alpaca.json")
    assert len(records) == 3
    assert [(d["position"], d["reason"]) for d in dead] == [
        ("element 1", "malformed_json"),
        ("element 3", "wrong_type"),
    ]
    assert_reconciles(records, dead, 5)


# --- encoding --------------------------------------------------------------------------------------


def test_invalid_utf8_in_jsonl_dead_letters_only_that_line():
    lines = jsonl(alpaca(3)).split(b"\n")
    lines[1] = lines[1].replace(b"Answer 1", b"Answer \xff\xfe 1")
    records, dead = run(b"\n".join(lines))
    assert [r["output"] for r in records] == ["Answer 0", "Answer 2"]
    assert reasons(dead) == ["invalid_utf8"] and dead[0]["position"] == "line 2"
    assert "\ufffd" in dead[0]["raw"]  # raw kept, decoded with replacement
    assert_reconciles(records, dead, 3)


def test_invalid_utf8_inside_one_task_instance():
    task = json.dumps(
        sni_task([{"input": f"q{i}", "output": [f"a{i}"]} for i in range(4)]), indent=2
    ).encode()
    task = task.replace(b'"q2"', b'"q\xc3\x28"')
    records, dead = run(task, "task001_x.json")
    assert [r["input"] for r in records] == ["q0", "q1", "q3"]
    assert reasons(dead) == ["invalid_utf8"] and dead[0]["position"] == "instance 2"
    assert_reconciles(records, dead, 4)


def test_invalid_utf8_in_an_array_element_and_a_tsv_line():
    data = b'[{"instruction": "a", "output": "\xe9t\xe9"}, {"instruction": "b", "output": "ok"}]'
    records, dead = run(data, "alpaca.json")
    assert len(records) == 1 and reasons(dead) == ["invalid_utf8"]
    tsv = b"Q1?\t(A)\tbecause\nQ2 \xff?\t(B)\tbecause\nQ3?\t(C)\tbecause\n"
    records, dead = run(tsv, "qasc_train.tsv")
    assert (
        len(records) == 2 and reasons(dead) == ["invalid_utf8"] and dead[0]["position"] == "line 2"
    )
    assert_reconciles(records, dead, 3)


def test_escaped_lone_surrogate_cannot_be_written_and_is_a_dead_letter():
    data = b'{"instruction": "a", "output": "bad \\ud800 text"}\n{"instruction": "b", "output": "ok"}\n'
    records, dead = run(data)
    assert len(records) == 1 and reasons(dead) == ["invalid_utf8"]


# --- wrong types, missing fields, bad values --------------------------------------------------------


@pytest.mark.parametrize(
    "row,reason",
    [
        ({"instruction": "a", "input": "", "output": 42}, "wrong_type"),
        ({"instruction": ["a"], "output": "b"}, "wrong_type"),
        ({"instruction": "a", "output": "b", "history": [["only one"]]}, "wrong_type"),
        ({"instruction": "a", "input": "x"}, "missing_field"),
        ({"instruction": None, "output": "b"}, "missing_field"),
    ],
)
def test_alpaca_field_errors(row, reason):
    rows = alpaca(2) + [row] + alpaca(2, start=2)
    records, dead = run(jsonl(rows))
    assert len(records) == 4 and reasons(dead) == [reason] and dead[0]["position"] == "line 3"
    assert_reconciles(records, dead, 5)


def test_sni_instance_errors_cost_one_instance_each():
    instances = [
        {"input": "q0", "output": ["a0"]},
        {"input": ["q1"], "output": ["a1"]},  # wrong type
        {"input": "q2"},  # no output
        {"input": "q3", "output": []},  # empty output list
        {"input": "q4", "output": [4]},  # wrong type
        "not an object",
        {"input": "q6", "output": "a6"},  # a lone string output is accepted
    ]
    records, dead = run(json.dumps(sni_task(instances), indent=4).encode(), "task002_x.json")
    assert [r["input"] for r in records] == ["q0", "q6"]
    assert reasons(dead) == [
        "wrong_type",
        "missing_field",
        "missing_field",
        "wrong_type",
        "wrong_type",
    ]
    assert [d["position"] for d in dead] == [f"instance {i}" for i in (1, 2, 3, 4, 5)]
    assert_reconciles(records, dead, 7)


def test_task_level_wrong_type_is_one_dead_letter_for_the_file():
    task = sni_task([{"input": "q", "output": ["a"]}], Definition={"text": "not a string"})
    records, dead = run(json.dumps(task, indent=2).encode(), "task003_x.json")
    assert records == [] and reasons(dead) == ["wrong_type"] and dead[0]["position"] == "file"


def test_task_minified_on_one_line_is_read_as_a_document():
    instances = [
        {"input": "q0", "output": ["a0"]},
        {"input": 1, "output": ["a1"]},
        {"input": "q\udc80", "output": ["a"]},
    ]
    records, dead = run(json.dumps(sni_task(instances)).encode(), "task006_x.json")
    assert [r["input"] for r in records] == ["q0"]
    assert [(d["position"], d["reason"]) for d in dead] == [
        ("instance 1", "wrong_type"),
        ("instance 2", "invalid_utf8"),
    ]
    assert_reconciles(records, dead, 3)


@pytest.mark.parametrize(
    "row,reason",
    [
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "invalid_value"),
        ({"messages": [{"role": "user", "content": 7}]}, "wrong_type"),
        ({"messages": []}, "missing_field"),
        ({"messages": "hello"}, "wrong_type"),
        ({"messages": [{"content": "who am I"}]}, "missing_field"),
    ],
)
def test_chat_errors(row, reason):
    good = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    }
    records, dead = run(jsonl([good, row, good]))
    assert len(records) == 2 and reasons(dead) == [reason]
    assert_reconciles(records, dead, 3)


def test_a_file_has_one_format_decided_by_its_first_record():
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    records, dead = run(jsonl([*alpaca(2), chat, *alpaca(1, start=2)]))
    assert {r["source_format"] for r in records} == {"alpaca"} and len(records) == 3
    assert reasons(dead) == ["missing_field"] and dead[0]["position"] == "line 3"


def test_malformed_tsv_and_csv_rows():
    tsv = b"Q1?\t(A)\tbecause\nQ2?\t(B)\nQ3?\t(C)\tbecause\n"
    records, dead = run(tsv, "qasc_train.tsv")
    assert len(records) == 2 and reasons(dead) == ["malformed_row"]
    csv_data = b"instruction,context,response,category\na,,b,open_qa\nc,d\ne,,f,open_qa\n"
    records, dead = run(csv_data, "dolly.csv")
    assert (
        len(records) == 2 and reasons(dead) == ["malformed_row"] and dead[0]["position"] == "line 3"
    )


def test_malformed_promptsource_yaml():
    records, dead = run(b"dataset: x\ntemplates:\n  a: [unclosed\n", "templates.yaml")
    assert records == [] and reasons(dead) == ["malformed_yaml"]


# --- empty files, zero instances ----------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\n\n  \n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n"])
def test_empty_file(data):
    records, dead = run(data, "x.jsonl")
    assert records == [] and reasons(dead) == ["empty_file"] and dead[0]["position"] == "file"


@pytest.mark.parametrize(
    "data,name",
    [
        (json.dumps(sni_task([])).encode(), "task004_x.json"),
        (b"[]", "alpaca.json"),
        (b"[\n]\n", "alpaca.json"),
        (b"instruction,context,response,category\n", "dolly.csv"),
        (b'{"predictions": []}', "subtask001@_Prompt@0_10.json"),
    ],
)
def test_zero_instances(data, name):
    records, dead = run(data, name)
    assert records == [] and reasons(dead) == ["no_instances"]


def test_zero_instance_self_instruct_line_is_accounted_for():
    rows = [
        {"instruction": "a", "instances": [{"input": "", "output": "x"}]},
        {"instruction": "b", "instances": []},
    ]
    records, dead = run(jsonl(rows))
    assert (
        len(records) == 1 and reasons(dead) == ["no_instances"] and dead[0]["position"] == "line 2"
    )


# --- oversize records ---------------------------------------------------------------------------------


def big_row(size: int) -> dict:
    # Escapes (newlines, quotes) inside the big string exercise the scanners' escape handling.
    return {
        "instruction": "Summarise.",
        "input": ('word "quoted"\n' * (size // 15 + 1))[:size],
        "output": "ok",
    }


def test_50mb_jsonl_record_is_a_dead_letter_and_reading_goes_on():
    data = jsonl(alpaca(2) + [big_row(50 * MB)] + alpaca(2, start=2))
    records, dead = run(data)  # default limit: 16 MB
    assert [r["output"] for r in records] == ["Answer 0", "Answer 1", "Answer 2", "Answer 3"]
    assert reasons(dead) == ["oversize_record"] and dead[0]["position"] == "line 3"
    assert dead[0]["detail"].startswith("record is 5") and len(dead[0]["raw"]) < 3000
    assert_reconciles(records, dead, 5)


def test_50mb_json_array_element_is_a_dead_letter_and_reading_goes_on():
    data = json.dumps(alpaca(2) + [big_row(50 * MB)] + alpaca(2, start=2)).encode()
    records, dead = run(data, "alpaca.json")
    assert (
        len(records) == 4
        and reasons(dead) == ["oversize_record"]
        and dead[0]["position"] == "element 2"
    )
    assert_reconciles(records, dead, 5)


def test_50mb_task_instance_is_a_dead_letter():
    instances = [
        {"input": "q0", "output": ["a0"]},
        {"input": big_row(50 * MB)["input"], "output": ["a"]},
        {"input": "q2", "output": ["a2"]},
    ]
    records, dead = run(json.dumps(sni_task(instances), indent=2).encode(), "task005_x.json")
    assert [r["input"] for r in records] == ["q0", "q2"]
    assert reasons(dead) == ["oversize_record"] and dead[0]["position"] == "instance 1"


def test_the_limit_is_a_parameter():
    data = jsonl(alpaca(3) + [big_row(5000)])
    records, dead = run(data, max_record_bytes=1000)
    assert len(records) == 3 and reasons(dead) == ["oversize_record"]
    records, dead = run(data, max_record_bytes=10_000)
    assert len(records) == 4 and dead == []
    array = json.dumps(alpaca(3) + [big_row(5000)]).encode()
    records, dead = run(array, "a.json", max_record_bytes=1000)
    assert len(records) == 3 and reasons(dead) == ["oversize_record"]


# --- unknown formats, unreadable streams ----------------------------------------------------------------


@pytest.mark.parametrize(
    "data,hint",
    [
        (b"# A README\n\nSome prose, not data.\n", "not JSON"),
        (bytes(range(256)) * 4, "not JSON"),
        (gzip.compress(b'{"instruction": "a", "output": "b"}\n'), "gzip-compressed"),
        (jsonl([{"foo": 1, "bar": 2}]), "matches no known format"),
        (b"[1, 2, 3]", "matches no known format"),
        (b"id,text\n1,hello\n", "match no known format"),
        (b"key: value\nother: 3\n", "not JSON"),
        (b"dataset: x\nsubset: y\n", "yaml"),
    ],
)
def test_unknown_format_is_one_dead_letter_for_the_file(data, hint):
    records, dead = run(data, "mystery.dat")
    assert records == [] and reasons(dead) == ["unknown_format"]
    assert dead[0]["position"] == "file" and hint in dead[0]["detail"]


class FailingStream(io.RawIOBase):
    """Serves ``data``, then fails like a broken network read."""

    def __init__(self, data: bytes):
        self.inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        chunk = self.inner.read(n)
        if not chunk:
            raise OSError("connection reset")
        return chunk


def test_a_failing_stream_propagates_after_the_good_records():
    """I/O and decompression errors are the caller's policy (ingest: fail, or dead-letter the
    file when asked to continue), so they propagate instead of becoming a dead letter."""
    data = jsonl(alpaca(8_000))  # 480 KB: the failure comes long after the 64 KiB head
    records = []
    with pytest.raises(OSError, match="connection reset"):
        for kind, row in parse_file("big.jsonl", FailingStream(data)):
            records.append(row)
    assert len(records) > 5_000


def test_corrupt_gzip_file_raises(tmp_path):
    path = tmp_path / "x.jsonl.gz"
    packed = gzip.compress(jsonl(alpaca(20_000)))
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(EOFError):
        list(parse_path(str(path)))
