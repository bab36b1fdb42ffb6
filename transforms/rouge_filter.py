"""ROUGE-L > 0.7 instruction filter (Self-Instruct's rule), exact and distributed.

    records | RougeFilter(RougeConfig())
    # Output: {"kept": [record], "removed": [REMOVED_SCHEMA row],
    #          "near_duplicate_tasks": [NEAR_DUPLICATE_TASKS_SCHEMA row]}

Every input record ends in exactly one of ``kept`` / ``removed``; ``near_duplicate_tasks`` is a
report (records of those tasks stay in ``kept`` unless ``drop_near_duplicate_tasks``).

Decisions equal the reference loop's — keep an instruction iff its ROUGE-L F1 with every
instruction kept *before it* is <= threshold — with "before" meaning the configured order
(default ``(source_file, source_index)``: files by path, records in file order). The stages:

1. **Units.** Records are keyed by their instruction's token sequence. For one-instruction-per-
   record sources (Alpaca, Self-Instruct, Dolly, LIMA, chat...) a unit is a distinct token
   sequence; its first record (in order) stands for it and later records with the same tokens
   score 1.0 against it, so they are removed (``identical_instruction``) whatever happens to the
   unit. For task sources (SNI, NIv1, P3, Flan) a unit is a distinct instruction of one task;
   task units are compared only with each other (thousands of instances share one definition).
   Records whose instruction has no tokens are kept (ROUGE-L 0 against everything).
2. **Similarity graph.** A global token count (rarest-first order), prefix keys per unit, a
   shuffle on keys, and in each partition the candidate pairs and their exact ROUGE-L F1; only
   pairs scoring above the threshold become edges. No worker sees more than its partition.
3. **Components.** Distributed connected components of the edges: each partition first reduces
   its own edges to stars (numpy), then alternating large-star / small-star rounds over hash
   partitions; nodes not yet in a star after ``cc_rounds`` (7 of 100k measured after 3 rounds)
   are finished by a union-find on one worker. Decisions in different components are
   independent.
4. **Greedy.** Each component is processed on one worker in the reference's order: a unit is
   dropped iff an earlier unit that was *kept* scores above the threshold with it.
5. **Apply.** Records of dropped units, and of units with several records, are joined with
   their unit's decision (a side input holds the sorted ids of those units, 8 bytes each); all
   other records are kept without a shuffle. Removed records get an audit row naming the kept
   instruction they collided with (``survivor_*``) and the ROUGE-L F1 (``similarity``).

Counters (namespace ``instructmix.rouge``): ``records``, ``kept``, ``kept:empty_tokens``,
``removed:rouge_l``, ``removed:identical_instruction``, ``removed:near_duplicate_task``,
``tasks:near_duplicate``, ``units``, ``candidates``, ``edges``, ``components:unconverged``.
``records == kept + removed:*`` on every run (``kept`` includes ``kept:empty_tokens``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.pvalue import AsSingleton, TaggedOutput

from transforms import rouge
from transforms.rouge_config import RougeConfig
from transforms.text import stable_hash

NAMESPACE = "instructmix.rouge"
STAGE = "rouge"
RECORD_POOL = "record"
TASK_POOL = "task"

# One row per near-duplicate task instruction (a task-source unit the greedy would drop).
NEAR_DUPLICATE_TASKS_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("task", pa.string()),
        ("instruction", pa.string()),  # truncated to ``report_text_chars``
        ("records", pa.int64()),  # records sharing this instruction
        ("first_id", pa.string()),  # first record of the unit (in the configured order)
        ("source_file", pa.string()),
        ("source_index", pa.int64()),
        ("duplicate_of_source", pa.string()),
        ("duplicate_of_task", pa.string()),
        ("duplicate_of_instruction", pa.string()),
        ("duplicate_of_id", pa.string()),
        ("similarity", pa.float64()),  # ROUGE-L F1
        ("action", pa.string()),  # "reported" or "dropped"
    ]
)

_EMPTY = "empty"
_UNITS = "units"
_INFOS = "infos"
_STARS = "stars"
_REMOVED = "removed"
_TASKS = "tasks"
_REMAINDER = "remainder"
_DIRECT = "direct"


# --------------------------------------------------------------------------------------------
# Plain helpers (no Beam): what a record contributes
# --------------------------------------------------------------------------------------------


class UnitInfo(NamedTuple):
    """What the greedy and the audit rows need to know about a unit (its first record).

    Travels between stages as a plain tuple (``tuple(info)``; Beam encodes tuples of
    primitives without pickling) and is rebuilt with ``UnitInfo(*values)`` where it is read.
    """

    order: tuple
    rep_id: str
    source: str | None
    source_file: str | None
    source_index: int | None
    task: str | None
    pool: str
    records: int = 1
    text: str | None = None  # task units only (report rows)

    @property
    def sort_key(self) -> tuple:
        return (self.order, self.rep_id or "")


def instruction_text(record: dict, fields: tuple[str, ...]) -> str:
    """The configured instruction fields joined by newlines (lists joined too, None skipped)."""
    parts = []
    for name in fields:
        value = record.get(name)
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = "\n".join(str(v) for v in value if v is not None)
        value = str(value)
        if value:
            parts.append(value)
    return "\n".join(parts)


def order_key(record: dict, fields: tuple[str, ...]) -> tuple:
    """The reference's order as a comparable tuple; missing values sort first."""
    return tuple((0, "") if record.get(f) is None else (1, record.get(f)) for f in fields)


