"""The dashboard over HTTP (Starlette's TestClient, a throwaway redis-server of its own):
every endpoint, hostile and bad input (clear 4xx, nothing written), the token,
read-only, CSRF, no SCAN/KEYS, and /metrics equal to the tracker's counters."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

pytest.importorskip("starlette", reason="the dashboard extra is not installed")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from redis_atp import Status, Tracker  # noqa: E402
from redis_atp.cli import main  # noqa: E402
from redis_atp.dashboard import DashboardConfig, create_app  # noqa: E402
from redis_atp.dashboard.charts import line_chart  # noqa: E402
from redis_atp.dashboard.data import oldest_waiting  # noqa: E402
from redis_atp.dashboard.launch import launch  # noqa: E402

from .conftest import _unavailable, namespace_keys  # noqa: E402
from .redisserver import RedisServer  # noqa: E402

TOKEN = "s3cret-token"
EVIL_TYPE = "<b>type</b>"
EVIL_IDENT = "<script>alert('x')</script>../../é𝄞"
H = {"X-ATP-Token": TOKEN}


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """A server of this module's own: its command statistics are ours to reset."""
    s = RedisServer()
    try:
        s.start()
    except (OSError, RuntimeError) as exc:
        _unavailable(f"cannot start redis-server: {exc}")
    yield s
    s.close()


@pytest.fixture
def tracker(server: RedisServer, namespace: str) -> Iterator[Tracker]:
    """A namespace with tasks in every state: 3 queued, 1 delayed, 2 finished (one with
    a response), 2 failed, hostile names among them."""
    client = server.client()
    t = Tracker(client, namespace, max_queue_size=0)
    t.register_task_type("render", "app.render", timeret=3600)
    t.register_task_type(EVIL_TYPE, "app.evil", timeret=3600)
    t.enqueue_many([("render", f"job-{i}", {"i": i, "html": "<i>hi</i>"}) for i in range(6)])
    t.enqueue_task(EVIL_TYPE, EVIL_IDENT, {"raw": b"\x00\xff", "text": "<script>bad()</script>"})
    t.enqueue_task("render", "later", None, delay=3600)
    for n, claim in enumerate(t.claim("tester", count=4)):
        t.start_task(claim.task_id, token=claim.token)
        if n < 2:
            t.set_task_response(claim.task_id, "<html>out</html>" if n == 0 else b"\x89PNG", "text/html" if n == 0
                                else "image/png", token=claim.token)
            t.stop_task_success(claim.task_id, token=claim.token)
        else:
            t.stop_task_failure(claim.task_id, "ValueError: <img src=x onerror=alert(1)>", token=claim.token)
    yield t
    client.close()


def app_client(tracker: Tracker, **config: Any) -> TestClient:
    return TestClient(create_app(tracker, DashboardConfig(**config)))


@pytest.fixture
def web(tracker: Tracker) -> TestClient:
    return app_client(tracker, token=TOKEN)


def snapshot(tracker: Tracker) -> dict[bytes, bytes | None]:
    """Every key of the namespace and its serialized value (SCAN: fine in a test)."""
    return {k: tracker.client.dump(k) for k in namespace_keys(tracker.client, tracker.namespace)}


def ids(tracker: Tracker, status: Status) -> list[int]:
    return [r.task_id for r in tracker.list_tasks(status=status)]


PAGES = ["/", "/tasks", "/tasks?status=failed", "/tasks?type=render&status=finished&limit=2", "/schedules",
         "/fragments/charts?hours=2", "/api/summary", "/metrics", "/?hours=48"]


def test_every_page_renders_and_shows_the_counts(web: TestClient, tracker: Tracker) -> None:
    for url in PAGES:
        r = web.get(url)
        assert r.status_code == 200, (url, r.text[:300])
    page = web.get("/").text
    counts = tracker.get_task_type("render").counts
    for counter, value in counts.items():
        assert f'data-k="count:render:{counter}">{value}<' in page
    summary = web.get("/api/summary").json()
    assert summary["values"]["count:render:failed_total"] == counts["failed_total"]
    assert summary["values"]["queue:delayed"] == 1
    failed = ids(tracker, Status.FAILED)[0]
    task_page = web.get(f"/tasks/{failed}").text
    assert "ValueError: &lt;img src=x onerror=alert(1)&gt;" in task_page and "FAILED" in task_page


