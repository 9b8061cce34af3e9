"""The dashboard's ASGI application: routes, templates, security headers, error pages.

Built on Starlette (routing, static files, a test client) with Jinja2 templates
(autoescaped: every name, identifier, message and input is user text). Endpoints
are plain functions that Starlette runs in its thread pool on a sync
:class:`~redis_atp.Tracker`: every page is a handful of short reads, and the
worker registry (:class:`~redis_atp.daemon.fleet.Fleet`) is sync anyway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import jinja2
import redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..client import Tracker
from ..errors import InvalidInput
from .params import MAX_QUERY

__all__ = ["DashboardConfig", "Dashboard", "create_app", "dashboard", "render", "ago", "TOKEN_HEADER"]

log = logging.getLogger("redis_atp.dashboard")

#: The request header that carries the token of an action (see :mod:`.actions`).
TOKEN_HEADER = "X-ATP-Token"

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


@dataclass(frozen=True)
class DashboardConfig:
    """How the dashboard behaves. Actions need a ``token`` and are refused
    ``read_only``; ``hours``: the charts' default span; ``poll``: seconds between the
    overview's live updates."""

    token: str | None = None
    read_only: bool = False
    hours: int = 6
    poll: float = 2.0

    @property
    def actions(self) -> str:
        """``"enabled"``, ``"read-only"`` or ``"disabled"`` (no token configured)."""
        return "read-only" if self.read_only else "enabled" if self.token else "disabled"


class Dashboard:
    """One app's state: the tracker it reads, its settings, its templates."""

    def __init__(self, tracker: Tracker, config: DashboardConfig) -> None:
        self.tracker = tracker
        self.config = config
        env = jinja2.Environment(loader=jinja2.PackageLoader("redis_atp.dashboard", "templates"),
                                 autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                 lstrip_blocks=True)
        env.filters.update(when=_when, ago=ago)
        self.templates = Jinja2Templates(env=env)


def dashboard(request: Request) -> Dashboard:
    d: Dashboard = request.app.state.dashboard
    return d


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    """Render template ``name`` with the settings every page shows."""
    d = dashboard(request)
    return d.templates.TemplateResponse(request, name, {
        "namespace": d.tracker.namespace, "actions": d.config.actions, "poll": d.config.poll, **context},
        status_code=status_code)


def _when(value: datetime | float | None) -> str:
    if value is None:
        return "-"
    dt = value if isinstance(value, datetime) else datetime.fromtimestamp(value, timezone.utc)
    return dt.strftime("%Y-%m-%d %H:%M:%S")


def ago(seconds: float | None) -> str:
    """A duration the way people read it: ``850ms``, ``12s``, ``4m 10s``, ``3h 5m``, ``2d 4h``."""
    if seconds is None:
        return "-"
    s = max(0.0, seconds)
    if s < 1:
        return f"{s * 1000:.0f}ms"
    if s < 60:
        return f"{s:.0f}s" if s >= 10 else f"{s:.1f}s"
    for unit, size, sub, subsize in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if s >= size:
            return f"{int(s // size)}{unit} {int(s % size // subsize)}{sub}"
    return f"{s:.0f}s"  # pragma: no cover - the loop always returns


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
    from . import actions, api, views

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
