"""The format readers on the real files in ../shared/data, and the acceptance count.

The acceptance: over every file of the data folder, ``parse_file`` yields exactly as many
records as ``independent_count`` counts with plain json (per file, not only in total), and the
only dead letters are the files that hold no instances (the empty P3 templates, SOURCES.md).
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from transforms.formats import (
    DEAD_LETTER_REASONS,
    FORMATS,
    detect_format,
    load_template_sets,
    parse_file,
    parse_path,
)
from transforms.formats.prompt_completion import split_p3_name
from transforms.schema import DEAD_LETTER_SCHEMA, FIELDS

try:
    from tests import independent_count
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import independent_count

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")


def parse(path: Path | str, **kwargs) -> tuple[list[dict], list[dict]]:
    records, dead = [], []
    for kind, row in parse_path(str(path), **kwargs):
        (records if kind == "record" else dead).append(row)
    return records, dead


def records_of(rel: str, **kwargs) -> list[dict]:
    records, dead = parse(DATA / rel, **kwargs)
    assert dead == [], dead[:3]
    return records


@pytest.fixture(scope="module")
def everything() -> dict[str, tuple[list[dict], list[dict]]]:
    return {str(p): parse(p) for p in independent_count.data_files()}


# --- acceptance -------------------------------------------------------------------------------


def test_readers_match_the_independent_count_file_by_file(everything):
    expected = independent_count.count_all()
    got = {path: len(records) for path, (records, _) in everything.items()}
    assert got == expected
    assert sum(got.values()) == 34146  # the total of ../shared/data/SOURCES.md


def test_only_files_without_instances_give_dead_letters(everything):
    dead = [row for _, rows in everything.values() for row in rows]
    assert Counter(row["reason"] for row in dead) == {"empty_file": 11, "unknown_format": 1}
    for row in dead:
        assert row["position"] == "file" and row["source_index"] is None
        if row["reason"] == "empty_file":
            assert "trec_fine_grained_" in row["source_file"]
        else:
            assert row["source_file"].endswith("SOURCES.md")


def test_every_record_has_the_schema_keys_and_provenance(everything):
    for path, (records, _) in everything.items():
        indexes = [r["source_index"] for r in records]
        assert indexes == list(range(len(records))), path  # 0..n-1, in file order
        for record in records:
            assert tuple(record) == FIELDS
            assert record["source_file"] == path
            assert record["source_format"] in FORMATS
            assert record["source"] and record["task"]
            assert record["id"] is None and record["lang"] is None  # the pipeline sets these
            assert record["output"] is None or isinstance(record["output"], str)


def test_dead_letters_have_the_dead_letter_schema(everything):
    for _, rows in everything.values():
        for row in rows:
            assert tuple(row) == tuple(DEAD_LETTER_SCHEMA.names)
            assert row["reason"] in DEAD_LETTER_REASONS


def test_records_convert_to_the_arrow_schema(everything):
    from transforms.schema import CORPUS_SCHEMA

    records = [r for rows, _ in everything.values() for r in rows[:50]]
    table = pa.Table.from_pylist(records, schema=CORPUS_SCHEMA)
    assert table.num_rows == len(records)


def test_formats_found_in_the_data(everything):
    formats = Counter(r["source_format"] for rows, _ in everything.values() for r in rows)
    assert set(formats) == {
        "sni_task",
        "niv1_task",
        "niv1_predictions",
        "flan_cot_tsv",
        "prompt_completion",
        "self_instruct",
        "alpaca",
        "dolly",
        "chat",
        "sharegpt",
    }
    sources = Counter(r["source"] for rows, _ in everything.values() for r in rows)
    assert sources == {
        "sni": 5520,
        "niv1": 1092,
        "p3": 18484,
        "flan_cot": 1084,
        "self_instruct": 350,
        "alpaca": 6499,
        "lima": 100,
        "oasst": 50,
        "dolly": 9,
        "chat": 5,
        "sharegpt": 953,
    }


# --- Super-NaturalInstructions ------------------------------------------------------------------


def test_sni_current_schema():
    records = records_of("sni/tasks/task1289_trec_classification.json")
    first = records[0]
    assert first["task"] == "task1289_trec_classification"
    assert first["definition"].startswith("You are given a question.")
    assert first["input"] == "Who owns the rights on a TV program ?"
    assert first["output"] == "Person" and first["references"] == ["Person"]
    assert first["task_categories"] == ["Question Understanding"]
    assert first["domains"] == ["Miscellaneous"]
    assert first["instruction_language"] == first["input_language"] == ["English"]
    assert first["license"] == "Unknown"
    assert first["label"] is None and first["label_space"] == []  # SNI states no answer set
    assert first["positive_examples"][0] == {
        "input": "What's the most common name in nursery rhymes ?",
        "output": "Person",
        "explanation": 'This question is about people\'s names. So, the output should be "Person".',
    }
    assert first["negative_examples"]
    meta = json.loads(first["metadata"])
    assert meta["id"] == "task1289-aaf4993ab782493e89f1b90b3a257f0c"
    assert meta["Contributors"] == ["Yeganeh Kordi"]


def test_sni_definition_list_is_joined_with_newlines():
    raw = json.loads((DATA / "sni/tasks/task1289_trec_classification.json").read_bytes())
    assert isinstance(raw["Definition"], list)
    assert records_of("sni/tasks/task1289_trec_classification.json")[0]["definition"] == "\n".join(
        raw["Definition"]
    )


def test_sni_several_references_keep_the_first_as_output():
    records = records_of("sni/tasks/task927_yelp_negative_to_positive_style_transfer.json")
    raw = json.loads(
        (DATA / "sni/tasks/task927_yelp_negative_to_positive_style_transfer.json").read_bytes()
    )
    for record, instance in zip(records, raw["Instances"]):
        assert record["references"] == instance["output"]
        assert record["output"] == instance["output"][0]
    assert max(len(r["references"]) for r in records) > 1


@pytest.mark.parametrize(
    "rel",
    [
        "sni/contributor_drafts/task318_stereoset_classification_gender.json",
        "sni/tasks_nonenglish/task485_cls_japanese_books_classification.json",
    ],
)
def test_sni_older_schema_with_string_definition(rel):
    records = records_of(rel)
    raw = json.loads((DATA / rel).read_bytes())
    assert isinstance(raw["Definition"], str)
    assert records[0]["definition"] == raw["Definition"]
    assert [r["input"] for r in records] == [i["input"] for i in raw["Instances"]]


def test_sni_drafts_without_language_fields_ids_or_licence():
    first = records_of(
        "sni/contributor_drafts/task137_detoxifying-lms_classification_toxicity.json"
    )[0]
    assert first["instruction_language"] == [] and first["domains"] == []
    assert first["license"] is None
    assert "id" not in json.loads(first["metadata"])


def test_sni_mixed_language_task_keeps_declared_languages():
    first = records_of("sni/tasks_nonenglish/task533_europarl_es-en_language_identification.json")[
        0
    ]
    assert first["input_language"] == ["English", "Spanish"]
    assert first["output_language"] == ["English"]


def test_sni_finnish_translation_is_the_same_task_with_the_same_instance_ids():
    english = records_of("sni/tasks/task1289_trec_classification.json")
    finnish = records_of(
        "sni/finnish_translations/fin-translated-task1289_trec_classification.json"
    )
    assert {r["task"] for r in finnish} == {"task1289_trec_classification"}
    assert finnish[0]["definition"].startswith("Sinulle esitetään kysymys.")
    assert finnish[0]["input_language"] == ["English"]  # declared metadata kept as the source says
    ids = [json.loads(r["metadata"])["id"] for r in finnish]
    assert ids == [json.loads(r["metadata"])["id"] for r in english]


# --- Natural Instructions v1 --------------------------------------------------------------------


def test_niv1_task_file():
    rel = "natural_instructions_v1/tasks/subtask003_mctaco_question_generation_event_duration.json"
    records = records_of(rel)
    raw = json.loads((DATA / rel).read_bytes())
    assert len(records) == 300
    first = records[0]
    assert first["source"] == "niv1" and first["source_format"] == "niv1_task"
    assert first["task"] == "subtask003_mctaco_question_generation_event_duration"
    assert first["definition"] == raw["Definition"]
    assert first["constraints"].startswith("Things to Avoid: Don't create questions")
    assert "Emphasis & Caution: The written questions" in first["constraints"]
    assert (
        first["positive_examples"][0]["explanation"]
        == raw["Examples"]["Positive Examples"][0]["reason"]
    )
    assert (
        first["negative_examples"][0]["explanation"]
        == raw["Examples"]["Negative Examples"][0]["reason"]
    )
    assert json.loads(first["metadata"])["Prompt"] == raw["Prompt"]
    assert first["references"] == raw["Instances"][0]["output"]


def test_niv1_placeholder_constraints_are_dropped():
    first = records_of(
        "natural_instructions_v1/tasks/subtask053_multirc_correct_bad_question.json"
    )[0]
    assert "Emphasis" not in first["constraints"]  # the file's "Emphasis & Caution" is "-"


def test_niv1_prediction_file():
    rel = "natural_instructions_v1/predictions/subtask003_mctaco_question_generation_event_duration@_Prompt@0_100.json"
    records = records_of(rel)
    raw = json.loads((DATA / rel).read_bytes())["predictions"]
    assert len(records) == 100
    assert [r["output"] for r in records] == [p["output"] for p in raw]  # verbatim model text
    first = records[0]
    assert first["source_format"] == "niv1_predictions"
    assert first["task"] == "subtask003_mctaco_question_generation_event_duration"
    assert first["template_id"] == "_Prompt"
    assert json.loads(first["metadata"]) == {
        "encoding": "_Prompt",
        "index": 60,
        "kind": "gpt3_prediction",
        "span": "0_100",
    }


# --- prompt/completion (P3, OpenAI legacy) --------------------------------------------------------


def test_p3_strips_end_of_text_and_names_task_and_template():
    records = records_of("p3_t0_gpt3ft/data_per_template/ag_news_classify_with_choices.jsonl")
    assert len(records) == 200
    assert records[0]["output"] == "Business"
    assert {(r["source"], r["task"], r["template_id"]) for r in records} == {
        ("p3", "ag_news", "classify_with_choices")
    }
    assert records[0]["input"].endswith("science and technology?\n")


def test_no_p3_completion_keeps_end_of_text(everything):
    p3 = [r for rows, _ in everything.values() for r in rows if r["source"] == "p3"]
    assert len(p3) == 18484
    assert not any("<|endoftext|>" in r["output"] for r in p3)


@pytest.mark.parametrize(
    "stem,expected",
    [
        ("ag_news_classify_with_choices", ("ag_news", "classify_with_choices")),
        ("glue_mrpc_equivalent", ("glue_mrpc", "equivalent")),
        ("trec_fine_grained_ABBR_context_first", ("trec", "fine_grained_ABBR_context_first")),
        ("imdb_Sentiment_with_choices_", ("imdb", "Sentiment_with_choices_")),
        ("super_glue_rte_GPT_3_style", ("super_glue_rte", "GPT_3_style")),
        ("my_company_tickets", None),
    ],
)
def test_p3_file_name_rule(stem, expected):
    assert split_p3_name(stem) == expected


def test_every_p3_file_joins_to_its_promptsource_template():
    rows = load_template_sets(
        [str(p) for p in sorted(DATA.glob("promptsource/templates/**/templates.yaml"))]
    )
    templates = {(row["task"], row["p3_template"]) for row in rows}
    files = sorted(DATA.glob("p3_t0_gpt3ft/data_per_template/*.jsonl"))
    assert len(files) == 104
    for path in files:
        assert split_p3_name(path.stem) in templates, path.name


def test_openai_legacy_prompt_completion(tmp_path):
    path = tmp_path / "support_tickets_prepared.jsonl"
    path.write_text(
        '{"prompt": "Ticket: refund please\\n\\n###\\n\\n", "completion": " billing END"}\n'
        '{"prompt": "Ticket: app crashes\\n\\n###\\n\\n", "completion": " bug END"}\n'
    )
    records, dead = parse(path)
    assert dead == []
    assert [(r["source"], r["task"], r["template_id"], r["output"]) for r in records] == [
        ("openai_legacy", "support_tickets_prepared", None, " billing END"),
        ("openai_legacy", "support_tickets_prepared", None, " bug END"),
    ]


# --- Flan ---------------------------------------------------------------------------------------


def test_flan_cot_tsv():
    records = records_of("flan/cot_data/qasc_train.tsv")
    assert len(records) == 1084
    first = records[0]
    assert first["source"] == "flan_cot" and first["task"] == "cot_qasc"
    assert first["input"].startswith(
        "What is the process by which living things give rise to offspring?\nOptions:\n- (A) DNA\n"
    )
    assert first["output"] == "(D)"
    assert first["rationale"].startswith("Reproduction is the process")
    assert all(r["rationale"] for r in records)


def test_flan_collection_info_is_metadata_not_records(caplog):
    with caplog.at_level(logging.INFO, logger="transforms.formats"):
        records, dead = parse(DATA / "flan/flan_collection_info.csv")
    assert records == [] and dead == []
    assert "Flan collection task table" in caplog.text and "0 records" in caplog.text


def test_flan_2022_jsonl(tmp_path):
    # No Flan 2022 JSONL export is in ../shared/data: the layout of the released exports.
    path = tmp_path / "flan_zsopt_train.jsonl"
    lines = [
        {
            "inputs": "Premise: A man is sleeping.\nHypothesis: He is awake.\nOPTIONS:\n- yes\n- no",
            "targets": "no",
            "task_source": "Flan2021",
            "task_name": "anli/r1:0.1.0",
            "template_type": "zs_opt",
        },
        {
            "_inputs": "Translate to German: Hello",
            "_targets": "Hallo",
            "_task_source": "Flan2021",
            "_task_name": "wmt16_translate/de-en:1.0.0",
            "_template_type": "zs_noopt",
            "_template_idx": 3,
        },
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    records, dead = parse(path)
    assert dead == []
    assert [(r["source_format"], r["task"], r["template_id"], r["output"]) for r in records] == [
        ("flan_jsonl", "anli/r1:0.1.0", None, "no"),
        ("flan_jsonl", "wmt16_translate/de-en:1.0.0", "3", "Hallo"),
    ]
    assert json.loads(records[0]["metadata"]) == {
        "task_source": "Flan2021",
        "template_type": "zs_opt",
    }


# --- Self-Instruct --------------------------------------------------------------------------------


def test_self_instruct_seed_tasks():
    records = records_of("self_instruct/seed_tasks.jsonl")
    assert len(records) == 175
    first = records[0]
    assert first["task"] == "self_instruct/breakfast_suggestion"
    assert first["definition"].startswith("Is there anything I can eat for a breakfast")
    assert first["input"] == ""
    classification = [r for r in records if json.loads(r["metadata"])["is_classification"]]
    assert len(classification) == 26
    assert all(r["label"] == r["output"] for r in classification)
    assert all(r["label"] is None for r in records if r not in classification)


def test_belle_json_file_holding_json_lines_is_read():
    path = DATA / "self_instruct/belle_zh_seed_tasks.json"
    assert detect_format(str(path), path.read_bytes()[:65536]) == "self_instruct"
    records = records_of("self_instruct/belle_zh_seed_tasks.json")
    assert len(records) == 175
    assert records[0]["definition"] == "请以下面词语为主题写一首诗"


def test_self_instruct_machine_generated_layouts(tmp_path):
    path = tmp_path / "machine_generated_instances.jsonl"
    path.write_text(
        json.dumps(
            {
                "instruction": "Sort the numbers.",
                "instances": [
                    {"input": "3, 1, 2", "output": "1, 2, 3"},
                    {"input": "9, 8", "output": "8, 9"},
                ],
                "most_similar_instructions": {},
                "avg_similarity_score": 0.2,
            }
        )
        + "\n"
        + json.dumps(
            {
                "instruction": "Name a colour.",
                "input": "",
                "output": "Blue",
                "most_similar_instructions": {},
                "avg_similarity_score": 0.1,
            }
        )
        + "\n"
        + json.dumps(
            {
                "instruction": "Write a limerick about tea.",
                "most_similar_instructions": {},
                "avg_similarity_score": 0.3,
                "request_idx": 4,
            }
        )
        + "\n"
    )
    records, dead = parse(path)
    assert dead == []
    assert [
        (r["source_format"], r["definition"], r["input"], r["output"], r["source_index"])
        for r in records
    ] == [
        ("self_instruct", "Sort the numbers.", "3, 1, 2", "1, 2, 3", 0),
        ("self_instruct", "Sort the numbers.", "9, 8", "8, 9", 1),
        ("self_instruct", "Name a colour.", "", "Blue", 2),
        ("self_instruct", "Write a limerick about tea.", None, None, 3),
    ]


# --- Alpaca, LIMA, Dolly --------------------------------------------------------------------------


def test_alpaca_english_and_chinese():
    english = records_of("alpaca/en/alpaca_data-0-3252.json")
    chinese = records_of("alpaca/zh/alpaca_data-0-3252-zh.json")
    assert (len(english), len(chinese)) == (3252, 3247)
    assert english[0]["definition"] == "Give three tips for staying healthy."
    assert english[0]["input"] == "" and english[0]["messages"] == []
    assert chinese[0]["definition"] == "给出三个保持健康的提示。"
    assert {(r["source"], r["task"]) for r in english + chinese} == {("alpaca", "alpaca")}


def test_lima_llama_factory_conversion_history_becomes_messages():
    records = records_of("lima/lima.sample100.json")
    raw = json.loads((DATA / "lima/lima.sample100.json").read_bytes())
    assert {(r["source"], r["source_format"], r["task"]) for r in records} == {
        ("lima", "alpaca", "lima")
    }
    multi = [(r, x) for r, x in zip(records, raw) if x["history"]]
    assert len(multi) == 10
    record, item = multi[0]
    turns = [m["content"] for m in record["messages"]]
    assert turns[0] == item["history"][0][0] and turns[1] == item["history"][0][1]
    assert turns[-2] == item["instruction"] and turns[-1] == item["output"]
    assert [m["role"] for m in record["messages"]] == ["user", "assistant"] * (
        len(item["history"]) + 1
    )


def test_oasst_conversion_source_from_file_name():
    records = records_of("oasst_zh/oaast_sft_zh.first50.json")
    assert {(r["source"], r["source_format"]) for r in records} == {("oasst", "alpaca")}


def test_lima_original_conversations(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(
        json.dumps(
            {
                "conversations": ["Can brain cells move?", "Yes, some can."],
                "source": "stackexchange",
            }
        )
        + "\n"
        + json.dumps({"conversations": ["Tell me a joke."], "source": "nlp"})
        + "\n"
    )
    records, dead = parse(path)
    assert dead == []
    assert [(r["source_format"], r["input"], r["output"]) for r in records] == [
        ("lima", "Can brain cells move?", "Yes, some can."),
        ("lima", "Tell me a joke.", None),
    ]
    assert records[0]["messages"] == [
        {"role": "user", "content": "Can brain cells move?"},
        {"role": "assistant", "content": "Yes, some can."},
    ]
    assert json.loads(records[0]["metadata"]) == {"source": "stackexchange"}


def test_dolly():
    records = records_of("dolly/databricks-dolly-15k.first9.jsonl")
    assert len(records) == 9
    assert records[0]["task"] == "dolly/closed_qa" and records[0]["task_categories"] == [
        "closed_qa"
    ]
    assert records[0]["input"].startswith("Virgin Australia, the trading name")
    assert records[1]["output"] == "Tope" and records[1]["input"] == ""


# --- chat -----------------------------------------------------------------------------------------


def test_openai_toy_chat_file_keeps_flawed_conversations():
    records = records_of("openai_chat/toy_chat_fine_tuning.jsonl")
    assert len(records) == 5
    assert records[0]["definition"].startswith("You are a happy assistant")
    assert records[0]["input"] == "I fell off my bike today."
    assert records[0]["output"] == "It's great that you're getting exercise outdoors!"
    assert records[2]["definition"] is None  # no system message
    assert records[3]["input"] is None and records[3]["output"] is None  # no user turn
    assert len(records[4]["output"]) > 20000  # the 26k-character reply is data, not an error


def test_sharegpt_roles_and_turns():
    records = records_of("sharegpt/sharegpt_v3_unfiltered_cleaned_split.sample300.json")
    raw = json.loads(
        (DATA / "sharegpt/sharegpt_v3_unfiltered_cleaned_split.sample300.json").read_bytes()
    )
    assert len(records) == 300
    assert {m["role"] for r in records for m in r["messages"]} == {"system", "user", "assistant"}
    for record, item in zip(records, raw):
        assert len(record["messages"]) == len(item["conversations"])
        assert json.loads(record["metadata"])["id"] == item["id"]
    starts_with_gpt = records[1]
    assert starts_with_gpt["messages"][0]["role"] == "assistant"
    first_user = next(m["content"] for m in starts_with_gpt["messages"] if m["role"] == "user")
    assert starts_with_gpt["input"] == first_user
    system_only = records[163]
    assert system_only["definition"] == system_only["messages"][0]["content"]
    assert system_only["input"] is None and system_only["output"] is None
    assert records[192]["input"] is None  # a single gpt turn


def test_sharegpt_tool_calls():
    records = records_of("sharegpt/glaive_toolcall_en_demo.function_call_subset.json")
    assert len(records) == 153
    first = records[0]
    roles = [m["role"] for m in first["messages"]]
    assert roles == [
        "user",
        "assistant",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
    ]
    call = first["messages"][3]["content"]
    assert json.loads(call)["name"] == "search_recipes"
    meta = json.loads(first["metadata"])
    assert json.loads(meta["tools"])[0]["name"] == "search_recipes"  # the JSON string, kept as is
    assert meta["turn_extras"] == {"3": {"role": "function_call"}, "4": {"role": "observation"}}


def test_openai_messages_with_tool_calls(tmp_path):
    path = tmp_path / "tools.jsonl"
    conversation = {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "18C"},
            {"role": "assistant", "content": [{"type": "text", "text": "It is 18C."}]},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather"}}],
    }
    path.write_text(json.dumps(conversation) + "\n")
    records, dead = parse(path)
    assert dead == []
    (record,) = records
    assert [m["role"] for m in record["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert json.loads(record["messages"][1]["content"]) == {
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    assert record["output"] == record["messages"][1]["content"]  # the first reply is the call
    assert record["messages"][3]["content"] == "It is 18C."
    meta = json.loads(record["metadata"])
    assert meta["message_extras"]["2"] == {"tool_call_id": "c1"}


# --- PromptSource -----------------------------------------------------------------------------------


def test_promptsource_template_sets():
    paths = sorted(DATA.glob("promptsource/templates/**/templates.yaml"))
    rows = load_template_sets([str(p) for p in paths])
    assert len(rows) == 397
    assert len({row["template_id"] for row in rows}) == 397
    mrpc = [r for r in rows if r["dataset"] == "glue" and r["subset"] == "mrpc"]
    assert len(mrpc) == 7 and {r["task"] for r in mrpc} == {"glue_mrpc"}
    equivalent = next(r for r in mrpc if r["name"] == "equivalent")
    assert equivalent["answer_choice_list"] == ["not equivalent", "equivalent"]
    assert "{{" in equivalent["jinja"] and equivalent["metadata"]["original_task"] is True
    paraphrase = next(r for r in mrpc if r["name"] == "generate_paraphrase")
    assert paraphrase["answer_choices"] is None and paraphrase["answer_choice_list"] is None


def test_promptsource_file_yields_no_records():
    path = DATA / "promptsource/templates/ag_news/templates.yaml"
    assert detect_format(str(path), path.read_bytes()) == "promptsource_templates"
    assert parse(path) == ([], [])


def test_promptsource_loader_is_safe(tmp_path):
    path = tmp_path / "templates.yaml"
    path.write_text("dataset: x\ntemplates:\n  a: !!python/object/apply:os.system ['echo pwned']\n")
    records, dead = parse(path)
    assert records == [] and [d["reason"] for d in dead] == ["malformed_yaml"]


# --- generic, Parquet, compression, detection ---------------------------------------------------------


def test_generic_csv_with_mapping(tmp_path):
    path = tmp_path / "exam.csv"
    path.write_text(
        'question,answer,subject,extra\nWhat is 2+2?,4,math,x\n"Multi\nline?",yes,misc,y\n'
    )
    mapping = {"input": "question", "output": "answer", "task": "subject"}
    records, dead = parse(path, mapping=mapping)
    assert dead == []
    assert [
        (r["source"], r["source_format"], r["task"], r["input"], r["output"]) for r in records
    ] == [
        ("generic", "generic", "math", "What is 2+2?", "4"),
        ("generic", "generic", "misc", "Multi\nline?", "yes"),
    ]
    assert json.loads(records[0]["metadata"]) == {"extra": "x"}


def test_generic_jsonl_with_nested_columns_and_lists(tmp_path):
    path = tmp_path / "custom.jsonl"
    path.write_text(
        json.dumps(
            {"q": "Capital of France?", "answers": ["Paris", "paris"], "meta": {"langs": "en"}}
        )
        + "\n"
    )
    records, dead = parse(
        path, mapping={"input": "q", "output": "answers", "input_language": "meta.langs"}
    )
    assert dead == []
    (record,) = records
    assert record["output"] == "Paris" and record["references"] == ["Paris", "paris"]
    assert record["input_language"] == ["en"] and record["task"] == "custom"


def test_generic_mapping_is_validated_when_called():
    with pytest.raises(ValueError, match="unknown schema fields"):
        parse_file("x.jsonl", io.BytesIO(b""), mapping={"answer": "a"})
    with pytest.raises(ValueError, match="pipeline sets itself"):
        parse_file("x.jsonl", io.BytesIO(b""), mapping={"id": "a", "output": "b"})
    with pytest.raises(ValueError, match="max_record_bytes"):
        parse_file("x.jsonl", io.BytesIO(b""), max_record_bytes=0)


def test_parquet_rows_by_columns_or_mapping(tmp_path):
    rows = json.loads((DATA / "alpaca/en/alpaca_data-0-3252.json").read_bytes())[:20]
    path = tmp_path / "alpaca.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert detect_format(str(path), path.read_bytes()[:100]) == "parquet"
    records, dead = parse(path)
    assert dead == [] and len(records) == 20
    assert {r["source_format"] for r in records} == {"alpaca"}
    assert [r["output"] for r in records] == [row["output"] for row in rows]
    # A mapping is for unrecognised files: a known format keeps its reader.
    mapped, dead = parse(path, mapping={"definition": "instruction", "output": "output"})
    assert dead == [] and {r["source_format"] for r in mapped} == {"alpaca"}
    pq.write_table(pa.Table.from_pylist([{"q": r["instruction"]} for r in rows]), path)
    mapped, dead = parse(path, mapping={"definition": "q"})
    assert dead == [] and {r["source_format"] for r in mapped} == {"generic"}


def test_dolly_as_csv_is_recognised_by_its_header(tmp_path):
    path = tmp_path / "dolly.csv"
    path.write_text("instruction,context,response,category\nName a fish.,,Tope,classification\n")
    records, dead = parse(path)
    assert dead == [] and records[0]["task"] == "dolly/classification"


@pytest.mark.parametrize("suffix,opener", [(".gz", gzip.open), (".bz2", bz2.open), (".zst", None)])
def test_compressed_files_give_the_same_records(tmp_path, suffix, opener):
    source = DATA / "dolly/databricks-dolly-15k.first9.jsonl"
    path = tmp_path / (source.name + suffix)
    if opener is None:
        path.write_bytes(zstandard.ZstdCompressor().compress(source.read_bytes()))
    else:
        with opener(path, "wb") as out:
            out.write(source.read_bytes())
    plain = records_of("dolly/databricks-dolly-15k.first9.jsonl")
    packed, dead = parse(path)
    assert dead == []
    strip = lambda r: {k: v for k, v in r.items() if k != "source_file"}
    assert [strip(r) for r in packed] == [strip(r) for r in plain]


def test_detection_is_by_content_not_extension(tmp_path):
    renamed = {
        "alpaca/en/alpaca_data-0-3252.json": "alpaca",
        "sni/tasks/task1146_country_capital.json": "sni_task",
        "flan/cot_data/qasc_train.tsv": "flan_cot_tsv",
        "dolly/databricks-dolly-15k.first9.jsonl": "dolly",
        "sharegpt/fastchat_dummy_conversation.json": "sharegpt",
    }
    for rel, fmt in renamed.items():
        path = tmp_path / f"{Path(rel).stem}.dat"
        shutil.copy(DATA / rel, path)
        assert detect_format(str(path), path.read_bytes()[:65536]) == fmt
        records, dead = parse(path)
        assert dead == [] and len(records) == independent_count.count_file(DATA / rel)


def test_detection_from_a_head_that_ends_inside_the_first_record():
    for rel, fmt in [
        ("sharegpt/sharegpt_v3_unfiltered_cleaned_split.sample300.json", "sharegpt"),
        (
            "natural_instructions_v1/tasks/subtask047_misc_answering_science_questions.json",
            "niv1_task",
        ),
        ("sni/finnish_translations/fin-translated-task1572_samsum_summary.json", "sni_task"),
        ("openai_chat/toy_chat_fine_tuning.jsonl", "chat"),
    ]:
        head = (DATA / rel).read_bytes()[:120]
        assert detect_format(rel, head) == fmt, rel


# --- on Beam workers ------------------------------------------------------------------------------


BEAM_FILES = [
    "sni/tasks/task1146_country_capital.json",
    "natural_instructions_v1/predictions/subtask003_mctaco_question_generation_event_duration@_Prompt@0_100.json",
    "p3_t0_gpt3ft/data_per_template/glue_mrpc_equivalent.jsonl",
    "p3_t0_gpt3ft/data_per_template/trec_fine_grained_ABBR.jsonl",
    "flan/cot_data/qasc_train.tsv",
    "flan/flan_collection_info.csv",
    "self_instruct/belle_zh_seed_tasks.json",
    "lima/lima.sample100.json",
    "dolly/databricks-dolly-15k.first9.jsonl",
    "sharegpt/glaive_toolcall_en_demo.function_call_subset.json",
    "openai_chat/toy_chat_fine_tuning.jsonl",
    "promptsource/templates/glue/mrpc/templates.yaml",
    "SOURCES.md",
]


def test_readers_on_the_multi_process_direct_runner(everything):
    """The readers run in worker processes (pickled by reference, no global state).

    The FnApiRunner is named explicitly: it is what the DirectRunner runs for
    ``--direct_running_mode=multi_processing`` once it has given up on Prism (Beam 2.77 first
    tries to download Prism, which this test must neither need nor wait for).
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    files = [str(DATA / rel) for rel in BEAM_FILES]
    expected = Counter()
    for path in files:
        records, dead = everything[path]
        expected.update(("record", r["source"]) for r in records)
        expected.update(("dead_letter", d["reason"]) for d in dead)
    options = PipelineOptions(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    with TestPipeline(runner=FnApiRunner(), options=options) as p:
        counts = (
            p
            | "Files" >> beam.Create(files)
            | "Reshuffle" >> beam.Reshuffle()
            | "Parse" >> beam.FlatMap(parse_path)
            | "Key" >> beam.Map(lambda e: (e[0], e[1]["source" if e[0] == "record" else "reason"]))
            # Output: ((kind, source or reason), count)
            | "Count" >> beam.combiners.Count.PerElement()
        )
        assert_that(counts, equal_to(list(expected.items())))
