# The BKV port status byte (bkv.md §7). Devices document one value only, so the
# bit reading below is provisional (bkv.md §11 A7): messages always carry the
# raw byte, and this flag type is a helper to read it.
from __future__ import annotations

import enum

__all__ = ["BkvPortStatus"]


class BkvPortStatus(enum.IntFlag):
    """Bits of the BKV/GN port status byte, most significant first (bkv.md §7).

    ``BkvPortStatus(report.status)`` reads a raw byte. The reading is derived
    from the vendor's single explained value (``0x98``) and is provisional.

    .. versionadded:: 0.1.0
    """

    #: Bit 0: over-power.
    OVER_POWER = 0x01
    #: Bit 1: over-current.
    OVER_CURRENT = 0x02
    #: Bit 2: over-temperature.
    OVER_TEMPERATURE = 0x04
    #: Bit 3: no load detected.
    NO_LOAD = 0x08
    #: Bit 4: charging (output on).
    CHARGING = 0x10
    #: Bit 5: unexplained; set in end reports of sessions that ran their full time.
    LIMIT_REACHED = 0x20
    #: Bit 6: metering fault.
    METERING_FAULT = 0x40
    #: Bit 7: socket online.
    ONLINE = 0x80

    @property
    def faults(self) -> BkvPortStatus:
        """The fault bits that are set (metering, temperature, current, power)."""
        return self & (BkvPortStatus.METERING_FAULT | BkvPortStatus.OVER_TEMPERATURE
                       | BkvPortStatus.OVER_CURRENT | BkvPortStatus.OVER_POWER)
