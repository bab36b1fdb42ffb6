"""Deduplicate: config, survivor policy, audit rows, state, nothing lost, runners agree."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path
from typing import ClassVar

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
import regex
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to
from datasketch import MinHash
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms import minhash
from transforms.clusters import pack, union_find_components
from transforms.dedup import (
    BAND_STATE_SCHEMA,
    EXACT_STATE_SCHEMA,
    Deduplicate,
    ExactDuplicates,
    NearDuplicates,
    _DecideShardFn,
    minhash_decision,
    normalize,
    normalized_batch,
    normalized_fields,
    rank_key,
    rank_provenance,
    removed_row,
)
from transforms.dedup_config import DedupConfig
from transforms.schema import REMOVED_SCHEMA, new_record
from transforms.text import normalize_text, stable_hash

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IN_PROCESS = ["--runner=FnApiRunner"]
MULTI_PROCESS = IN_PROCESS + ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]

LONG = (
    "Write a short story about a lighthouse keeper who discovers that the lamp has been "
    "sending messages to ships that sank a century ago and must decide whether to answer them "
    "before the winter storm reaches the rocky northern coast of the island"
)
TIDES = (
    "Explain to a curious child how the ocean tides rise and fall every day because the moon "
    "pulls on the water while the earth spins beneath it, and describe why some beaches see two "
    "high tides while others only see one, using a bathtub and a spinning ball as the main "
    "examples in a friendly and patient voice that never talks down to the listener at all"
)


def _rec(rid, source="web", index=0, **fields):
    return new_record(
        id=rid, source=source, source_file=f"{source}.jsonl", source_index=index, task="t", **fields
    )


def _words(text, drop=(), swap=None):
    words = text.split()
    out = [w for i, w in enumerate(words) if i not in drop]
    if swap:
        for i, w in swap.items():
            out[i] = w
    return " ".join(out)


def corpus() -> list[dict]:
    """Exact copies, a transitive near-duplicate chain, a Chinese pair, blanks, singletons."""
    # estimated Jaccard n1-n2 0.80, n2-n3 0.85, n1-n3 0.67: n3 joins n1 only through n2
    chain_b = _words(TIDES, swap={5: "zzz"})
    chain_c = _words(chain_b, swap={10: "yyy"})
    zh = (
        "机器学习是人工智能的一个重要分支，它让计算机能够从数据中自动学习规律并做出预测和决策，"
        "广泛应用于图像识别、语音助手和推荐系统等领域"
    )
    return [
        _rec("b-orig", "mirror_b", 0, definition="Summarize.", input=LONG, output="Done."),
        _rec(
            "a-copy",
            "mirror_a",
            3,
            definition="SUMMARIZE.",
            input="  " + LONG.upper(),
            output="done.",
        ),
        _rec("c-copy", "mirror_c", 9, definition="summarize.", input=LONG, output="Done."),
        _rec("n1", "web", 1, input=TIDES, output="A story."),
        _rec("n2", "web", 2, input=chain_b, output="A story."),
        _rec("n3", "web", 3, input=chain_c, output="A story."),
        _rec("zh1", "web", 4, input=zh, output="好的"),
        _rec("zh2", "web", 5, input=zh.replace("决策", "判断"), output="好的"),
        _rec("blank1", "chat", 0, messages=[{"role": "user", "content": "hi"}]),
        _rec("blank2", "chat", 1, messages=[{"role": "user", "content": "hello"}]),
        _rec("u1", "web", 6, input="What is the capital of France?", output="Paris."),
        _rec("u2", "web", 7, input="Name three primary colours.", output="Red, blue, yellow."),
    ]


CONFIG = DedupConfig(source_priority=("mirror_a", "mirror_b"))


def _sim(a: dict, b: dict, config=CONFIG) -> float:
    sigs = []
    for r in (a, b):
        m = MinHash(
            num_perm=config.num_perm,
            seed=config.seed,
            hashfunc=minhash.datasketch_hashfunc(config.hash_function),
        )
        m.update_batch(list(minhash.shingle_set(normalized_fields(r, config.fields), 5, 5)))
        sigs.append(m)
    return sigs[0].jaccard(sigs[1])


# --- config and pure policy -------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(alphabet=st.characters(max_codepoint=127), max_size=60),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
        st.text(
            alphabet="aZ\u00c9\ufb01\u4e2d \t\n\x1c\x1d\x1e\x1f\x85\xa0\u2028\u3000", max_size=30
        ),
    )
)
def test_fast_normalize_is_exactly_normalize_text(text):
    assert normalize(text) == normalize_text(text)
    if minhash._sigkernel is not None:  # built wherever CI runs (test_c_kernel_is_built_in_ci)
        (kernel,) = minhash._sigkernel.normalize_ascii([text])
        separators = any(c in text for c in "\x1c\x1d\x1e\x1f")  # left to normalize_text
        assert kernel == (normalize_text(text) if text.isascii() and not separators else None)


def test_normalized_batch_is_normalized_fields_on_real_records(monkeypatch):
    """The batch path (ASCII texts in C) and the per-record one, on real records of every
    language and shape the repository's tests read, with and without the kernel."""
    records = _real_records(2100)
    records.append(_rec("odd", "alpaca", 0, input=" A\x1cB \t", output="Li\x0bST\r\n"))
    config = DedupConfig(fields_by_source={"p3": ("input", "output")})
    want = [normalized_fields(r, config.fields_for(r["source"])) for r in records]
    assert normalized_batch(records, config) == want
    monkeypatch.setattr(minhash, "_sigkernel", None)
    assert normalized_batch(records, config) == want


