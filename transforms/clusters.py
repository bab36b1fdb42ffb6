"""Connected components of verified near-duplicate edges, without any worker holding all edges.

Algorithm: alternating Large-Star / Small-Star (Kiveris et al., "Connected Components in
MapReduce and Beyond", SoCC 2014). Nodes are any totally ordered, hashable values; in dedup they
are rank tuples, so a component's minimum is its best-ranked record: the survivor.

* Large-Star: group edges by node ``u`` (both directions); connect every neighbour ``v > u`` to
  ``m = min(N(u) | {u})``.
* Small-Star: group edges by their larger end ``u``; connect ``u`` and every neighbour (all
  ``< u``) to ``m = min(N(u) | {u})``.

Each step is one GroupByKey (on shards of nodes, see below); a step holds one shard's
neighbourhoods in memory, never the whole graph. The rounds are unrolled into the pipeline (a
Beam graph is static): ``max_rounds`` pairs of steps. The paper proves O(log^2 n) rounds and
observes a few. Measured (``python -m transforms.clusters``): a 10,000-node path needs 15
rounds with sorted labels, 12 with shuffled ones; a star 1; random graphs of <= 41 nodes <= 5.
Dedup's default, 12 rounds, resolves any chain of up to ~2,000 near-duplicates (tested);
longer chains are left partly unresolved, never wrongly resolved.

Finished components leave the rounds. A component is finished when it is a star: one node
smaller than all its neighbours, each of which has no other neighbour. Large-Star sees every
node's whole neighbourhood, so it marks possible centres (with their degree) and leaves (at
their only neighbour); the Small-Star step after it finds the centres whose degree equals their
leaves (``finished_star``), gives each leaf its root, and marks the centre ``DONE``: in the
next Large-Star it emits nothing, and the component's edges are gone. The roots ride along to
``Resolve``, which outputs them, pickled once per step and shard and then carried unread (as
tuples re-pickled in every step, they made the rounds 10.6% of a 100k-record dedup's profile
samples; carried, 1.4%): the graph of steps is the same as without the pruning (a separate
output per round cost Flink a Python worker per round and stage). Near-duplicate clusters are
mostly stars after a round or two, so the remaining rounds carry almost nothing (100k planted
records: 0.8 CPU-s less of ~15, same assignments).

Resolution (always safe, converged or not): after the last round, a node ``x`` is assigned root
``p`` only if ``p`` is one of its parents and ``p`` has no parent of its own. If the rounds did
not converge, some nodes have a parent that is not a root: those nodes get no assignment (they
are kept, counted as ``cc:unresolved``), so nothing is ever removed in favour of a record that is
itself removed, and every assignment points inside the node's component.

Run ``python -m transforms.clusters`` to print the rounds needed by a few adversarial graphs.
"""

from __future__ import annotations

import pickle
import zlib
from collections import defaultdict
from collections.abc import Hashable, Iterable, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.worker import FrozenHeapDoFn, paused_gc

NAMESPACE = "dedup"


# --------------------------------------------------------------------------------------------
# Pure kernels
# --------------------------------------------------------------------------------------------


def large_star(node, neighbours: Iterable) -> list[tuple]:
    """Edges ``(v, m)`` for every neighbour ``v > node``, ``m`` the neighbourhood's minimum."""
    neigh = set(neighbours)
    neigh.discard(node)
    if not neigh:
        return []
    m = min(min(neigh), node)
    return [(v, m) for v in neigh if v > node]


def small_star(node, smaller_neighbours: Iterable) -> list[tuple]:
    """Edges ``(v, m)`` joining ``node`` and its smaller neighbours to their minimum ``m``."""
    neigh = set(smaller_neighbours)
    neigh.discard(node)
    if not neigh:
        return []
    m = min(neigh)
    neigh.add(node)
    return [(v, m) for v in neigh if v != m]


DONE = ("done", None)  # mark: this node's component was assigned; drop its edges


def star_marks(node, neighbours: Iterable) -> list[tuple]:
    """Marks of the finished-star check, from ``node``'s whole neighbourhood in a Large-Star step.

    A node smaller than all its neighbours (a possible star centre) tells itself its degree; a
    node whose only neighbour is smaller (a leaf) tells that neighbour. Returns ``(target,
    mark)`` pairs for the Small-Star step that follows.
    """
    neigh = set(neighbours)
    neigh.discard(node)
    if not neigh:
        return []
    m = min(neigh)
    if node < m:
        return [(node, ("centre", len(neigh)))]
    if len(neigh) == 1:
        return [(m, ("leaf", node))]
    return []


