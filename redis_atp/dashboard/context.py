"""What the dashboard's endpoints share: its settings, its state (the tracker it reads,
its templates), and rendering a page with what every page shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from ..client import Tracker

__all__ = ["DashboardConfig", "Dashboard", "dashboard", "render", "ago", "TOKEN_HEADER"]

#: The request header that carries the token of an action (see :mod:`.actions`).
TOKEN_HEADER = "X-ATP-Token"

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
