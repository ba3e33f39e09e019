"""Declared API operations: one decorator registers a route and its OpenAPI description together.

Handlers receive a parsed `Call` (validated body and query, path ids, the logged-in user) and return a
pydantic model (rendered as JSON), a plain `web.StreamResponse`, or None (204). The OpenAPI document is
generated from the same declarations, so it cannot drift from what the handlers accept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from echain import idempotency, validation
from workflow import outbox
from workflow.errors import DomainError, InvalidInput, NotFound, UnsupportedMediaType

B = TypeVar("B", bound=BaseModel)


@dataclass
class Call(Generic[B]):
    """What a handler gets: the request, its validated parts and the caller."""

    request: web.Request
    body: Any = None
    query: Any = None
    ids: dict[str, int] = field(default_factory=dict)
    user: Any = None  # models.User once authenticated

    @property
    def app(self) -> web.Application:
        """The application (for typed service keys)."""
        return self.request.app


Handler = Callable[[Call], Awaitable[Any]]
Authenticator = Callable[[web.Request], Awaitable[Any]]


@dataclass
class Operation:
    """One declared endpoint."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    auth: bool = True
    multipart: dict[str, str] | None = None  # field name → description, for upload endpoints
    binary_response: str | None = None  # content type description for downloads
    errors: tuple[int, ...] = ()
    operation_id: str = ""
    idempotent: bool = False  # honours the Idempotency-Key header (state-changing JSON operations)
    # For idempotent operations that commit a transition: the answer to a retry whose earlier attempt committed
    # but lost its answer (e.g. the connection dropped after COMMIT), given the transition's subject.
    replay: Callable[[Call, str], Awaitable[Any]] | None = None


_PATH_PARAM = re.compile(r"{(\w+)}")
_MEDIA_TYPE = re.compile(r"\b(?:application|image|text)/[a-z0-9.+-]+")


class ApiRouter:
    """Collects operations; `install` adds them to an aiohttp app."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []

    def route(self, method: str, path: str, *, summary: str, tag: str, **options: Any) -> Callable[[Handler], Handler]:
        """Declare an operation; see `Operation` for the options."""

        def decorate(fn: Handler) -> Handler:
            self.operations.append(
                Operation(method.upper(), path, fn, summary, tag, operation_id=fn.__name__, **options)
            )
            return fn

        return decorate

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        """Declare a GET operation."""
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        """Declare a POST operation."""
        return self.route("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        """Declare a PUT operation."""
        return self.route("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        """Declare a DELETE operation."""
        return self.route("DELETE", path, **kw)

    def include(self, other: ApiRouter) -> None:
        """Take over another router's operations."""
        self.operations.extend(other.operations)

    def install(self, app: web.Application, authenticate: Authenticator) -> None:
        """Register every operation as an aiohttp route."""
        for op in self.operations:
            app.router.add_route(op.method, op.path, _endpoint(op, authenticate), name=op.operation_id)


def _endpoint(op: Operation, authenticate: Authenticator) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        call: Call = Call(request=request)
        call.ids = _path_ids(request)
        if op.auth:
            call.user = await authenticate(request)
        key = request.headers.get(idempotency.HEADER)
        if op.idempotent and key is not None and call.user is not None:
            return await _idempotent(op, call, key)
        return await _run(op, call)

    return endpoint


async def _run(op: Operation, call: Call) -> web.StreamResponse:
    if op.query is not None:
        call.query = parse_model(op.query, dict(call.request.query))
    if op.body is not None:
        call.body = parse_model(op.body, await read_json(call.request))
    return render(await op.handler(call), op.status)


async def _idempotent(op: Operation, call: Call, key: str) -> web.StreamResponse:
    """Run once per (caller, route, key); replay the recorded answer to retries."""
    from echain.keys import REDIS  # keys imports the domain; imported here to keep this module light

    scope = f"{call.user.id}:{op.method}:{call.request.path}"
    guard = idempotency.IdempotencyGuard(call.app[REDIS], scope, key, await call.request.read())
    stored = await guard.claim()
    if stored is not None:
        return web.Response(text=stored.body, status=stored.status, content_type="application/json",
                            headers={"Idempotent-Replayed": "true"})
    token = outbox.request_key.set(guard.redis_key)
    try:
        prior = await outbox.committed_by(guard.redis_key) if op.replay is not None else None
        if prior is not None and op.replay is not None:  # committed before, answer lost: never do it twice
            response = render(await op.replay(call, prior.subject), op.status)
            response.headers["Idempotent-Replayed"] = "true"
        else:
            response = await _run(op, call)
    except DomainError as exc:
        response = error_response(exc.status, exc.code, exc.message, exc.details)
    except BaseException:
        await guard.release()
        raise
    finally:
        outbox.request_key.reset(token)
    await guard.complete(response.status, response.text if isinstance(response, web.Response) and response.text else "")
    return response


