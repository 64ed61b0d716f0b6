# The validated requests the service acts on, and what it answers. The HTTP
# layer parses JSON into these (naming the bad field in its 400); the service
# checks what needs the database (device known, port free).
from __future__ import annotations

from dataclasses import dataclass

from bkvcodec import ChargeMode, FirmwareTarget, PowerTierSpec

# The records module, not the storage package: reference_server.core imports
# this module and must not reach the storage's trio layer.
from .storage._records import OrderRecord

__all__ = ["AUTO_PORT", "ChargeRequest", "ChargeResult", "FirmwareOta", "FtpOta",
           "OtaRequest", "StopRequest"]

#: ``port_no`` 255: the server picks the lowest idle, fault-free port.
AUTO_PORT = 255


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargeRequest:
    """``POST /devices/{phy_id}/charge``; money in cents."""

    phy_id: str
    port_no: int
    socket_no: int = 1
    charge_mode: ChargeMode
    duration_s: int | None = None
    energy_wh: int | None = None
    power_tiers: tuple[PowerTierSpec, ...] = ()
    amount_cents: int | None = None
    price_per_kwh: int | None = None
    service_fee: int | None = None
    card_no: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargeResult:
    """The created order; ``replaced_order`` when the busy-port policy replaced one."""

    order: OrderRecord
    device_online: bool
    replaced_order: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StopRequest:
    """``POST /devices/{phy_id}/stop``: the order on the port, or the one named."""

    phy_id: str
    port_no: int
    socket_no: int = 1
    order_no: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FtpOta:
    """BKV firmware update: the device fetches the file from an FTP server."""

    ftp_host: str
    file_name: str
    ftp_port: int = 21
    target: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class FirmwareOta:
    """AP3000 firmware update: the server sends the image in packets."""

    image: bytes
    target: FirmwareTarget = FirmwareTarget.SLAVE
    device_type: int | None = None
    firmware_version: int | None = None


#: ``POST /devices/{phy_id}/ota`` bodies, one form per protocol.
OtaRequest = FtpOta | FirmwareOta
