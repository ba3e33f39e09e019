"""The container files: their invariants, and every command the image runs, run here outside Docker.

No Docker engine runs on the test machines, so the Dockerfile and docker-compose.yml are read as data: the final
stage's ENV, CMD and HEALTHCHECK and compose's commands are executed as subprocesses against this checkout's
.venv (the image's /app/.venv), a temporary data dir (the image's /data volume) and the test database and Redis
(what compose's postgres and redis provide).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from echain.settings import Settings
from signing.fonts import SYSTEM_CJK_FONT_CANDIDATES
from wechat import simulator

ROOT = Path(__file__).resolve().parents[1]
IMAGE_VENV = "/app/.venv"
TEST_SECRET = "container-test-secret-0123456789-abcdefghijklmnop"


# ---- reading the files ------------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    out = []
    for line in logical:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (a FROM starts one)."""
    result: list[list[tuple[str, str]]] = []
    for instr in dockerfile():
        if instr[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instr)
    return result


def build_args() -> dict[str, str]:
    """ARG defaults declared before the first FROM."""
    args = {}
    for word, rest in dockerfile():
        if word == "FROM":
            break
        if word == "ARG" and "=" in rest:
            name, default = rest.split("=", 1)
            args[name] = default
    return args


def exec_form(rest: str) -> list[str]:
    """The JSON array of an exec-form CMD / HEALTHCHECK CMD."""
    assert rest.startswith("["), f"use the exec form (no shell in between): {rest}"
    return json.loads(rest)


def image_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    """The stage's ENV, with $VAR references expanded against the values set before them."""
    env: dict[str, str] = {"PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"}
    for word, rest in stage:
        if word != "ENV":
            continue
        for pair in shlex.split(rest):
            name, _, val = pair.partition("=")
            env[name] = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), val)
    return env


def instructions(stage: list[tuple[str, str]], word: str) -> list[str]:
    return [rest for w, rest in stage if w == word]


def healthcheck_command(stage: list[tuple[str, str]]) -> list[str]:
    (check,) = instructions(stage, "HEALTHCHECK")
    return exec_form(check.split(" CMD ", 1)[1].strip())


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return {k: v for k, v in pairs}


# ---- invariants --------------------------------------------------------------------------------------------


def test_dockerfile_invariants() -> None:
    build, runtime = stages()[0], stages()[-1]
    assert len(stages()) >= 2, "multi-stage: the build tools stay out of the runtime image"
    assert build_args()["PYTHON_IMAGE"] == "python:3.11-slim-bookworm"
    assert all(rest.split()[0] == "${PYTHON_IMAGE}" for rest in instructions(build + runtime, "FROM"))
    # Non-root, by number (Kubernetes' runAsNonRoot can only check a numeric user).
    (user,) = instructions(runtime, "USER")
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0
    # Dependencies exactly from the lock, without the dev group, with the Makefile's uv and no downloaded Python.
    syncs = [r for r in instructions(build, "RUN") if "uv sync" in r]
    assert syncs and all("--locked" in r and "--no-dev" in r for r in syncs)
    assert not any(re.search(r"--(dev|all-groups|group|only-dev)\b", r) for r in syncs)
    uv_version = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert any(f"uv=={uv_version}" in r for r in instructions(build, "RUN"))
    assert image_env(build)["UV_PYTHON_DOWNLOADS"] == "never"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "dlib; sys_platform == 'never'" in pyproject["tool"]["uv"]["override-dependencies"]
    assert any(d.startswith("dlib-bin") for d in pyproject["project"]["dependencies"])
    # Only the built venv reaches the runtime stage.
    assert [r for r in instructions(runtime, "COPY")] == ["--from=build /app/.venv /app/.venv"]
    env = image_env(runtime)
    assert env["ECHAIN_HOST"] == "0.0.0.0" and env["ECHAIN_ENV"] == "production"
    assert env["PATH"].startswith(f"{IMAGE_VENV}/bin:")
    assert json.loads(instructions(runtime, "VOLUME")[0]) == [env["ECHAIN_DATA_DIR"]]
    assert instructions(runtime, "EXPOSE") == [env["ECHAIN_PORT"]]
    assert exec_form(instructions(runtime, "CMD")[0]) == ["echain", "serve"]
    assert healthcheck_command(runtime) == ["python", "-m", "echain.healthcheck"]
    # The CJK font installed is one signing/ can embed (TrueType, a path it looks for).
    apt = " ".join(r for r in instructions(runtime, "RUN") if "apt-get install" in r)
    assert "fonts-wqy-zenhei" in apt and "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc" in SYSTEM_CJK_FONT_CANDIDATES
    assert "rm -rf /var/lib/apt/lists/*" in apt