def test_hostile_names_are_escaped_everywhere(web: TestClient, tracker: Tracker) -> None:
    tid = tracker.get_task_id(EVIL_TYPE, EVIL_IDENT)
    for url in PAGES + [f"/tasks/{tid}", f"/tasks?type={EVIL_TYPE}"]:
        r = web.get(url)
        if not r.headers["content-type"].startswith("text/html"):
            continue  # JSON and the metrics text are not HTML (served with nosniff; the page sets textContent)
        body = r.text
        assert "<script>alert" not in body and "<b>type</b>" not in body and "<script>bad" not in body, url
    page = web.get(f"/tasks/{tid}").text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;../../é𝄞" in page
    assert "&#34;$bytes&#34;: &#34;AP8=&#34;" in page  # bytes in the input shown as base64
    found = web.get("/find", params={"type": EVIL_TYPE, "identifier": EVIL_IDENT}, follow_redirects=False)
    assert found.status_code == 303 and found.headers["location"] == f"/tasks/{tid}"


BAD = [
    ("/tasks/999999", 404), ("/tasks/abc", 404), ("/tasks/0", 404), ("/tasks/-1", 404),
    ("/tasks/" + "9" * 40, 404), ("/tasks/..%2F..%2Fetc%2Fpasswd", 404), ("/tasks/%3Cscript%3E", 404),
    ("/tasks?status=bogus", 400), ("/tasks?status=%E2%9C%93", 400), ("/tasks?status=0", 400),
    ("/tasks?status=undefined", 400), ("/tasks?limit=0", 400), ("/tasks?limit=201", 400),
    ("/tasks?limit=1e3", 400), ("/tasks?before=abc", 400), ("/tasks?before=5&at=-1", 400),
    ("/tasks?type=%3Cscript%3Ealert(1)%3C%2Fscript%3E", 404), ("/tasks?type=..%2F..%2F", 404),
    ("/tasks?type=" + "x" * 5000, 400), ("/tasks?before=999999", 400),
    ("/find?type=render", 400), ("/find?type=render&identifier=nope", 404),
    ("/find?type=render&identifier=" + "é" * 5000, 400), ("/find?type=nosuch&identifier=x", 404),
    ("/?hours=49", 400), ("/?hours=-1", 400), ("/fragments/charts?hours=abc", 400),
    ("/tasks?" + "a=" + "b" * 20_000, 400), ("/static/../app.py", 404), ("/static/nothing.js", 404),
    ("/api/nothing", 404),
]


@pytest.mark.parametrize("url,status", BAD)
def test_bad_input_is_a_clear_4xx_and_writes_nothing(web: TestClient, tracker: Tracker, url: str,
                                                     status: int) -> None:
    before = snapshot(tracker)
    r = web.get(url)
    assert r.status_code == status, (url, r.text[:300])
    assert "<script>alert" not in r.text
    assert snapshot(tracker) == before


def test_response_download_is_an_attachment(web: TestClient, tracker: Tracker) -> None:
    html_task, png_task = sorted(ids(tracker, Status.FINISHED))
    r = web.get(f"/tasks/{html_task}/response")
    assert r.status_code == 200 and r.text == "<html>out</html>"
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["content-disposition"] == f'attachment; filename="task-{html_task}-response.html"'
    assert "sandbox" in r.headers["content-security-policy"] and r.headers["x-content-type-options"] == "nosniff"
    assert web.get(f"/tasks/{png_task}/response").content == b"\x89PNG"
    assert "binary or too large" in web.get(f"/tasks/{png_task}").text
    queued = ids(tracker, Status.ACCEPTED)[0]
    assert web.get(f"/tasks/{queued}/response").status_code == 404


def test_list_pages_follow_the_cursor_to_the_end(web: TestClient, tracker: Tracker) -> None:
    seen: list[str] = []
    url: str | None = "/tasks?type=render&limit=2"
    while url:
        page = web.get(url).text
        seen += re.findall(r'<td class="num"><a href="/tasks/(\d+)">', page)
        nxt = re.search(r'<a class="next" href="([^"]+)"', page)
        url = nxt[1].replace("&amp;", "&") if nxt else None
    assert sorted(map(int, seen)) == sorted(r.task_id for r in tracker.list_tasks("render"))
    last = tracker.list_tasks("render")[-1]
    tracker.delete_task(last.task_id)  # a cursor whose task is gone still pages with its time
    at = round(last.updated.timestamp() * 1000)
    assert web.get(f"/tasks?type=render&before={last.task_id}&at={at}").status_code == 200