def pool_of(record: dict, config: RougeConfig) -> str:
    return TASK_POOL if record.get("source") in config.task_sources else RECORD_POOL


def unit_id(pool: str, task: str | None, tokens: list[str]) -> int:
    """63-bit id of a unit: pool, (task for task units) and the token sequence."""
    scope = (task or "") if pool == TASK_POOL else ""
    digest = stable_hash(pool, scope, "\x1f".join(tokens), digest_size=8)
    return int(digest, 16) & 0x7FFF_FFFF_FFFF_FFFF  # fits Beam's signed varint coder


def _salt(pool: str) -> str:
    # Task and record units never share a token, hence never a key: pools are never compared.
    return "" if pool == RECORD_POOL else "\x00task\x00"


def _split(values: np.ndarray, num: int) -> dict[int, np.ndarray]:
    """Indices of ``values`` grouped by ``value % num``."""
    if len(values) == 0:
        return {}
    part = (np.asarray(values, dtype=np.uint64) % np.uint64(num)).astype(np.int64)
    order = np.argsort(part, kind="stable")
    sorted_part = part[order]
    cuts = np.flatnonzero(np.r_[True, sorted_part[1:] != sorted_part[:-1], True])
    return {int(sorted_part[a]): order[a:b] for a, b in itertools.pairwise(cuts)}


def _concat(chunks, n: int, dtypes: tuple) -> tuple[np.ndarray, ...]:
    chunks = list(chunks)
    if not chunks:
        return tuple(np.zeros(0, dtype=dt) for dt in dtypes)
    return tuple(np.concatenate([c[i] for c in chunks]).astype(dtypes[i]) for i in range(n))


# --------------------------------------------------------------------------------------------
# 1. Units
# --------------------------------------------------------------------------------------------


class _PrepareFn(beam.DoFn):
    """record → (unit id, record), and (unit id, (UnitInfo, tokens)) for the unit table."""

    def __init__(self, config: RougeConfig):
        self._config = config

    def setup(self):
        self._tokenize = rouge.tokenizer(self._config.tokenizer)
        self._records = Metrics.counter(NAMESPACE, "records")
        self._empty = Metrics.counter(NAMESPACE, "kept:empty_tokens")

    def process(self, record: dict):
        cfg = self._config
        self._records.inc()
        text = instruction_text(record, cfg.instruction_fields)
        tokens = self._tokenize(text)
        if not tokens:
            self._empty.inc()
            yield TaggedOutput(_EMPTY, record)
            return
        pool = pool_of(record, cfg)
        node = unit_id(pool, record.get("task"), tokens)
        info = UnitInfo(
            order=order_key(record, cfg.order_by),
            rep_id=record.get("id") or "",
            source=record.get("source"),
            source_file=record.get("source_file"),
            source_index=record.get("source_index"),
            task=record.get("task"),
            pool=pool,
            text=text[: cfg.report_text_chars] if pool == TASK_POOL else None,
        )
        yield node, record
        yield TaggedOutput(_UNITS, (node, (tuple(info), tuple(tokens))))


def _first(a: tuple, b: tuple) -> tuple:
    """The earlier of two unit-info tuples: (order, record id) as in ``UnitInfo.sort_key``."""
    return a if (a[0], a[1] or "") <= (b[0], b[1] or "") else b