def test_normalize_ascii_rejects_what_is_not_a_list_of_str():
    if minhash._sigkernel is None:
        pytest.skip("transforms._sigkernel is not built (no C compiler at install)")
    with pytest.raises(TypeError, match="texts: expected a list, got tuple"):
        minhash._sigkernel.normalize_ascii(("a",))
    with pytest.raises(TypeError, match=r"texts\[1\]: expected str, got bytes"):
        minhash._sigkernel.normalize_ascii(["a", b"b"])


def test_stable_hash_values_never_change():
    """Record ids, dedup state and the mixing and held-out draws depend on it: values pinned."""
    assert stable_hash("a", "b") == "6a93c5780b9861cdd8d2761a748d9591"
    assert stable_hash("ab") == "988d96134b2b10eedfa29348af5c272c"  # parts are framed
    assert stable_hash("机器", "") == "bfda1ed8428cf1b7f9bc6632cca2fd63"
    assert stable_hash("x", digest_size=8) == "09f06e81dcd3af44"


def test_str_split_and_regex_whitespace_differ_only_on_four_separators():
    """What ``normalize``'s use of ``str.split()`` relies on, over every code point."""
    space = regex.compile(r"\s")
    differ = [c for c in map(chr, range(0x110000)) if (space.match(c) is not None) != c.isspace()]
    assert differ == ["\x1c", "\x1d", "\x1e", "\x1f"]


def test_config_validation_and_defaults():
    c = DedupConfig()
    assert c.fields == ("definition", "input", "output") and c.threshold == 0.7
    assert c.hash_function == "poly32"  # datasketch: hashfunc=minhash.poly_hash32
    assert c.lsh_params == (14, 9)  # datasketch MinHashLSH(threshold=0.7, num_perm=128)
    assert DedupConfig(bands=32, rows=4).lsh_params == (32, 4)
    assert DedupConfig(fields=["input"]).fields == ("input",)
    for bad in (
        {"fields": ("nope",)},
        {"fields": "input"},
        {"threshold": 0},
        {"bands": 4},
        {"bands": 20, "rows": 9},
        {"scheme": "md5"},
        {"hash_function": "md5"},
        {"num_perm": 0},
        {"source_priority": ("a", "a")},
        {"lsh_weights": (0.5, 0.6)},
    ):
        with pytest.raises((ValueError, TypeError)):
            DedupConfig(**bad)


def test_fingerprints():
    base = DedupConfig()
    assert base.fingerprint() == DedupConfig().fingerprint() and len(base.fingerprint()) == 12
    assert DedupConfig(threshold=0.8).fingerprint() != base.fingerprint()
    # survivor policy and performance knobs do not invalidate stored state
    assert DedupConfig(source_priority=("x",), shard_size=5).state_fingerprint() == (
        base.state_fingerprint()
    )
    assert DedupConfig(shingle_size=3).state_fingerprint() != base.state_fingerprint()


