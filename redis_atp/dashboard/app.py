"""The dashboard's ASGI application: routes, templates, security headers, error pages.

Built on Starlette (routing, static files, a test client) with Jinja2 templates
(autoescaped: every name, identifier, message and input is user text). Endpoints
are plain functions that Starlette runs in its thread pool on a sync
:class:`~redis_atp.Tracker`: every page is a handful of short reads, and the
worker registry (:class:`~redis_atp.daemon.fleet.Fleet`) is sync anyway.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..client import Tracker
from ..errors import InvalidInput
from . import actions, api, views
from .context import Dashboard, DashboardConfig, render
from .params import MAX_QUERY

__all__ = ["create_app", "Guard", "SECURITY_HEADERS"]

log = logging.getLogger("redis_atp.dashboard")

#: Sent with every response: scripts and styles only from the dashboard itself (none
#: inline), no framing (a confirm button cannot be clicked through another site),
#: no sniffing, no referrer leaving the page.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class Guard:
    """ASGI middleware: refuses over-long query strings (400) before any endpoint runs,
    and adds :data:`SECURITY_HEADERS` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope.get("query_string", b"")) > MAX_QUERY:
            await JSONResponse({"error": f"query string longer than {MAX_QUERY} bytes"}, 400)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in SECURITY_HEADERS if k not in names]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/actions/", "/metrics"))


def _error(request: Request, status: int, detail: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": detail}, status)
    return render(request, "error.html", status_code=status, status=status, detail=detail)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(request, exc.status_code, str(exc.detail))


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(request, 404, str(exc.args[0]) if exc.args else "not found")


async def _invalid(request: Request, exc: Exception) -> Response:
    return _error(request, 400, str(exc))


async def _redis_down(request: Request, exc: Exception) -> Response:
    log.warning("redis error on %s: %s: %s", request.url.path, type(exc).__name__, exc)
    return _error(request, 503, f"Redis unavailable: {type(exc).__name__}")


def create_app(tracker: Tracker, config: DashboardConfig | None = None) -> Starlette:
    """The dashboard of ``tracker``'s namespace as an ASGI app (serve it with uvicorn)."""
    routes = [
        Route("/", views.overview),
        Route("/tasks", views.task_list),
        Route("/tasks/{task_id}", views.task_page),
        Route("/tasks/{task_id}/response", views.task_response),
        Route("/find", views.find),
        Route("/schedules", views.schedules),
        Route("/fragments/charts", views.charts),
        Route("/api/summary", api.summary),
        Route("/metrics", api.metrics),
        *actions.routes(),
        Mount("/static", StaticFiles(packages=[("redis_atp.dashboard", "static")]), name="static"),
    ]
    handlers: dict[Any, Any] = {HTTPException: _http_error, LookupError: _not_found, InvalidInput: _invalid,
                                redis.RedisError: _redis_down}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.dashboard = Dashboard(tracker, config or DashboardConfig())
    app.add_middleware(Guard)
    return app
