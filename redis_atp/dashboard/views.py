"""The pages: overview, task lists, a task, its response, schedules, a lookup by
identifier. Each reads O(page size + types) from Redis through the tracker's API."""

from __future__ import annotations

import json
import mimetypes
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..cli.common import _jsonable
from ..errors import TaskNotFound
from ..status import Status
from . import data
from .charts import Chart, line_chart
from .context import dashboard, render
from .params import bad, before_param, hours_param, limit_param, status_param, task_id_param, text_param

__all__ = ["overview", "task_list", "task_page", "task_response", "find", "schedules", "charts", "build_charts"]

#: Responses up to this size are shown on the task page; larger ones only downloaded.
PREVIEW_BYTES = 64 * 1024
#: Longest input shown on the task page, as JSON text.
INPUT_CHARS = 256 * 1024
_MIME = re.compile(r"[A-Za-z0-9][\w.+-]*/[\w.+-]+")
STATUSES = [s for s in Status if s != Status.UNDEFINED]


def build_charts(request: Request, hours: int) -> list[Chart]:
    """Throughput and queue depth per minute over the last ``hours``: figures the workers'
    housekeeping samples, so a minute in which no worker ran is a gap in the lines."""
    minutes = dashboard(request).tracker.minute_stats(hours * 60)
    return [
        line_chart("Runs ended per minute", minutes, [("finished", "finished", "s-finished"),
                                                      ("failed", "failed", "s-failed")], sampled=True),
        line_chart("Queue depth and live tasks", minutes,
                   [("ready", "ready", "s-ready"), ("delayed", "delayed", "s-delayed"), ("live", "live", "s-live")],
                   sampled=True),
    ]


def overview(request: Request) -> Response:
    d = dashboard(request)
    hours = hours_param(request.query_params.get("hours"), d.config.hours)
    return render(request, "overview.html", o=data.overview(d.tracker), statuses=STATUSES, hours=hours,
                  charts=build_charts(request, hours), events=data.recent_events(d.tracker))


def charts(request: Request) -> Response:
    """The overview's charts alone, for the page to refresh them in place."""
    hours = hours_param(request.query_params.get("hours"), dashboard(request).config.hours)
    return render(request, "_charts.html", charts=build_charts(request, hours), hours=hours)


def task_list(request: Request) -> Response:
    q = request.query_params
    type_name = text_param("type", q.get("type"))
    status = status_param(q.get("status"))
    limit = limit_param(q.get("limit"))
    before = before_param(q.get("before"), q.get("at"))
    tracker = dashboard(request).tracker
    try:
        rows = tracker.list_tasks(type_name, status, limit=limit, before=before)
    except TaskNotFound:
        raise bad("the task this page started after is gone: pass its time as at=, or start from the first page"
                  ) from None
    first: dict[str, Any] = {"limit": limit, **({"type": type_name} if type_name else {}),
                             **({"status": status.name.lower()} if status else {})}
    last = rows[-1] if len(rows) == limit else None
    nxt = None if last is None else {**first, "before": last.task_id, "at": round(last.updated.timestamp() * 1000)}
    return render(request, "tasks.html", rows=rows, type_name=type_name, status=status, limit=limit, next=nxt,
                  first=first, paged=before is not None, statuses=STATUSES, type_names=data.type_names(tracker))


def _pretty(value: Any) -> str:
    text = json.dumps(_jsonable(value), indent=2, ensure_ascii=False)
    return text if len(text) <= INPUT_CHARS else text[:INPUT_CHARS] + "\n… (cut)"


def task_page(request: Request) -> Response:
    tracker = dashboard(request).tracker
    task = tracker.describe_task(task_id_param(request.path_params["task_id"]))
    preview: str | None = None
    if task["response_bytes"] and task["response_bytes"] <= PREVIEW_BYTES:
        response, _ = tracker.get_task_response(task["type"], task["identifier"])
        preview = response if isinstance(response, str) else None
    log = task["log"]
    return render(request, "task.html", t=task, input=_pretty(task["input"]), preview=preview,
                  created=log[0][0] if log else None, updated=log[-1][0] if log else None,
                  terminal=task["code"] in (Status.FINISHED, Status.FAILED))


def task_response(request: Request) -> Response:
    """The stored response as a download: never shown inline on the dashboard's own
    origin (it is user content), and sandboxed should a browser try."""
    tracker = dashboard(request).tracker
    task_id = task_id_param(request.path_params["task_id"])
    type_name, identifier, _, _ = tracker.get_task_info(task_id)
    response, mime = tracker.get_task_response(type_name, identifier)
    if response is None:
        raise TaskNotFound(f"task {task_id} has no response")
    mime = mime if mime and _MIME.fullmatch(mime) else "application/octet-stream"
    ext = mimetypes.guess_extension(mime) or ".bin"
    body = response.encode("utf-8") if isinstance(response, str) else response
    headers = {"content-disposition": f'attachment; filename="task-{task_id}-response{ext}"',
               "content-security-policy": "sandbox; default-src 'none'"}
    media = f"{mime}; charset=utf-8" if isinstance(response, str) and "charset" not in mime else mime
    return Response(body, headers=headers, media_type=media)


def find(request: Request) -> Response:
    """A task by ``type`` and ``identifier`` (one digest lookup): redirects to its page."""
    type_name = text_param("type", request.query_params.get("type"))
    identifier = text_param("identifier", request.query_params.get("identifier"))
    if type_name is None or identifier is None:
        raise bad("give both type and identifier")
    task_id = dashboard(request).tracker.get_task_id(type_name, identifier)
    return RedirectResponse(f"/tasks/{task_id}", 303)


def schedules(request: Request) -> Response:
    return render(request, "schedules.html", schedules=dashboard(request).tracker.list_schedules())
