# Prometheus metrics (issue: /metrics). One registry per server instance, not the
# global default, so that several servers (tests) in one process do not mix
# their counters. Gauges that mirror live state (connections, queue sizes) are
# read at scrape time through callbacks instead of being updated everywhere.
from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics"]

#: The ``Content-Type`` of the text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The server's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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
        self._connections = Gauge("iot_device_connections", "Open device TCP connections.",
                                  registry=r)
        self._devices_online = Gauge("iot_devices_online",
                                     "Devices with a live connection.", registry=r)
        self._deliveries_pending = Gauge("iot_webhook_deliveries_pending",
                                         "Events waiting for delivery.", registry=r)

    def watch(self, *, connections: Callable[[], float], devices_online: Callable[[], float],
              deliveries_pending: Callable[[], float]) -> None:
        """Read the live gauges from these callbacks at each scrape."""
        self._connections.set_function(connections)
        self._devices_online.set_function(devices_online)
        self._deliveries_pending.set_function(deliveries_pending)

    def exposition(self) -> bytes:
        """The current values in the Prometheus text format."""
        return generate_latest(self.registry)
