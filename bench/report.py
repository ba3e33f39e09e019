"""Shared result writer: statistics, machine facts, the Markdown table and bench/results/<name>.json."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0–100) with linear interpolation between the closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values_ms: list[float]) -> dict[str, float | None]:
    """n, p50, p95, p99 and max of latencies in ms, rounded for a small JSON file (None without samples)."""
    if not values_ms:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    return {"n": len(values_ms), "p50": round(percentile(values_ms, 50), 2), "p95": round(percentile(values_ms, 95), 2),
            "p99": round(percentile(values_ms, 99), 2), "max": round(max(values_ms), 2)}


def ratio(ours: float | None, other: float | None) -> float:
    """ours ÷ other, rounded (0 when either side is missing or the other is 0)."""
    return round(ours / other, 2) if ours is not None and other else 0.0


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_facts(database: dict[str, str] | None = None) -> dict[str, Any]:
    """Where the numbers were measured: CPUs, OS, Python, database kind + server version, git commit."""
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "database": database or {"kind": "none"},
        "git_commit": commit + ("+dirty" if dirty else ""),
        "measured_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }


@dataclass
class Result:
    """One benchmark's outcome: a table for people, `data` for machines."""

    name: str
    title: str
    tables: list[dict[str, Any]] = field(default_factory=list)  # each {"title", "columns", "rows"}
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    database: dict[str, str] | None = None
    skipped: str = ""  # why the benchmark did not run (rows stay empty)
    quick: bool = False

    def markdown(self) -> str:
        """The result as a Markdown section: title, facts line, table, notes."""
        out = [f"### {self.title}", ""]
        if self.skipped:
            return "\n".join([*out, f"Skipped: {self.skipped}", ""])
        for table in self.tables:
            if table.get("title"):
                out += [f"**{table['title']}**", ""]
            out += ["| " + " | ".join(table["columns"]) + " |", "|" + "---|" * len(table["columns"])]
            out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table["rows"]]
            out.append("")
        out += [f"- {note}" for note in self.notes] + ([""] if self.notes else [])
        return "\n".join(out)

    def table(self, columns: list[str], rows: list[list[Any]], title: str = "") -> None:
        """Add a table."""
        self.tables.append({"title": title, "columns": columns, "rows": rows})


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def write(result: Result, out_dir: Path = RESULTS) -> Path:
    """Write <name>.json (result + machine facts) and refresh latest.md from every JSON present."""
    out_dir.mkdir(parents=True, exist_ok=True)
    record = asdict(result) | {"machine": machine_facts(result.database)}
    path = out_dir / f"{result.name}.json"
    path.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n")
    write_latest(out_dir)
    return path


ORDER = ("callback", "face", "api", "contract")


def write_latest(out_dir: Path = RESULTS) -> Path:
    """latest.md: every stored result in the fixed order, with the machine facts of each."""
    sections = []
    for name in ORDER:
        path = out_dir / f"{name}.json"
        if not path.exists():
            continue
        record = json.loads(path.read_text())
        result = Result(**{k: v for k, v in record.items() if k != "machine"})
        m = record["machine"]
        db = m["database"]
        db_text = db.get("kind", "none") + (f" {db['version']}" if db.get("version") else "")
        facts = (f"_{m['measured_at']}, commit {m['git_commit']}, {m['cpu_count']} CPUs, {m['platform']}, "
                 f"Python {m['python']}, database: {db_text}{', QUICK mode' if result.quick else ''}_")
        sections.append(result.markdown().replace("\n\n", f"\n\n{facts}\n\n", 1))
    path = out_dir / "latest.md"
    path.write_text("\n".join(sections))
    return path
