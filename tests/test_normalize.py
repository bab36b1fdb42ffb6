from hypothesis import given
from hypothesis import strategies as st

from transforms.normalize import normalize_record, record_id
from transforms.schema import FIELDS, new_record


def _record(**kw):
    base = dict(source="alpaca", source_file="/data/a/alpaca.json", source_index=7,
                task="alpaca", definition="Add the numbers.", input="1 2", output="3")
    base.update(kw)
    return new_record(**base)


def test_id_is_stable_and_independent_of_the_directory():
    a = record_id(_record())
    assert a == record_id(_record())
    assert a == record_id(_record(source_file="gs://bucket/elsewhere/alpaca.json"))
    assert len(a) == 32


def test_id_changes_with_content_and_position():
    a = record_id(_record())
    assert a != record_id(_record(output="4"))
    assert a != record_id(_record(source_index=8))
    assert a != record_id(_record(source_file="/data/a/other.json"))


def test_a_record_that_does_not_fit_the_schema_becomes_a_dead_letter():
    record = _record(references=["ok", 3])
    kept, dead = normalize_record(record)
    assert kept is None
    assert dead["reason"] == "schema_mismatch" and dead["stage"] == "normalize"
    assert "references" in dead["detail"] and dead["source_file"] == "/data/a/alpaca.json"


def test_unknown_and_missing_fields_are_reported():
    record = _record()
    del record["label"]
    record["colour"] = "red"
    _, dead = normalize_record(record)
    assert "missing field label" in dead["detail"] and "unknown field colour" in dead["detail"]


@given(st.text(), st.text(), st.integers(min_value=0, max_value=2**40))
def test_any_well_typed_record_normalizes_with_every_field(text_in, text_out, index):
    kept, dead = normalize_record(_record(input=text_in, output=text_out, source_index=index))
    assert dead is None and set(kept) == set(FIELDS) and kept["id"]


_CANDIDATES = [
    None, "text", "", 3, True, 2.5, [], ["a", None], [1], ["a", 2], [[1]],
    {"role": "user", "content": "hi"}, [{"role": "user", "content": "hi"}],
    [{"role": "user", "content": 3}], [{"role": "user", "colour": "red"}],
    [{"input": "x", "output": "y", "explanation": None}], [{"input": 1}], [None],
]


def test_every_value_the_schema_check_accepts_converts_to_arrow():
    """Whatever the per-type checkers accept, pyarrow must convert: else the writer fails later."""
    import pyarrow as pa

    from transforms.normalize import _FIELD_CHECKS

    accepted = 0
    for name, arrow_type, fits in _FIELD_CHECKS:
        for value in _CANDIDATES:
            try:
                pa.array([value], type=arrow_type)
                converts = True
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
                converts = False
            if fits(value):
                accepted += 1
                assert converts, (name, value)
    assert accepted > len(_FIELD_CHECKS)  # None fits every field, and more than None fits