def test_rank_key_orders_by_priority_then_id():
    c = DedupConfig(source_priority=("gold", "silver"))
    keys = sorted(
        rank_key(r, c) for r in (_rec("a", "web"), _rec("z", "gold"), _rec("b", "silver"))
    )
    assert [k[1] for k in keys] == ["z", "b", "a"]


def test_removed_row_matches_schema():
    row = removed_row(
        _rec("x", "web", 4),
        rank_provenance(rank_key(_rec("y", "gold", 2), CONFIG)),
        "exact",
        1.0,
        "d",
    )
    assert list(row) == REMOVED_SCHEMA.names
    assert (row["survivor_id"], row["survivor_source_file"], row["survivor_source_index"]) == (
        "y",
        "gold.jsonl",
        2,
    )
    pa.Table.from_pylist([row], schema=REMOVED_SCHEMA)


def test_minhash_decision_direct_and_transitive():
    a, b, c = (0, "a", "", 0, 0), (0, "b", "", 1, 1), (0, "c", "f", 2, 2)
    assert minhash_decision(b, a, [(a, 0.8), (c, 0.9)]) == (0.8, "estimated Jaccard with survivor")
    sim, detail = minhash_decision(c, a, [(b, 0.75)])
    assert sim == 0.75 and "id b" in detail
    with pytest.raises(RuntimeError, match=r"record id 'c' \(f#2\): assigned to the cluster of"):
        minhash_decision(c, a, [])  # a lost link is an error, never a guess


def test_decide_fails_loudly_when_its_input_is_incomplete():
    """A record without its exact-stage decision, or decisions without their record, means the
    runner lost part of a shard's input: Decide raises, naming the record, and never guesses."""
    config = DedupConfig()
    decide = _DecideShardFn(config, exact=True, near=True)
    a, b = _rec("a", index=1, input="x"), _rec("b", index=2, input="y")
    na, nb = rank_key(a, config), rank_key(b, config)
    records = [pack([("rec", na, a), ("rec", nb, b)])]
    state = [("state", na, "h1", None, None), ("state", nb, "h2", None, None)]
    kept = [o for o in decide._run(records, [pack(state)]) if isinstance(o, dict)]
    assert kept == [a, b]
    with pytest.raises(RuntimeError, match=r"record id 'b' \(web.jsonl#2\): no exact-stage"):
        list(decide._run(records, [pack(state[:1])]))
    with pytest.raises(RuntimeError, match=r"record id 'b' \(web.jsonl#2\): decisions but not"):
        list(decide._run([pack([("rec", na, a)])], [pack(state)]))


# --- the pipeline -----------------------------------------------------------------------------


def _run(records, config, options, transform=Deduplicate):
    """Run and collect every output as plain lists (a run costs seconds: one per scenario)."""
    p = beam.Pipeline(options=PipelineOptions(options))
    out = p | beam.Create(records) | transform(config=config)
    sinks = {}
    for name, pcoll in out.items():
        sinks[name] = []
        _ = pcoll | f"Collect{name}" >> beam.Map(_Collector(name).add)
    result = p.run()
    result.wait_until_finish()
    collected = {name: _Collector.take(name) for name in out}
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace("dedup"))["counters"]
    }
    return collected, counters


class _Collector:
    """In-process sink (FnApiRunner runs DoFns in this process unless multi-processing)."""

    store: ClassVar[dict] = defaultdict(list)

    def __init__(self, name):
        self.name = name

    def add(self, element):
        _Collector.store[self.name].append(element)

    @classmethod
    def take(cls, name):
        return cls.store.pop(name, [])