def _first_of_unit(element):
    """(unit id, [(info tuple, tokens)] of its records) → (unit id, (first info with the record
    count, tokens)). A GroupByKey, not a CombinePerKey: units are mostly single records, so
    combiner lifting saves nothing and costs ~30% more (measured)."""
    node, values = element
    best, tokens, count = None, None, 0
    for info, toks in values:
        count += 1
        if best is None:
            best, tokens = info, toks
        else:
            best = _first(info, best)
    return node, (tuple(UnitInfo(*best)._replace(records=count)), tokens)


def _copied_unit(element):
    """Record-pool units with several records (their later copies are removed)."""
    node, (info, _) = element
    if info[6] == RECORD_POOL and info[7] > 1:
        yield node


def _decided_unit(element):
    yield element[0]


class _SortedIdsFn(beam.CombineFn):
    """Unit ids → one sorted uint64 array (the side input of the final routing)."""

    def create_accumulator(self):
        return []

    def add_input(self, acc, node):
        acc.append(node)
        return acc

    def merge_accumulators(self, accs):
        return [x for acc in accs for x in acc]

    def extract_output(self, acc):
        return np.sort(np.asarray(acc, dtype=np.uint64))


# --------------------------------------------------------------------------------------------
# 2. Similarity graph
# --------------------------------------------------------------------------------------------


class _HashUnitsFn(beam.DoFn):
    """[(unit id, (UnitInfo, tokens))] → UnitBatch; unit infos split by partition of the id."""

    def __init__(self, config: RougeConfig):
        self._config = config

    def setup(self):
        self._hasher = rouge.TokenHasher()
        self._units = Metrics.counter(NAMESPACE, "units")

    def process(self, batch):
        nodes = [node for node, _ in batch]
        token_lists = []
        for _, (info, tokens) in batch:
            salt = _salt(info[6])
            token_lists.append([salt + t for t in tokens] if salt else tokens)
        self._units.inc(len(nodes))
        yield rouge.UnitBatch.build(nodes, token_lists, self._hasher)
        ids = np.asarray(nodes, dtype=np.uint64)
        for part, idx in _split(ids, self._config.num_partitions).items():
            yield TaggedOutput(_INFOS, (part, [(nodes[i], batch[i][1][0]) for i in idx.tolist()]))


def _partial_counts(batch: rouge.UnitBatch) -> tuple[np.ndarray, np.ndarray]:
    return rouge.count_hashes(batch.occ)


class _VocabularyFn(beam.CombineFn):
    """Partial token counts → the global Vocabulary (tokens of >= 2 units, rarest first)."""

    def create_accumulator(self):
        return []

    def add_input(self, acc, counts):
        acc.append(counts)
        return [rouge.merge_counts(acc)] if len(acc) >= 32 else acc

    def merge_accumulators(self, accs):
        return [rouge.merge_counts(part for acc in accs for part in acc)]

    def extract_output(self, acc):
        return rouge.Vocabulary.from_counts(*rouge.merge_counts(acc))


class _KeysFn(beam.DoFn):
    """UnitBatch → (partition, (sub-batch, postings)): the units each partition needs."""

    def __init__(self, config: RougeConfig):
        self._config = config

    def setup(self):
        self._thresholds = rouge.Thresholds.build(self._config.threshold)
        self._lsh = rouge.lsh_params(self._config.threshold, self._config.lsh_max_miss)

    def process(self, batch: rouge.UnitBatch, vocab: rouge.Vocabulary):
        if self._config.candidates == "lsh":
            postings = rouge.lsh_postings(batch, self._lsh)
        else:
            postings = rouge.prefix_postings(batch, vocab, self._thresholds, ell=2)
        for part, idx in _split(postings.part, self._config.num_partitions).items():
            sub = postings.take(idx)
            units = rouge.sorted_unique(sub.unit)
            local = np.searchsorted(units, sub.unit)
            yield part, (batch.take(units), rouge.Postings(sub.key, local, sub.pos, sub.part))


