"""The nightly refresh: incremental nights equal a from-scratch run, crash safety, the lock."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines import cli, refresh
from pipelines import run as batch
from pipelines.lock import LockedError, StateLock
from pipelines.state_log import StateLog
from tests.conftest import IN_PROCESS, read_output
from tests.refresh_nights import CONFIG, night_inputs

pytestmark = pytest.mark.timeout(900)


def _refresh(raw: Path, base: Path, *extra: str) -> dict:
    return refresh.refresh([
        "--input", str(raw), "--state", str(base / "state"), "--publish", str(base / "pub"),
        "--config", str(base / "config.yaml"), "--quiet", *extra, "--", *IN_PROCESS,
    ])


def _latest(base: Path) -> Path:
    return base / "pub" / (base / "pub" / "LATEST").read_text().strip()


def _ids(table) -> list[str]:
    return sorted(table.column("id").to_pylist())


def _mixture_rows(out: Path) -> list[tuple]:
    table = read_output(out, "mixture")
    cols = ("record_id", "split", "template_id", "format", "prompt", "completion")
    return sorted(zip(*(table.column(c).to_pylist() for c in cols), strict=True))


@pytest.fixture(scope="module")
def nights(shared_data, tmp_path_factory):
    """Three nights of refresh, a repeat of night 3, and a from-scratch run of the final inputs."""
    base = tmp_path_factory.mktemp("refresh")
    (base / "config.yaml").write_text(CONFIG)
    raw = base / "raw"
    raw.mkdir()
    manifests, snapshots = [], []
    for night in (1, 2, 3):
        night_inputs(shared_data, raw, night)
        manifests.append(_refresh(raw, base))
        snapshots.append(_latest(base))
    repeat = _refresh(raw, base)
    scratch = base / "scratch"
    batch.run(["--input", str(raw), "--output", str(scratch), "--config",
               str(base / "config.yaml"), "--quiet", "--", *IN_PROCESS])
    return {"base": base, "raw": raw, "manifests": manifests, "snapshots": snapshots,
            "repeat": repeat, "scratch": scratch}


def test_each_night_reads_only_new_and_changed_files(nights):
    m1, m2, m3 = (m["refresh"] for m in nights["manifests"])
    assert len(m1["new_files"]) == 3 and m1["carried_records"] == 0
    assert sorted(Path(f).parent.name for f in m2["new_files"]) == ["z2_copies", "z2_lima"]
    assert m2["changed_files"] == [] and m2["unchanged_files"] == 3
    assert [Path(f).parent.name for f in m3["changed_files"]] == ["dolly"]
    assert m3["new_files"] == [] and m3["retired_records"] == 9  # all of dolly's night-1 records
    # Only the night's files were parsed: the files ledger holds them and nothing else.
    for manifest in nights["manifests"]:
        read = {f["path"] for f in manifest["inputs"]["files"]}
        assert read == set(manifest["refresh"]["new_files"] + manifest["refresh"]["changed_files"])
    assert nights["manifests"][1]["counts"]["per_source"]["alpaca"]["ingested"] == 16


def test_night_two_removes_copies_of_night_one_in_favour_of_the_older_records(nights):
    snapshot = nights["snapshots"][1]
    removed = read_output(snapshot, "removed").to_pylist()
    against_old = [r for r in removed if r["detail"] == "kept by an earlier run"]
    assert {r["stage"] for r in against_old} <= {"exact", "minhash"}
    exact = [r for r in against_old if r["stage"] == "exact"]
    assert len(exact) == 6 and all(r["similarity"] == 1.0 for r in exact)
    # Copies 0-9 (exact and one-word edits) all go, by MinHash or ROUGE-L, and so does 15 (a
    # copy of dolly's first record); 10-14 are new texts built from the seed tasks (kept, unless
    # an estimate puts one over the threshold).
    copies = {r["source_index"]: r for r in removed if r["source_file"].endswith("copies.json")}
    assert {*range(10), 15} <= set(copies) <= set(range(16))
    assert copies.pop(15)["survivor_source_file"].endswith(".jsonl")
    assert all(r["survivor_source_file"].endswith("seed_tasks.jsonl") for r in copies.values())
    reported = nights["manifests"][1]["refresh"]["removed_as_duplicates_of_older"]
    assert sum(reported.values()) == len(copies) + 1 and reported["exact"] == 6


def test_a_record_removed_for_a_retired_one_comes_back(nights):
    """Night 3 deletes dolly's first record; its night-2 copy is reconsidered and kept."""
    assert nights["manifests"][2]["refresh"]["reconsidered_records"] == 1
    corpus = read_output(nights["snapshots"][2], "corpus").to_pylist()
    back = [r for r in corpus if r["source_file"].endswith("copies.json")
            and r["source_index"] == 15]
    assert len(back) == 1 and back[0]["source"] == "alpaca"


