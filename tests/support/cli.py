"""Run the `echain` command in a separate process, as an operator would."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from echain.settings import Settings


async def run_cli(settings: Settings, *args: str, database_url: str | None = None,
                  extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`echain <args>` against the test's database and data dir (plus `extra_env`); returns the finished process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHAIN_")}
    env["ECHAIN_DATA_DIR"] = str(settings.data_dir)
    url = settings.database_url if database_url is None else database_url
    if url:
        env["ECHAIN_DATABASE_URL"] = url
    env |= extra_env or {}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "echain.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
