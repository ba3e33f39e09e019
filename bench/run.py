"""Run benchmarks: `python -m bench [callback face api contract] [--quick] [--out DIR]` (default: all).

Each benchmark module has `run(quick) -> Result`; the shared writer prints its Markdown table and writes
bench/results/<name>.json (with machine facts) and bench/results/latest.md. BENCH_QUICK=1 = --quick.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import time
from pathlib import Path

from bench.report import ORDER, RESULTS, Result, write


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description="echain benchmarks")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run ({', '.join(ORDER)}); default all")
    parser.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
                        help="small counts and short durations (also BENCH_QUICK=1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory (default bench/results)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in ORDER]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(ORDER)}")
    return args


def run_one(name: str, quick: bool) -> Result:
    """Run one benchmark in a fresh event loop."""
    module = importlib.import_module(f"bench.{name}")
    return asyncio.run(module.run(quick))


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmarks (all by default), printing and storing each result."""
    args = parse(argv)
    names = [n for n in ORDER if n in (args.names or ORDER)]
    for name in names:
        started = time.monotonic()
        sys.stdout.write(f"== {name}{' (quick)' if args.quick else ''} …\n")
        sys.stdout.flush()
        result = run_one(name, args.quick)
        path = write(result, args.out)
        sys.stdout.write(result.markdown() + f"\n({time.monotonic() - started:.0f} s; {path})\n\n")
        sys.stdout.flush()
    return 0