def _check_expected(records, collected):
    kept = {r["id"] for r in collected["kept"]}
    removed = {r["id"]: r for r in collected["removed"]}
    assert (
        len(kept) + len(removed)
        == len(records)
        == len(collected["kept"]) + len(collected["removed"])
    )
    # survivor policy: mirror_a beats mirror_b beats unlisted, whatever the ids
    assert {k: (v["stage"], v["survivor_id"]) for k, v in removed.items()} == {
        "b-orig": ("exact", "a-copy"),
        "c-copy": ("exact", "a-copy"),
        "n2": ("minhash", "n1"),
        "n3": ("minhash", "n1"),
        "zh2": ("minhash", "zh1"),
    }
    assert kept == {"a-copy", "n1", "zh1", "blank1", "blank2", "u1", "u2"}
    by_id = {r["id"]: r for r in records}
    for row in removed.values():
        survivor = by_id[row["survivor_id"]]
        assert (row["survivor_source_file"], row["survivor_source_index"]) == (
            survivor["source_file"],
            survivor["source_index"],
        )
        assert (row["source_file"], row["source_index"]) == (
            by_id[row["id"]]["source_file"],
            by_id[row["id"]]["source_index"],
        )
        if row["stage"] == "exact":
            assert row["similarity"] == 1.0
        elif row["detail"] == "estimated Jaccard with survivor":
            assert row["similarity"] == _sim(by_id[row["id"]], survivor) >= 0.7
        else:  # linked through another member: the similarity is that link's
            assert row["similarity"] >= 0.7 and "id n2" in row["detail"]
    return kept


def test_deduplicate_end_to_end_in_process():
    records = corpus()
    collected, counters = _run(records, CONFIG, IN_PROCESS)
    kept = _check_expected(records, collected)
    assert counters["records:in"] == 12 and counters["kept"] == 7
    assert counters["exact:removed"] == 2 and counters["minhash:removed"] == 3
    assert counters["skipped:no_text_in_fields"] == 2
    # state: one row per kept record, in the declared schemas, signatures = datasketch's
    exact_state = pa.Table.from_pylist(collected["exact_state"], schema=EXACT_STATE_SCHEMA)
    band_state = pa.Table.from_pylist(collected["band_state"], schema=BAND_STATE_SCHEMA)
    assert set(exact_state["id"].to_pylist()) == kept == set(band_state["id"].to_pylist())
    assert len(set(exact_state["state_fingerprint"].to_pylist())) == 1
    by_id = {r["id"]: r for r in records}
    for row in collected["band_state"]:
        norms = normalized_fields(by_id[row["id"]], CONFIG.fields)
        # the default hash function is poly32: datasketch checks it given that hashfunc
        m = MinHash(num_perm=128, seed=1, hashfunc=minhash.poly_hash32)
        m.update_batch(list(minhash.shingle_set(norms, 5, 5)))
        assert np.array_equal(np.frombuffer(row["signature"], "<u4"), m.hashvalues)
        if row["id"].startswith("blank"):
            assert row["band_keys"] == []
        else:
            assert row["band_keys"] == minhash.band_keys(m.hashvalues[None, :], 14, 9)[0].tolist()


def test_exact_and_near_alone():
    records = corpus()
    # the very same record ingested twice (same id, file and index): one copy stays
    twice = [*records, dict(records[-1])]
    collected, _ = _run(twice, CONFIG, IN_PROCESS, ExactDuplicates)
    assert {(r["id"], r["stage"], r["survivor_id"]) for r in collected["removed"]} == {
        ("b-orig", "exact", "a-copy"),
        ("c-copy", "exact", "a-copy"),
        ("u2", "exact", "u2"),
    }
    assert len(collected["kept"]) == 10 and len(collected["exact_state"]) == 10
    assert [r["id"] for r in collected["kept"]].count("u2") == 1
    collected, _ = _run(records, CONFIG, IN_PROCESS, NearDuplicates)
    removed = {r["id"]: r["survivor_id"] for r in collected["removed"]}
    # without the exact stage the copies are near-duplicates (estimated Jaccard 1.0)
    assert removed == {"b-orig": "a-copy", "c-copy": "a-copy", "n2": "n1", "n3": "n1", "zh2": "zh1"}
    assert len(collected["band_state"]) == 7


