"""Settings from the environment, dev secret handling, and a start on the embedded defaults."""

import re
from pathlib import Path

import pytest

from echain.app import create_app
from echain.settings import SETTINGS_DOC, Settings, SettingsError
from models.people import User
from tests.support.api import ApiClient
from tests.support.cli import run_cli
from tests.support.fake_kyc_gateway import create_fake_gateway_app

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_are_embedded(tmp_path):
    s = Settings.from_env({"ECHAIN_DATA_DIR": str(tmp_path)})
    assert s.dev and s.database_url == f"sqlite://{tmp_path}/echain.sqlite3"
    assert s.redis_url == "" and s.uses_wechat_simulator and s.port == 8080


def test_production_requires_a_secret(tmp_path):
    with pytest.raises(SettingsError, match="ECHAIN_SECRET_KEY"):
        Settings.from_env({"ECHAIN_ENV": "production", "ECHAIN_DATA_DIR": str(tmp_path)})


def test_bad_values_are_named():
    with pytest.raises(SettingsError, match="ECHAIN_PORT"):
        Settings.from_env({"ECHAIN_PORT": "eighty"})
    with pytest.raises(SettingsError, match="ECHAIN_ENV"):
        Settings.from_env({"ECHAIN_ENV": "staging"})


def test_dev_secret_is_generated_once_and_kept(tmp_path):
    s = Settings.from_env({"ECHAIN_DATA_DIR": str(tmp_path)})
    first = s.with_dev_secret().secret_key
    assert len(first) >= 32 and first == s.with_dev_secret().secret_key
    assert (tmp_path / "dev-secret.key").stat().st_mode & 0o777 == 0o600


def test_readme_documents_every_setting():
    text = README.read_text()
    for name, _default, _meaning in SETTINGS_DOC:
        assert re.search(rf"\|\s*`{name}`\s*\|", text), f"README configuration table lacks {name}"


async def test_app_runs_on_embedded_defaults(aiohttp_client, tmp_path):
    """What `make run` does on a fresh machine: SQLite file, embedded Redis, in-process WeChat simulator."""
    settings = Settings.from_env({"ECHAIN_DATA_DIR": str(tmp_path / "var")})
    result = await run_cli(settings, "migrate", database_url="")
    assert result.returncode == 0, result.stderr
    api = ApiClient(await aiohttp_client(create_app(settings)))
    assert await api.call("GET", "/healthz", expect=200) == {"status": "ok", "database": "ok", "redis": "ok"}
    token = await api.login("newcomer")
    e = await api.register(token)
    assert e["status"] == "draft"
    assert (tmp_path / "var" / "echain.sqlite3").exists()
    assert (tmp_path / "var" / "dev-secret.key").exists()


async def test_admin_grant_cli_makes_an_operator(settings, api):
    token = await api.login("ops")
    me = await api.call("GET", "/api/v1/me", token, 200)
    openid = (await User.get(id=me["user"]["id"])).openid
    result = await run_cli(settings, "admin", "grant", openid)
    assert result.returncode == 0 and "平台运营人员" in result.stdout
    me = await api.call("GET", "/api/v1/me", token, 200)
    assert me["user"]["is_platform_operator"] is True


GATEWAY_SECRET = "gw-secret-0123456789"


async def _register_through_gateway(aiohttp_client, aiohttp_server, settings, our_secret: str) -> dict:  # noqa: ANN001
    """Register one enterprise with the HTTP four-element provider pointed at a local fake gateway."""
    gateway = await aiohttp_server(create_fake_gateway_app("echain-test", GATEWAY_SECRET, mismatches=set()))
    configured = settings.with_(kyc_provider="http", kyc_gateway_url=str(gateway.make_url("")).rstrip("/"),
                                kyc_key_id="echain-test", kyc_secret=our_secret)
    api = ApiClient(await aiohttp_client(create_app(configured)))
    return await api.register(await api.login("alice"))


async def test_http_four_element_gateway_is_used_when_configured(aiohttp_client, aiohttp_server, settings):
    e = await _register_through_gateway(aiohttp_client, aiohttp_server, settings, GATEWAY_SECRET)
    assert e["kyc_outcome"] == "match"
    from models.enterprises import FourElementCheck

    check = await FourElementCheck.get(enterprise_id=e["id"])
    assert check.provider == "gateway" and check.reference


async def test_gateway_with_wrong_secret_records_error(aiohttp_client, aiohttp_server, settings):
    e = await _register_through_gateway(aiohttp_client, aiohttp_server, settings, "not-the-right-secret")
    assert e["kyc_outcome"] == "error"
    assert any("四要素核验未通过" in m for m in e["missing_for_review"])


async def test_wechat_sim_cli_runs_standalone(tmp_path):
    """`echain wechat-sim` serves WeChat's API shapes on its own port."""
    import asyncio
    import socket
    import sys

    import aiohttp

    from wechat.simulator import SIM_APP_ID, SIM_APP_SECRET

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "echain.cli", "wechat-sim", "--port", str(port),
        env={"ECHAIN_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/cgi-bin/token", params={
                        "grant_type": "client_credential", "appid": SIM_APP_ID, "secret": SIM_APP_SECRET}) as resp:
                        body = await resp.json(content_type=None)
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("wechat-sim did not start")
        assert body["expires_in"] == 7200 and body["access_token"]
    finally:
        proc.terminate()
        await proc.wait()
