# What every request handler of the HTTP API shares: the configuration, the
# database, the charging service, metrics, the clock, the logger and the
# per-application guards (authenticator, rate limiters, idempotency store). One
# frozen object, built once by create_app() and passed to each handler, so the
# handlers are plain functions and tests can see exactly what they depend on.
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from bkvcodec import Command, ProtocolFamily

    from ..config import Config
    from ..errors import ServiceError
    from ..logs import Logger
    from ..metrics import Metrics
    from ..requests import ChargeRequest, ChargeResult, OtaRequest, StopRequest
    from ..service import ChargingService
    from ..storage import (
        AsyncDatabase,
        CommandRecord,
        Database,
        DeviceIdentity,
        EventRecord,
        OrderRecord,
    )
    from .auth import Authenticator
    from .idempotency import IdempotencyStore
    from .ratelimit import TokenBucketLimiter

__all__ = ["ApiContext", "ChargingOperations"]


class ChargingOperations(Protocol):
    """The part of :class:`~reference_server.service.ChargingService` the API calls.

    A protocol rather than the class, so the API depends on these signatures only
    (and its read-only routes can be tested without a running service). Each
    operation raises a :class:`~reference_server.errors.ServiceError` on a refusal;
    ``key_name`` is the API key that asks, recorded for audit.
    """

    @property
    def ready(self) -> bool:
        """True while the service runs (``/readyz``)."""
        ...

    async def start_charge(self, request: ChargeRequest, *, key_name: str | None = None,
                           record_answer: Callable[[Database, ChargeResult], None] | None
                           = None) -> ChargeResult:
        """Create an order and queue its start (*record_answer* runs in the order's
        transaction)."""
        ...

    async def stop_charge(self, request: StopRequest, *,
                          key_name: str | None = None) -> OrderRecord:
        """Stop the order on a port (or the one named)."""
        ...

    async def set_params(self, phy_id: str, params: Mapping[str, int], *,
                         socket_no: int = 1, key_name: str | None = None) -> CommandRecord:
        """Queue a parameter change."""
        ...

    async def query_params(self, phy_id: str, *, socket_no: int = 1,
                           key_name: str | None = None) -> CommandRecord:
        """Queue a parameter query."""
        ...

    async def start_ota(self, phy_id: str, request: OtaRequest, *,
                        key_name: str | None = None) -> CommandRecord:
        """Queue a firmware update."""
        ...

    async def send_command(self, phy_id: str, kind: str, build: Callable[[str], Command], *,
                           key_name: str | None = None,
                           refuse: Callable[[str], ServiceError] | None = None
                           ) -> CommandRecord:
        """Queue the library command *build* makes from a new command id."""
        ...

    async def redeliver(self, event_id: str, *, key_name: str | None = None) -> EventRecord:
        """Queue one recorded event for delivery again."""
        ...

    async def provision_device(self, phy_id: str, *, protocol: ProtocolFamily | None = None,
                               iccid: str | None = None) -> tuple[DeviceIdentity, bool]:
        """Provision a device id."""
        ...

    async def deprovision_device(self, phy_id: str) -> None:
        """Withdraw a device id's provisioning and ICCID binding."""
        ...


if TYPE_CHECKING:
    def _service_conforms(service: ChargingService) -> ChargingOperations:
        # mypy fails here if ChargingService stops matching the protocol.
        return service


class DeviceCalls(Protocol):
    """The cluster, as the API forwards with it (a
    :class:`~reference_server.cluster.ClusterNode`)."""

    async def owner_elsewhere(self, phy_id: str) -> str | None:
        """The live node other than this one that owns the device, if any."""

    async def owner_of(self, phy_id: str) -> str | None:
        """The live node that owns the device (this one included), if any."""

    async def forward(self, node: str, phy_id: str, call: str) -> str:
        """Run *call* on *node*; its reply."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiContext:
    """The shared dependencies of the API's handlers.

    Attributes:
        config: Limits and TTLs (``max_body_bytes``, ``idempotency_ttl`` …).
        db: The database.
        service: The charging service.
        metrics: Where request latency is observed.
        clock: Wall-clock Unix time (envelope timestamps, signatures, TTLs).
        logger: The server's JSON logger.
        auth: API keys and request signatures.
        key_limiter: The per-API-key token buckets (every authenticated route).
        auth_failure_limiter: The per-remote-address buckets of failed
            authentications.
        device_limiter: The per-device buckets (command routes).
        idempotency: Stored answers for ``Idempotency-Key``.
        document: The OpenAPI document, encoded once.
        cluster: On a cluster, where device calls are forwarded to their owner.
    """

    config: Config
    db: AsyncDatabase
    service: ChargingOperations
    metrics: Metrics
    clock: Callable[[], float]
    logger: Logger
    auth: Authenticator
    key_limiter: TokenBucketLimiter
    auth_failure_limiter: TokenBucketLimiter
    device_limiter: TokenBucketLimiter
    idempotency: IdempotencyStore
    document: bytes
    cluster: DeviceCalls | None = None

    def now(self) -> int:
        """The current Unix time in whole seconds."""
        return int(self.clock())
