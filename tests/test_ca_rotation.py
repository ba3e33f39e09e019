"""Rotating the platform CA: contracts signed under the old CA keep verifying when its certificate is named in
ECHAIN_CA_TRUSTED_CERTS (API and `echain contract verify`), and the new CA alone signs from then on."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from redis.asyncio import Redis

from echain import db
from echain.app import create_app
from echain.contract_ca import earlier_ca_pems, load_platform_ca, trusted_ca_pems
from echain.keys import DEPS
from echain.settings import Settings, SettingsError
from models.financing import Contract, SignerCredential
from signing.ca import CA_CERT_FILE, PlatformCA
from tests.support.api import ApiClient
from tests.support.cli import run_cli
from tests.support.factories import advance, contract_services, make_cast

FIELDS = ["Sig_funder", "Sig_supplier", "Sig_core"]


def test_the_setting_takes_commas_or_the_path_separator():
    listed = Settings.from_env({"ECHAIN_CA_TRUSTED_CERTS": f"/ca/2023.pem, /ca/2024.pem{os.pathsep}/ca/2025.pem,"})
    assert listed.ca_trusted_certs == ("/ca/2023.pem", "/ca/2024.pem", "/ca/2025.pem")
    assert Settings.from_env({}).ca_trusted_certs == ()


def test_only_readable_ca_certificates_are_accepted(tmp_path: Path):
    first, second = PlatformCA.generate(common_name="旧根证书一"), PlatformCA.generate(common_name="旧根证书二")
    bundle = tmp_path / "old-cas.pem"
    bundle.write_bytes(first.cert_pem + second.cert_pem)  # one file may hold several
    settings = Settings(data_dir=tmp_path, ca_trusted_certs=(str(bundle),))
    assert earlier_ca_pems(settings) == (first.cert_pem, second.cert_pem)
    signer = first.issue_signer("王五", "0" * 32, "山东供货有限公司", "91370100MA3C000000")
    leaf = tmp_path / "signer.pem"
    leaf.write_bytes(signer.cert_pem)
    for name in (str(leaf), str(tmp_path / "missing.pem")):
        with pytest.raises(SettingsError, match="ECHAIN_CA_TRUSTED_CERTS"):
            earlier_ca_pems(settings.with_(ca_trusted_certs=(name,)))


async def _check(api: ApiClient, token: str, contract_id: int) -> dict:
    return await api.call("GET", f"/api/v1/contracts/{contract_id}/verification", token, 200)


def _states(report: dict) -> list[tuple[str, bool, bool, bool]]:
    return [(s["field"], s["intact"], s["valid"], s["trusted"]) for s in report["signatures"]]


async def test_old_contracts_verify_after_the_ca_is_rotated(aiohttp_client, settings: Settings, tmp_path: Path):
    # Under CA #1 (created under <data dir>/ca, as at the first start): one contract fully signed, one half-way.
    ca1 = load_platform_ca(settings)
    redis = Redis.from_url(settings.redis_url)
    try:
        async with db.database(settings.database_url):
            services = dataclasses.replace(contract_services(redis, settings.data_dir, settings.secret_key), ca=ca1)
            cast = await make_cast(services)
            old = await advance(cast, "signed")
            mixed = await advance(cast, "signing")  # the funder has signed; supplier and core sign after the switch
            old_contract = await Contract.get(financing_id=old.id)
            old_pdf = await services.storage.get(old_contract.sha256)
    finally:
        await redis.aclose()

    # The documented switch: keep the old certificate, move <data dir>/ca away, a new CA is created at start.
    old_ca_dir = tmp_path / "ca-retired"
    shutil.move(settings.data_dir / "ca", old_ca_dir)
    old_cert = old_ca_dir / CA_CERT_FILE

    client = await aiohttp_client(create_app(settings))
    api = ApiClient(client)
    op = await api.operator()
    contracts = client.app[DEPS].contracts
    ca2 = contracts.ca
    assert ca2.cert_pem != ca1.cert_pem and contracts.trust_roots == (ca2.cert_pem,)
    # Without the setting the old signatures are intact and valid, but not trusted.
    report = await _check(api, op, old_contract.id)
    assert _states(report) == [(f, True, True, False) for f in FIELDS]
    assert not report["intact"] and not report["tampered"] and report["summary"].startswith("签名不受信任")
    # New signatures come from CA #2 only: the signers' CA #1 certificates are replaced at their next signature.
    cast.services = contracts
    new = await advance(cast, "signed")
    mixed = await advance(cast, "signed", mixed)
    new_contract, mixed_contract = await Contract.get(financing_id=new.id), await Contract.get(financing_id=mixed.id)
    assert (await _check(api, op, new_contract.id))["intact"]
    half = await _check(api, op, mixed_contract.id)
    assert _states(half) == [("Sig_funder", True, True, False), ("Sig_supplier", True, True, True),
                             ("Sig_core", True, True, True)]
    creds = await SignerCredential.all()
    certs = [x509.load_pem_x509_certificate(c.cert_pem.encode()) for c in creds]
    assert len(certs) == 3 and all(ca2.issued(c) and not ca1.issued(c) for c in certs)
    await client.close()

    # With CA #1's certificate in ECHAIN_CA_TRUSTED_CERTS all three old signatures are valid again.
    rotated = settings.with_(ca_trusted_certs=(str(old_cert),))
    client = await aiohttp_client(create_app(rotated))
    api = ApiClient(client)
    services = client.app[DEPS].contracts
    assert services.ca.cert_pem == ca2.cert_pem  # the old CA only verifies; it never becomes the issuer again
    assert services.trust_roots == (ca2.cert_pem, ca1.cert_pem) == trusted_ca_pems(rotated)
    report = await _check(api, op, old_contract.id)
    assert report["intact"] and report["matches_record"] and not report["tampered"], report["summary"]
    assert _states(report) == [(f, True, True, True) for f in FIELDS]
    assert all(s["ok"] for s in report["signatures"]) and "3 个签名均有效" in report["summary"]
    assert (await _check(api, op, new_contract.id))["intact"]
    assert (await _check(api, op, mixed_contract.id))["intact"]
    # A changed byte in the stored old contract is still tampering, trusted CA or not.
    stored = services.storage.path(old_contract.sha256)
    changed = bytearray(stored.read_bytes())
    changed[len(changed) // 2] ^= 0x01
    stored.write_bytes(bytes(changed))
    report = await _check(api, op, old_contract.id)
    assert report["tampered"] and not report["intact"] and not report["matches_record"] and "篡改" in report["summary"]

    # The CLI trusts the same roots by default: the current CA plus ECHAIN_CA_TRUSTED_CERTS.
    files = {}
    for name, contract in (("old", old_contract), ("new", new_contract), ("mixed", mixed_contract)):
        files[name] = tmp_path / f"{name}.pdf"
        files[name].write_bytes(old_pdf if name == "old" else await services.storage.get(contract.sha256))
    tampered = bytearray(old_pdf)
    tampered[len(tampered) // 3] ^= 0x01
    files["tampered"] = tmp_path / "tampered.pdf"
    files["tampered"].write_bytes(bytes(tampered))
    trust = {"ECHAIN_CA_TRUSTED_CERTS": str(old_cert)}

    untrusted = await run_cli(settings, "contract", "verify", str(files["old"]))
    assert untrusted.returncode == 1 and "签名不受信任" in untrusted.stdout, untrusted.stdout + untrusted.stderr
    for name in ("old", "new", "mixed"):
        ok = await run_cli(settings, "contract", "verify", str(files[name]), extra_env=trust)
        assert ok.returncode == 0 and "结论：完整" in ok.stdout, ok.stdout + ok.stderr
    bad = await run_cli(settings, "contract", "verify", str(files["tampered"]), extra_env=trust)
    assert bad.returncode == 1 and "篡改" in bad.stdout, bad.stdout + bad.stderr

    # --ca replaces the configured roots and may be repeated.
    current_cert = settings.data_dir / "ca" / CA_CERT_FILE
    only_new = await run_cli(settings, "contract", "verify", str(files["mixed"]), "--ca", str(current_cert),
                             extra_env=trust)
    assert only_new.returncode == 1 and "签名不受信任" in only_new.stdout, only_new.stdout
    both = await run_cli(settings, "contract", "verify", str(files["mixed"]), "--ca", str(current_cert),
                         "--ca", str(old_cert), "--json")
    assert both.returncode == 0, both.stdout + both.stderr
    assert '"intact": true' in both.stdout