class _JoinFn(beam.DoFn):
    """(partition, [(sub-batch, postings)]) → scored edges by partition of the first node, and
    the partition's local component stars (node, local min) for the global components."""

    def __init__(self, config: RougeConfig):
        self._config = config

    def setup(self):
        self._thresholds = rouge.Thresholds.build(self._config.threshold)
        self._candidates = Metrics.counter(NAMESPACE, "candidates")
        self._edges = Metrics.counter(NAMESPACE, "edges")

    def process(self, element, vocab: rouge.Vocabulary):
        _, chunks = element
        batches, postings, shift = [], [], 0
        for sub, post in chunks:
            batches.append(sub)
            postings.append(rouge.Postings(post.key, post.unit + shift, post.pos, post.part))
            shift += len(sub)
        batch = rouge.UnitBatch.concat(batches)
        merged = rouge.Postings(
            *(
                np.concatenate([getattr(p, f) for p in postings])
                for f in ("key", "unit", "pos", "part")
            )
        )
        u, v, score, stats = rouge.local_join(
            batch, merged, vocab, self._thresholds, 2, self._config.use_rapidfuzz
        )
        self._candidates.inc(stats.candidates)
        self._edges.inc(stats.edges)
        if len(u) == 0:
            return
        for part, idx in _split(u, self._config.num_partitions).items():
            yield part, (u[idx], v[idx], score[idx])
        node, label = rouge.local_components(u, v)
        yield TaggedOutput(_STARS, (node, label))


# --------------------------------------------------------------------------------------------
# 3. Connected components
# --------------------------------------------------------------------------------------------


def _rows(a: np.ndarray, b: np.ndarray, num: int):
    """Undirected edges → adjacency rows (src, dst) in both directions, by partition of src."""
    src = np.concatenate([a, b]).astype(np.uint64)
    dst = np.concatenate([b, a]).astype(np.uint64)
    for part, idx in _split(src, num).items():
        yield part, (src[idx], dst[idx])


class _EdgesToRows(beam.DoFn):
    def __init__(self, num: int):
        self._num = num

    def process(self, edges):
        a, b = edges
        yield from _rows(a, b, self._num)


class _StarStepFn(beam.DoFn):
    """One large-star or small-star step on the rows of one partition."""

    def __init__(self, large: bool, num: int):
        self._large = large
        self._num = num

    def process(self, element):
        _, chunks = element
        src, dst = _concat(chunks, 2, (np.uint64, np.uint64))
        a, b = rouge.star_step(src, dst, self._large)
        yield from _rows(a, b, self._num)


class _LabelFn(beam.DoFn):
    """Rows of a partition → (partition, (node, label = min of closed neighbourhood)); the rows
    of nodes not yet in a star (not a centre, more than one neighbour) go to the remainder."""

    def setup(self):
        self._unconverged = Metrics.counter(NAMESPACE, "components:unconverged")

    def process(self, element):
        part, chunks = element
        src, dst = _concat(chunks, 2, (np.uint64, np.uint64))
        node, label, degree = rouge.star_labels(src, dst)
        bad = node[(label != node) & (degree > 1)]
        if len(bad):
            self._unconverged.inc(len(bad))
            sel = np.isin(src, bad)
            yield TaggedOutput(_REMAINDER, (src[sel], dst[sel]))
        yield part, (node, label)


def _remainder_roots(element) -> tuple[np.ndarray, np.ndarray]:
    """Union-find over the remainder rows, on one worker: (sorted node, root) arrays."""
    _, chunks = element
    src, dst = _concat(chunks, 2, (np.uint64, np.uint64))
    labels = rouge.union_find_labels(src.tolist(), dst.tolist())
    node = np.fromiter(labels.keys(), dtype=np.uint64, count=len(labels))
    root = np.fromiter(labels.values(), dtype=np.uint64, count=len(labels))
    order = np.argsort(node)
    return node[order], root[order]


def _to_one_key(element):
    return 0, element


class _Relabel(beam.DoFn):
    """label → root of the label in the remainder's union-find (identity when absent)."""

    def process(self, element, roots):
        part, (node, label) = element
        for keys, values in roots:
            if len(keys):
                idx = np.minimum(np.searchsorted(keys, label), len(keys) - 1)
                label = np.where(keys[idx] == label, values[idx], label)
        yield part, (node, label)


