# The protocol facts a simulated device needs, kept apart from its behaviour:
# default cadences, the port status each protocol reports for a port condition,
# the end reason and stop reason a settlement carries for each way a charge ends,
# the end reason the server will derive from it (api.md §10.2), and what the
# protocols' parameter commands mean to the device. Everything below the neutral
# events (frames, bytes) stays in bkvcodec's device role.
#
# Sources: bkv.md §7 and §10 (status byte, heartbeat every 60 s, status report
# every 5 min, an unanswered end report repeated about every 11 s); ap3000.md §3.3,
# §3.4, §4.3, §4.6, §5.2, §5.4 (port status codes, stop reasons, settlements
# repeated every 30 min until answered, 0x06 every 5 min, 0x83 parameters);
# api.md §7 (AP3000 heartbeat every 30 s).
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from bkvcodec import EndReason, PortState, ProtocolFamily
from bkvcodec.ap3000 import AP3000_END_REASONS, Ap3000PortStatus, Ap3000StopReason
from bkvcodec.bkv import BkvPortStatus

from .faults import Fault
from .records import EndCause
from .specs import DeviceProfile

__all__ = [
    "SETTLEMENT_ANSWERS", "DeviceSettings", "PortCondition", "port_state", "server_end_reason",
    "settlement_reason", "status_code",
]

_BKV, _AP = ProtocolFamily.BKV, ProtocolFamily.AP3000

#: Protocol defaults: heartbeat, progress and settlement-retry periods (s).
_CADENCE = {_BKV: (60.0, 300.0, 11.0), _AP: (30.0, 300.0, 1800.0)}

#: Names (bkvcodec.ServerAnswered.name) of the server's answers to a settlement.
SETTLEMENT_ANSWERS = frozenset({"settlement_reply", "charge_end_ack", "fee_charge_end_ack"})


class PortCondition(enum.Enum):
    """A port as its device sees it."""

    #: Nothing plugged in.
    EMPTY = "empty"
    #: A charger is plugged in; no charge runs.
    PLUGGED = "plugged"
    #: A charger is plugged in and the last charge ended full.
    FULL = "full"
    #: The relay is closed for an order.
    CHARGING = "charging"
    #: A latched fault.
    FAULT = "fault"


_BKV_ONLINE = int(BkvPortStatus.ONLINE)
_AP3000_CODES = {
    PortCondition.EMPTY: int(Ap3000PortStatus.IDLE),
    PortCondition.PLUGGED: int(Ap3000PortStatus.PLUGGED_NOT_STARTED),
    PortCondition.FULL: int(Ap3000PortStatus.PLUGGED_FULL),
    PortCondition.CHARGING: int(Ap3000PortStatus.CHARGING),
}


def status_code(protocol: ProtocolFamily, condition: PortCondition, fault: Fault | None) -> int:
    """The raw port status the protocol reports (BKV status byte, AP3000 code)."""
    if protocol is _BKV:
        if condition is PortCondition.CHARGING:
            return _BKV_ONLINE | int(BkvPortStatus.CHARGING)
        if condition is PortCondition.FAULT and fault is not None:
            return _BKV_ONLINE | fault.bkv_bits
        return _BKV_ONLINE
    if condition is PortCondition.FAULT and fault is not None \
            and fault.ap3000_port_status is not None:
        return fault.ap3000_port_status
    return _AP3000_CODES.get(condition, int(Ap3000PortStatus.IDLE))


def port_state(condition: PortCondition) -> PortState:
    """The contract's port state for a condition."""
    if condition is PortCondition.CHARGING:
        return PortState.CHARGING
    if condition is PortCondition.FAULT:
        return PortState.FAULT
    return PortState.IDLE


_S = Ap3000StopReason
_SETTLEMENT: dict[EndCause, tuple[EndReason, int]] = {
    EndCause.TIME_LIMIT: (EndReason.NORMAL, _S.PRESET_DURATION),
    EndCause.ENERGY_LIMIT: (EndReason.NORMAL, _S.PRESET_ENERGY),
    EndCause.UNPLUGGED: (EndReason.NORMAL, _S.UNPLUGGED),
    EndCause.FULL: (EndReason.FULL, _S.FULL),
    # An AP3000 unit counts a port below its "unplug power" as unplugged (§5.4).
    EndCause.NO_LOAD: (EndReason.NORMAL, _S.UNPLUGGED),
    EndCause.REMOTE_STOP: (EndReason.REMOTE_STOP, _S.SERVER_STOP),
    EndCause.MAX_TIME: (EndReason.TIMEOUT, _S.MAX_DURATION),
    EndCause.USER_STOP: (EndReason.USER_STOP, _S.CARD_SWIPE),
}


