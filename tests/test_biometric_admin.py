"""An operator deletes a person's face data (PIPL §47: on request through customer service, or after the person left
their enterprise) through the same use case as the person's own withdrawal, with the reason in the ledger."""

from __future__ import annotations

from typing import Any

import pytest

from biometric import tickets
from biometric.enrollment import REVIEW_PREFIX
from biometric.errors import TicketRejected
from echain.keys import REDIS
from models.biometrics import BiometricConsent, FaceTemplate
from models.ledger import LedgerEntry
from tests.support.api import ApiClient

# The face tests' fixtures: one warm face pool, the real app with it, an enterprise whose legal representative's
# ID-card image is a real photo.
from tests.test_biometric_api import (  # noqa: F401 - pytest fixtures
    CONTRACT,
    PURPOSE,
    Person,
    api,
    enrolled_rep,
    face_pool,
    upload_reference,
    world,
)
from tests.test_biometric_support import head_turn_frames, needs_faces, photo
from workflow import ledger

pytestmark = needs_faces

REASON = "用户通过客服电话申请删除人脸信息（工单 2025-0042）"


def erase_path(user_id: int) -> str:
    return f"/api/v1/admin/biometrics/people/{user_id}"


async def user_id(person: Person) -> int:
    return (await person.call("GET", "/api/v1/me", 200))["user"]["id"]


async def test_operator_deletes_a_persons_face_data(api: ApiClient, world: dict[str, Any]) -> None:
    rep = await enrolled_rep(world)
    unused = await rep.attempt(expect=201)  # a signing ticket not yet used
    pending = await upload_reference(rep, photo("obama/obama.jpg"), 201)  # and a photo awaiting review
    redis = api.app[REDIS]
    assert await redis.exists(REVIEW_PREFIX + str(pending["id"]))
    operator = Person(api, world["operator"])
    rep_id, operator_id = await user_id(rep), await user_id(operator)
    template_ids = sorted(await FaceTemplate.filter(user_id=rep_id).values_list("id", flat=True))
    assert len(template_ids) == 2

    gone = await operator.call("DELETE", erase_path(rep_id), 200, json={"reason": REASON})
    assert gone == {"user_id": rep_id, "consent_withdrawn": True, "templates_deleted": 2, "tickets_revoked": 1}
    assert await FaceTemplate.filter(user_id=rep_id).count() == 0
    assert not await redis.exists(REVIEW_PREFIX + str(pending["id"]))
    assert not await BiometricConsent.filter(user_id=rep_id, withdrawn_at__isnull=True).exists()
    with pytest.raises(TicketRejected):
        await tickets.consume_ticket(redis, unused["ticket"], rep_id, CONTRACT, PURPOSE)
    # Verification is refused exactly as after the person's own withdrawal.
    status = await rep.status()
    assert status["consent"] is None and status["template"] is None and status["pending_reference"] is None
    assert (await rep.challenge(403))["error"]["code"] == "biometric_consent_required"
    refused = await rep.verify(head_turn_frames(("left", "right")), "whatever", 403)
    assert refused["error"]["code"] == "biometric_consent_required"
    # The ledger names who, whose and why, with template ids only (never an encoding).
    entry = await LedgerEntry.get(action="biometric_data_deleted_by_operator")
    assert (entry.actor, entry.subject) == (f"user:{operator_id}", f"user:{rep_id}")
    assert entry.payload == {"templates_deleted": template_ids, "consent_withdrawn": True, "reason": REASON}
    assert not await LedgerEntry.filter(action="biometric_consent_withdrawn").exists()

    # Again: nothing is left to remove, which is an answer, not an error; the request is still on record.
    again = await operator.call("DELETE", erase_path(rep_id), 200, json={"reason": "重复申请，再次确认已删除"})
    assert again == {"user_id": rep_id, "consent_withdrawn": False, "templates_deleted": 0, "tickets_revoked": 0}
    entries = await LedgerEntry.filter(action="biometric_data_deleted_by_operator").order_by("seq")
    assert [e.payload["templates_deleted"] for e in entries] == [template_ids, []]
    assert (await ledger.verify()).ok


async def test_only_operators_may_delete_and_only_existing_people(api: ApiClient, world: dict[str, Any]) -> None:
    rep, admin, operator = world["rep"], world["admin"], Person(api, world["operator"])
    await rep.consent()
    rep_id = await user_id(rep)
    # Not an operator: refused before the look-up, so nobody can probe which user ids exist.
    for who, target in ((admin, rep_id), (rep, rep_id), (admin, 999_999)):
        refused = await who.call("DELETE", erase_path(target), 403, json={"reason": REASON})
        assert refused["error"]["code"] == "platform_operator_required" and "平台运营" in refused["error"]["message"]
    assert await BiometricConsent.filter(user_id=rep_id, withdrawn_at__isnull=True).exists()
    missing = await operator.call("DELETE", erase_path(999_999), 404, json={"reason": REASON})
    assert missing["error"]["code"] == "user_not_found" and missing["error"]["message"] == "用户不存在"
    for body in ({}, {"reason": "   "}):  # the reason is required
        invalid = await operator.call("DELETE", erase_path(rep_id), 422, json=body)
        assert invalid["error"]["code"] == "validation_failed"
    assert await BiometricConsent.filter(user_id=rep_id, withdrawn_at__isnull=True).exists()
    assert not await LedgerEntry.filter(action="biometric_data_deleted_by_operator").exists()
    # Consent alone (never enrolled) is still withdrawn by the operator.
    gone = await operator.call("DELETE", erase_path(rep_id), 200, json={"reason": "已从企业离职"})
    assert gone == {"user_id": rep_id, "consent_withdrawn": True, "templates_deleted": 0, "tickets_revoked": 0}


def test_openapi_describes_the_operator_deletion() -> None:
    from biometric.api import router
    from echain.api import openapi_document

    doc = openapi_document(router, title="echain", version="test")
    op = doc["paths"]["/api/v1/admin/biometrics/people/{user_id}"]["delete"]
    assert {"403", "404", "422"} <= set(op["responses"]) and "requestBody" in op