def test_after_night_three_corpus_and_mixture_equal_a_from_scratch_run(nights):
    final, scratch = nights["snapshots"][2], nights["scratch"]
    assert _ids(read_output(final, "corpus")) == _ids(read_output(scratch, "corpus"))
    ours, theirs = read_output(final, "corpus"), read_output(scratch, "corpus")
    assert ours.select(sorted(ours.column_names)).equals(theirs.select(sorted(theirs.column_names)))
    assert _mixture_rows(final) == _mixture_rows(scratch)


def test_mixture_changes_are_reported_and_earlier_rows_stay(nights):
    changes = [m["refresh"]["mixture_changes"] for m in nights["manifests"]]
    assert changes[0] == {"added": changes[0]["added"]}
    assert changes[1]["stayed"] > 0 and changes[1].get("dropped", 0) == 0
    assert changes[2].get("dropped", 0) >= 1  # dolly's deleted record (and its edited one)


def test_repeating_a_night_is_a_no_op_that_keeps_the_snapshot(nights):
    assert nights["repeat"]["refresh"]["nothing_new"] is True
    assert _latest(nights["base"]) == nights["snapshots"][2]
    log = StateLog.load(str(nights["base"] / "state"))
    assert [r["ordinal"] for r in log.runs] == [1, 2, 3]


# ------------------------------------------------------------------------------------------
# Crash safety: a refresh killed at any point publishes nothing and the next one succeeds


def _cli_refresh(raw: Path, base: Path, env: dict | None = None) -> subprocess.Popen:
    argv = [sys.executable, "-m", "pipelines.cli", "refresh", "--input", str(raw), "--state",
            str(base / "state"), "--publish", str(base / "pub"), "--config",
            str(base / "config.yaml"), "--quiet", "--", *IN_PROCESS]
    return subprocess.Popen(argv, env={**os.environ, **(env or {})}, cwd=Path(__file__).parents[1],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def after_night_one(shared_data, tmp_path_factory):
    """A committed night 1 (dolly only), to copy for each crash."""
    base = tmp_path_factory.mktemp("crash-base")
    (base / "config.yaml").write_text(CONFIG)
    raw = base / "raw"
    raw.mkdir()
    shutil.copytree(shared_data / "dolly", raw / "dolly")
    _refresh(raw, base)
    shutil.copytree(shared_data / "self_instruct", raw / "self_instruct")
    for p in raw.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return base


def _killed_during_write(proc: subprocess.Popen, base: Path) -> None:
    """SIGKILL the refresh as soon as a night-2 output file appears under STATE/runs/."""
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        runs = list((base / "state" / "runs").glob("*-n0002/**/*.parquet"))
        if runs:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)


@pytest.mark.parametrize("point", [*refresh.CRASH_POINTS, "during_write"])
def test_a_killed_refresh_publishes_nothing_and_the_next_one_succeeds(after_night_one, tmp_path, point):
    base = tmp_path / "b"
    shutil.copytree(after_night_one, base)
    before = (base / "pub" / "LATEST").read_text()
    log_before = (base / "state" / "log.json").read_text()
    if point == "during_write":
        _killed_during_write(_cli_refresh(base / "raw", base), base)
    else:
        proc = _cli_refresh(base / "raw", base, {refresh.CRASH_ENV: point})
        proc.wait(timeout=600)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    if point == "before_publish":
        # The night was committed but not published: the next run publishes it.
        assert (base / "pub" / "LATEST").read_text() == before
        assert json.loads((base / "state" / "log.json").read_text())["runs"][-1]["ordinal"] == 2
    else:
        assert (base / "pub" / "LATEST").read_text() == before
        assert (base / "state" / "log.json").read_text() == log_before
    # The dead run's lock (same host, dead pid) does not block the next one.
    proc = _cli_refresh(base / "raw", base)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    latest = _latest(base)
    assert latest.name.endswith("-n0002")
    manifest = json.loads((latest / "manifest.json").read_text())
    assert manifest["reconciled"] and manifest["refresh"]["night"] == 2
    # Nothing the killed run left behind survives next to the committed runs.
    log = StateLog.load(str(base / "state"))
    assert sorted(p.name for p in (base / "state" / "runs").iterdir()) == [
        r["run_id"] for r in log.runs
    ]
    assert sorted(p.name for p in (base / "pub" / "snapshots").iterdir()) == [
        r["run_id"] for r in log.runs
    ]
    corpus = pq.read_table(base / "state" / "runs" / log.runs[-1]["run_id"] / "corpus")
    assert corpus.num_rows == manifest["counts"]["totals"]["corpus"]