class ConnectedComponents(beam.PTransform):
    """Undirected edge chunks (a, b) → label chunks (partition of node, (node, component min)).

    Alternating large-star / small-star rounds (Kiveris et al., "Connected Components in
    MapReduce and Beyond", 2014), each a shuffle of hash partitions of numpy rows. After
    ``rounds`` rounds a node is converged when it is a star centre or a one-neighbour leaf;
    the rows of the (normally few) others are finished by a union-find on one worker, and
    every label is mapped through its result. That is exact whatever ``rounds`` is: all rows
    between non-leaf nodes touch an unconverged node when a component is not yet a star, so
    the remainder connects each such component's centres and its minimum. The counter
    ``components:unconverged`` says how many nodes needed it.
    """

    def __init__(self, rounds: int, num_partitions: int):
        super().__init__()
        self._rounds = rounds
        self._num = num_partitions

    def expand(self, edges):
        rows = edges | "ToRows" >> beam.ParDo(_EdgesToRows(self._num))
        for r in range(self._rounds):
            for large in (True, False):
                name = f"{'Large' if large else 'Small'}Star{r}"
                rows = (
                    rows
                    | f"Group{name}" >> beam.GroupByKey()
                    | name >> beam.ParDo(_StarStepFn(large, self._num))
                )
        labelled = (
            rows
            | "GroupFinal" >> beam.GroupByKey()
            | "Label" >> beam.ParDo(_LabelFn()).with_outputs(_REMAINDER, main="labels")
        )
        roots = (
            labelled[_REMAINDER]
            | "OneKey" >> beam.Map(_to_one_key)
            | "GroupRemainder" >> beam.GroupByKey()
            | "UnionFind" >> beam.Map(_remainder_roots)
        )
        return labelled.labels | "Relabel" >> beam.ParDo(_Relabel(), beam.pvalue.AsList(roots))


# --------------------------------------------------------------------------------------------
# 4. Greedy per component
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """A dropped unit: the kept unit it collided with and their ROUGE-L F1."""

    survivor: UnitInfo
    similarity: float


class _RouteFn(beam.DoFn):
    """Partition of nodes: labels, unit infos and edges (by first node) → the same, keyed by
    partition of the component label, so that a component meets on one worker."""

    def __init__(self, num: int):
        self._num = num

    def process(self, element):
        _, groups = element
        node, label = _concat(groups["labels"], 2, (np.uint64, np.uint64))
        if len(node) == 0:
            return
        order = np.argsort(node)
        node, label = node[order], label[order]
        wanted = set(node.tolist())
        infos = {}
        for chunk in groups["infos"]:
            for n, info in chunk:
                if n in wanted:
                    infos[n] = info
        label_of = dict(zip(node.tolist(), label.tolist()))
        by_part: dict[int, list] = {}
        for n, info in infos.items():
            by_part.setdefault(label_of[n] % self._num, []).append((n, info))
        for part, nodes in by_part.items():
            yield part, ("nodes", nodes)
        u, v, s = _concat(groups["edges"], 3, (np.uint64, np.uint64, np.float64))
        if len(u):
            lab = label[np.searchsorted(node, u)]
            for part, idx in _split(lab, self._num).items():
                yield part, ("edges", (u[idx], v[idx], s[idx]))


class _GreedyFn(beam.DoFn):
    """Whole components → Self-Instruct's greedy → decisions and near-duplicate task rows."""

    def __init__(self, config: RougeConfig):
        self._config = config

    def setup(self):
        self._tasks = Metrics.counter(NAMESPACE, "tasks:near_duplicate")

    def process(self, element):
        _, items = element
        infos: dict[int, UnitInfo] = {}
        edges = []
        for kind, payload in items:
            if kind == "nodes":
                infos.update((n, UnitInfo(*info)) for n, info in payload)
            else:
                edges.append(payload)
        u, v, s = _concat(edges, 3, (np.uint64, np.uint64, np.float64))
        if len(u) == 0:
            return
        # Rank = position in the reference's order; by_id[k] is the rank of the k-th smallest id.
        nodes = sorted(infos, key=lambda n: (infos[n].sort_key, n))
        ids = np.asarray(nodes, dtype=np.uint64)
        by_id = np.argsort(ids)
        sorted_ids = ids[by_id]
        pu = np.minimum(np.searchsorted(sorted_ids, u), len(ids) - 1)
        pv = np.minimum(np.searchsorted(sorted_ids, v), len(ids) - 1)
        if (sorted_ids[pu] != u).any() or (sorted_ids[pv] != v).any():
            raise RuntimeError("an edge names a unit whose info did not reach its component")
        ru, rv = by_id[pu], by_id[pv]
        survivor, score = rouge.greedy_ranks(ru, rv, s, len(nodes))
        drop_tasks = self._config.drop_near_duplicate_tasks
        for i in np.flatnonzero(survivor >= 0).tolist():
            info, kept = infos[nodes[i]], infos[nodes[survivor[i]]]
            decision = Decision(kept, float(score[i]))
            if info.pool == TASK_POOL:
                self._tasks.inc()
                yield TaggedOutput(_TASKS, _task_row(info, decision, drop_tasks))
                if not drop_tasks:
                    continue
            yield nodes[i], decision


