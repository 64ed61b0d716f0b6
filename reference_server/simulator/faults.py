# Port faults a simulated device can suffer, and how each protocol reports them.
# BKV/GN reports faults as bits of the port status byte (bkv.md §7, read as
# bkvcodec.bkv.BkvPortStatus); AP3000 reports a latched fault as a port status code
# (ap3000.md §3.3) and says why it stopped in the settlement's stop reason (§3.4).
# AP3000 has port status codes for a load short-circuit but none for over-current or
# over-temperature: a unit stops the order with the matching stop reason and the port
# stays usable, so those faults end the order with reason ``fault`` but raise no
# port alarm. A Fault with other codes can be built for any other case.
from __future__ import annotations

from dataclasses import dataclass

from bkvcodec.ap3000 import Ap3000PortStatus, Ap3000StopReason
from bkvcodec.bkv import BkvPortStatus

__all__ = ["FAULTS", "OVER_CURRENT", "OVER_TEMPERATURE", "SHORT_CIRCUIT", "Fault"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """A port fault and its protocol encodings.

    Attributes:
        name: A snake_case name (``short_circuit`` …), used by scenario files.
        bkv_bits: The fault bits of the BKV port status byte.
        ap3000_port_status: The AP3000 port status code the port latches, or None
            when the unit only stops the order and the port stays usable.
        ap3000_stop_reason: The AP3000 stop reason of the order it ends.
    """

    name: str
    bkv_bits: int
    ap3000_port_status: int | None
    ap3000_stop_reason: int


#: A load short-circuit: over-current and over-power at once on BKV; the AP3000
#: pre-check's "load short-circuit" status and "load too high" stop.
SHORT_CIRCUIT = Fault(
    name="short_circuit",
    bkv_bits=int(BkvPortStatus.OVER_CURRENT | BkvPortStatus.OVER_POWER),
    ap3000_port_status=int(Ap3000PortStatus.PRECHECK_SHORT_CIRCUIT),
    ap3000_stop_reason=int(Ap3000StopReason.LOAD_TOO_HIGH))

#: Over-current protection.
OVER_CURRENT = Fault(
    name="over_current", bkv_bits=int(BkvPortStatus.OVER_CURRENT), ap3000_port_status=None,
    ap3000_stop_reason=int(Ap3000StopReason.OVER_CURRENT))

#: Over-temperature protection (the port's sensor).
OVER_TEMPERATURE = Fault(
    name="over_temperature", bkv_bits=int(BkvPortStatus.OVER_TEMPERATURE),
    ap3000_port_status=None, ap3000_stop_reason=int(Ap3000StopReason.PORT_TEMPERATURE))

#: The predefined faults by name.
FAULTS: dict[str, Fault] = {f.name: f for f in (SHORT_CIRCUIT, OVER_CURRENT, OVER_TEMPERATURE)}
