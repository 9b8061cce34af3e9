// redis-atp dashboard: actions (confirm, then POST with the token header) and the
// overview's live figures (polling /api/summary). No framework; text is always set
// with textContent, never as HTML.
"use strict";

(function () {
  const body = document.body;
  const TOKEN_KEY = "redis-atp-dashboard-token";

  function flash(text, bad) {
    const el = document.getElementById("flash");
    el.textContent = text;
    el.className = bad ? "bad" : "";
    el.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(function () { el.hidden = true; }, 6000);
  }

  // ---------------------------------------------------------------- token
  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

  function showTokenState() {
    const state = document.getElementById("token-state");
    if (state) state.textContent = token() ? "token set" : "no token";
  }

  const form = document.getElementById("token-form");
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      const input = document.getElementById("token");
      if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value);
      else sessionStorage.removeItem(TOKEN_KEY);
      input.value = "";
      showTokenState();
    });
    showTokenState();
  }

  // ---------------------------------------------------------------- actions
  document.addEventListener("click", async function (ev) {
    const button = ev.target.closest("button.action");
    if (!button) return;
    if (!token()) { flash("Enter the dashboard's token (top right) first.", true); return; }
    if (!window.confirm(button.dataset.confirm)) return;
    button.disabled = true;
    try {
      const res = await fetch(button.dataset.url, {method: "POST", headers: {"X-ATP-Token": token()},
                                                   credentials: "same-origin"});
      let reply = {};
      try { reply = await res.json(); } catch (e) { reply = {error: res.statusText}; }
      if (!res.ok) { flash((reply.error || reply.message || res.statusText) + " (HTTP " + res.status + ")", true); return; }
      flash(reply.message || "done", false);
      const then = button.dataset.then;
      setTimeout(function () { if (then && then !== "reload") window.location.assign(then); else window.location.reload(); }, 400);
    } catch (e) {
      flash("request failed: " + e, true);
    } finally {
      button.disabled = false;
    }
  });

  // ---------------------------------------------------------------- live overview
  if (!body.dataset.live) return;
  const poll = Math.max(0.5, parseFloat(body.dataset.poll || "2")) * 1000;
  const types = JSON.stringify(JSON.parse(body.dataset.types || "[]"));

  function cell(tag, text, cls) {
    const el = document.createElement(tag);
    if (text !== undefined) el.textContent = text;
    if (cls) el.className = cls;
    return el;
  }

  function taskLink(id) {
    const a = cell("a", String(id));
    a.href = "/tasks/" + encodeURIComponent(id);
    return a;
  }

  function renderWorkers(workers) {
    const tbody = document.getElementById("workers");
    if (!tbody) return;
    tbody.replaceChildren();
    if (!workers.length) {
      const tr = cell("tr"); const td = cell("td", "no live worker", "muted"); td.colSpan = 6;
      tr.append(td); tbody.append(tr); return;
    }
    for (const w of workers) {
      const tr = cell("tr");
      const running = cell("td");
      if (w.tasks.length) w.tasks.forEach(function (id) { running.append(taskLink(id), " "); });
      else running.append(cell("span", "idle", "muted"));
      tr.append(cell("td", w.id), cell("td", w.host), cell("td", String(w.pid), "num"),
                cell("td", String(w.threads), "num"), running, cell("td", w.beat + " ago", "num"));
      tbody.append(tr);
    }
  }

  function renderEvents(events) {
    const tbody = document.getElementById("events");
    if (!tbody || !events.length) return;
    tbody.replaceChildren();
    for (const e of events) {
      const tr = cell("tr");
      const st = cell("span", e.status, "st st-" + e.status.toLowerCase());
      const what = cell("td");
      what.append(taskLink(e.task_id), " " + e.type + "::" + e.identifier);
      const tdStatus = cell("td"); tdStatus.append(st);
      tr.append(cell("td", e.time, "muted"), tdStatus, what, cell("td", e.message, "msg"));
      tbody.append(tr);
    }
  }

  async function refresh() {
    if (document.hidden) return;
    try {
      const res = await fetch("/api/summary", {credentials: "same-origin"});
      if (!res.ok) return;
      const s = await res.json();
      if (JSON.stringify(s.types) !== types) { window.location.reload(); return; }
      document.querySelectorAll("[data-k]").forEach(function (el) {
        const v = s.values[el.dataset.k];
        if (v !== undefined && el.textContent !== String(v)) el.textContent = String(v);
      });
      renderWorkers(s.workers);
      renderEvents(s.events);
    } catch (e) { /* the next poll tries again */ }
  }

  async function refreshCharts() {
    if (document.hidden) return;
    try {
      const res = await fetch("/fragments/charts?hours=" + encodeURIComponent(body.dataset.hours || ""));
      if (res.ok) document.getElementById("charts").innerHTML = await res.text();  // server-rendered, escaped
    } catch (e) { /* next time */ }
  }

  setInterval(refresh, poll);
  setInterval(refreshCharts, 60000);
})();
