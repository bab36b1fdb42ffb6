"""A corpus with planted near-duplicate clusters of known true Jaccard, and its scoring.

    python -m bench.planted --n 100000   # writes bench/work/dedup/planted_100000{,_truth}.parquet

Base records are realistic but mutually dissimilar: sentences of the real instruction data in
``../shared/data`` (Alpaca en/zh, Dolly, LIMA, ShareGPT, Self-Instruct, SNI) recombined into
definition / input / output, with 15% of the words (characters, for Chinese) replaced by random
vocabulary, so two base records share almost no 5-gram. A planted cluster is a base record plus
1-4 variants made by random word edits (substitute / delete / insert) until the variant's true
whole-record shingle Jaccard with the original — exactly the dedup's shingles: 5-grams of
``transforms.text.tokens`` per field, character 5-grams for Chinese — falls in a target drawn
uniformly from [0.5, 0.95]. A few clusters are exact copies (case and whitespace changed, J=1).

Truth per record: ``cluster`` (its own id for a singleton) and ``cluster_j``, the smallest true
Jaccard between the cluster's original and any of its variants.

Scoring (``score``): a removal is correct when the survivor is in the same planted cluster and
that cluster's Jaccard is >= 0.55 (precision); recall counts, over clusters with Jaccard >= 0.80,
the members removed in favour of a member of their own cluster, out of size - 1 per cluster.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import random
import re
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from transforms import minhash
from transforms.schema import CORPUS_SCHEMA, new_record
from transforms.text import normalize_text

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WORK = Path(__file__).resolve().parent / "work" / "dedup"  # gitignored, this bench's own
TRUTH_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("cluster", pa.string()),
        ("role", pa.string()),  # single, original, variant, copy
        ("j_true", pa.float64()),  # variant/copy: true Jaccard with its original
        ("cluster_j", pa.float64()),  # min j_true over the cluster (NaN for singletons)
    ]
)
SOURCES = ("mirror_a", "mirror_b", "mirror_c")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_ZH_SENTENCE = re.compile(r"(?<=[。！？])|\n+")
_HAN = re.compile(r"[\u4e00-\u9fff]")


# --------------------------------------------------------------------------------------------
# Sentence pools from the real data
# --------------------------------------------------------------------------------------------


def _texts() -> tuple[list[str], list[str], list[str], list[str]]:
    """(English instructions, English passages, Chinese instructions, Chinese passages)."""
    en_inst, en_text, zh_inst, zh_text = [], [], [], []
    for r in json.loads((DATA / "alpaca/en/alpaca_data-0-3252.json").read_text()):
        en_inst.append(r["instruction"])
        en_text += [r["input"], r["output"]]
    for r in json.loads((DATA / "alpaca/zh/alpaca_data-0-3252-zh.json").read_text()):
        zh_inst.append(r["instruction"])
        zh_text += [r["input"], r["output"]]
    for line in (DATA / "dolly/databricks-dolly-15k.first9.jsonl").read_text().splitlines():
        r = json.loads(line)
        en_inst.append(r["instruction"])
        en_text += [r["context"], r["response"]]
    for r in json.loads(next((DATA / "lima").glob("*.json")).read_text()):
        en_inst.append(r["instruction"])
        en_text.append(r["output"])
    path = DATA / "sharegpt/sharegpt_v3_unfiltered_cleaned_split.sample300.json"
    for r in json.loads(path.read_text()):
        for turn in r["conversations"]:
            (zh_text if _HAN.search(turn["value"]) else en_text).append(turn["value"])
    for line in (DATA / "self_instruct/seed_tasks.jsonl").read_text().splitlines():
        r = json.loads(line)
        en_inst.append(r["instruction"])
        en_text += [i["output"] for i in r["instances"]]
    for path in sorted(glob.glob(str(DATA / "sni/tasks/*.json"))):
        task = json.loads(Path(path).read_text())
        en_inst += task["Definition"]
        for inst in task["Instances"]:
            en_text += [inst["input"], *inst["output"]]
    return en_inst, en_text, zh_inst, zh_text


def _pool(texts: list[str], splitter: re.Pattern, lo: int, hi: int, unit) -> list[str]:
    out = set()
    for text in texts:
        for sentence in splitter.split(text or ""):
            sentence = sentence.strip()
            if lo <= len(unit(sentence)) <= hi:
                out.add(sentence)
    return sorted(out)


class Pools:
    """Sentences and vocabulary to synthesise records from (built once, ~2 s)."""

    def __init__(self):
        en_inst, en_text, zh_inst, zh_text = _texts()
        self.en_inst = _pool(en_inst, _SENTENCE, 3, 40, str.split)
        self.en_text = _pool(en_text, _SENTENCE, 4, 60, str.split)
        self.zh_inst = _pool(zh_inst, _ZH_SENTENCE, 4, 60, list)
        self.zh_text = _pool(zh_text, _ZH_SENTENCE, 6, 120, list)
        words = {w for s in self.en_text + self.en_inst for w in s.split()}
        self.en_vocab = sorted(w for w in words if w.isalpha())
        self.zh_vocab = sorted({c for s in self.zh_text for c in s if _HAN.match(c)})


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def _scramble(units: list[str], vocab: list[str], rng: random.Random, rate: float) -> list[str]:
    return [rng.choice(vocab) if rng.random() < rate else u for u in units]


def base_record(pools: Pools, rng: random.Random, zh: bool, min_units: int = 0) -> tuple:
    """(definition, input, output) as lists of units (words, or characters for Chinese)."""
    if zh:
        inst, text, vocab, split = pools.zh_inst, pools.zh_text, pools.zh_vocab, list
    else:
        inst, text, vocab, split = pools.en_inst, pools.en_text, pools.en_vocab, str.split
    definition = split(rng.choice(inst))
    inp = [u for _ in range(rng.choice((0, 0, 1, 2))) for u in split(rng.choice(text))]
    out = [u for _ in range(rng.randint(1, 6)) for u in split(rng.choice(text))]
    while len(definition) + len(inp) + len(out) < min_units:
        out += split(rng.choice(text))
    return tuple(_scramble(f, vocab, rng, 0.15) for f in (definition, inp, out))


def _join(units: list[str], zh: bool) -> str:
    return "".join(units) if zh else " ".join(units)


def _shingles(fields: tuple, zh: bool) -> set[bytes]:
    norms = [normalize_text(_join(f, zh)) for f in fields]
    return minhash.shingle_set(norms, 5, 5)


def _edit(fields: tuple, edits: list[tuple]) -> tuple:
    out = [list(f) for f in fields]
    for op, field, pos, unit in edits:
        f = out[field]
        if not f:
            f.append(unit)
            continue
        i = int(pos * len(f))
        if op == "sub":
            f[i] = unit
        elif op == "del" and len(f) > 1:
            del f[i]
        else:
            f.insert(i, unit)
    return tuple(out)


def variant(
    fields: tuple, zh: bool, target: float, pools: Pools, rng: random.Random
) -> tuple[tuple, float]:
    """A variant whose true Jaccard with ``fields`` is the largest reachable one <= target."""
    vocab = pools.zh_vocab if zh else pools.en_vocab
    sizes = [len(f) for f in fields]
    total = sum(sizes)
    edits = []
    for _ in range(max(4, total)):
        r, field = rng.random() * total, 0
        while r >= sizes[field] and field < 2:
            r -= sizes[field]
            field += 1
        edits.append(
            (rng.choice(("sub", "sub", "del", "ins")), field, rng.random(), rng.choice(vocab))
        )
    original = _shingles(fields, zh)
    lo, hi = 1, len(edits)  # smallest number of edits reaching J <= target
    while lo < hi:
        mid = (lo + hi) // 2
        if minhash.jaccard(original, _shingles(_edit(fields, edits[:mid]), zh)) <= target:
            hi = mid
        else:
            lo = mid + 1
    edited = _edit(fields, edits[:lo])
    return edited, minhash.jaccard(original, _shingles(edited, zh))


def _units_for(target: float) -> int:
    # one word edit removes up to 5 of n shingles and adds 5: J ~ (n - 5) / (n + 5), so a
    # target close to 1 needs a long record to be reachable in fine steps
    return min(400, int(8 * (1 + target) / (1 - target)))


def _variant_near(fields, zh, target, pools, rng, tries: int = 4):
    best = None
    for _ in range(tries):
        edited, j = variant(fields, zh, target, pools, rng)
        if best is None or j > best[1]:
            best = (edited, j)
        if j >= target - 0.04:
            break
    return best


def _copy(fields: tuple, zh: bool, rng: random.Random) -> tuple:
    """An exact duplicate after normalisation: case and whitespace changed."""
    out = []
    for f in fields:
        text = _join(f, zh)
        text = text.upper() if rng.random() < 0.5 else "  " + text.replace(" ", "  ") + "\n"
        out.append(text)
    return tuple(out)


def generate(n: int, seed: int = 7, near_fraction: float = 0.15, copy_fraction: float = 0.03):
    """(records, truth rows): ``n`` records, shuffled, ids unrelated to cluster roles."""
    rng = random.Random(seed)
    pools = Pools()
    n_near, n_copy = int(n * near_fraction), int(n * copy_fraction)
    items = []  # (texts, cluster, role, j_true, zh)
    made = 0
    cluster_no = 0
    while made < n_near:  # near-duplicate clusters: original + 1..4 variants
        zh = rng.random() < 0.1
        target = rng.uniform(0.5, 0.95)
        fields = base_record(pools, rng, zh, _units_for(target))
        cluster = f"c{cluster_no}"
        cluster_no += 1
        items.append(([_join(f, zh) for f in fields], cluster, "original", None))
        for _ in range(min(rng.randint(1, 4), n_near - made)):
            edited, j = _variant_near(fields, zh, target, pools, rng)
            items.append(([_join(f, zh) for f in edited], cluster, "variant", j))
            made += 1
    made = 0
    while made < n_copy:  # exact-duplicate clusters
        zh = rng.random() < 0.1
        fields = base_record(pools, rng, zh)
        cluster = f"c{cluster_no}"
        cluster_no += 1
        items.append(([_join(f, zh) for f in fields], cluster, "original", None))
        for _ in range(min(rng.randint(1, 3), n_copy - made)):
            items.append((list(_copy(fields, zh, rng)), cluster, "copy", 1.0))
            made += 1
    while len(items) < n:
        zh = rng.random() < 0.1
        fields = base_record(pools, rng, zh)
        items.append(([_join(f, zh) for f in fields], None, "single", None))
    items = items[:n]
    rng.shuffle(items)
    cluster_j = defaultdict(lambda: 1.0)
    for _, cluster, _, j in items:
        if cluster is not None and j is not None:
            cluster_j[cluster] = min(cluster_j[cluster], j)
    records, truth = [], []
    for i, (texts, cluster, role, j) in enumerate(items):
        source = SOURCES[rng.randrange(len(SOURCES))]
        rid = f"p{rng.getrandbits(48):012x}"
        records.append(
            new_record(
                id=rid,
                source=source,
                source_format="planted",
                source_file=f"planted/{source}",
                source_index=i,
                task="planted",
                definition=texts[0],
                input=texts[1],
                output=texts[2],
            )
        )
        truth.append(
            {
                "id": rid,
                "cluster": cluster or rid,
                "role": role,
                "j_true": j,
                "cluster_j": cluster_j[cluster] if cluster else float("nan"),
            }
        )
    return records, truth


def paths(n: int) -> tuple[Path, Path]:
    return WORK / f"planted_{n}.parquet", WORK / f"planted_{n}_truth.parquet"


def write(n: int, seed: int = 7) -> tuple[Path, Path]:
    corpus, truth_path = paths(n)
    if corpus.exists() and truth_path.exists():
        return corpus, truth_path
    WORK.mkdir(parents=True, exist_ok=True)
    records, truth = generate(n, seed)
    pq.write_table(
        pa.Table.from_pylist(records, schema=CORPUS_SCHEMA), corpus, row_group_size=20_000
    )
    pq.write_table(pa.Table.from_pylist(truth, schema=TRUTH_SCHEMA), truth_path)
    return corpus, truth_path


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def score(
    removed: list[tuple[str, str]],
    truth: list[dict],
    *,
    precision_j: float = 0.55,
    recall_j: float = 0.80,
) -> dict:
    """Precision / recall of ``(removed id, survivor id)`` pairs against the planted clusters."""
    by_id = {t["id"]: t for t in truth}
    correct = 0
    wrong = []
    hits = defaultdict(int)  # cluster -> members removed in favour of their own cluster
    for rid, survivor in removed:
        r, s = by_id[rid], by_id[survivor]
        same = r["cluster"] == s["cluster"] and r["role"] != "single"
        if same:
            hits[r["cluster"]] += 1
        if same and r["cluster_j"] >= precision_j:
            correct += 1
        else:
            wrong.append((rid, survivor))
    sizes = defaultdict(int)
    cj = {}
    for t in truth:
        if t["role"] != "single":
            sizes[t["cluster"]] += 1
            cj[t["cluster"]] = t["cluster_j"]
    expected = sum(size - 1 for c, size in sizes.items() if cj[c] >= recall_j)
    found = sum(min(hits[c], size - 1) for c, size in sizes.items() if cj[c] >= recall_j)
    bins = {}  # cluster Jaccard bin -> (members removed for their cluster, size - 1 summed)
    edges = (0.0, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 1.0, 1.01)
    for lo, hi in itertools.pairwise(edges):
        members = [c for c in sizes if lo <= cj[c] < hi]
        exp = sum(sizes[c] - 1 for c in members)
        got = sum(min(hits[c], sizes[c] - 1) for c in members)
        if exp:
            bins["1.0" if lo == 1.0 else f"[{lo:.2f},{hi:.2f})"] = (got, exp)
    return {
        "removed": len(removed),
        "precision": correct / len(removed) if removed else 1.0,
        "recall": found / expected if expected else 1.0,
        f"expected_removals_j>={recall_j:.2f}": expected,
        "false_removals": len(wrong),
        "removed_by_cluster_j": bins,
        "examples_wrong": wrong[:5],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    corpus, truth = write(args.n, args.seed)
    print(corpus, truth)


if __name__ == "__main__":
    main()