def finished_star(node, smaller_neighbours: Iterable, marks: Iterable[tuple]) -> list | None:
    """The leaves of ``node``'s component if that component is a star centred on ``node``.

    It is when the centre's degree equals the number of leaves that reported to it: every
    neighbour of ``node`` then has ``node`` as its only neighbour, so nothing else is connected
    and ``node`` is the minimum. Such a component is final: its leaves are assigned to
    ``node`` now, and its edges leave the rounds.
    """
    if any(v != node for v in smaller_neighbours):
        return None
    degree, leaves = None, set()
    for kind, value in marks:
        if kind == "centre":
            degree = value
        elif kind == "leaf":
            leaves.add(value)
    if degree is None or len(leaves) != degree:
        return None
    return sorted(leaves)


def resolve(node, links: Iterable[tuple[str, Hashable]]) -> tuple[list[tuple], int]:
    """Final assignments from ``node``'s view: ``links`` are ``("up", parent)``/``("down", child)``.

    A node without parents is a root: it assigns itself to each child. A node with both parents
    and children shows the rounds did not converge: its children stay unassigned (kept). Returns
    (assignments, number of unresolved children).
    """
    ups, downs = set(), set()
    for kind, other in links:
        (ups if kind == "up" else downs).add(other)
    if not ups:
        return [(child, node) for child in downs], 0
    return [], len(downs)


def _group(pairs: Iterable[tuple]) -> dict:
    groups = defaultdict(list)
    for k, v in pairs:
        groups[k].append(v)
    return groups


def star_components(edges: Iterable[tuple], max_rounds: int = 10) -> tuple[dict, int, int]:
    """Plain-Python driver of the Beam steps (for tests and the module's demo).

    Returns ({node: root} for non-root nodes, rounds until no edge was left or the edge set
    stopped changing, or ``max_rounds``; unresolved count). It drops a finished star's edges
    as soon as the star is found; the Beam steps drop them in the next Large-Star.
    """
    current = {(max(u, v), min(u, v)) for u, v in edges if u != v}
    roots: dict = {}
    rounds = 0
    for r in range(max_rounds):
        if not current:
            break
        rounds += 1
        both = [(u, v) for u, v in current] + [(v, u) for u, v in current]
        large, marks = set(), defaultdict(list)
        for u, ns in _group(both).items():
            large.update(large_star(u, ns))
            for target, mark in star_marks(u, ns):
                marks[target].append(mark)
        smaller = _group((max(u, v), min(u, v)) for u, v in large)
        small, finished = set(), set()
        for u in smaller.keys() | marks.keys():
            small.update(small_star(u, smaller.get(u, ())))
            leaves = None if r == max_rounds - 1 else finished_star(u, smaller.get(u, ()), marks[u])
            if leaves:
                roots.update((leaf, u) for leaf in leaves)
                finished.update(leaves)
        small = {(u, v) for u, v in small if u not in finished}
        if small == current:
            break
        current = small
    links = [(c, ("up", p)) for c, p in current] + [(p, ("down", c)) for c, p in current]
    unresolved = 0
    for node, ls in _group(links).items():
        assigned, missing = resolve(node, ls)
        unresolved += missing
        for child, root in assigned:
            roots[child] = min(root, roots.get(child, root))
    return roots, rounds, unresolved


def union_find_components(edges: Iterable[tuple]) -> dict:
    """Reference oracle: {node: component minimum} for every non-minimum node in an edge."""
    parent: dict = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in edges:
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[max(ru, rv)] = min(ru, rv)
    out = {}
    for x in list(parent):
        r = find(x)
        if r != x:
            out[x] = r
    return out


# --------------------------------------------------------------------------------------------
# Beam: every step is one GroupByKey on a *shard* of nodes; elements are lists of entries.
# --------------------------------------------------------------------------------------------
# Grouping by shard (a stable hash of the node modulo ``num_shards``) and regrouping by node in
# the shard's DoFn gives exactly the per-node neighbourhoods of a GroupByKey on nodes, while
# the runner moves a few lists instead of one element per edge and direction (per-element
# overhead dominates Beam's Python runners). ``num_shards`` bounds a shard's memory: size it
# from the number of edges (dedup derives it from the record count, see DedupConfig).


def node_shard(node, num_shards: int) -> int:
    """Stable shard of a node, identical in every worker process (never the salted ``hash()``).

    Any deterministic function of the node is correct; this one is cheap: ints modulo, tuples
    ending in an int by that int (dedup's rank keys end with a stable hash of the record),
    anything else by CRC-32 of its repr.
    """
    if type(node) is int:
        return node % num_shards
    if type(node) is tuple and node and type(node[-1]) is int:
        return node[-1] % num_shards
    return zlib.crc32(repr(node).encode("utf-8", "surrogatepass")) % num_shards


