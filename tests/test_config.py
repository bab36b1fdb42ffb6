import pytest

from pipelines.config import ConfigError, build_config, load_config


def test_defaults_when_no_file():
    config = load_config(None)
    assert config.section("ingest").max_record_bytes == 16 * 2**20
    assert len(config.fingerprint()) == 12


def test_unknown_section_and_key_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['dedupe'\]"):
        build_config({"dedupe": {}})
    path = tmp_path / "c.yaml"
    path.write_text("ingest:\n  max_record_byte: 3\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key\(s\) \['max_record_byte'\]"):
        load_config(str(path))


def test_invalid_value_is_reported_with_section():
    with pytest.raises(ConfigError, match="section 'ingest'.*positive"):
        build_config({"ingest": {"max_record_bytes": 0}})


def test_fingerprint_follows_values():
    assert build_config({}).fingerprint() != build_config(
        {"ingest": {"max_record_bytes": 5}}
    ).fingerprint()


def test_a_bad_field_mapping_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown schema fields"):
        build_config({"ingest": {"mapping": {"answer": "a"}}})
