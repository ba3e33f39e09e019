"""The financing API over HTTP: endpoints generated from the table, next actions, to-dos, live events."""

import asyncio
import json
import time

import pytest

from workflow.financing.bodies import ACTION_BODIES
from workflow.financing.table import FINANCING


@pytest.fixture
async def world(api):
    """An operator, an approved supplier, core enterprise and two funders, and one submitted financing."""
    op = await api.operator()
    people = {"op": op}
    for key, roles in (("supplier", ["supplier"]), ("core", ["core"]), ("funder_a", ["funder"]), ("funder_b", ["funder"])):
        token = await api.login(f"{key}-admin")
        e = await api.onboard(token, op, business_roles=roles)
        people[key], people[f"{key}_id"] = token, e["id"]
    people["approver"] = await api.add_member(people["core"], people["core_id"], "core-approver", ["approver"])
    people["financing"] = await api.financing(people["supplier"], people["supplier_id"], people["core_id"])
    return people


def _path(fid: int, action: str) -> str:
    return f"/api/v1/financings/{fid}/actions/{action}"


async def test_submit_shows_detail_and_who_acts_next(api, world):
    f = world["financing"]
    assert f["status"] == "submitted" and f["status_label"] == "待核心企业领用"
    assert f["face_amount"] == "500000.00" and f["requested_amount"] == "400000.00"
    assert f["supplier"]["id"] == world["supplier_id"] and f["core"]["id"] == world["core_id"]
    assert [w["action"] for w in f["waiting_for"]] == ["claim"]
    assert [t["action"] for t in f["timeline"]] == ["submit"]
    # The supplier may withdraw; the core enterprise may claim.
    assert [a["action"] for a in f["next_actions"]] == ["withdraw"]
    core_view = await api.call("GET", f"/api/v1/financings/{f['id']}", world["core"], 200)
    assert [a["action"] for a in core_view["next_actions"]] == ["claim"]
    assert core_view["next_actions"][0]["path"] == _path(f["id"], "claim")


async def test_todos_follow_the_table(api, world):
    fid = world["financing"]["id"]
    todos = await api.call("GET", "/api/v1/todos", world["core"], 200)
    assert [(t["financing"]["id"], t["action"]) for t in todos["items"]] == [(fid, "claim")]
    assert (await api.call("GET", "/api/v1/todos", world["supplier"], 200))["items"] == []
    await api.call("POST", _path(fid, "claim"), world["core"], 200)
    todos = await api.call("GET", "/api/v1/todos", world["approver"], 200)
    assert [t["action"] for t in todos["items"]] == ["approve"]
    assert (await api.call("GET", "/api/v1/todos", world["core"], 200))["items"] == []


async def test_wrong_state_is_409_naming_state_and_next(api, world):
    fid = world["financing"]["id"]
    body = await api.call("POST", _path(fid, "approve"), world["approver"], 409, json={})
    assert body["error"]["code"] == "invalid_state"
    assert "待核心企业领用" in body["error"]["message"] and "领用" in body["error"]["message"]
    assert body["error"]["details"]["state"] == "submitted"


async def test_claim_confirm_allocate_subscribe_over_http(api, world):
    fid = world["financing"]["id"]
    f = await api.call("POST", _path(fid, "claim"), world["core"], 200)
    assert f["status"] == "claimed" and f["approvals_required"] == 1
    f = await api.call("POST", _path(fid, "approve"), world["approver"], 200, json={"comment": "同意"})
    assert f["status"] == "confirmed"
    f = await api.call("POST", _path(fid, "allocate"), world["op"], 200,
                       json={"funder_ids": [world["funder_a_id"], world["funder_b_id"]]})
    assert f["status"] == "allocated"
    results = await asyncio.gather(
        api.client.post(_path(fid, "subscribe"), headers=api.auth(world["funder_a"])),
        api.client.post(_path(fid, "subscribe"), headers=api.auth(world["funder_b"])),
    )
    statuses = sorted(r.status for r in results)
    assert statuses == [200, 409]
    loser = next(r for r in results if r.status == 409)
    assert (await loser.json())["error"]["message"]
    f = await api.call("GET", f"/api/v1/financings/{fid}", world["op"], 200)
    assert f["status"] == "subscribed" and f["funder"]["id"] in (world["funder_a_id"], world["funder_b_id"])


async def test_action_retry_with_idempotency_key_replays(api, world):
    fid = world["financing"]["id"]
    headers = {"Idempotency-Key": "claim-1"} | api.auth(world["core"])
    first = await api.client.post(_path(fid, "claim"), headers=headers)
    again = await api.client.post(_path(fid, "claim"), headers=headers)
    assert first.status == again.status == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    detail = await api.call("GET", f"/api/v1/financings/{fid}", world["core"], 200)
    assert [t["action"] for t in detail["timeline"]] == ["submit", "claim"]


async def test_foreign_enterprise_sees_nothing(api, world):
    stranger = await api.login("stranger")
    await api.onboard(stranger, world["op"], business_roles=["supplier"])
    fid = world["financing"]["id"]
    body = await api.call("GET", f"/api/v1/financings/{fid}", stranger, 404)
    assert body["error"]["message"]
    assert (await api.call("GET", "/api/v1/financings", stranger, 200))["items"] == []
    await api.call("POST", _path(fid, "claim"), stranger, 404)
    await api.call("GET", f"/api/v1/financings/{fid}/events", stranger, 404)