def _task_row(info: UnitInfo, decision: Decision, dropped: bool) -> dict:
    kept = decision.survivor
    return {
        "source": info.source,
        "task": info.task,
        "instruction": info.text,
        "records": info.records,
        "first_id": info.rep_id,
        "source_file": info.source_file,
        "source_index": info.source_index,
        "duplicate_of_source": kept.source,
        "duplicate_of_task": kept.task,
        "duplicate_of_instruction": kept.text,
        "duplicate_of_id": kept.rep_id,
        "similarity": decision.similarity,
        "action": "dropped" if dropped else "reported",
    }


# --------------------------------------------------------------------------------------------
# 5. Apply decisions to records
# --------------------------------------------------------------------------------------------


def removed_row(record: dict, survivor: UnitInfo, similarity: float, detail: str) -> dict:
    """An audit row (``schema.REMOVED_SCHEMA``) for a record this stage removes."""
    return {
        "id": record.get("id"),
        "source": record.get("source"),
        "source_file": record.get("source_file"),
        "source_index": record.get("source_index"),
        "task": record.get("task"),
        "stage": STAGE,
        "survivor_id": survivor.rep_id,
        "survivor_source_file": survivor.source_file,
        "survivor_source_index": survivor.source_index,
        "similarity": similarity,
        "detail": detail,
    }


class _ApplyFn(beam.DoFn):
    """(unit id, {records, decision}) → kept records, or removed rows (tagged)."""

    def __init__(self, config: RougeConfig):
        self._config = config

    def setup(self):
        self._kept = Metrics.counter(NAMESPACE, "kept")
        self._removed = {
            reason: Metrics.counter(NAMESPACE, f"removed:{reason}")
            for reason in ("rouge_l", "identical_instruction", "near_duplicate_task")
        }

    def _remove(self, record, survivor, similarity, reason, note):
        self._removed[reason].inc()
        return TaggedOutput(
            _REMOVED, removed_row(record, survivor, similarity, f"{reason}: {note}")
        )

    def process(self, element):
        _, groups = element
        records = list(groups["records"])
        decisions = list(groups["decision"])
        if not records:
            return
        cfg = self._config
        records.sort(key=lambda r: (order_key(r, cfg.order_by), r.get("id") or ""))
        first = records[0]
        pool = pool_of(first, cfg)
        what = f"ROUGE-L F1 > {cfg.threshold} ({cfg.tokenizer} tokens)"
        if decisions:
            decision = decisions[0]
            reason = "near_duplicate_task" if pool == TASK_POOL else "rouge_l"
            for record in records:
                yield self._remove(record, decision.survivor, decision.similarity, reason, what)
            return
        if pool == TASK_POOL:
            for record in records:
                self._kept.inc()
                yield record
            return
        self._kept.inc()
        yield first
        rep = UnitInfo(
            order=order_key(first, cfg.order_by),
            rep_id=first.get("id") or "",
            source=first.get("source"),
            source_file=first.get("source_file"),
            source_index=first.get("source_index"),
            task=first.get("task"),
            pool=pool,
        )
        for record in records[1:]:
            yield self._remove(record, rep, 1.0, "identical_instruction", "same tokens as kept")


class _CountKept(beam.DoFn):
    def setup(self):
        self._kept = Metrics.counter(NAMESPACE, "kept")

    def process(self, record):
        self._kept.inc()
        yield record


class _RouteRecords(beam.DoFn):
    """(unit id, record) → to the decision join if its unit was dropped or has copies, else
    kept straight away (most records: no shuffle of whole records for them)."""

    def setup(self):
        self._kept = Metrics.counter(NAMESPACE, "kept")

    def process(self, element, affected: np.ndarray):
        node = element[0]
        i = int(np.searchsorted(affected, node))
        if i < len(affected) and int(affected[i]) == node:
            yield element
        else:
            self._kept.inc()
            yield TaggedOutput(_DIRECT, element[1])


