"""The platform operator console: server-rendered Chinese pages at /console for desk work in a browser.

Thin like every entry point: each page calls the same use cases as the API (workflow/), with the same body
models, and renders the result or the use case's Chinese refusal. Its own parts are the login (argon2id
passwords, workflow.console_accounts), server-side sessions in Redis, CSRF protection and the SVG charts.
"""

from __future__ import annotations

from aiohttp import web

from console import middleware, render, routes

PREFIX = "/console"


def install(app: web.Application) -> None:
    """Mount the console as a sub-application with its own middlewares (errors as pages, session guard)."""
    console = web.Application(middlewares=[middleware.pages, middleware.guard])
    render.setup(console)
    routes.add_routes(console)
    app.add_subapp(PREFIX, console)
