"""HTML forms to the use cases' own body models, and the post/redirect/get pattern every action follows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, get_origin

from aiohttp import web
from multidict import MultiDictProxy
from pydantic import BaseModel

from console.middleware import redirect
from console.render import flash
from echain.api import parse_model
from workflow.errors import DomainError

FormData = MultiDictProxy[Any]


def body_data(model: type[BaseModel], form: FormData) -> dict[str, Any]:
    """The form fields a body model declares: lists from repeated fields, blanks left out so optional fields
    take their defaults and required ones are reported missing by the model's own validation."""
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if get_origin(info.annotation) is list:
            values = [v.strip() for v in form.getall(name, []) if isinstance(v, str) and v.strip()]
            if values:
                data[name] = values
            continue
        value = form.get(name)
        if isinstance(value, str) and value.strip():
            data[name] = value.strip()
    return data


def parse_form(model: type[BaseModel] | None, form: FormData) -> BaseModel | None:
    """The validated body (same model and same Chinese messages as the API), or None for no body."""
    return None if model is None else parse_model(model, body_data(model, form))


async def perform(request: web.Request, work: Callable[[], Awaitable[str]], *, done: str, back: str) -> web.Response:
    """Run an action; its success message or the use case's refusal shows on the next page (303 to `done`
    after success, back to the form's page after a refusal)."""
    try:
        message = await work()
    except DomainError as exc:
        await flash(request, "error", exc.message)
        return redirect(back)
    await flash(request, "success", message)
    return redirect(done)
