# The whole server in one trio nursery (issue: "one trio process"): the device
# gateway, the HTTP API on hypercorn's trio worker, the service's timers and the
# webhook worker. run_server() builds the parts, wires them and runs them until
# cancelled; shutting down stops the listeners first, then writes out what is
# buffered and closes the database, checkpointing SQLite (shielded, so a second
# Ctrl-C cannot cut it). The database is the SQLite file db_path, or the PostgreSQL
# database database_url names.
from __future__ import annotations

import functools
import gc
import os
import signal
import stat
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

import trio

from .api import create_app, forwarded_call_runner, serve_http
from .config import (
    GENERATED_API_KEY_SETTING,
    LEGACY_GENERATED_API_KEY_SETTING,
    Config,
    generate_api_key,
    hash_api_key,
    with_generated_api_key,
)
from .gateway import Gateway, GatewaySettings, default_max_connections
from .identity import DeviceIdentities
from .logs import Logger
from .metrics import Metrics
from .service import ChargingService
from .storage import AsyncDatabase
from .webhooks import WebhookDeliverer

if TYPE_CHECKING:
    from .cluster import ClusterNode

__all__ = ["ServerAddresses", "gateway_settings", "main_async", "run_server"]

#: How often the server process runs a full garbage collection itself (seconds).
#:
#: CPython's full (generation 2) collection walks every tracked object with the
#: event loop stopped. With 10,000 device connections that is about a million
#: objects and one second per collection on a small machine, and the churn of 900
#: heartbeats a second started one every few seconds: heartbeat answers then
#: waited up to a second (bench/RESULTS.md). So the process turns the automatic
#: generation-2 trigger off and collects fully on this timer; the young
#: generations, where almost all garbage dies, are collected as usual.
FULL_COLLECTION_EVERY = 600.0
#: A generation-2 threshold that is never reached.
_NEVER = 1 << 30
#: Net new tracked objects before a young collection (CPython's default is 700).
#: Each collection walks the young objects it finds, so fewer, larger ones walk
#: fewer: what dies in between (most of a read's objects, freed by their reference
#: counts) is never walked. At 10,000 devices the collector took 7 % of the
#: server's CPU with the default (bench/RESULTS.md).
YOUNG_COLLECTION_AFTER = 20_000

#: Extra seconds a connection may stay silent beyond the longest ``offline_after``
#: before the gateway closes it (the service marks the device offline first).
_IDLE_MARGIN = 30


@dataclass(frozen=True, slots=True)
class ServerAddresses:
    """Where a started server listens (ports resolved when 0 was configured)."""

    tcp_host: str
    tcp_port: int
    http_host: str
    http_port: int


async def run_server(config: Config, *, logger: Logger | None = None,
                     clock: Callable[[], float] = time.time, announce: TextIO | None = None,
                     task_status: trio.TaskStatus[ServerAddresses]
                     = trio.TASK_STATUS_IGNORED) -> None:
    """Run the server until cancelled.

    Args:
        config: The configuration.
        logger: JSON-lines logger (one at ``config.log_level`` on stderr if None).
        clock: Unix time, for tests.
        announce: Where a generated API key is printed, once (stdout if None).
        task_status: Receives the listening addresses once both listeners accept.
    """
    log = logger if logger is not None else Logger(config.log_level,
                                                   log_format=config.log_format)
    if config.database_url is not None:
        db = await AsyncDatabase.open(config.database_url)
    else:
        config.db_path.parent.mkdir(parents=True, exist_ok=True)
        db = await AsyncDatabase.open(config.db_path, synchronous=config.sqlite_synchronous)
    try:
        if config.database_url is None:
            _check_file_mode(config, log)
        config = await _api_keys(config, db, log, announce or sys.stdout)
        log.info("configuration", **config.redacted())
        metrics = Metrics()
        service = ChargingService(db, config, log, metrics, clock=clock)
        deliverer = WebhookDeliverer(db, config, log, metrics, clock=clock)
        identities = DeviceIdentities(db, clock=clock)
        identities.record = service.record_device_event
        await identities.load(config.known_devices)
        # The service's steady clock: connection timers keep their length when the
        # wall clock steps, as the service's do.
        gateway = Gateway(service, log, gateway_settings(config), clock=service.clock,
                          identities=identities, metrics=metrics)
        service.attach(gateway, deliverer.wake)
        metrics.watch(connections=lambda: gateway.statistics().connections,
                      devices_online=lambda: gateway.statistics().devices,
                      deliveries_pending=lambda: service.deliveries_pending)
        metrics.watch_log(lambda: log.dropped)
        cluster = _cluster_node(config, log)
        service.ownership = cluster
        app = create_app(config=config, db=db, service=service, metrics=metrics,
                         clock=clock, logger=log, cluster=cluster)
        async with trio.open_nursery() as nursery:
            if cluster is not None:
                from .cluster import NodeHooks

                await nursery.start(cluster.run, NodeHooks(
                    run_call=forwarded_call_runner(app), release=service.release_device,
                    owned=service.owned_devices, orphans=service.watched_devices,
                    adopt=service.adopt_device, changed=_reload(service)))
            await service.start()
            if cluster is None:
                # Alone, no earlier delivery attempt can still run; on a cluster
                # another node's may, and its lease runs out by itself.
                await db.release_delivery_claims(int(clock()))
            nursery.start_soon(service.run)
            nursery.start_soon(deliverer.run)
            listeners = await nursery.start(functools.partial(
                gateway.serve, config.tcp_host, config.tcp_port, reuse_port=config.reuse_port))
            tcp_host, tcp_port = listeners[0].socket.getsockname()[:2]
            log.info("listening", listener="devices", host=tcp_host, port=tcp_port)
            http_host, http_port = await nursery.start(
                lambda task_status: serve_http(app, config.http_host, config.http_port,
                                               task_status=task_status, logger=log,
                                               reuse_port=config.reuse_port))
            log.info("listening", listener="http", host=http_host, port=http_port)
            task_status.started(ServerAddresses(tcp_host, tcp_port, http_host, http_port))
            try:
                await trio.sleep_forever()
            finally:
                nursery.cancel_scope.cancel()
                with trio.CancelScope(shield=True):
                    await service.aclose()
    finally:
        with trio.CancelScope(shield=True):
            await db.aclose()
            log.info("stopped")