def settlement_reason(protocol: ProtocolFamily, cause: EndCause,
                      fault: Fault | None) -> tuple[EndReason, int | None]:
    """The end reason and raw stop reason a device's settlement carries.

    BKV end reports carry no reason code (the server derives it from status
    bits); the neutral reason chooses the bits: a no-load end is reported like a
    full one (the gateway's "no load" end).
    """
    if cause is EndCause.FAULT:
        return EndReason.FAULT, (None if protocol is _BKV or fault is None
                                 else fault.ap3000_stop_reason)
    if protocol is _BKV:
        if cause is EndCause.NO_LOAD:
            return EndReason.FULL, None
        return _SETTLEMENT.get(cause, (EndReason.NORMAL, 0))[0], None
    reason, raw = _SETTLEMENT.get(cause, (EndReason.NORMAL, int(_S.PRESET_DURATION)))
    return reason, int(raw)


def server_end_reason(protocol: ProtocolFamily, cause: EndCause,
                      fault: Fault | None) -> EndReason:
    """The end reason the server records for a charge that ended this way: AP3000 maps the stop
    reason; a BKV end report is
    ``remote_stop`` after a stop, ``fault`` with fault bits, else ``normal``."""
    if cause is EndCause.LOST:
        return EndReason.DEVICE_LOST_ORDER
    if protocol is _BKV:
        if cause is EndCause.REMOTE_STOP:
            return EndReason.REMOTE_STOP
        return EndReason.FAULT if cause is EndCause.FAULT else EndReason.NORMAL
    _, raw = settlement_reason(protocol, cause, fault)
    return AP3000_END_REASONS.get(raw or 0, EndReason.NORMAL)


@dataclass(slots=True)
class DeviceSettings:
    """A device's live tunables: copied from its profile, changed by the server's
    parameter commands (BKV ``0x1011``, AP3000 ``0x83`` and ``0x85``'s maximum
    charge duration)."""

    heartbeat_s: float
    progress_s: float
    settlement_retry_s: float
    full_power_w: float
    full_delay_s: float
    no_load_power_w: float
    no_load_delay_s: float
    max_charge_time_s: float

    @classmethod
    def from_profile(cls, protocol: ProtocolFamily, profile: DeviceProfile) -> DeviceSettings:
        heartbeat, progress, retry = _CADENCE[protocol]
        return cls(
            heartbeat_s=profile.heartbeat_s or heartbeat,
            progress_s=profile.progress_s or progress,
            settlement_retry_s=profile.settlement_retry_s or retry,
            full_power_w=profile.full_power_w, full_delay_s=profile.full_delay_s,
            no_load_power_w=profile.no_load_power_w, no_load_delay_s=profile.no_load_delay_s,
            max_charge_time_s=profile.max_charge_time_s)

    def params(self, protocol: ProtocolFamily) -> dict[str, int]:
        """The values a parameter query reports, by its message names."""
        if protocol is _BKV:
            return {
                "full_power_threshold_dw": round(self.full_power_w * 10),
                "full_charge_delay_s": round(self.full_delay_s),
                "no_load_power_threshold_dw": round(self.no_load_power_w * 10),
                "no_load_delay_s": round(self.no_load_delay_s),
                "max_charge_time_min": round(self.max_charge_time_s / 60),
                "high_temp_threshold_c": 80, "power_limit_dw": 10000,
            }
        return {
            "unplug_power": round(self.no_load_power_w),
            "unplug_detect_time_s": round(self.no_load_delay_s),
            "float_percent": 20,
            "float_detect_time_s": round(self.full_delay_s),
            "float_time_s": 0,
            "heartbeat_interval_s": round(self.heartbeat_s),
            "max_charge_duration_s": round(self.max_charge_time_s),
        }

    def apply(self, protocol: ProtocolFamily, params: Mapping[str, int]) -> None:
        """Take the parameters a set command carries; unknown names are ignored."""
        def get(name: str, scale: float = 1.0) -> float | None:
            value = params.get(name)
            return None if value is None or value <= 0 else value * scale

        if protocol is _BKV:
            updates = {"full_power_w": get("full_power_threshold_dw", 0.1),
                       "full_delay_s": get("full_charge_delay_s"),
                       "no_load_power_w": get("no_load_power_threshold_dw", 0.1),
                       "no_load_delay_s": get("no_load_delay_s"),
                       "max_charge_time_s": get("max_charge_time_min", 60.0)}
        else:
            updates = {"no_load_power_w": get("unplug_power"),
                       "no_load_delay_s": get("unplug_detect_time_s"),
                       "full_delay_s": get("float_detect_time_s"),
                       "heartbeat_s": get("heartbeat_interval_s"),
                       "max_charge_time_s": get("max_charge_duration_s")}
        for name, value in updates.items():
            if value is not None:
                setattr(self, name, value)