def test_dockerignore_keeps_local_state_out_and_the_sources_in() -> None:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/")) for p in patterns)

    for local in (".venv", ".tools", "var", ".git", ".env", ".env.production", "tests", ".pytest_cache"):
        assert ignored(local), local
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    for needed in ["pyproject.toml", "uv.lock", "README.md", *packages["packages"]]:
        assert not ignored(needed), f"{needed} is needed to build the wheel"


def test_compose_services() -> None:
    spec = compose()
    services = spec["services"]
    assert {"postgres", "redis", "migrate", "app", "worker", "nginx", "wechat-sim"} <= set(services)
    app = services["app"]
    assert "ports" not in app, "no fixed host port: `--scale app=3` would clash on it"
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["echain", "migrate"] and services["migrate"]["restart"] == "no"
    assert services["worker"]["command"] == ["echain", "worker"]
    for no_http in ("migrate", "worker", "wechat-sim"):  # the image's /healthz probe would fail there
        assert services[no_http]["healthcheck"] == {"disable": True}, no_http
    assert services["nginx"]["depends_on"]["app"]["condition"] == "service_healthy"
    env = app["environment"]
    assert env["ECHAIN_SECRET_KEY"].startswith("${ECHAIN_SECRET_KEY:?")  # required, from env / .env
    assert "${POSTGRES_PASSWORD:?" in env["ECHAIN_DATABASE_URL"]
    assert env["ECHAIN_DATABASE_URL"].startswith("postgres://") and env["ECHAIN_REDIS_URL"].startswith("redis://redis:")
    assert services["worker"]["environment"] == env and services["migrate"]["environment"] == env
    assert services["worker"]["volumes"] == app["volumes"]  # documents and CA shared by replicas and the worker
    # nginx spreads over every replica of `app` on the port the image serves on.
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    port = image_env(stages()[-1])["ECHAIN_PORT"]
    assert re.search(rf"server app:{port} resolve\b", conf)
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in services["nginx"]["volumes"]
    # The simulator: profile `sim`; deploy/sim.env points app and worker at it with the simulator's accounts.
    sim = services["wechat-sim"]
    assert sim["profiles"] == ["sim"]
    command = sim["command"]
    assert command[:2] == ["echain", "wechat-sim"] and command[command.index("--host") + 1] == "0.0.0.0"
    sim_env = env_file(ROOT / "deploy" / "sim.env")
    assert sim_env["COMPOSE_PROFILES"] == "sim"
    assert sim_env["WECHAT_API_BASE"] == f"http://wechat-sim:{command[command.index('--port') + 1]}"
    assert (sim_env["WECHAT_APP_ID"], sim_env["WECHAT_APP_SECRET"]) == (simulator.SIM_APP_ID, simulator.SIM_APP_SECRET)
    assert (sim_env["MINIAPP_APP_ID"], sim_env["MINIAPP_APP_SECRET"]) == (simulator.SIM_MINIAPP_ID,
                                                                          simulator.SIM_MINIAPP_SECRET)
    for name in sim_env:
        if name != "COMPOSE_PROFILES":
            assert name in env, f"{name} in deploy/sim.env does not reach the app"
    assert env["WECHAT_API_BASE"] == "${WECHAT_API_BASE:-https://api.weixin.qq.com}"


# ---- running the image's commands -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_env(settings: Settings, data_dir: Path, **extra: str) -> dict[str, str]:
    """The image's ENV, as the runtime supplies it: the image's venv is this checkout's, the volume a temp dir,
    the database and Redis the test's (compose's postgres and redis), the secret from .env."""
    env = image_env(stages()[-1])
    env["PATH"] = env["PATH"].replace(IMAGE_VENV, sys.prefix) + os.pathsep + os.environ.get("PATH", "")
    env |= {
        "HOME": str(data_dir),
        "ECHAIN_DATA_DIR": str(data_dir),
        "ECHAIN_SECRET_KEY": TEST_SECRET,
        "ECHAIN_DATABASE_URL": settings.database_url,
        "ECHAIN_REDIS_URL": settings.redis_url,
        # Two shared CPU cores here: start the face pool on first use rather than at start-up.
        "ECHAIN_FACE_POOL_WARM": "false",
    } | extra
    return env


