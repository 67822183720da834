"""Every committed benchmarks/results/*.json carries the fields the issues require of a figure.

A record is an object (or one of a list of them) with metric, value, baseline {name, value},
command, hardware, versions and date; a file that is recipe exploration rather than a figure says
so with "exploration": true and needs only metric and a description.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
REQUIRED = ("metric", "value", "baseline", "command", "hardware", "versions", "date")
FILES = sorted(RESULTS.glob("*.json"))


def test_results_exist():
    assert FILES, f"no results files under {RESULTS}"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_result_records_have_required_fields(path: Path):
    data = json.loads(path.read_text())
    records = data if isinstance(data, list) else [data]
    assert records, f"{path.name}: empty"
    for rec in records:
        assert isinstance(rec, dict), f"{path.name}: a record is not an object"
        if rec.get("exploration") is True:
            assert "metric" in rec and ("what" in rec or "method" in rec), \
                f"{path.name}: exploration without a description"
            continue
        missing = [k for k in REQUIRED if k not in rec]
        assert not missing, f"{path.name} ({rec.get('metric')}): missing {missing}"
        base = rec["baseline"]
        assert isinstance(base, dict) and {"name", "value"} <= base.keys(), (
            f"{path.name} ({rec['metric']}): baseline needs name and value")
        assert isinstance(rec["hardware"], dict) and isinstance(rec["versions"], dict)
        assert isinstance(rec["value"], (int, float)) and not isinstance(rec["value"], bool), (
            f"{path.name} ({rec['metric']}): value is not a number")