def _path_ids(request: web.Request) -> dict[str, int]:
    ids = {}
    for name, raw in request.match_info.items():
        if not raw.isdigit() or len(raw) > 18:
            raise NotFound("请求的记录不存在", code="not_found")
        ids[name] = int(raw)
    return ids


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, with Chinese errors for the wrong type or broken JSON."""
    raw = await request.read()
    if not raw:
        return {}  # no body at all: models whose fields are all optional accept it
    if request.content_type != "application/json":
        raise UnsupportedMediaType("请求体应为 JSON（Content-Type: application/json）")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DomainError("请求体不是有效的 JSON", code="invalid_json") from exc


def parse_model(model: type[B], data: Any) -> B:
    """Validate data against a request model; a failure becomes a 422 naming each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, fields_ = validation.describe(exc, model)
        raise InvalidInput(message, code="validation_failed", details={"fields": fields_}) from exc


def render(result: Any, status: int = 200) -> web.StreamResponse:
    """A handler's result as a response."""
    if isinstance(result, web.StreamResponse):
        return result
    if result is None:
        return web.Response(status=204)
    if isinstance(result, BaseModel):
        return json_response(result.model_dump(mode="json"), status)
    return json_response(result, status)


def error_response(status: int, code: str, message: str, details: dict | None = None) -> web.Response:
    """The one error shape: `{"error": {"code", "message", "details"?}}`."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return json_response({"error": body}, status)


def json_response(data: Any, status: int = 200) -> web.Response:
    """JSON with Chinese kept readable (no \\u escapes)."""
    return web.Response(
        text=json.dumps(data, ensure_ascii=False, separators=(",", ":")),
        status=status,
        content_type="application/json",
    )


# ---- OpenAPI ------------------------------------------------------------------------------------

_ERROR_TEXT = {
    400: "请求有误",
    401: "未登录或登录已失效",
    403: "无权操作",
    404: "记录不存在",
    409: "与当前状态冲突",
    413: "内容过大",
    415: "类型不支持",
    422: "内容校验失败",
    503: "依赖服务不可用",
}


class ErrorBody(BaseModel):
    """The error payload every failure uses."""

    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    """`{"error": {...}}`: the one shape of every error response."""

    error: ErrorBody


def openapi_document(router: ApiRouter, *, title: str, version: str) -> dict[str, Any]:
    """Build the OpenAPI 3.1 document from the declared operations."""
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    error_ref = _schema_ref(ErrorResponse, components)
    for op in router.operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation_doc(op, components, error_ref)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation_doc(op: Operation, components: dict[str, Any], error_ref: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "tags": [op.tag]}
    if op.handler.__doc__:
        doc["description"] = op.handler.__doc__.strip()
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
        for name in _PATH_PARAM.findall(op.path)
    ]
    if op.query is not None:
        params += _query_params(op.query)
    if op.idempotent:
        params.append({
            "name": idempotency.HEADER, "in": "header", "required": False,
            "schema": {"type": "string", "maxLength": 128},
            "description": "幂等键：相同的键与相同的请求内容只执行一次，重试时返回首次的结果；键相同而内容不同返回 422",
        })
    if params:
        doc["parameters"] = params
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema_ref(op.body, components)}},
        }
    if op.multipart:
        props = {
            name: ({"type": "string", "format": "binary"} if name == "file" else {"type": "string"}) | {"description": d}
            for name, d in op.multipart.items()
        }
        doc["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": {"type": "object", "properties": props, "required": list(props)}}},
        }
    doc["responses"] = {str(op.status): _success_doc(op, components)}
    codes = set(op.errors) | {422} if (op.body or op.query) else set(op.errors)
    codes |= {503}  # error_middleware: any route answers 503 while the database or Redis is unreachable
    if op.auth:
        codes |= {401}
    if op.body is not None or op.multipart:
        codes |= {400, 413, 415}  # broken JSON or multipart framing, over the size limit, wrong content type
    if op.multipart:
        codes |= {422}  # missing file or form field
    if op.idempotent:
        codes |= {422}  # a malformed Idempotency-Key, or one reused with another body
    if "{" in op.path or (op.auth and (op.body is not None or op.multipart)):
        codes |= {404}  # the path's record, or one the body names, does not exist or is not the caller's
    for code in sorted(codes):
        doc["responses"][str(code)] = {
            "description": _ERROR_TEXT.get(code, "错误"),
            "content": {"application/json": {"schema": error_ref}},
        }
    if op.auth:
        doc["security"] = [{"bearer": []}]
    return doc


def _success_doc(op: Operation, components: dict[str, Any]) -> dict[str, Any]:
    if op.binary_response:
        # The media types the description names (e.g. "application/pdf"), so clients and checkers know what comes.
        types = _MEDIA_TYPE.findall(op.binary_response) or ["application/octet-stream"]
        binary = {"schema": {"type": "string", "format": "binary"}}
        return {"description": op.binary_response, "content": {t: binary for t in types}}
    if op.response is None:
        return {"description": "成功（无内容）"}
    return {"description": "成功", "content": {"application/json": {"schema": _schema_ref(op.response, components)}}}


def _query_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in prop.items() if k not in ("title",)},
            "description": prop.get("title", ""),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _schema_ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components.setdefault(name, sub)
    components.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}