def post(web: TestClient, url: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
    return web.post(url, headers=headers if headers is not None else H, **kw)


def test_actions_with_the_token_change_redis(web: TestClient, tracker: Tracker) -> None:
    failed = ids(tracker, Status.FAILED)
    assert post(web, f"/actions/tasks/{failed[0]}/requeue").json()["ok"]
    assert tracker.get_task_status(failed[0])[0] == Status.ACCEPTED
    queued = ids(tracker, Status.ACCEPTED)[0]
    assert post(web, f"/actions/tasks/{queued}/cancel").status_code == 200
    assert tracker.get_task_status(queued)[0] == Status.FAILED and tracker.is_cancelled(queued)
    assert post(web, f"/actions/tasks/{queued}/cancel").status_code == 409  # ended already
    assert post(web, f"/actions/tasks/{queued}/delete").status_code == 200
    assert web.get(f"/tasks/{queued}").status_code == 404
    r = post(web, "/actions/requeue-failed?type=render")
    assert r.json()["message"] == "1 failed task requeued" and not ids(tracker, Status.FAILED)
    assert post(web, "/actions/pause").status_code == 200 and tracker.get_pause_state()["namespace"]
    assert post(web, "/actions/resume").status_code == 200 and not tracker.get_pause_state()["namespace"]
    post(web, "/actions/pause", params={"type": EVIL_TYPE})
    assert tracker.get_pause_state()["types"] == [EVIL_TYPE]
    assert 'data-k="paused:&lt;b&gt;type&lt;/b&gt;">paused<' in web.get("/").text
    post(web, "/actions/resume", params={"type": EVIL_TYPE})
    assert tracker.get_pause_state()["types"] == []


ACTIONS = ["/actions/tasks/1/requeue", "/actions/tasks/1/cancel", "/actions/tasks/1/delete",
           "/actions/requeue-failed", "/actions/requeue-failed?type=render", "/actions/pause",
           "/actions/pause?type=render", "/actions/resume"]


@pytest.mark.parametrize("headers,reason", [({}, "needs the dashboard's token"),
                                            ({"X-ATP-Token": "nope"}, "wrong token"),
                                            ({"X-ATP-Token": TOKEN[:-1]}, "wrong token"),
                                            ({**H, "Origin": "http://evil.example"}, "cross-site"),
                                            ({**H, "Sec-Fetch-Site": "cross-site"}, "cross-site"),
                                            ({**H, "Sec-Fetch-Site": "same-site"}, "cross-site")])
def test_actions_refused_without_the_token_or_cross_site(web: TestClient, tracker: Tracker,
                                                         headers: dict[str, str], reason: str) -> None:
    before = snapshot(tracker)
    for url in ACTIONS:
        r = post(web, url, headers)
        assert r.status_code == 403 and reason in r.json()["error"], (url, r.text)
    assert snapshot(tracker) == before


def test_a_cross_site_form_post_is_refused(web: TestClient, tracker: Tracker) -> None:
    """What a hostile page can make a browser send: a form post, the token (unknown to it
    anyway) in the body, no custom header."""
    before = snapshot(tracker)
    r = web.post("/actions/pause", data={"X-ATP-Token": TOKEN}, headers={"Origin": "http://evil.example",
                                                                         "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert web.post("/actions/pause", data={"X-ATP-Token": TOKEN}).status_code == 403
    assert web.get("/actions/pause").status_code == 405  # never by GET
    assert snapshot(tracker) == before


def test_actions_on_unknown_things_are_404(web: TestClient, tracker: Tracker) -> None:
    before = snapshot(tracker)
    for url in ["/actions/tasks/999999/requeue", "/actions/tasks/999999/cancel", "/actions/tasks/abc/delete",
                "/actions/requeue-failed?type=nosuch", "/actions/pause?type=nosuch"]:
        assert post(web, url).status_code == 404, url
    assert post(web, "/actions/pause?type=" + "x" * 5000).status_code == 400
    assert snapshot(tracker) == before


@pytest.mark.parametrize("config,why", [({"token": TOKEN, "read_only": True}, "read-only"),
                                        ({}, "actions are disabled")])
def test_read_only_and_tokenless_refuse_every_action_and_hide_buttons(tracker: Tracker, config: dict[str, Any],
                                                                      why: str) -> None:
    web = app_client(tracker, **config)
    before = snapshot(tracker)
    for url in ACTIONS:
        r = post(web, url)
        assert r.status_code == 403 and why in r.json()["error"]
    assert snapshot(tracker) == before
    failed = ids(tracker, Status.FAILED)[0]
    for url in ["/", "/tasks?status=failed", f"/tasks/{failed}"]:
        assert 'class="action' not in web.get(url).text
    assert 'class="action' in app_client(tracker, token=TOKEN).get(f"/tasks/{failed}").text


def test_security_headers(web: TestClient) -> None:
    r = web.get("/")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in r.text.replace('<script src="/static/app.js" defer></script>', "")  # nothing inline
    assert web.get("/static/app.js").status_code == 200 and web.get("/static/style.css").status_code == 200


def test_pages_never_scan_or_keys(web: TestClient, tracker: Tracker, server: RedisServer) -> None:
    failed = ids(tracker, Status.FAILED)[0]
    client = server.client()
    client.config_resetstat()
    for url in PAGES + [f"/tasks/{failed}", f"/tasks/{failed}/response", "/find?type=render&identifier=job-1"]:
        web.get(url)
    post(web, "/actions/requeue-failed")
    stats = client.info("commandstats")
    client.close()
    assert "cmdstat_get" in stats or "cmdstat_fcall" in stats  # the statistics did count
    assert not {"cmdstat_scan", "cmdstat_keys", "cmdstat_hscan", "cmdstat_sscan", "cmdstat_zscan"} & set(stats)


def test_metrics_equal_the_trackers_counters(web: TestClient, tracker: Tracker) -> None:
    tracker.pause_queue("render")
    families = {f.name: f for f in text_string_to_metric_families(web.get("/metrics").text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    ns = tracker.namespace
    for t in tracker.list_task_types():
        for counter, status in (("accepted", "ACCEPTED"), ("scheduled", "SCHEDULED"), ("running", "RUNNING"),
                                ("paused", "PAUSED")):
            key = ("redis_atp_tasks", (("namespace", ns), ("status", status), ("type", t.name)))
            assert samples[key] == t.counts[counter]
        for counter, status in (("finished_total", "FINISHED"), ("failed_total", "FAILED")):
            key = ("redis_atp_tasks_ended_total", (("namespace", ns), ("status", status), ("type", t.name)))
            assert samples[key] == t.counts[counter]
        assert samples[("redis_atp_type_paused", (("namespace", ns), ("type", t.name)))] == (t.name == "render")
    queue = tracker.get_queue_counts()
    for part in ("ready", "delayed", "parked"):
        assert samples[(f"redis_atp_queue_{part}", (("namespace", ns),))] == queue[part]
    assert samples[("redis_atp_schedules", (("namespace", ns),))] == 0
    assert samples[("redis_atp_workers", (("namespace", ns),))] == 0
    assert samples[("redis_atp_oldest_waiting_seconds", (("namespace", ns),))] > 0
    assert families["redis_atp_tasks_ended"].type == "counter" and families["redis_atp_tasks"].type == "gauge"
    assert {k for key in samples for k, _ in key[1]} == {"namespace", "type", "status"}


def test_oldest_waiting_skips_entries_left_behind(tracker: Tracker) -> None:
    queued = sorted(ids(tracker, Status.ACCEPTED))
    time.sleep(0.05)
    age = oldest_waiting(tracker)
    assert age is not None and age >= 0.05
    for tid in queued:  # the queue's head entries now belong to cancelled tasks
        tracker.cancel_task(tid)
    assert oldest_waiting(tracker) is None
    tracker.enqueue_task("render", "urgent", None, priority=5)
    fresh = oldest_waiting(tracker)
    assert fresh is not None and fresh < age


def test_line_chart_breaks_where_no_sample_was_taken() -> None:
    from datetime import datetime, timedelta, timezone

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    minutes = [(t0 + timedelta(minutes=i), m) for i, m in
               enumerate([{"ready": 3, "finished": 2}, {"finished": 7}, {"ready": 40}, {"ready": 1}])]
    chart = line_chart("t", minutes, [("ready", "ready", "s-ready")], sampled=True)
    assert len(chart.series[0].segments) == 2 and chart.series[0].last == 1
    assert [label for _, label in chart.y_ticks] == ["0", "25", "50"]
    counted = line_chart("t", minutes, [("finished", "finished", "s-finished")])
    assert counted.series[0].total == 9 and len(counted.series[0].segments) == 1


def test_cli_hint_without_the_extra(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import redis_atp.cli.dashboard as cmd

    monkeypatch.setattr(cmd, "find_spec", lambda name: None)
    assert main(["dashboard"]) == 1
    assert capsys.readouterr().err.strip() == "redis-atp: the dashboard needs its extra: pip install " \
                                              "'redis-atp[dashboard]'"


def test_cli_serves_on_loopback_and_says_so(tracker: Tracker, server: RedisServer) -> None:
    import urllib.request

    board = launch(server.url, tracker.namespace, "--read-only", "--token", TOKEN)
    try:
        assert board.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(board.url) as r:
            page = r.read().decode()
        assert 'class="badge">read-only<' in page and tracker.namespace in page
        assert board.banner.rstrip().endswith("actions off (--read-only)")
    finally:
        board.close()
    board = launch(server.url, tracker.namespace, "--token", TOKEN)
    try:
        assert board.banner.rstrip().endswith("actions on (token required)")
    finally:
        board.close()


def test_cli_unreachable_redis_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "--url", "redis://127.0.0.1:1/0"]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_redis_down_is_503(tracker: Tracker) -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    dead = Tracker(redis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)), tracker.namespace)
    web = TestClient(create_app(dead, DashboardConfig()))
    assert web.get("/").status_code == 503
    assert web.get("/api/summary").json()["error"].startswith("Redis unavailable")
