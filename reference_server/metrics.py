# Prometheus metrics (issue: /metrics). One registry per server instance, not the
# global default, so that several servers (tests) in one process do not mix
# their counters. Gauges that mirror live state (connections, queue sizes) are
# read at scrape time through callbacks instead of being updated everywhere.
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "Metrics"]

#: The ``Content-Type`` of the text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_Metric = TypeVar("_Metric", Counter, Histogram)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The server's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Counter | Histogram] = {}
        r = self.registry
        self.frames_in = Counter("iot_frames_in", "Device frames decoded, by event kind.",
                                 ["protocol", "kind"], registry=r)
        self.frames_rejected = Counter("iot_frames_rejected",
                                       "Device bytes rejected as malformed, by error code.",
                                       ["code"], registry=r)
        self.frames_out = Counter("iot_frames_out",
                                  "Writes to devices, by kind: a command, reply, "
                                  "retransmission or card answer.",
                                  ["kind"], registry=r)
        self.commands = Counter("iot_commands", "Downlink commands finished, by outcome.",
                                ["kind", "outcome"], registry=r)
        self.events = Counter("iot_events", "Events recorded in the outbox, by type.",
                              ["event_type"], registry=r)
        self.webhook_deliveries = Counter("iot_webhook_deliveries",
                                          "Webhook delivery attempts, by outcome.",
                                          ["outcome"], registry=r)
        self.webhook_latency = Histogram(
            "iot_webhook_delivery_seconds",
            "From the event being recorded to its delivery being acknowledged.",
            buckets=(*_LATENCY_BUCKETS, 10.0, 30.0, 60.0, 300.0), registry=r)
        self.api_latency = Histogram("iot_api_request_seconds",
                                     "HTTP API handling time, by route.",
                                     ["method", "route", "status"],
                                     buckets=_LATENCY_BUCKETS, registry=r)
        self.device_handling = Histogram(
            "iot_device_handling_seconds",
            "Time from a device read to its events being handled and stored.",
            buckets=_LATENCY_BUCKETS, registry=r)
        # Identity and resources (api.md §11.2, §11.3).
        self.devices_refused = Counter(
            "iot_devices_refused",
            "Frames refused for the device they name, by reason: unknown (device_policy "
            "known), identity_conflict (ICCID), second_id (a second id on one connection), "
            "takeover_kept (takeover_policy keep).",
            ["reason"], registry=r)
        self.connections_refused = Counter(
            "iot_connections_refused",
            "Device connections closed at once or early, by reason: max_connections, "
            "max_connections_per_ip, unidentified_timeout, unidentified_bytes.",
            ["reason"], registry=r)
        self.frame_log_skipped = Counter(
            "iot_frame_log_skipped",
            "Reads and writes not stored in cmd_logs, by reason: budget "
            "(frame_log_max_bytes), garbage (beyond unidentified_max_bytes).",
            ["reason"], registry=r)
        self._log_lines_dropped = _CallbackCounter(
            "iot_log_lines_dropped", "Log lines dropped because the log reader stalled.")
        r.register(self._log_lines_dropped)
        self._connections = Gauge("iot_device_connections", "Open device TCP connections.",
                                  registry=r)
        self._devices_online = Gauge("iot_devices_online",
                                     "Devices with a live connection.", registry=r)
        self._deliveries_pending = Gauge("iot_webhook_deliveries_pending",
                                         "Events waiting for delivery.", registry=r)

    def child(self, metric: _Metric, *values: str) -> _Metric:
        """``metric.labels(*values)``, remembered: the hot paths count every frame,
        and ``labels()`` takes a lock and builds its key on each call."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found  # type: ignore[return-value]  # the same class as *metric*

    def watch(self, *, connections: Callable[[], float], devices_online: Callable[[], float],
              deliveries_pending: Callable[[], float]) -> None:
        """Read the live gauges from these callbacks at each scrape."""
        self._connections.set_function(connections)
        self._devices_online.set_function(devices_online)
        self._deliveries_pending.set_function(deliveries_pending)

    def watch_log(self, dropped: Callable[[], float]) -> None:
        """Read ``iot_log_lines_dropped_total`` from this callback at each scrape."""
        self._log_lines_dropped.read = dropped

    def exposition(self) -> bytes:
        """The current values in the Prometheus text format."""
        return generate_latest(self.registry)


class _CallbackCounter(Collector):
    """A counter whose value is read from a callback (a count kept elsewhere)."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self.read: Callable[[], float] = lambda: 0.0

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, value=self.read())

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation)
