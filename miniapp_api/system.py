"""Health check, the generated OpenAPI document, and its docs page."""

from __future__ import annotations

import asyncio
import html
import json

from aiohttp import web

from echain import db
from echain.api import ApiRouter, Call, json_response, openapi_document
from echain.keys import REDIS
from miniapp_api.schemas import HealthOut

router = ApiRouter()
_OPENAPI = web.AppKey("openapi", dict)


@router.get("/healthz", summary="健康检查", tag="系统", response=HealthOut, auth=False, errors=(503,))
async def healthz(call: Call) -> web.Response:
    """200 when the database and Redis answer; 503 naming the one that does not."""
    database = await _probe(db.ping())
    redis = await _probe(call.app[REDIS].ping())
    ok = database == "ok" and redis == "ok"
    body = HealthOut(status="ok" if ok else "degraded", database=database, redis=redis)
    return json_response(body.model_dump(), 200 if ok else 503)


async def _probe(check) -> str:  # noqa: ANN001 - any awaitable
    try:
        # shield: on timeout the probe keeps running instead of being cancelled; tortoise 1.1.9's SQLite client
        # takes its connection lock before opening the connection and never releases it if that step is cancelled,
        # which would leave every later query waiting for ever.
        await asyncio.wait_for(asyncio.shield(check), timeout=2)
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; the reason is reported
        return f"down: {type(exc).__name__}"
    return "ok"


def install_docs(app: web.Application, api: ApiRouter) -> None:
    """Serve `/api/openapi.json` and `/api/docs`, built from the declared operations."""
    app[_OPENAPI] = openapi_document(api, title="echain 小程序接口", version="1")
    app.router.add_get("/api/openapi.json", _openapi_json)
    app.router.add_get("/api/docs", _docs_page)


async def _openapi_json(request: web.Request) -> web.Response:
    return json_response(request.app[_OPENAPI])


async def _docs_page(request: web.Request) -> web.Response:
    # Rendered on the server from the same document: works offline, no third-party scripts.
    spec = request.app[_OPENAPI]
    parts = [f"<h1>{html.escape(spec['info']['title'])}</h1>",
             '<p>机器可读文档：<a href="/api/openapi.json">/api/openapi.json</a></p>']
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            parts.append(_operation_html(path, method, op))
    body = "\n".join(parts)
    page = (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>echain 接口文档</title>"
        "<style>body{font-family:sans-serif;max-width:980px;margin:2em auto;padding:0 1em}"
        "section{border:1px solid #ddd;border-radius:6px;margin:1em 0;padding:.5em 1em}"
        "code.m{font-weight:bold;text-transform:uppercase}pre{background:#f6f6f6;padding:.5em;overflow:auto}</style>"
        f"</head><body>{body}</body></html>"
    )
    return web.Response(text=page, content_type="text/html")


def _operation_html(path: str, method: str, op: dict) -> str:
    responses = ", ".join(f"{code} {html.escape(r['description'])}" for code, r in op["responses"].items())
    request = op.get("requestBody", {}).get("content", {})
    schema = next(iter(request.values()), {}).get("schema") if request else None
    schema_html = f"<pre>{html.escape(json.dumps(schema, ensure_ascii=False, indent=1))}</pre>" if schema else ""
    return (
        f"<section><h3><code class='m'>{method}</code> <code>{html.escape(path)}</code> — "
        f"{html.escape(op['summary'])}</h3><p>{html.escape(op.get('description', ''))}</p>"
        f"{schema_html}<p>响应：{responses}</p></section>"
    )
