"""Connected components: Large-Star/Small-Star against a plain union-find, pure and on Beam."""

from __future__ import annotations

import pickle
import random

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms import clusters

edges_strategy = st.lists(
    st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=0, max_size=80
)


def test_kernels():
    assert sorted(clusters.large_star(5, [3, 7, 9, 5])) == [(7, 3), (9, 3)]
    assert sorted(clusters.large_star(2, [5, 7])) == [(5, 2), (7, 2)]
    assert sorted(clusters.small_star(9, [4, 2, 7])) == [(4, 2), (7, 2), (9, 2)]
    assert clusters.small_star(3, []) == []
    assigned, unresolved = clusters.resolve(1, [("down", 4), ("down", 6)])
    assert sorted(assigned) == [(4, 1), (6, 1)] and unresolved == 0
    assert clusters.resolve(4, [("up", 1), ("down", 9)]) == ([], 1)


def test_star_marks_and_finished_stars():
    assert clusters.star_marks(2, [5, 7, 5]) == [(2, ("centre", 2))]
    assert clusters.star_marks(5, [2]) == [(2, ("leaf", 5))]
    assert clusters.star_marks(5, [2, 7]) == []  # neither a centre nor a leaf
    assert clusters.star_marks(5, [5]) == []
    centre_and_leaves = [("centre", 2), ("leaf", 7), ("leaf", 5), ("leaf", 5)]
    assert clusters.finished_star(2, [], centre_and_leaves) == [5, 7]
    assert clusters.finished_star(2, [], [("centre", 3), ("leaf", 7), ("leaf", 5)]) is None
    assert clusters.finished_star(2, [1], centre_and_leaves) is None  # 2 is not the minimum
    assert clusters.finished_star(2, [], [("leaf", 7)]) is None  # no centre mark


def _packed(entries, marks=(), roots=()):
    root_blobs = [clusters.pack(list(roots))] if roots else []
    return [clusters.pack((list(entries), list(marks), root_blobs))]


def _unpacked(outputs):
    entries, marks, roots = [], [], []
    for _, blob in outputs:
        e, m, root_blobs = pickle.loads(blob)
        entries += e
        marks += m
        roots += [pair for b in root_blobs for pair in pickle.loads(b)]
    return sorted(entries), sorted(marks), sorted(roots)


def test_a_finished_star_is_assigned_and_leaves_the_rounds():
    """Small-Star gives a star's leaves their root and marks its centre; Large-Star then drops
    the star's edges and carries the roots on (still pickled), and Resolve outputs them."""
    small = clusters._SmallStarFn("both", find_finished=True)
    centre_and_leaves = [(2, ("centre", 2)), (2, ("leaf", 5)), (2, ("leaf", 7))]
    edges, marks, roots = _unpacked(
        small.process((0, _packed([(5, 2), (7, 2)], centre_and_leaves)), 1)
    )
    assert edges == [(2, 5), (2, 7), (5, 2), (7, 2)]
    assert marks == [(2, clusters.DONE)]
    assert roots == [(5, 2), (7, 2)]

    large = clusters._LargeStarFn()
    out = list(large.process((0, _packed(edges, marks, roots)), 1))
    carried = pickle.loads(out[0][1])[2]
    assert carried == [clusters.pack(roots)]  # the same blob, passed on unread
    after = _unpacked(out)
    assert after == ([], [(2, ("leaf", 5)), (2, ("leaf", 7))], roots)
    # without the DONE mark, the star's edges would go round again
    assert _unpacked(large.process((0, _packed(edges)), 1))[0] == [(5, 2), (7, 2)]

    resolved = clusters._ResolveFn().process((0, _packed([], after[1], roots)), 1)
    assert [pickle.loads(blob) for _, blob in resolved] == [[(5, 2), (7, 2)]]


@settings(max_examples=300, deadline=None)
@given(edges_strategy)
def test_star_rounds_equal_union_find(edges):
    roots, _, unresolved = clusters.star_components(edges, max_rounds=30)
    assert roots == clusters.union_find_components(edges)
    assert unresolved == 0


