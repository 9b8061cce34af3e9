"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright,
against a live fleet and ``redis-atp dashboard`` processes on free loopback ports.
Screenshots of the main pages go to ``test-artifacts/`` (not committed).

With CI=true a missing Chromium or Playwright fails these tests; locally they skip."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_atp import Status, Tracker

from .conftest import IN_CI, delete_namespace
from .fleetproc import WorkerProc, all_ended, wait_until

CHROMIUM = os.environ.get("REDIS_ATP_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TOKEN = "browser-token-1"


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"the browser tests need it in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[test]')")
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                               args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A namespace with a running one-process fleet, 5 finished and 2 failed tasks, a
    paused type, a schedule; a dashboard with a token and a read-only one."""
    from redis_atp.dashboard.launch import launch

    ns = "test-browser-" + uuid.uuid4().hex[:8]
    tmp = tmp_path_factory.mktemp("browser")
    client = redis.Redis.from_url(redis_url)
    t = Tracker(client, ns, max_queue_size=0)
    fx = f"test-fx-{uuid.uuid4().hex[:8]}"
    for name, handler in (("ok", "handlers.count"), ("bad", "handlers.boom"), ("held", "handlers.count")):
        t.register_task_type(name, handler, timeret=600)
    t.pause_queue("held")
    t.add_schedule("every-hour", "ok", every=3600, input={"fx": fx, "i": 0})
    env = {"REDIS_ATP_TEST_SIDEFX": redis_url, "REDIS_ATP_TEST_MARKER": str(tmp / "marker")}
    fleet = WorkerProc(redis_url, ns, tmp, "-n", "1", env=env)
    boards = []
    try:
        t.enqueue_many([("ok", f"ok-{i}", {"fx": fx, "i": i}) for i in range(5)])
        t.enqueue_many([("bad", f"bad-{i}", {"i": i}) for i in range(2)])
        wait_until(lambda: all_ended(t, "ok", "bad"), 20, "the first tasks to end")
        with open(tmp / "dashboard.log", "w") as log:
            boards.append(launch(redis_url, ns, "--token", TOKEN, stderr=log))
            boards.append(launch(redis_url, ns, "--read-only", "--token", TOKEN, stderr=log))
        ARTIFACTS.mkdir(exist_ok=True)
        yield {"tracker": t, "url": boards[0].url, "ro_url": boards[1].url, "fx": fx}
    finally:
        for b in boards:
            b.close()
        fleet.close()
        client.delete(fx)
        delete_namespace(client, ns)
        client.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    p = browser.new_page(viewport={"width": 1280, "height": 900})
    p.set_default_timeout(10_000)
    yield p
    p.close()


def cell(page: Any, key: str) -> Any:
    return page.locator(f'[data-k="{key}"]')


def use_token(page: Any, token: str) -> None:
    page.fill("#token", token)
    page.click("#token-form button")
    page.wait_for_selector("#token-state:text('token set')")


def click_confirmed(page: Any, selector: str, accept: bool = True) -> None:
    page.once("dialog", lambda d: d.accept() if accept else d.dismiss())
    page.click(selector)


def test_overview_shows_the_counts_and_live_workers(page: Any, live: dict[str, Any]) -> None:
    page.goto(live["url"])
    assert cell(page, "count:ok:finished_total").inner_text() == "5"
    assert cell(page, "count:bad:failed_total").inner_text() == "2"
    pid = page.locator("#workers tr td.num >> nth=0").inner_text()  # the fleet's one worker process
    assert page.locator("#workers tr").count() == 1 and pid.isdigit()
    assert page.locator(".chart svg").count() == 2
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)


def test_a_failed_tasks_page_shows_its_log(page: Any, live: dict[str, Any]) -> None:
    page.goto(live["url"] + "tasks?status=failed&type=bad")
    page.screenshot(path=str(ARTIFACTS / "tasks-failed.png"), full_page=True)
    page.click("td.ident a >> nth=0")
    page.wait_for_selector("h1:has-text('bad::bad-')")
    log = page.locator("table.log").inner_text()
    assert "ValueError: bad input" in log and "FAILED" in log and "RUNNING" in log
    page.screenshot(path=str(ARTIFACTS / "task-failed.png"), full_page=True)
    page.goto(live["url"] + "schedules")
    assert "every-hour" in page.locator("table").inner_text()
    page.screenshot(path=str(ARTIFACTS / "schedules.png"), full_page=True)


def test_live_updates_arrive_without_reload(page: Any, live: dict[str, Any]) -> None:
    t: Tracker = live["tracker"]
    page.goto(live["url"])
    page.evaluate("window.__sameDocument = true")
    before = t.get_task_type("held").counts["accepted"]
    t.enqueue_many([("held", f"held-{uuid.uuid4().hex[:6]}", {"fx": live["fx"], "i": i}) for i in range(3)])
    from playwright.sync_api import expect

    expect(cell(page, "count:held:accepted")).to_have_text(str(before + 3), timeout=8000)
    assert page.evaluate("window.__sameDocument") is True  # updated in place, not reloaded
    assert page.locator("#events").inner_text().count("held::held-") >= 3


def test_the_token_is_enforced_in_the_ui(page: Any, live: dict[str, Any]) -> None:
    t: Tracker = live["tracker"]
    page.goto(live["url"])
    page.click("button.action:text('Pause') >> nth=0")  # no token yet: nothing is sent
    page.wait_for_selector("#flash:text('token')")
    use_token(page, "not-the-token")
    click_confirmed(page, "section.cards button.action")
    page.wait_for_selector("#flash:text('wrong token')")
    assert not t.get_pause_state()["namespace"]
    use_token(page, TOKEN)
    click_confirmed(page, "section.cards button.action", accept=False)  # dismissed: nothing happens
    page.wait_for_timeout(300)
    assert not t.get_pause_state()["namespace"]
    click_confirmed(page, "section.cards button.action")
    wait_until(lambda: t.get_pause_state()["namespace"], 5, "the namespace to pause")
    page.wait_for_selector("section.cards button.action:text('Resume')")  # the page reloaded
    page.screenshot(path=str(ARTIFACTS / "overview-paused.png"), full_page=True)
    click_confirmed(page, "section.cards button.action:text('Resume')")
    wait_until(lambda: not t.get_pause_state()["namespace"], 5, "the namespace to resume")


def test_requeue_and_cancel_from_the_ui_take_effect(page: Any, live: dict[str, Any]) -> None:
    t: Tracker = live["tracker"]
    failed = t.list_tasks("bad", Status.FAILED)[0].task_id
    page.goto(live["url"])
    use_token(page, TOKEN)
    page.goto(f"{live['url']}tasks/{failed}")
    click_confirmed(page, "button.action:text('Requeue')")
    wait_until(lambda: any("requeued from the dashboard" in m for _, _, m in t.get_task_log("bad", "bad-0")
                           + t.get_task_log("bad", "bad-1")), 5, "the requeue")
    delayed = t.enqueue_task("ok", f"later-{uuid.uuid4().hex[:6]}", {"fx": live["fx"], "i": 9}, delay=3600)
    page.goto(f"{live['url']}tasks/{delayed}")
    click_confirmed(page, "button.action:text('Cancel')")
    wait_until(lambda: t.get_task_status(delayed)[0] == Status.FAILED, 5, "the cancel")
    assert t.is_cancelled(delayed)
    page.wait_for_selector("h1 .st-failed")
    page.screenshot(path=str(ARTIFACTS / "task-cancelled.png"), full_page=True)


def test_read_only_hides_and_refuses_actions(page: Any, live: dict[str, Any]) -> None:
    t: Tracker = live["tracker"]
    failed = t.list_tasks("bad")[0].task_id
    for path in ["", "tasks?status=failed", f"tasks/{failed}"]:
        page.goto(live["ro_url"] + path)
        assert page.locator("button.action").count() == 0 and page.locator("#token").count() == 0
    assert page.locator("header .badge").inner_text() == "read-only"
    page.screenshot(path=str(ARTIFACTS / "read-only.png"), full_page=True)
    status = page.evaluate("""async (token) => (await fetch('/actions/pause', {method: 'POST',
                              headers: {'X-ATP-Token': token}})).status""", TOKEN)
    assert status == 403 and not t.get_pause_state()["namespace"]
