"""``instructmix demo`` on generated data: every generated record is accounted for."""

import json

from pipelines import cli


def test_demo_ingests_exactly_what_the_generator_wrote(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    description = json.loads((out / "raw" / "description.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    records = sum(d["records"] for d in description.values())
    malformed = sum(d["malformed"] for d in description.values())
    assert manifest["counts"]["totals"]["ingested"] == records + malformed
    assert sum(manifest["dead_letters_by_reason"].values()) == malformed
    assert manifest["reconciled"] is True
    assert "counts reconcile: True" in printed and str(out / "manifest.json") in printed
