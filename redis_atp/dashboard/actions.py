"""Actions: requeue, cancel or delete a task, requeue every failed task of a type,
pause or resume the namespace or a type. POST only, each behind the token.

CSRF: an action must carry the token in the ``X-ATP-Token`` header. A page of
another site can make a browser send a form or a simple request, but not one with a
custom header (that needs a CORS preflight, which this app never answers), and it
does not know the token; requests a browser marks cross-site (``Sec-Fetch-Site``) or
whose ``Origin`` is not this host are refused before the token is even compared.
The token lives in the browser tab's ``sessionStorage`` (typed in once per tab),
never in a cookie, so nothing is sent on the user's behalf.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .context import TOKEN_HEADER, dashboard
from .params import task_id_param, text_param

__all__ = ["routes", "authorize"]

REQUEUE_MESSAGE = "requeued from the dashboard"


def authorize(request: Request) -> None:
    """Refuse (403) unless actions are on, the request is same-origin, and it carries
    the token. The checks say which failed; none reads Redis."""
    config = dashboard(request).config
    if config.read_only:
        raise HTTPException(403, "the dashboard is read-only (--read-only)")
    if not config.token:
        raise HTTPException(403, "actions are disabled: start the dashboard with --token "
                                 "or REDIS_ATP_DASHBOARD_TOKEN")
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if site not in (None, "same-origin", "none") or (
            origin is not None and urlsplit(origin).netloc != request.headers.get("host", "")):
        raise HTTPException(403, "cross-site request refused")
    given = request.headers.get(TOKEN_HEADER, "")
    if not given:
        raise HTTPException(403, f"this action needs the dashboard's token (header {TOKEN_HEADER})")
    if not hmac.compare_digest(given.encode("utf-8", "replace"), config.token.encode("utf-8")):
        raise HTTPException(403, "wrong token")


def _done(message: str, status: int = 200) -> Response:
    return JSONResponse({"ok": status < 300, "message": message}, status)


def requeue(request: Request) -> Response:
    authorize(request)
    task_id = task_id_param(request.path_params["task_id"])
    dashboard(request).tracker.reenqueue_task(task_id, REQUEUE_MESSAGE)
    return _done(f"task {task_id} requeued")


def cancel(request: Request) -> Response:
    authorize(request)
    task_id = task_id_param(request.path_params["task_id"])
    if dashboard(request).tracker.cancel_task(task_id, "cancelled from the dashboard"):
        return _done(f"task {task_id} cancelled")
    return _done(f"task {task_id} had ended already", 409)


def delete(request: Request) -> Response:
    authorize(request)
    task_id = task_id_param(request.path_params["task_id"])
    dashboard(request).tracker.delete_task(task_id)
    return _done(f"task {task_id} deleted")


def _type(request: Request) -> str | None:
    return text_param("type", request.query_params.get("type"))


def requeue_failed(request: Request) -> Response:
    authorize(request)
    type_name = _type(request)
    n = dashboard(request).tracker.requeue_failed(type_name, REQUEUE_MESSAGE)
    return _done(f"{n} failed task{'s' if n != 1 else ''} requeued")


def _pausing(pause: bool) -> Callable[[Request], Response]:
    def action(request: Request) -> Response:
        authorize(request)
        type_name = _type(request)
        tracker = dashboard(request).tracker
        (tracker.pause_queue if pause else tracker.resume_queue)(type_name)
        what = "the namespace" if type_name is None else f"type {type_name!r}"
        return _done(f"{what} {'paused' if pause else 'resumed'}")
    action.__name__ = "pause" if pause else "resume"
    return action


def routes() -> list[Route]:
    return [Route("/actions/tasks/{task_id}/requeue", requeue, methods=["POST"]),
            Route("/actions/tasks/{task_id}/cancel", cancel, methods=["POST"]),
            Route("/actions/tasks/{task_id}/delete", delete, methods=["POST"]),
            Route("/actions/requeue-failed", requeue_failed, methods=["POST"]),
            Route("/actions/pause", _pausing(True), methods=["POST"]),
            Route("/actions/resume", _pausing(False), methods=["POST"])]