def pack(entries: list) -> bytes:
    """A shard's list of entries as one pickle: Beam then moves opaque bytes.

    Beam's FastPrimitivesCoder decodes a record dict ~6x slower than pickle (33 us vs 5 us for
    a corpus row); values (never keys) of the sharded shuffles are therefore pickled lists.
    """
    return pickle.dumps(entries, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(blobs: Iterable[bytes]) -> Iterator:
    """Entries of a shard's grouped values (each a ``pack``-ed list)."""
    for blob in blobs:
        yield from _loads(blob)


def _loads(blob: bytes):
    with paused_gc():
        return pickle.loads(blob)


def _both(u, v):
    # large-star groups by both endpoints
    return ((u, v), (v, u))


def _larger(u, v):
    # small-star groups by the larger endpoint
    return ((u, v) if u > v else (v, u),)


def _links_of(child, parent):
    return ((child, ("up", parent)), (parent, ("down", child)))


_ROUTES = {"both": _both, "larger": _larger, "links": _links_of}


def route_batch(
    edges: Iterable[tuple],
    route: str,
    num_shards: int,
    marks: Iterable[tuple] = (),
    roots: Iterable[tuple] = (),
    carried: tuple[int, list[bytes]] | None = None,
) -> list[tuple]:
    """Entries ``(node, other)`` of each edge, ``(node, mark)`` marks and ``(node, root)``
    assignments, as ``(shard, pack((entries, marks, root_blobs)))`` elements.

    Assignments are final: a shard's are pickled once, into a blob that every later step
    passes on unread (``carried``: ``(shard, blobs)`` received by the calling step).
    """
    fn = _ROUTES[route]
    out = defaultdict(lambda: ([], [], []))
    for u, v in edges:
        if u == v:
            continue
        for entry in fn(u, v):
            out[node_shard(entry[0], num_shards)][0].append(entry)
    for mark in marks:
        out[node_shard(mark[0], num_shards)][1].append(mark)
    new_roots = defaultdict(list)
    for pair in roots:
        new_roots[node_shard(pair[0], num_shards)].append(pair)
    for shard, pairs in new_roots.items():
        out[shard][2].append(pack(pairs))
    if carried is not None and carried[1]:
        out[carried[0]][2].extend(carried[1])
    return [(shard, pack(lists)) for shard, lists in out.items()]


def _regroup(blobs: Iterable[bytes]) -> tuple[dict, dict, list[bytes]]:
    """({node: [other, ...]}, {node: [mark, ...]}, root blobs) of a shard's grouped
    ``route_batch`` values (the root blobs still pickled)."""
    groups, marks, root_blobs = defaultdict(list), defaultdict(list), []
    for blob in blobs:
        entries, node_marks, roots = _loads(blob)
        for node, other in entries:
            groups[node].append(other)
        for node, mark in node_marks:
            marks[node].append(mark)
        root_blobs.extend(roots)
    return groups, marks, root_blobs


class _RouteFn(FrozenHeapDoFn):
    def __init__(self, route: str):
        self.route = route

    def process(self, edges, num_shards):
        yield from route_batch(edges, self.route, num_shards)


class _LargeStarFn(FrozenHeapDoFn):
    """(shard, neighbourhoods and marks) → Large-Star edges routed for Small-Star, with star
    marks. A node marked ``DONE`` belongs to a component already assigned: its edges go no
    further."""

    def process(self, element, num_shards):
        groups, marks, root_blobs = _regroup(element[1])
        new_edges, new_marks = [], []
        for node, neighbours in groups.items():
            if DONE in marks.get(node, ()):
                continue
            new_edges.extend(large_star(node, neighbours))
            new_marks.extend(star_marks(node, neighbours))
        carried = element[0], root_blobs
        yield from route_batch(new_edges, "larger", num_shards, new_marks, carried=carried)


class _SmallStarFn(FrozenHeapDoFn):
    """(shard, smaller neighbourhoods and marks) → Small-Star edges routed for ``route``; a
    finished star's leaves get their root (a final assignment) and its centre ``DONE``.
    """

    def __init__(self, route: str, find_finished: bool):
        self.route, self.find_finished = route, find_finished

    def process(self, element, num_shards):
        groups, marks, root_blobs = _regroup(element[1])
        new_edges, new_marks, roots = [], [], []
        for node in groups.keys() | marks.keys():
            smaller = groups.get(node, ())
            new_edges.extend(small_star(node, smaller))
            leaves = (
                finished_star(node, smaller, marks.get(node, ())) if self.find_finished else None
            )
            if leaves:
                roots.extend((leaf, node) for leaf in leaves)
                new_marks.append((node, DONE))
        carried = element[0], root_blobs
        yield from route_batch(new_edges, self.route, num_shards, new_marks, roots, carried)


class _ResolveFn(FrozenHeapDoFn):
    """(shard, lists of (node, link) and carried roots) → lists of (child, root) assignments
    (see ``resolve``)."""

    def __init__(self):
        self.unresolved = Metrics.counter(NAMESPACE, "cc:unresolved")
        self.assigned = Metrics.counter(NAMESPACE, "cc:assigned")

    def process(self, element, num_shards):
        groups, _, root_blobs = _regroup(element[1])
        pairs = [pair for blob in root_blobs for pair in _loads(blob)]
        missing = 0
        for node, links in groups.items():
            assigned, unresolved = resolve(node, links)
            missing += unresolved
            pairs.extend(assigned)
        if missing:
            self.unresolved.inc(missing)
        self.assigned.inc(len(pairs))
        out = defaultdict(list)
        for child, root in pairs:
            out[node_shard(child, num_shards)].append((child, root))
        for shard, shard_pairs in out.items():
            yield shard, pack(shard_pairs)


class ShardedConnectedComponents(beam.PTransform):
    """Lists of edges ``(u, v)`` → ``(shard, pack([(node, root), ...]))`` for non-root nodes.

    ``num_shards`` is an int or a singleton side input (``beam.pvalue.AsSingleton``); the
    output shard of ``(node, root)`` is ``node_shard(node, num_shards)``, so callers can join
    it with their own node-sharded data. A node receives at most one root when the rounds
    converged; otherwise possibly several (take the minimum) or none (it stays).
    """

    def __init__(self, *, num_shards, max_rounds: int = 10):
        super().__init__()
        if max_rounds < 1:
            raise ValueError("max_rounds must be >= 1")
        self.num_shards, self.max_rounds = num_shards, max_rounds

    def expand(self, edge_lists):
        p = self.num_shards
        # Output: (shard, pack((entries, marks))) for large-star.
        current = edge_lists | "Route" >> beam.ParDo(_RouteFn("both"), p)
        for i in range(self.max_rounds):
            last = i == self.max_rounds - 1
            current = (
                current
                | f"Round{i}/LargeStar/Group" >> beam.GroupByKey()
                | f"Round{i}/LargeStar" >> beam.ParDo(_LargeStarFn(), p)
                | f"Round{i}/SmallStar/Group" >> beam.GroupByKey()
                | f"Round{i}/SmallStar"
                >> beam.ParDo(_SmallStarFn("links" if last else "both", find_finished=not last), p)
            )
        return (
            current
            | "Resolve/Group" >> beam.GroupByKey()
            | "Resolve" >> beam.ParDo(_ResolveFn(), p)
        )


def _flatten_assignments(element):
    return unpack([element[1]])


class ConnectedComponents(beam.PTransform):
    """Edges ``(u, v)`` → ``(node, root)`` for every non-root node, root = component minimum.

    Nodes must be totally ordered, hashable and deterministically encodable (tuples of str/int
    are). Duplicate edges and self-loops are harmless. See the module docstring for the bound
    on rounds and what happens when it is not enough.
    """

    def __init__(self, *, max_rounds: int = 10, num_shards: int = 16, batch_size: int = 1000):
        super().__init__()
        self.max_rounds, self.num_shards, self.batch_size = max_rounds, num_shards, batch_size

    def expand(self, edges):
        return (
            edges
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=self.batch_size)
            | "Components"
            >> ShardedConnectedComponents(num_shards=self.num_shards, max_rounds=self.max_rounds)
            | "Unbatch" >> beam.FlatMap(_flatten_assignments)
            | "MinRoot" >> beam.CombinePerKey(min)
        )


if __name__ == "__main__":  # rounds needed by adversarial graphs
    import random

    for name, edges in [
        ("path 10k, sorted labels", [(i, i + 1) for i in range(10_000)]),
        ("path 10k, reversed", [(i + 1, i) for i in range(10_000)]),
        ("path 10k, shuffled labels", None),
        ("star 10k", [(0, i) for i in range(1, 10_000)]),
    ]:
        if edges is None:
            labels = list(range(10_001))
            random.Random(1).shuffle(labels)
            edges = [(labels[i], labels[i + 1]) for i in range(10_000)]
        roots, rounds, unresolved = star_components(edges, max_rounds=40)
        print(f"{name}: {rounds} rounds, unresolved {unresolved}, assigned {len(roots)}")
