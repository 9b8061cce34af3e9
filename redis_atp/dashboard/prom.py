"""``/metrics`` of the dashboard: gauges and counters computed at scrape time from the
counters the scripts keep (a custom ``prometheus_client`` collector over one
:class:`~.data.Overview`), so a scrape costs O(types + workers) Redis reads at any
number of tasks. Labels are only ``namespace``, ``type`` and ``status``: never a task
id, an identifier or a host name (bounded series)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from .data import Overview

__all__ = ["OverviewCollector", "exposition", "LIVE_STATUSES"]

#: Counter name -> status label of the tasks now in that status.
LIVE_STATUSES = {"accepted": "ACCEPTED", "scheduled": "SCHEDULED", "running": "RUNNING", "paused": "PAUSED"}


class OverviewCollector(Collector):
    """The metrics of one overview, read just before the scrape."""

    def __init__(self, o: Overview) -> None:
        self.o = o

    def collect(self) -> Iterator[Metric]:
        o, ns = self.o, self.o.namespace
        labels = ["namespace", "type", "status"]
        tasks = GaugeMetricFamily("redis_atp_tasks", "Tasks now in a live status", labels=labels)
        ended = CounterMetricFamily("redis_atp_tasks_ended", "Runs that ended FINISHED or FAILED (the scripts' "
                                    "counters)", labels=labels)
        paused = GaugeMetricFamily("redis_atp_type_paused", "1 while the type is paused", labels=["namespace", "type"])
        for t in o.types:
            for counter, status in LIVE_STATUSES.items():
                tasks.add_metric([ns, t.name, status], t.counts[counter])
            ended.add_metric([ns, t.name, "FINISHED"], t.counts["finished_total"])
            ended.add_metric([ns, t.name, "FAILED"], t.counts["failed_total"])
            paused.add_metric([ns, t.name], 1 if t.name in o.paused["types"] else 0)
        yield from (tasks, ended, paused)
        for name, doc, value in (
                ("redis_atp_queue_ready", "ACCEPTED tasks ready to be claimed", o.queue["ready"]),
                ("redis_atp_queue_delayed", "ACCEPTED tasks held until their due time", o.queue["delayed"]),
                ("redis_atp_queue_parked", "ACCEPTED tasks set aside while their type is paused", o.queue["parked"]),
                ("redis_atp_queue_limit", "The namespace's queue limit (<= 0: none)", o.limit),
                ("redis_atp_oldest_waiting_seconds", "Age of the oldest ready task since it was queued "
                                                     "(0: none waiting)", o.oldest_age or 0.0),
                ("redis_atp_namespace_paused", "1 while the whole namespace is paused", int(o.paused["namespace"])),
                ("redis_atp_tasks_overdue", "Live tasks past their type's timeout", o.overdue),
                ("redis_atp_workers", "Live worker processes (heartbeat not expired)", len(o.workers)),
                ("redis_atp_worker_threads", "Task slots of the live worker processes",
                 sum(w.threads for w in o.workers)),
                ("redis_atp_schedules", "Schedules (periodic tasks)", o.schedules)):
            g = GaugeMetricFamily(name, doc, labels=["namespace"])
            g.add_metric([ns], value)
            yield g


def exposition(o: Overview) -> tuple[bytes, str]:
    """The text exposition of ``o``'s metrics and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OverviewCollector(o))
    return generate_latest(registry), CONTENT_TYPE_LATEST
