# What a simulated device is: its protocol, identity, ports and behaviour knobs.
# Identities follow the real formats (api.md §2): BKV/GN gateways have 14 hex
# digits (the simulator's own start with 8290, away from the plan's real
# 8221…/8224… devices); AP3000 units have 8 hex digits, type code first
# (ap3000.md §2.3), the type code matching the port count. Behaviour defaults
# follow test-plan.md §1.6 (reconnect within 5-10 s, plug detection in 2-5 s) and
# the protocol references; every one is a field of DeviceProfile.
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal

from bkvcodec import ProtocolFamily
from bkvcodec.ap3000 import Ap3000DeviceType, format_phy_id, make_physical_id

__all__ = [
    "DeviceProfile", "DeviceSpec", "ap3000_phy_id", "ap3000_unit", "bkv_gateway",
    "bkv_phy_id", "fleet_specs",
]

_BKV_ID = re.compile(r"[0-9a-fA-F]{14}")
_AP3000_ID = re.compile(r"[0-9a-fA-F]{8}")
#: The label number of the first simulated AP3000 unit (8 decimal digits).
_AP3000_FIRST_NUMBER = 15_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceProfile:
    """How a simulated device behaves. Times are simulated seconds; a ``(low,
    high)`` pair is drawn uniformly from the device's seeded random generator.

    Attributes:
        heartbeat_s: Heartbeat period; None = the protocol's (BKV 60 s, AP3000 30 s). The
        plan's devices use 11.
        progress_s: Period of progress reports while charging; None = the
            protocol's (5 min for both).
        settlement_retry_s: Resend an unanswered settlement after this long; None
            = the protocol's (BKV about 11 s, AP3000 30 min).
        reconnect_delay_s: Wait before reconnecting after a lost link
            (5-10 s); doubled per failed attempt.
        max_backoff_s: Longest wait between reconnection attempts.
        plug_detect_s: Time the plug sensor needs to see a plug go in or out.
        boot_s: Time a reboot takes before the device reconnects.
        keep_orders_on_reboot: Restore running orders after a reboot (EEPROM,
            plan TC004 option B) or lose them (option A).
        start_without_charger: Accept a start on an empty port and wait for the
            plug (``wait``, the plan's flow) or refuse it (``reject``).
        plug_wait_s: How long an accepted start waits for the plug.
        full_power_w: Below this socket power the battery counts as full …
        full_delay_s: … once it has stayed below for this long.
        no_load_power_w: Below this power the port counts as unloaded …
        no_load_delay_s: … once it has stayed below for this long.
        max_charge_time_s: The device's own longest charge.
        mains_voltage_v: The socket voltage the meter reports.
        firmware: Firmware version a BKV gateway announces.
        rssi: Signal strength a BKV gateway announces (0-31).
    """

    heartbeat_s: float | None = None
    progress_s: float | None = None
    settlement_retry_s: float | None = None
    reconnect_delay_s: tuple[float, float] = (5.0, 10.0)
    max_backoff_s: float = 300.0
    plug_detect_s: tuple[float, float] = (2.0, 5.0)
    boot_s: tuple[float, float] = (15.0, 30.0)
    keep_orders_on_reboot: bool = False
    start_without_charger: Literal["wait", "reject"] = "wait"
    plug_wait_s: float = 300.0
    full_power_w: float = 30.0
    full_delay_s: float = 180.0
    no_load_power_w: float = 5.0
    no_load_delay_s: float = 60.0
    max_charge_time_s: float = 10 * 3600.0
    mains_voltage_v: float = 220.0
    firmware: str = "200.1.17"
    rssi: int = 28

    def __post_init__(self) -> None:
        for name in ("reconnect_delay_s", "plug_detect_s", "boot_s"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high")
        for name in ("heartbeat_s", "progress_s", "settlement_retry_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive")
        if self.start_without_charger not in ("wait", "reject"):
            raise ValueError("start_without_charger must be 'wait' or 'reject'")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceSpec:
    """One device to simulate.

    Attributes:
        protocol: BKV/GN gateway or AP3000 unit.
        phy_id: The printed id (BKV: 14 hex digits; AP3000: 8 hex digits).
        sockets: BKV: sockets under the gateway (1-250), each with port 1 (hole A)
            and port 2 (hole B). AP3000: always 1.
        ports: Ports per socket: BKV always 2; AP3000 1-16.
        profile: Behaviour.
        iccid: The SIM's ICCID; derived from the id when None.
    """

    protocol: ProtocolFamily
    phy_id: str
    sockets: int = 1
    ports: int = 2
    profile: DeviceProfile = field(default_factory=DeviceProfile)
    iccid: str | None = None

    def __post_init__(self) -> None:
        if self.protocol is ProtocolFamily.BKV:
            if not _BKV_ID.fullmatch(self.phy_id):
                raise ValueError(f"a BKV gateway id is 14 hex digits, got {self.phy_id!r}")
            if not 1 <= self.sockets <= 250:
                raise ValueError("a BKV gateway has 1 to 250 sockets")
            if self.ports != 2:
                raise ValueError("BKV sockets have 2 ports (hole A and B)")
            object.__setattr__(self, "phy_id", self.phy_id.lower())
        else:
            if not _AP3000_ID.fullmatch(self.phy_id):
                raise ValueError(f"an AP3000 id is 8 hex digits, got {self.phy_id!r}")
            if self.sockets != 1:
                raise ValueError("an AP3000 unit has one socket")
            if not 1 <= self.ports <= 16:
                raise ValueError("an AP3000 unit has 1 to 16 ports")
            object.__setattr__(self, "phy_id", self.phy_id.upper())

    @property
    def sim_iccid(self) -> str:
        """The ICCID the device announces (20 digits, starting 8986)."""
        if self.iccid is not None:
            return self.iccid
        digest = int(hashlib.sha256(self.phy_id.encode()).hexdigest(), 16)
        return f"8986{digest % 10**16:016d}"


def bkv_phy_id(index: int) -> str:
    """The id of the *index*-th simulated BKV gateway (``82900000000001`` for 1)."""
    if not 0 <= index < 10**10:
        raise ValueError("index out of range")
    return f"8290{index:010d}"


def ap3000_phy_id(index: int, *, ports: int = 2) -> str:
    """The id of the *index*-th simulated AP3000 unit, its type code chosen by
    *ports* (1: single socket, 2: dual, 3-10: 10-port pile, 11-12: 12-port,
    13-16: 16-port)."""
    if ports <= 1:
        code = Ap3000DeviceType.SINGLE_PORT_SOCKET
    elif ports == 2:
        code = Ap3000DeviceType.DUAL_PORT_SOCKET
    elif ports <= 10:
        code = Ap3000DeviceType.PILE_10_PORT
    elif ports <= 12:
        code = Ap3000DeviceType.PILE_12_PORT
    else:
        code = Ap3000DeviceType.PILE_16_PORT
    return format_phy_id(make_physical_id(int(code), _AP3000_FIRST_NUMBER + index))


def bkv_gateway(phy_id: str, *, sockets: int = 1,
                profile: DeviceProfile | None = None) -> DeviceSpec:
    """A BKV/GN gateway with *sockets* sockets of two ports each."""
    return DeviceSpec(protocol=ProtocolFamily.BKV, phy_id=phy_id, sockets=sockets, ports=2,
                      profile=profile or DeviceProfile())


def ap3000_unit(phy_id: str, *, ports: int = 2,
                profile: DeviceProfile | None = None) -> DeviceSpec:
    """An AP3000 unit with *ports* ports (1, 2, 10, 12, 16 … up to 16)."""
    return DeviceSpec(protocol=ProtocolFamily.AP3000, phy_id=phy_id, sockets=1, ports=ports,
                      profile=profile or DeviceProfile())


def fleet_specs(*, bkv: int = 0, bkv_sockets: int = 1, ap3000: int = 0,
                ap3000_ports: int = 2, profile: DeviceProfile | None = None,
                first_index: int = 1) -> list[DeviceSpec]:
    """*bkv* gateways and *ap3000* units with generated ids, numbered from
    *first_index*."""
    chosen = profile or DeviceProfile()
    return ([bkv_gateway(bkv_phy_id(first_index + n), sockets=bkv_sockets, profile=chosen)
             for n in range(bkv)]
            + [ap3000_unit(ap3000_phy_id(first_index + n, ports=ap3000_ports),
                           ports=ap3000_ports, profile=chosen) for n in range(ap3000)])
