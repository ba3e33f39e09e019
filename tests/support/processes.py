"""Run `echain` commands as long-lived processes (servers, workers), as an operator deploys them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**values: str) -> dict[str, str]:
    """This environment without any ECHAIN_/WECHAT_/MINIAPP_ setting, plus `values`."""
    prefixes = ("ECHAIN_", "WECHAT_", "MINIAPP_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(values)
    return env


def run_echain(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `echain <args>` to completion with exactly `env` (see `clean_env`)."""
    return subprocess.run([sys.executable, "-m", "echain.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@dataclass
class Process:
    """One running `echain …` process; its output goes to a log file (shown when a test fails)."""

    name: str
    proc: subprocess.Popen
    log: Path

    def tail(self, lines: int = 40) -> str:
        """The last lines of the process's output."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return f"--- {self.name} (exit {self.proc.poll()}) ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class Fleet:
    """Processes started together and always stopped together (newest first)."""

    log_dir: Path
    env: dict[str, str]
    processes: list[Process] = field(default_factory=list)

    def start(self, name: str, *args: str) -> Process:
        """Start `echain <args>` in the background with the fleet's environment."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "echain.cli", *args], env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        process = Process(name, proc, log)
        self.processes.append(process)
        return process

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run `echain <args>` to completion with the fleet's environment."""
        return run_echain(self.env, *args, timeout=timeout)

    def logs(self) -> str:
        """Every process's recent output (for failure messages)."""
        return "\n".join(p.tail() for p in self.processes)

    def stop_all(self) -> None:
        """Stop every process this fleet started."""
        for process in reversed(self.processes):
            with contextlib.suppress(Exception):
                process.stop()


@asynccontextmanager
async def fleet(log_dir: Path, env: dict[str, str]) -> AsyncIterator[Fleet]:
    """A Fleet whose processes are stopped however the block ends."""
    group = Fleet(log_dir, env)
    try:
        yield group
    finally:
        await asyncio.to_thread(group.stop_all)


async def wait_http(url: str, process: Process, *, within: float = 60) -> None:
    """Wait until `url` answers 200; fail early when the process died."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        while True:
            if process.proc.poll() is not None:
                raise AssertionError(f"{process.name} exited before answering {url}\n{process.tail()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            if time.monotonic() > deadline:
                raise AssertionError(f"{process.name} did not answer {url} within {within} s\n{process.tail()}")
            await asyncio.sleep(0.2)
