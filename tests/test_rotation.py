"""`echain rotate-secret`: data written under secret A reads back under secret B, nothing under A remains,
and a second run changes nothing."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from biometric.enrollment import REVIEW_PREFIX, load_encoding, review_context, seal_encoding
from echain import db
from echain.app import create_app
from echain.contract_ca import load_platform_ca
from echain.keys import DEPS, REDIS
from echain.pii import PiiCipher, PiiError
from echain.rotation import SESSION_KEY_CONTEXT, SESSION_PREFIX
from echain.settings import Settings
from models.biometrics import FaceTemplate
from models.enterprises import Enterprise
from models.financing import SignerCredential
from models.people import User
from signing import CAError, SignerIdentity, SignerKeyError
from tests.conftest import TEST_SECRET
from tests.support.api import ApiClient, new_resident_id
from tests.support.processes import clean_env, run_echain
from workflow.financing.esign import signer_identity, signer_passphrase
from workflow.onboarding import ID_CONTEXT

SECRET_B = "rotated-secret-key-b-that-is-long-enough-0123456789abcdef"
OLD_VAR = "ECHAIN_OLD_SECRET_KEY"


def rotate(settings: Settings, new: str, old: str) -> tuple[int, str]:
    """`echain rotate-secret --old-secret-env …` as an operator runs it (secrets only in the environment)."""
    env = clean_env(ECHAIN_DATA_DIR=str(settings.data_dir), ECHAIN_DATABASE_URL=settings.database_url,
                    ECHAIN_REDIS_URL=settings.redis_url, ECHAIN_SECRET_KEY=new, **{OLD_VAR: old})
    done = run_echain(env, "rotate-secret", "--old-secret-env", OLD_VAR)
    return done.returncode, done.stdout + done.stderr


async def snapshot() -> dict[str, list]:
    """Every secret-derived column, to compare runs."""
    return {
        "enterprises": await Enterprise.all().order_by("id").values_list("legal_rep_id_enc", "legal_rep_id_hash"),
        "templates": [bytes(b) for b in await FaceTemplate.all().order_by("id").values_list("encoding_enc", flat=True)],
        "signers": [bytes(b) for b in await SignerCredential.all().order_by("id").values_list("pkcs12", flat=True)],
    }


async def test_rotate_secret_rekeys_everything_and_reruns_as_a_no_op(aiohttp_client, settings: Settings) -> None:
    """ID numbers and look-up hashes, face templates, signer keys, the CA key, sessions and review photos."""
    old, new = PiiCipher(TEST_SECRET), PiiCipher(SECRET_B)
    # ---- under secret A, through the real app --------------------------------------------------------------
    api = ApiClient(await aiohttp_client(create_app(settings)))
    op, admin = await api.operator(), await api.login("rotation-admin")
    rep_id, draft_rep_id = new_resident_id("19750505"), new_resident_id("19820202")
    approved = await api.onboard(admin, op, legal_rep_id=rep_id)
    draft = await api.register(admin, legal_rep_id=draft_rep_id)
    await api.call("POST", f"/api/v1/enterprises/{approved['id']}/invitations", admin, 201, json={"roles": ["approver"]})
    user = await User.get(id=(await api.call("GET", "/api/v1/me", admin, 200))["user"]["id"])
    enterprise = await Enterprise.get(id=approved["id"])
    deps, redis = api.app[DEPS], api.app[REDIS]
    vector = np.linspace(-0.2, 0.2, 128)
    template = await FaceTemplate.create(user=user, source="reference_photo", approved=True,
                                         encoding_enc=seal_encoding(deps, user.id, vector))
    identity = await signer_identity(deps.contracts, user, enterprise, person_name="张三")
    review_key = REVIEW_PREFIX + str(template.id)
    await redis.set(review_key, deps.pii.encrypt_bytes(b"jpeg bytes", context=review_context(template.id)), ex=3600)
    ca_cert = load_platform_ca(settings).cert_pem
    await api.client.close()

    # ---- rotate A → B ---------------------------------------------------------------------------------------
    code, out = await asyncio.to_thread(rotate, settings, SECRET_B, TEST_SECRET)
    assert code == 0, out
    assert "企业法定代表人身份证号（密文与检索哈希）：已轮换 2" in out
    assert "人脸特征模板：已轮换 1" in out and "签署人证书私钥（PKCS#12）：已轮换 1" in out
    assert "平台 CA 私钥：已轮换 1" in out and "待审核参考照片（Redis，72 小时内删除）：已轮换 1" in out
    assert "1 个未使用的邀请码" in out  # cannot be re-hashed: reported for reissue

    # ---- everything reads back under B, nothing under A remains ---------------------------------------------
    settings_b = settings.with_(secret_key=SECRET_B)
    api = ApiClient(await aiohttp_client(create_app(settings_b)))
    deps, redis = api.app[DEPS], api.app[REDIS]
    for e_id, number in ((approved["id"], rep_id), (draft["id"], draft_rep_id)):
        row = await Enterprise.get(id=e_id)
        assert new.decrypt(row.legal_rep_id_enc, context=ID_CONTEXT) == number
        with pytest.raises(PiiError):
            old.decrypt(row.legal_rep_id_enc, context=ID_CONTEXT)
        assert row.legal_rep_id_hash == new.lookup_hash(number, context=ID_CONTEXT)
        assert row.legal_rep_id_hash != old.lookup_hash(number, context=ID_CONTEXT)
        found = await Enterprise.filter(legal_rep_id_hash=new.lookup_hash(number, context=ID_CONTEXT)).values_list(
            "id", flat=True)
        assert list(found) == [e_id]  # look-up by ID number works under B
    # The app on B decrypts the ID number (four-element re-check of the draft), and the session survived.
    assert (await api.call("POST", f"/api/v1/enterprises/{draft['id']}/verification", admin, 200))["kyc_outcome"] == "match"
    template = await FaceTemplate.get(id=template.id)
    assert np.array_equal(load_encoding(deps, template), vector)
    with pytest.raises(PiiError):
        old.decrypt_bytes(bytes(template.encoding_enc), context=f"biometric.face_template:{user.id}")
    again = await signer_identity(deps.contracts, user, enterprise, person_name="张三")
    assert again.fingerprint_sha256 == identity.fingerprint_sha256  # re-wrapped, not re-issued
    assert await SignerCredential.all().count() == 1
    with pytest.raises(SignerKeyError):
        SignerIdentity.from_pkcs12(bytes((await SignerCredential.get()).pkcs12),
                                   signer_passphrase(TEST_SECRET, user.id, enterprise.id))
    assert load_platform_ca(settings_b).cert_pem == ca_cert
    with pytest.raises(CAError):
        load_platform_ca(settings)
    sessions = [json.loads(await redis.get(k)) async for k in redis.scan_iter(match=SESSION_PREFIX + "*")]
    assert len(sessions) == 2  # the operator's and the admin's, still valid and readable under B only
    for record in sessions:
        new.decrypt(record["sk"], context=SESSION_KEY_CONTEXT)
        with pytest.raises(PiiError):
            old.decrypt(record["sk"], context=SESSION_KEY_CONTEXT)
    assert new.decrypt_bytes(await redis.get(review_key), context=review_context(template.id)) == b"jpeg bytes"
    assert 0 < await redis.ttl(review_key) <= 3600

    # ---- a rerun recognises everything as rotated -----------------------------------------------------------
    before = await snapshot()
    code, out = await asyncio.to_thread(rotate, settings, SECRET_B, TEST_SECRET)
    assert code == 0, out
    assert out.count("已轮换 0") == 7 and "共 0 项改用新密钥" in out
    assert await snapshot() == before


async def test_rotate_secret_refuses_a_wrong_old_secret_and_secrets_on_argv(aiohttp_client, settings: Settings) -> None:
    """A wrong old secret changes nothing; the same secret twice, or no secret in the environment, is refused."""
    api = ApiClient(await aiohttp_client(create_app(settings)))
    op, admin = await api.operator(), await api.login("rotation-admin")
    await api.onboard(admin, op)
    before = await snapshot()
    await api.client.close()
    wrong = "a-wrong-old-secret-that-is-long-enough-0123456789abcd"
    code, out = await asyncio.to_thread(rotate, settings, SECRET_B, wrong)
    assert code == 2 and "密钥轮换未开始" in out, out
    code, out = await asyncio.to_thread(rotate, settings, TEST_SECRET, TEST_SECRET)
    assert code == 2 and "新旧 ECHAIN_SECRET_KEY 相同" in out, out
    env = clean_env(ECHAIN_DATA_DIR=str(settings.data_dir), ECHAIN_DATABASE_URL=settings.database_url,
                    ECHAIN_SECRET_KEY=SECRET_B)
    done = await asyncio.to_thread(run_echain, env, "rotate-secret", "--old-secret-env", OLD_VAR)
    assert done.returncode == 2 and "密钥不得出现在命令行参数中" in done.stderr
    async with db.database(settings.database_url):
        assert await snapshot() == before