@settings(max_examples=200, deadline=None)
@given(edges_strategy, st.integers(1, 3))
def test_too_few_rounds_are_safe(edges, max_rounds):
    """Unconverged: fewer merges, but every assignment is right and points at a kept root."""
    roots, _, _ = clusters.star_components(edges, max_rounds=max_rounds)
    truth = clusters.union_find_components(edges)
    for node, root in roots.items():
        assert root < node
        assert truth.get(root, root) == truth[node]  # same component
        assert root not in roots  # the survivor is never itself removed


def test_long_chains_converge_within_the_default_rounds():
    labels = list(range(2001))
    random.Random(3).shuffle(labels)
    for edges in (
        [(i, i + 1) for i in range(2000)],  # sorted path: the slowest case measured
        [(labels[i], labels[i + 1]) for i in range(2000)],
    ):
        roots, rounds, unresolved = clusters.star_components(edges, max_rounds=12)
        assert unresolved == 0 and roots == clusters.union_find_components(edges)
        assert rounds <= 12


def test_node_shard_is_stable_and_in_range():
    node = (0, "id-1", "file.json", 7, 123456789)
    assert clusters.node_shard(node, 10) == 123456789 % 10
    assert clusters.node_shard(17, 5) == 2
    assert clusters.node_shard(("a", "b"), 7) == clusters.node_shard(("a", "b"), 7) < 7


def _run_beam(edge_sets, max_rounds):
    """All graphs through one ConnectedComponents (nodes tagged by graph, so disjoint)."""
    edges = [((g, u), (g, v)) for g, es in enumerate(edge_sets) for u, v in es]
    expected = sorted(clusters.union_find_components(edges).items())
    with BeamTestPipeline(runner="FnApiRunner") as p:
        got = (
            p
            | beam.Create(edges)
            | clusters.ConnectedComponents(max_rounds=max_rounds, num_shards=3)
        )
        assert_that(got, equal_to(expected))


def test_beam_components_equal_union_find():
    """One pipeline run (a run costs seconds, an edge nothing) over many graphs: random ones
    (seeded), a 300-node chain of rank-key tuples, a star, and a mix."""
    rng = random.Random(11)
    graphs = [
        [(rng.randint(0, n), rng.randint(0, n)) for _ in range(rng.randint(1, 80))]
        for n in (5, 12, 25, 40, 40, 40)
    ]
    chain = [
        ((0, f"id{i:03d}", "f", i, i * 7919), (0, f"id{i + 1:03d}", "f", i + 1, (i + 1) * 7919))
        for i in range(300)
    ]
    star = [((1, "hub", "g", 0, 1), (1, f"leaf{i}", "g", i, i)) for i in range(1, 50)]
    _run_beam([*graphs, chain, star, chain[:5] + star[:5]], max_rounds=12)


@settings(max_examples=3, deadline=None)
@given(st.lists(edges_strategy, min_size=1, max_size=8))
def test_beam_components_equal_union_find_on_random_graphs(edge_sets):
    # random graphs of <= 41 nodes need <= 5 rounds (3,000 tried with star_components)
    _run_beam(edge_sets, max_rounds=6)


def test_beam_with_too_few_rounds_is_safe_and_agrees_with_the_driver():
    """Finished stars leave the Beam rounds one step later than the driver's: same result."""
    rng = random.Random(5)
    edge_sets = [
        [(rng.randint(0, n), rng.randint(0, n)) for _ in range(rng.randint(1, 60))]
        for n in (4, 10, 30, 40, 40)
    ] + [[(i, i + 1) for i in range(40)], [(i, 1000 + i) for i in range(20)]]
    edges = [((g, u), (g, v)) for g, es in enumerate(edge_sets) for u, v in es]
    truth = clusters.union_find_components(edges)
    for max_rounds in (1, 2, 3):
        expected, _, _ = clusters.star_components(edges, max_rounds=max_rounds)
        with BeamTestPipeline(runner="FnApiRunner") as p:
            got = (
                p
                | beam.Create(edges)
                | clusters.ConnectedComponents(max_rounds=max_rounds, num_shards=3)
            )
            assert_that(got, equal_to(sorted(expected.items())))
        for node, root in expected.items():
            assert root < node and truth.get(root, root) == truth[node] and root not in expected
        assert len(expected) < len(truth)  # not converged: the path needs 6 rounds