def resolve(argv: list[str], env: dict[str, str]) -> list[str]:
    found = shutil.which(argv[0], path=env["PATH"])
    assert found, f"{argv[0]} not found on the image's PATH"
    return [found, *argv[1:]]


def run(argv: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(resolve(argv, env), env=env, capture_output=True, text=True, timeout=timeout)


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def stop(proc: subprocess.Popen) -> int:
    """SIGTERM (what `docker stop` sends) and wait."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line written must be one JSON object (ECHAIN_LOG_FORMAT=json in the image)."""
    text = path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines, "nothing was logged"
    return lines


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - a local test server
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def answers(url: str) -> bool:
    """True once something at `url` answers 200."""
    try:
        return get(url)[0] == 200
    except OSError:
        return False


def test_image_start_command_and_healthcheck(settings: Settings, tmp_path: Path) -> None:
    runtime = stages()[-1]
    port = free_port()
    env = run_env(settings, tmp_path / "data", ECHAIN_PORT=str(port), ECHAIN_METRICS_TOKEN="scrape-token-1")
    (tmp_path / "data").mkdir()
    health = healthcheck_command(runtime)
    assert run(health, env).returncode != 0  # nothing serves yet
    migrated = run(compose()["services"]["migrate"]["command"], env)
    assert migrated.returncode == 0, migrated.stderr
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(resolve(exec_form(instructions(runtime, "CMD")[0]), env), env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: run(health, env).returncode == 0 or server.poll() is not None, 90, "the health check")
        assert server.poll() is None, log_path.read_text()
        base = f"http://127.0.0.1:{port}"
        status, headers, _ = get(f"{base}/api/v1/nothing-here", {"X-Request-Id": "container-check-1"})
        assert status == 404 and headers["X-Request-Id"] == "container-check-1"
        assert get(f"{base}/metrics")[0] == 401  # production: the bearer token is required
        status, _, body = get(f"{base}/metrics", {"Authorization": "Bearer scrape-token-1"})
        assert status == 200 and b"echain_http_request_duration_seconds_bucket" in body
    finally:
        stopped = stop(server)
    assert stopped == 0, log_path.read_text()
    failed = run(health, env)
    assert failed.returncode != 0 and "unhealthy" in failed.stderr
    lines = json_lines(log_path)
    assert all({"ts", "level", "logger", "message", "request_id"} <= set(line) for line in lines)
    access = [line for line in lines if line.get("request_id") == "container-check-1"]
    assert access and access[0]["logger"] == "echain.access" and access[0]["status"] == 404


def test_worker_and_simulator_commands_run(settings: Settings, tmp_path: Path) -> None:
    services = compose()["services"]
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    sim_command = [*services["wechat-sim"]["command"]]
    sim_command[sim_command.index("--port") + 1] = str(port)
    env = run_env(settings, data, WECHAT_API_BASE=f"http://127.0.0.1:{port}")
    worker_log, sim_log = tmp_path / "worker.log", tmp_path / "sim.log"
    with worker_log.open("w") as wlog, sim_log.open("w") as slog:
        sim = subprocess.Popen(resolve(sim_command, env), env=env, stdout=slog, stderr=subprocess.STDOUT)
        worker = subprocess.Popen(resolve(services["worker"]["command"], env), env=env, stdout=wlog,
                                  stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/sim/calls") or sim.poll() is not None, 60,
                   "the simulator")
        assert sim.poll() is None, sim_log.read_text()
        wait_until(lambda: "Starting worker" in worker_log.read_text() or worker.poll() is not None, 60,
                   "the worker")
        assert worker.poll() is None, worker_log.read_text()
    finally:
        worker_rc, sim_rc = stop(worker), stop(sim)
    assert worker_rc == 0, worker_log.read_text()
    assert sim_rc == 0, sim_log.read_text()
    lines = json_lines(worker_log)
    assert any(line["logger"] == "arq.worker" and "Starting worker" in line["message"] for line in lines)


@pytest.mark.parametrize(("environ", "url"), [
    ({}, "http://127.0.0.1:8080/healthz"),
    ({"ECHAIN_HOST": "0.0.0.0", "ECHAIN_PORT": "9000"}, "http://127.0.0.1:9000/healthz"),
    ({"ECHAIN_HOST": "10.0.0.5"}, "http://10.0.0.5:8080/healthz"),
    ({"ECHAIN_HOST": "::1", "ECHAIN_PORT": "81"}, "http://[::1]:81/healthz"),
])
def test_healthcheck_probes_the_configured_port(environ: dict[str, str], url: str) -> None:
    from echain.healthcheck import health_url

    assert health_url(environ) == url
