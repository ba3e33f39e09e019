"""`make bench` smoke test: the fastest benchmark (contract) in quick mode writes the expected JSON and table."""

from __future__ import annotations

import json

from bench import contract, report


async def test_contract_benchmark_writes_json_with_machine_facts_and_a_ratio(tmp_path) -> None:
    result = await contract.run(quick=True, runs=1)
    path = report.write(result, tmp_path)

    record = json.loads(path.read_text())
    assert path.name == "contract.json"
    assert {"name", "title", "tables", "data", "notes", "machine"} <= record.keys()
    assert {"cpu_count", "platform", "python", "database", "git_commit"} <= record["machine"].keys()
    assert record["machine"]["cpu_count"] >= 1
    assert set(record["data"]["ratio"]) == {"sign_funder", "sign_supplier", "sign_core", "verify"}
    assert all(r > 0 for r in record["data"]["ratio"].values())
    assert all(ms > 0 for ms in record["data"]["median_ms"].values())
    rows = record["tables"][0]["rows"]
    assert [r[0] for r in rows][:2] == ["render contract PDF", "sign #1 (funder, incremental)"]
    latest = (tmp_path / "latest.md").read_text()
    assert latest.startswith("### Contract") and "| sign #3 (core, incremental) |" in latest