# --------------------------------------------------------------------------------------------
# The transform
# --------------------------------------------------------------------------------------------


class RougeFilter(beam.PTransform):
    """Drop instructions whose ROUGE-L F1 with an earlier kept instruction exceeds a threshold.

    Input: a PCollection of record dicts (``schema.CORPUS_SCHEMA`` keys). Output: a dict of
    PCollections — ``"kept"`` (records), ``"removed"`` (``schema.REMOVED_SCHEMA`` rows, stage
    ``rouge``) and ``"near_duplicate_tasks"`` (``NEAR_DUPLICATE_TASKS_SCHEMA`` rows). The kept
    set equals Self-Instruct's sequential filter run over the records in ``config.order_by``
    order; see the module docstring for how, and ``bench/results/rouge.md`` for the evidence.
    """

    def __init__(self, config: RougeConfig | None = None, *, label: str | None = None):
        super().__init__(label)
        self._config = config or RougeConfig()

    def expand(self, records):
        cfg = self._config
        prepared = records | "Prepare" >> beam.ParDo(_PrepareFn(cfg)).with_outputs(
            _EMPTY, _UNITS, main="keyed"
        )
        units = (
            prepared[_UNITS]
            | "GroupUnits" >> beam.GroupByKey()
            | "FirstOfUnit" >> beam.Map(_first_of_unit)
        )
        # Output: UnitBatch (numpy arrays of a batch of units), (partition, [(id, info tuple)])
        hashed = (
            units
            | "BatchUnits"
            >> beam.BatchElements(
                min_batch_size=min(256, cfg.batch_size), max_batch_size=cfg.batch_size
            )
            | "HashUnits" >> beam.ParDo(_HashUnitsFn(cfg)).with_outputs(_INFOS, main="batches")
        )
        vocab = AsSingleton(
            hashed.batches
            | "CountTokens" >> beam.Map(_partial_counts)
            | "Vocabulary" >> beam.CombineGlobally(_VocabularyFn())
        )
        # Output: (partition of first node, (u, v, score)) and local stars (node, label)
        joined = (
            hashed.batches
            | "Keys" >> beam.ParDo(_KeysFn(cfg), vocab)
            | "GroupKeys" >> beam.GroupByKey()
            | "ScorePairs" >> beam.ParDo(_JoinFn(cfg), vocab).with_outputs(_STARS, main="edges")
        )
        labels = joined[_STARS] | "Components" >> ConnectedComponents(
            cfg.cc_rounds, cfg.num_partitions
        )
        decided = (
            {"labels": labels, "infos": hashed[_INFOS], "edges": joined.edges}
            | "ByNode" >> beam.CoGroupByKey()
            | "RouteToComponent" >> beam.ParDo(_RouteFn(cfg.num_partitions))
            | "ByComponent" >> beam.GroupByKey()
            | "Greedy" >> beam.ParDo(_GreedyFn(cfg)).with_outputs(_TASKS, main="decisions")
        )
        # Only records of dropped units or of units with copies meet their decision in a join;
        # the side input is the sorted ids of those units (8 bytes each).
        affected = AsSingleton(
            (
                decided.decisions | "DecidedUnits" >> beam.FlatMap(_decided_unit),
                units | "CopiedUnits" >> beam.FlatMap(_copied_unit),
            )
            | "AffectedUnits" >> beam.Flatten()
            | "SortedIds" >> beam.CombineGlobally(_SortedIdsFn())
        )
        routed = prepared.keyed | "Route" >> beam.ParDo(_RouteRecords(), affected).with_outputs(
            _DIRECT, main="affected"
        )
        applied = (
            {"records": routed.affected, "decision": decided.decisions}
            | "JoinDecisions" >> beam.CoGroupByKey()
            | "Apply" >> beam.ParDo(_ApplyFn(cfg)).with_outputs(_REMOVED, main="kept")
        )
        empty = prepared[_EMPTY] | "KeptEmpty" >> beam.ParDo(_CountKept())
        return {
            "kept": (applied.kept, routed[_DIRECT], empty) | "AllKept" >> beam.Flatten(),
            "removed": applied[_REMOVED],
            "near_duplicate_tasks": decided[_TASKS],
        }