def _reload(service: ChargingService) -> Callable[[str], Awaitable[None]]:
    async def reload(change: str) -> None:
        if change == "identities":
            await service.identities_changed()
    return reload


def _cluster_node(config: Config, log: Logger) -> ClusterNode | None:
    """This server's node of a cluster, when ``redis_url`` names one."""
    if config.redis_url is None:
        return None
    from .cluster import ClusterNode, ClusterSettings, default_node_id

    return ClusterNode(ClusterSettings(redis_url=config.redis_url,
                                       node_id=config.node_id or default_node_id(),
                                       prefix=config.cluster_name), log)


def _check_file_mode(config: Config, log: Logger) -> None:
    """Warn when others than the owner may read the database (a file the server did
    not create; new files are 0600). The mode is left as the operator set it."""
    for path in (config.db_path, config.db_path.with_name(config.db_path.name + "-wal")):
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("database file is readable by others", path=str(path),
                        mode=oct(stat.S_IMODE(mode)), advice="chmod 600")


def gateway_settings(config: Config) -> GatewaySettings:
    """The gateway's limits from the configuration."""
    idle = max(config.offline_after_for("bkv"), config.offline_after_for("ap3000"))
    return GatewaySettings(
        idle_timeout=idle + _IDLE_MARGIN,
        device_policy=config.device_policy, iccid_binding=config.iccid_binding,
        takeover_policy=config.takeover_policy,
        offline_after={p: config.offline_after_for(p) for p in ("bkv", "ap3000")},
        max_connections=(config.max_connections if config.max_connections is not None
                         else default_max_connections()),
        max_connections_per_ip=config.max_connections_per_ip,
        unidentified_timeout=config.unidentified_timeout,
        unidentified_max_bytes=config.unidentified_max_bytes,
        frame_log_max_bytes=config.frame_log_max_bytes,
        frame_log_level=config.log_frame_level)


async def _api_keys(config: Config, db: AsyncDatabase, log: Logger, announce: TextIO) -> Config:
    """Use the configured keys, or the generated one: made and printed once at first
    start, and stored only as its SHA-256."""
    if not config.needs_generated_api_key:
        return config
    legacy = await db.get_setting(LEGACY_GENERATED_API_KEY_SETTING)
    if legacy is not None:
        # An older server stored the key itself: keep the key, store only its hash.
        await db.ensure_setting(GENERATED_API_KEY_SETTING, hash_api_key(legacy))
        await db.delete_setting(LEGACY_GENERATED_API_KEY_SETTING)
        log.warning("the generated API key was stored in plain text; replaced by its hash")
    key = generate_api_key()
    digest, created = await db.ensure_setting(GENERATED_API_KEY_SETTING, hash_api_key(key))
    if created:
        announce.write(f"Generated API key (shown once; send it as X-Api-Key): {key}\n")
        announce.flush()
        log.info("API key generated", stored_in="its SHA-256 in the settings table")
    else:
        log.info("using the API key generated at first start")
    return with_generated_api_key(config, key_sha256=digest)


async def main_async(config: Config) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly."""
    log = Logger(config.log_level, log_format=config.log_format)
    thresholds = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_AFTER, thresholds[1], _NEVER)
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: run_server(config, logger=log))
                nursery.start_soon(_collect_garbage, FULL_COLLECTION_EVERY)
                async for signum in signals:
                    log.info("shutting down", signal=signal.Signals(signum).name)
                    nursery.cancel_scope.cancel()
                    break
    finally:
        gc.set_threshold(*thresholds)


async def _collect_garbage(every: float) -> None:
    """A full collection every *every* seconds (see FULL_COLLECTION_EVERY)."""
    while True:
        await trio.sleep(every)
        gc.collect()
