"""Health check, error shape, OpenAPI document and docs page."""

from echain.app import api_router


async def test_healthz_reports_database_and_redis(api):
    body = await api.call("GET", "/healthz", expect=200)
    assert body == {"status": "ok", "database": "ok", "redis": "ok"}


async def test_healthz_names_redis_when_it_is_down(api):
    from echain.keys import REDIS

    await api.app[REDIS].connection_pool.disconnect()
    # Point the pool at a port nothing listens on: the probe must fail and say which service is down.
    api.app[REDIS].connection_pool.connection_kwargs.update(host="127.0.0.1", port=1, path=None)
    api.app[REDIS].connection_pool.connection_class = __import__("redis.asyncio", fromlist=["Connection"]).Connection
    resp = await api.client.get("/healthz")
    body = await resp.json()
    assert resp.status == 503
    assert body["database"] == "ok"
    assert body["redis"].startswith("down")
    assert body["status"] == "degraded"


async def test_unknown_route_uses_error_shape(api):
    body = await api.call("GET", "/api/v1/nothing-here", expect=404)
    assert body["error"]["code"] == "not_found"
    assert "不存在" in body["error"]["message"]


async def test_wrong_method_is_405_in_chinese(api):
    body = await api.call("DELETE", "/api/v1/me", expect=405)
    assert body["error"]["message"] == "不支持该请求方法"


async def test_openapi_lists_every_declared_operation(api):
    spec = await api.call("GET", "/api/openapi.json", expect=200)
    declared = {(op.method.lower(), op.path) for op in api_router().operations}
    documented = {(m, p) for p, methods in spec["paths"].items() for m in methods}
    assert declared == documented
    register = spec["paths"]["/api/v1/enterprises"]["post"]
    schema_ref = register["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = schema_ref.rsplit("/", 1)[1]
    assert set(spec["components"]["schemas"][name]["required"]) >= {"name", "uscc", "legal_rep_id"}
    assert {"401", "409", "422"} <= set(register["responses"])


async def test_docs_page_renders_operations(api):
    resp = await api.client.get("/api/docs")
    text = await resp.text()
    assert resp.status == 200
    assert "/api/v1/enterprises" in text and "注册企业" in text
