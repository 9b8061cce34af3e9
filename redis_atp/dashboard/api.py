"""The machine-readable endpoints: ``/api/summary`` (what the overview page polls for
its live updates) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import data
from .context import ago, dashboard
from .prom import exposition

__all__ = ["summary", "metrics", "summary_values"]


def summary_values(o: data.Overview) -> dict[str, Any]:
    """The overview's figures, keyed as the page's ``data-k`` attributes name them."""
    values: dict[str, Any] = {f"queue:{k}": v for k, v in o.queue.items()}
    values.update({"oldest": ago(o.oldest_age), "workers": len(o.workers), "overdue": o.overdue,
                   "schedules": o.schedules, "paused": "paused" if o.paused["namespace"] else "running"})
    for t in o.types:
        for k, v in t.counts.items():
            values[f"count:{t.name}:{k}"] = v
        values[f"paused:{t.name}"] = "paused" if t.name in o.paused["types"] else ""
    for k, v in o.totals().items():
        values[f"total:{k}"] = v
    return values


def summary(request: Request) -> Response:
    """The overview's live figures, live workers and newest events, as JSON: O(types +
    workers + 20) Redis reads, whatever the number of tasks."""
    tracker = dashboard(request).tracker
    o = data.overview(tracker)
    events = data.recent_events(tracker)
    return JSONResponse({
        "namespace": o.namespace,
        "types": [t.name for t in o.types],
        "values": summary_values(o),
        "workers": [{"id": w.id, "host": w.host, "pid": w.pid, "threads": w.threads, "tasks": w.tasks,
                     "beat": ago(o.now - w.beat)} for w in o.workers],
        "events": [{"id": e.id, "task_id": e.task_id, "type": e.type, "identifier": e.identifier,
                    "status": e.status, "time": e.time.strftime("%H:%M:%S.%f")[:-3], "message": e.message}
                   for e in events],
    })


def metrics(request: Request) -> Response:
    """Prometheus text format, computed at scrape time from the scripts' counters."""
    body, content_type = exposition(data.overview(dashboard(request).tracker))
    return Response(body, media_type=content_type)
