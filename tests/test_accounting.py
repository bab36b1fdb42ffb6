import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.accounting import CountFates, ReconciliationError, reconcile

FILES = [
    {"path": "a.json", "records": 3, "dead_letters": 1},
    {"path": "b.jsonl", "records": 0, "dead_letters": 2},
]


def test_balanced_ledger_groups_fates_per_source():
    fates = [
        {"source_file": "a.json", "source": "sni", "fate": "corpus", "count": 2},
        {"source_file": "a.json", "source": "sni", "fate": "removed:exact", "count": 1},
        {"source_file": "a.json", "source": None, "fate": "dead_letter:ingest", "count": 1},
        {"source_file": "b.jsonl", "source": None, "fate": "dead_letter:ingest", "count": 2},
    ]
    ledger = reconcile(FILES, fates)
    assert ledger["sni"] == {
        "corpus": 2, "dead_letter:ingest": 1, "removed:exact": 1, "ingested": 4,
    }
    assert ledger["unknown"] == {"dead_letter:ingest": 2, "ingested": 2}


def test_a_lost_record_is_named():
    fates = [
        {"source_file": "a.json", "source": "sni", "fate": "corpus", "count": 3},
        {"source_file": "b.jsonl", "source": None, "fate": "dead_letter:ingest", "count": 2},
    ]
    with pytest.raises(ReconciliationError, match="a.json: ingested 4, accounted 3"):
        reconcile(FILES, fates)


def test_a_record_counted_twice_is_named():
    fates = [
        {"source_file": "a.json", "source": "sni", "fate": "corpus", "count": 5},
        {"source_file": "b.jsonl", "source": None, "fate": "dead_letter:ingest", "count": 2},
    ]
    with pytest.raises(ReconciliationError, match="ingested 4, accounted 5"):
        reconcile(FILES, fates)


def test_count_fates_sums_per_file_source_and_fate():
    with TestPipeline() as p:
        kept = p | "K" >> beam.Create([{"source_file": "a", "source": "s"}] * 3)
        dead = p | "D" >> beam.Create([{"source_file": "a"}, {"source_file": "b"}])
        rows = {"corpus": kept, "dead_letter:ingest": dead} | CountFates()
        assert_that(rows, equal_to([
            {"source_file": "a", "source": "s", "fate": "corpus", "count": 3},
            {"source_file": "a", "source": None, "fate": "dead_letter:ingest", "count": 1},
            {"source_file": "b", "source": None, "fate": "dead_letter:ingest", "count": 1},
        ]))
