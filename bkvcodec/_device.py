# Device-role connections: the mirror image of ServerConnection, for simulators,
# test benches and device-side code. The device sends protocol-neutral events
# (heartbeats, port status, progress, settlement, card swipes, answers to
# commands) and receives the server's commands as the same neutral command
# objects a server sends. Which frames carry them is the protocol rules' job
# (``_bkv.device``, ``_ap3000.device``).
from __future__ import annotations

from ._ap3000.device import Ap3000DeviceRules
from ._bkv.device import BkvDeviceRules
from ._decoder import FrameDecoder, FrameRejected, UnidentifiedStream
from ._errors import LocalProtocolError
from ._events import UnknownMessage
from ._roles import DeviceInput, DeviceOutput, DeviceRules
from ._types import Direction, ProtocolFamily

__all__ = ["DeviceConnection"]


class DeviceConnection:
    """The device's side of a connection to the server.

    Args:
        protocol: The protocol the device speaks.
        phy_id: The device's printed id (BKV gateway id, AP3000 physical id).
        iccid: The SIM's ICCID; AP3000 modems announce it when connecting.
        port_count: AP3000: the unit's ports (1-16, default 2), reported in its
            registration and heartbeats. BKV gateways report sockets per frame.

    Raises:
        LocalProtocolError: *port_count* is out of range, or given for BKV.

    .. versionadded:: 0.1.0
    """

    def __init__(self, *, protocol: ProtocolFamily, phy_id: str,
                 iccid: str = "89860000000000000000", port_count: int | None = None) -> None:
        self.protocol = protocol
        self.phy_id = phy_id
        self._decoder = FrameDecoder(direction=Direction.DOWN, protocol=protocol)
        self._rules = _rules_for(protocol, phy_id, iccid, port_count)
        self._out = bytearray(self._rules.greeting())

    def set_port_status(self, port_no: int, raw_status: int) -> None:
        """AP3000: the status code a port reports in the unit's
        heartbeats from now on.

        Raises:
            LocalProtocolError: Not an AP3000 connection, or no such port.
        """
        setter = getattr(self._rules, "set_port_status", None)
        if setter is None:
            raise LocalProtocolError("only AP3000 units report port statuses in heartbeats")
        setter(port_no, raw_status)

    def receive_data(self, data: bytes, now: float) -> list[DeviceInput]:
        """Process bytes from the server: commands and answers, as neutral objects."""
        inputs: list[DeviceInput] = []
        for item in self._decoder.feed(data):
            if isinstance(item, FrameRejected):
                inputs.append(item)
                continue
            try:
                inputs += self._rules.on_frame(item, now)
            except LocalProtocolError as err:
                # A valid frame whose values no command can hold (an empty FTP
                # host …): reported as data, like a frame without a rule.
                data = b"" if isinstance(item, UnidentifiedStream) else item.encode()
                inputs.append(UnknownMessage(phy_id=self.phy_id, name=str(err), data=data))
        self._out += self._rules.take_output()
        return inputs

    def send(self, event: DeviceOutput, now: float) -> None:
        """Encode what the device reports; the frame comes out of :meth:`data_to_send`.

        Raises:
            LocalProtocolError: The protocol cannot express *event*, or it names
                a command this connection never received.
        """
        self._out += self._rules.encode(event, now)

    def data_to_send(self) -> bytes:
        """Every byte waiting to be written (the greeting, at first)."""
        data = bytes(self._out)
        self._out.clear()
        return data


def _rules_for(protocol: ProtocolFamily, phy_id: str, iccid: str,
               port_count: int | None) -> DeviceRules:
    if protocol is ProtocolFamily.BKV:
        if port_count is not None:
            raise LocalProtocolError("port_count is for AP3000 units")
        return BkvDeviceRules(phy_id, iccid)
    count = 2 if port_count is None else port_count
    if not 1 <= count <= 16:
        raise LocalProtocolError(f"an AP3000 unit has 1-16 ports, not {count}")
    rules: DeviceRules = Ap3000DeviceRules(phy_id, iccid, port_count=count)
    return rules