# ------------------------------------------------------------------------------------------
# The lock


def test_a_second_refresh_refuses_while_the_first_holds_the_lock(tmp_path):
    with StateLock(str(tmp_path), owner="night-a"):
        with pytest.raises(LockedError, match="held by night-a"), StateLock(
            str(tmp_path), owner="night-b"
        ):
            pass
        assert (tmp_path / "LOCK").exists()
    assert not (tmp_path / "LOCK").exists()


def test_the_cli_refuses_with_the_user_error_code_naming_the_holder(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.jsonl").write_text('{"instruction": "x", "output": "y"}\n')
    with StateLock(str(tmp_path / "state"), owner="the-other-night"):
        code = cli.main(["refresh", "--input", str(tmp_path / "raw"), "--state",
                         str(tmp_path / "state"), "--publish", str(tmp_path / "pub")])
    assert code == 2
    assert "held by the-other-night" in capsys.readouterr().err
    assert not (tmp_path / "pub" / "LATEST").exists()


def test_stale_locks_are_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    lock_file = tmp_path / "LOCK"
    import socket

    holder = {"owner": "crashed", "host": socket.gethostname(), "pid": int(dead.stdout),
              "started": time.time(), "token": "t"}
    lock_file.write_text(json.dumps(holder))
    with StateLock(str(tmp_path), owner="next") as lock:
        assert "is gone" in lock.took_over["reason"]
    # Same owner (a retried pod of the same Job), holder alive on another host: taken over.
    lock_file.write_text(json.dumps(dict(holder, host="other-node", owner="job-1")))
    with StateLock(str(tmp_path), owner="job-1") as lock:
        assert "same owner" in lock.took_over["reason"]
    # Another owner on another host: only when older than stale_after.
    lock_file.write_text(json.dumps(dict(holder, host="other-node", started=time.time() - 7200)))
    with pytest.raises(LockedError), StateLock(str(tmp_path), owner="next", stale_after=3 * 3600):
        pass
    with StateLock(str(tmp_path), owner="next", stale_after=3600) as lock:
        assert "old" in lock.took_over["reason"]


def test_a_state_built_with_other_dedup_settings_is_refused(tmp_path, shared_data):
    (tmp_path / "config.yaml").write_text(CONFIG)
    raw = tmp_path / "raw"
    shutil.copytree(shared_data / "dolly", raw)
    _refresh(raw, tmp_path)
    (tmp_path / "config.yaml").write_text(CONFIG + "rouge:\n  threshold: 0.8\n")
    code = cli.main(["refresh", "--input", str(raw), "--state", str(tmp_path / "state"),
                     "--publish", str(tmp_path / "pub"), "--config",
                     str(tmp_path / "config.yaml")])
    assert code == 2


# ------------------------------------------------------------------------------------------
# On the local Flink of the other integration tests


@pytest.mark.flink
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_two_nights_on_flink_equal_a_from_scratch_run(shared_data, flink_endpoint, tmp_path):
    from tests.flink_support import flink_pipeline_args

    (tmp_path / "config.yaml").write_text(CONFIG)
    raw = tmp_path / "raw"
    raw.mkdir()
    argv = ["--state", str(tmp_path / "state"), "--publish", str(tmp_path / "pub"), "--config",
            str(tmp_path / "config.yaml"), "--quiet", "--", *flink_pipeline_args(flink_endpoint)]
    for night in (1, 2):
        night_inputs(shared_data, raw, night)
        manifest = refresh.refresh(["--input", str(raw), *argv])
        assert manifest["runner"]["runner"] == "PortableRunner"
    assert manifest["refresh"]["carried_records"] > 0
    scratch = tmp_path / "scratch"
    batch.run(["--input", str(raw), "--output", str(scratch), "--config",
               str(tmp_path / "config.yaml"), "--quiet", "--", *IN_PROCESS])
    final = _latest(tmp_path)
    ours, theirs = read_output(final, "corpus"), read_output(scratch, "corpus")
    assert ours.select(sorted(ours.column_names)).equals(theirs.select(sorted(theirs.column_names)))
    assert _mixture_rows(final) == _mixture_rows(scratch)
