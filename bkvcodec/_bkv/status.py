# The BKV port status byte (bkv.md §7). Devices document one value only, so the
# bit reading below is provisional (bkv.md §11 A7): messages always carry the
# raw byte, and this flag type is a helper to read it.
from __future__ import annotations

import enum

__all__ = ["BkvPortStatus"]


class BkvPortStatus(enum.IntFlag):
    """Bits of the BKV/GN port status byte, most significant first.

    ``BkvPortStatus(report.status)`` reads a raw byte. The reading is derived
    from the vendor's single explained value (``0x98``) and is provisional.

    .. versionadded:: 0.1.0
    """

    #: Over-power (bit 0).
    OVER_POWER = 0x01
    #: Over-current (bit 1).
    OVER_CURRENT = 0x02
    #: Over-temperature (bit 2).
    OVER_TEMPERATURE = 0x04
    #: No load detected (bit 3).
    NO_LOAD = 0x08
    #: Charging (output on) (bit 4).
    CHARGING = 0x10
    #: Unexplained; set in end reports of sessions that ran their full time (bit 5).
    LIMIT_REACHED = 0x20
    #: Metering fault (bit 6).
    METERING_FAULT = 0x40
    #: Socket online (bit 7).
    ONLINE = 0x80

    @property
    def faults(self) -> BkvPortStatus:
        """The fault bits that are set (metering, temperature, current, power)."""
        return self & (BkvPortStatus.METERING_FAULT | BkvPortStatus.OVER_TEMPERATURE
                       | BkvPortStatus.OVER_CURRENT | BkvPortStatus.OVER_POWER)