async def test_list_filters_and_pagination(api, world):
    for _ in range(4):
        await api.financing(world["supplier"], world["supplier_id"], world["core_id"])
    page = await api.call("GET", "/api/v1/financings?limit=2", world["supplier"], 200)
    assert len(page["items"]) == 2 and page["next_cursor"]
    seen = [f["id"] for f in page["items"]]
    while page["next_cursor"]:
        page = await api.call("GET", f"/api/v1/financings?limit=2&cursor={page['next_cursor']}", world["supplier"], 200)
        seen += [f["id"] for f in page["items"]]
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)
    await api.call("POST", _path(world["financing"]["id"], "claim"), world["core"], 200)
    claimed = await api.call("GET", "/api/v1/financings?status=claimed&perspective=core", world["core"], 200)
    assert [f["id"] for f in claimed["items"]] == [world["financing"]["id"]]
    body = await api.call("GET", "/api/v1/financings?status=bogus", world["core"], 422)
    assert "未知的状态" in body["error"]["message"]
    await api.call("GET", "/api/v1/financings?cursor=garbage", world["core"], 422)
    await api.call("GET", "/api/v1/financings?limit=1000", world["core"], 422)


async def test_live_events_stream_snapshot_then_transitions(api, world):
    fid = world["financing"]["id"]
    resp = await api.client.get(f"/api/v1/financings/{fid}/events", headers=api.auth(world["supplier"]))
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")

    async def next_event() -> tuple[str, dict]:
        event, data = "", ""
        while True:
            line = (await asyncio.wait_for(resp.content.readline(), 10)).decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
            elif line == "" and event:
                return event, json.loads(data)

    kind, snapshot = await next_event()
    assert kind == "snapshot" and snapshot["status"] == "submitted"
    await api.call("POST", _path(fid, "claim"), world["core"], 200)
    kind, event = await next_event()
    assert kind == "transition"
    assert event["action"] == "claim" and event["status"] == "claimed" and event["status_label"] == "确权审批中"
    resp.close()


async def test_shutdown_ends_open_event_streams_without_waiting_for_a_keepalive(api, world):
    from echain.keys import LIVE_STREAMS
    from echain.live import KEEPALIVE_SECONDS

    resp = await api.client.get(f"/api/v1/financings/{world['financing']['id']}/events",
                                headers=api.auth(world["supplier"]))
    assert (await resp.content.readline()).startswith(b"event: snapshot")
    assert len(api.app[LIVE_STREAMS]) == 1
    started = time.monotonic()
    await api.client.server.close()  # what a deploy's SIGTERM does: stop, on_shutdown, wait for handlers
    assert time.monotonic() - started < KEEPALIVE_SECONDS / 3
    assert not api.app[LIVE_STREAMS]
    resp.close()


async def test_openapi_has_one_endpoint_per_action_with_its_body(api):
    spec = await api.call("GET", "/api/openapi.json", expect=200)
    for action, body in ACTION_BODIES.items():
        op = spec["paths"][f"/api/v1/financings/{{financing_id}}/actions/{action}"]["post"]
        assert op["summary"] == FINANCING.transition(action).label
        if body is None:
            assert "requestBody" not in op
        else:
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/" + body.__name__)
    assert "/api/v1/financings/{financing_id}/actions/mark_overdue" not in spec["paths"]


async def test_approval_policy_endpoints(api, world):
    path = f"/api/v1/enterprises/{world['core_id']}/approval-policy"
    current = await api.call("GET", path, world["core"], 200)
    assert current["tiers"][0]["approvers"] == 1 and len(current["description"]) == 2
    saved = await api.call("PUT", path, world["core"], 200,
                           json={"tiers": [{"up_to": "100000.00", "approvers": 1}, {"up_to": None, "approvers": 2}]})
    assert saved["tiers"] == [{"up_to_fen": 10000000, "approvers": 1}, {"up_to_fen": None, "approvers": 2}]
    # The next financing (face 500,000) now needs two distinct approvers.
    f = await api.financing(world["supplier"], world["supplier_id"], world["core_id"])
    f = await api.call("POST", _path(f["id"], "claim"), world["core"], 200)
    assert f["approvals_required"] == 2
    body = await api.call("PUT", path, world["approver"], 403, json={"tiers": [{"up_to": None, "approvers": 1}]})
    assert "管理员" in body["error"]["message"]


async def test_me_counts_financings_and_todos_per_business_role(api, world):
    core_me = await api.call("GET", "/api/v1/me", world["core"], 200)
    assert core_me["enterprises"][0]["role_counts"] == {"core": {"active": 1, "todos": 1}}
    supplier_me = await api.call("GET", "/api/v1/me", world["supplier"], 200)
    assert supplier_me["enterprises"][0]["role_counts"] == {"supplier": {"active": 1, "todos": 0}}
    funder_me = await api.call("GET", "/api/v1/me", world["funder_a"], 200)
    assert funder_me["enterprises"][0]["role_counts"] == {"funder": {"active": 0, "todos": 0}}