def test_multi_process_runner_and_tiny_shards_give_the_same_result(tmp_path):
    """Pickling and sharding: 2 worker processes, one record per shard, same decisions.

    With datasketch's own default hash (sha1) rather than the default poly32: same decisions.
    """
    records = corpus()
    config = DedupConfig(
        source_priority=("mirror_a", "mirror_b"), shard_size=1, batch_size=3, hash_function="sha1"
    )
    p = beam.Pipeline(options=PipelineOptions(MULTI_PROCESS))
    out = p | beam.Create(records) | Deduplicate(config=config)
    kept = out["kept"] | "KeptIds" >> beam.Map(lambda r: r["id"])
    removed = out["removed"] | "Removed" >> beam.Map(
        lambda r: (r["id"], r["stage"], r["survivor_id"])
    )
    assert_that(
        kept, equal_to(["a-copy", "n1", "zh1", "blank1", "blank2", "u1", "u2"]), label="SameKept"
    )
    assert_that(
        removed,
        equal_to(
            [
                ("b-orig", "exact", "a-copy"),
                ("c-copy", "exact", "a-copy"),
                ("n2", "minhash", "n1"),
                ("n3", "minhash", "n1"),
                ("zh2", "minhash", "zh1"),
            ]
        ),
        label="SameRemoved",
    )
    p.run().wait_until_finish()


# --- real data against a plain-Python oracle ------------------------------------------------


def _real_records(limit: int) -> list[dict]:
    out = []
    alpaca = json.loads((DATA / "alpaca/en/alpaca_data-0-3252.json").read_text(encoding="utf-8"))
    for i, r in enumerate(alpaca[:1500]):
        out.append(
            _rec(
                f"al{i}",
                "alpaca",
                i,
                definition=r["instruction"],
                input=r["input"],
                output=r["output"],
            )
        )
    for name in (
        "imdb_Movie_Expressed_Sentiment",
        "imdb_Movie_Expressed_Sentiment_2",
        "xsum_summarize_DOC",
        "xsum_DOC_tldr",
    ):
        path = DATA / f"p3_t0_gpt3ft/data_per_template/{name}.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines[:150]):
            r = json.loads(line)
            out.append(_rec(f"{name}-{i}", "p3", i, input=r["prompt"], output=r["completion"]))
    return out[:limit]


def test_real_records_against_an_all_pairs_oracle():
    """Every decision is one an all-pairs oracle would make; the oracle finds little more."""
    records = _real_records(2100)
    config = DedupConfig()
    collected, _ = _run(records, config, IN_PROCESS)
    assert len(collected["kept"]) + len(collected["removed"]) == len(records)

    # oracle: exact groups, then all pairs of survivors with estimated Jaccard >= threshold
    norms = [[normalize_text(r[f] or "") for f in config.fields] for r in records]
    assert norms == [normalized_fields(r, config.fields) for r in records]  # fast path = exact
    nodes = [rank_key(r, config) for r in records]
    groups = defaultdict(list)
    for node, norm in zip(nodes, norms):
        groups[tuple(norm)].append(node)
    exact_removed = {n[1]: min(g)[1] for g in groups.values() for n in g if n != min(g)}
    survivors = [i for i, n in enumerate(nodes) if n[1] not in exact_removed and any(norms[i])]
    sigs = minhash.MinHasher(128, 1, hash_function=config.hash_function).signatures(
        *minhash.batch_shingles([norms[i] for i in survivors], 5, 5)
    )
    equal = (sigs[:, None, :] == sigs[None, :, :]).sum(axis=2)
    iu = np.argwhere(np.triu(equal >= minhash.min_equal_slots(0.7, 128), k=1))
    edges = [(nodes[survivors[i]], nodes[survivors[j]]) for i, j in iu]
    oracle = {node[1]: root[1] for node, root in union_find_components(edges).items()}

    removed = {r["id"]: r for r in collected["removed"]}
    assert {k for k, r in removed.items() if r["stage"] == "exact"} == set(exact_removed)
    near = {k: r["survivor_id"] for k, r in removed.items() if r["stage"] == "minhash"}
    for rid, survivor in near.items():
        # same oracle component (our edges are a subset of the oracle's) ...
        assert oracle.get(rid, rid) == oracle.get(survivor, survivor)
        assert removed[rid]["similarity"] >= 0.7
    # ... and LSH with datasketch's (14, 9) banding misses few of the oracle's removals
    assert len(near) >= 0.9 * len(oracle), (len(near), len(oracle))
    kept = {r["id"] for r in collected["kept"]}
    for row in collected["removed"]:  # every survivor chain ends at a kept record
        rid = row["survivor_id"]
        while rid not in kept:
            rid = removed[rid]["survivor_id"]


