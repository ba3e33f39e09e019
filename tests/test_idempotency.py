"""Idempotency-Key: same key and body replay the first answer; a different body is refused."""

import asyncio

from models.enterprises import Enterprise
from tests.support.api import enterprise_body


async def test_retry_with_same_key_replays_without_doing_it_twice(api):
    token = await api.login("alice")
    body = enterprise_body()
    headers = {"Idempotency-Key": "reg-001"}
    first = await api.client.post("/api/v1/enterprises", json=body, headers=headers | api.auth(token))
    again = await api.client.post("/api/v1/enterprises", json=body, headers=headers | api.auth(token))
    assert first.status == again.status == 201
    assert await first.json() == await again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await Enterprise.filter(uscc=body["uscc"]).count() == 1


async def test_same_key_different_body_is_422(api):
    token = await api.login("alice")
    headers = {"Idempotency-Key": "reg-002"} | api.auth(token)
    await api.client.post("/api/v1/enterprises", json=enterprise_body(), headers=headers)
    resp = await api.client.post("/api/v1/enterprises", json=enterprise_body(), headers=headers)
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "idempotency_key_reused"


async def test_errors_are_replayed_too_and_keys_are_per_person(api):
    alice, bob = await api.login("alice"), await api.login("bob")
    bad = enterprise_body(uscc="123")
    h = {"Idempotency-Key": "same-key"}
    r1 = await api.client.post("/api/v1/enterprises", json=bad, headers=h | api.auth(alice))
    r2 = await api.client.post("/api/v1/enterprises", json=bad, headers=h | api.auth(alice))
    assert r1.status == r2.status == 422 and await r1.json() == await r2.json()
    # Bob's identical key is his own: his request runs normally.
    ok = await api.client.post("/api/v1/enterprises", json=enterprise_body(), headers=h | api.auth(bob))
    assert ok.status == 201 and "Idempotent-Replayed" not in ok.headers


async def test_concurrent_duplicates_run_once(api):
    token = await api.login("alice")
    body = enterprise_body()
    headers = {"Idempotency-Key": "reg-race"} | api.auth(token)
    responses = await asyncio.gather(*[api.client.post("/api/v1/enterprises", json=body, headers=headers) for _ in range(10)])
    statuses = sorted(r.status for r in responses)
    assert set(statuses) <= {201, 409}
    assert await Enterprise.filter(uscc=body["uscc"]).count() == 1


async def test_openapi_documents_the_header(api):
    spec = await api.call("GET", "/api/openapi.json", expect=200)
    params = spec["paths"]["/api/v1/enterprises"]["post"]["parameters"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in params)
