"""End-to-end runs of ``pipelines.run.run`` on real data, on the local runners."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
import pytest
import zstandard

from pipelines import cli
from pipelines.run import is_template_file, run
from tests import independent_count
from tests.conftest import IN_PROCESS, MULTI_PROCESS, assert_same_outputs, read_output

# A mix of formats, languages and schema generations that keeps a multi-runner comparison quick.
SUBSET = [
    "sni/tasks_nonenglish",
    "sni/contributor_drafts",
    "alpaca/zh",
    "sharegpt/glaive_toolcall_en_demo.function_call_subset.json",
    "self_instruct/belle_zh_seed_tasks.json",
    "flan/cot_data",
    "openai_chat",
    "lima",
]


def _run(inputs, out, runner_args):
    args = ["--input", *map(str, inputs), "--output", str(out), "--quiet", "--", *runner_args]
    return run(args)


@pytest.mark.slow
def test_every_instance_of_the_shared_data_is_accounted_for(shared_data, tmp_path):
    manifest = _run([shared_data], tmp_path / "out", IN_PROCESS)
    # PromptSource templates.yaml files feed the mixture's template sets, not the ingest.
    expected = {
        path: n for path, n in independent_count.count_all().items() if not is_template_file(path)
    }
    per_file = {f["path"]: f["records"] for f in manifest["inputs"]["files"]}
    assert per_file == expected
    # Each instance is in the corpus or removed (exact, MinHash, ROUGE-L) with a row saying why.
    corpus = read_output(tmp_path / "out", "corpus")
    removed = read_output(tmp_path / "out", "removed")
    removed = removed.filter(pa.compute.not_equal(removed.column("stage"), "decontaminate"))
    assert corpus.num_rows + removed.num_rows == sum(expected.values())
    assert not set(corpus.column("id").to_pylist()) & set(removed.column("id").to_pylist())
    assert len(set(corpus.column("id").to_pylist())) == corpus.num_rows, "ids must be unique"
    assert manifest["reconciled"]
    # Upstream P3 files that are empty, and SOURCES.md, are the only dead letters.
    reasons = manifest["dead_letters_by_reason"]
    assert set(reasons) <= {"ingest:empty_file", "ingest:unknown_format"}


def test_in_process_and_multi_process_runs_write_identical_outputs(shared_data, tmp_path):
    inputs = [shared_data / p for p in SUBSET]
    first = _run(inputs, tmp_path / "a", IN_PROCESS)
    second = _run(inputs, tmp_path / "b", MULTI_PROCESS)
    assert read_output(tmp_path / "a", "corpus").num_rows > 1000
    assert_same_outputs(tmp_path / "a", tmp_path / "b")
    assert first["counts"] == second["counts"]
    assert first["mixture"]["ledger"] == second["mixture"]["ledger"]
    assert second["runner"] == {"runner": "FnApiRunner", "mode": "multi_processing", "workers": 2}


def test_malformed_inputs_become_dead_letters_and_counts_reconcile(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    good = {"instruction": "Name a colour.", "input": "", "output": "Blue."}
    (raw / "alpaca.jsonl").write_bytes(
        b"\n".join([json.dumps(good).encode(), b"{not json", b'{"instruction": "\xff\xfe", "input": "", "output": "x"}'])
    )
    (raw / "truncated.json").write_text('[{"instruction": "a", "input": "", "output": "b"}, {"ins')
    (raw / "empty.jsonl").write_text("")
    manifest = _run([raw], tmp_path / "out", IN_PROCESS)
    # The complete first element of the truncated array is salvaged; the cut one is a dead letter.
    assert manifest["counts"]["totals"]["corpus"] == 2
    dead = read_output(tmp_path / "out", "dead_letter").to_pylist()
    assert {(Path(d["source_file"]).name, d["reason"]) for d in dead} == {
        ("alpaca.jsonl", "malformed_json"),
        ("alpaca.jsonl", "invalid_utf8"),
        ("truncated.json", "malformed_json"),
        ("empty.jsonl", "empty_file"),
    }
    assert all(d["raw"] is not None for d in dead if d["reason"] != "empty_file")


def test_an_input_that_matches_nothing_is_a_clear_error(tmp_path, capsys):
    code = cli.main(["run", "--input", str(tmp_path / "nope*.json"), "--output", str(tmp_path)])
    assert code == 2
    assert "no input files match" in capsys.readouterr().err


BROKEN = {
    "broken.jsonl.gz": lambda data: gzip.compress(data)[:-12] + b"garbage!",
    # zstandard's own stream reader ends quietly on a cut frame: the file must still fail.
    "broken.jsonl.zst": lambda data: zstandard.ZstdCompressor().compress(data)[:-9],
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_an_unreadable_file_is_a_clear_error_unless_asked_to_continue(tmp_path, capsys, name):
    raw = tmp_path / "raw"
    raw.mkdir()
    record = json.dumps({"instruction": "Name a colour.", "input": "", "output": "Blue."})
    (raw / name).write_bytes(BROKEN[name]((record + "\n").encode() * 500))
    code = cli.main(["run", "--input", str(raw), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and name in err and "Traceback" not in err

    config = tmp_path / "c.yaml"
    config.write_text("ingest:\n  continue_on_unreadable: true\n")
    out = tmp_path / "out2"
    manifest = run(["--input", str(raw), "--output", str(out), "--config", str(config), "--quiet"])
    assert manifest["dead_letters_by_reason"] == {"ingest:unreadable_file": 1}
    assert manifest["reconciled"]