# --- a real Flink (embedded in the Beam Flink job server) ---------------------------------


@pytest.mark.flink
@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_flink_runner_gives_the_same_result(flink_endpoint, tmp_path):
    from tests.flink_support import flink_pipeline_args

    records = corpus()
    config = DedupConfig(source_priority=("mirror_a", "mirror_b"), shard_size=2, batch_size=4)
    with beam.Pipeline(options=PipelineOptions(flink_pipeline_args(flink_endpoint))) as p:
        out = p | beam.Create(records) | Deduplicate(config=config)
        _ = (
            out["kept"]
            | "KeptIds" >> beam.Map(lambda r: json.dumps(["kept", r["id"]]))
            | "WriteKept" >> beam.io.WriteToText(str(tmp_path / "kept"))
        )
        _ = (
            out["removed"]
            | "Removed" >> beam.Map(lambda r: json.dumps([r["id"], r["stage"], r["survivor_id"]]))
            | "WriteRemoved" >> beam.io.WriteToText(str(tmp_path / "removed"))
        )
    kept = {
        json.loads(line)[1] for f in tmp_path.glob("kept*") for line in f.read_text().splitlines()
    }
    removed = {
        tuple(json.loads(line))
        for f in tmp_path.glob("removed*")
        for line in f.read_text().splitlines()
    }
    assert kept == {"a-copy", "n1", "zh1", "blank1", "blank2", "u1", "u2"}
    assert removed == {
        ("b-orig", "exact", "a-copy"),
        ("c-copy", "exact", "a-copy"),
        ("n2", "minhash", "n1"),
        ("n3", "minhash", "n1"),
        ("zh2", "minhash", "zh1"),
    }


# --- task-structured sources: instances share one definition -------------------------------


def test_fields_by_source_config():
    c = DedupConfig()
    assert c.fields_for("sni") == c.fields_for("niv1") == ("input", "output")
    assert c.fields_for("alpaca") == c.fields_for(None) == ("definition", "input", "output")
    # YAML gives a mapping of lists; stored as sorted pairs of tuples (hashable)
    custom = DedupConfig(fields_by_source={"p3": ["input"], "flan": ["input", "output"]})
    assert custom.fields_by_source == (("flan", ("input", "output")), ("p3", ("input",)))
    assert hash(custom) and DedupConfig(fields_by_source={}).fields_for("sni") == c.fields
    assert custom.state_fingerprint() != c.state_fingerprint()
    for bad in ({"sni": []}, {"sni": ["nope"]}, {"sni": "input"}, [("sni",)]):
        with pytest.raises((ValueError, TypeError)):
            DedupConfig(fields_by_source=bad)


def _sni_task_records(name: str, limit: int) -> list[dict]:
    from transforms.normalize import normalized_records

    records = normalized_records([DATA / "sni" / "tasks" / f"{name}.json"])
    return list(itertools.islice(records, limit))


def test_sni_instances_sharing_a_definition_are_not_near_duplicates():
    """Real SNI task, short instances: the shared definition alone must not merge them."""
    records = _sni_task_records("task1146_country_capital", 80)
    assert len({r["definition"] for r in records}) == 1
    distinct = {tuple(normalized_fields(r, ("input", "output"))) for r in records}
    collected, _ = _run(records, DedupConfig(), IN_PROCESS)
    # only repeated (input, output) pairs are removed, never a distinct instance
    assert len(collected["kept"]) == len(distinct) and len(distinct) > 70
    # the whole-record comparison merges most of the task (what the per-source default avoids)
    whole = DedupConfig(fields_by_source={})
    collected, _ = _run(records, whole, IN_PROCESS)
    assert len(collected["removed"]) > len(records) // 2
