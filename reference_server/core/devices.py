# Devices: the cache of the devices this server serves, their ports, and their
# presence (online when a frame arrives, offline when the connection closes or
# the device falls silent).
#
# The database is read by the shell: a device not cached yet is upserted or
# loaded there and handed to cache(). Last-seen times and signal strengths are
# not written per frame: they are collected in ``touched`` and written in batches
# by the shell's flush (one row update a device, however many frames it sent).
from __future__ import annotations

import math
from dataclasses import dataclass

from bkvcodec import DeviceHeartbeat, DeviceRegistered, PortState, ProtocolFamily

from ..config import Config
from ..storage._records import DeviceRecord, DeviceTouch, PortRecord
from ..units import volts
from .changes import Changes, device_event
from .intents import CloseLink, Dispatch

__all__ = ["Device", "Devices", "PortKey"]

#: A port: (device id, socket number, port number).
PortKey = tuple[int, int, int]


@dataclass(eq=False)
class Device:
    id: int
    phy_id: str
    protocol: ProtocolFamily
    online: bool
    last_seen: float
    firmware: str | None = None
    iccid: str | None = None
    #: The signal strength last stored (None: never reported).
    rssi: int | None = None
    #: The ports per socket the device has, when it told: its registration, or an
    #: AP3000 heartbeat, which lists every port (None: not told).
    port_count: int | None = None
    heartbeats: int = 0
    link_id: int | None = None
    #: The epoch of this node's claim on the device (clustered servers; 0 otherwise).
    epoch: int = 0


class Devices:
    """The devices and ports of this server (of this node, when clustered).

    Args:
        config: The server configuration (``offline_after`` per protocol).
        tick: How often the shell's timer runs; a silence check is due a tick
            early, so no rounding can skip it.
    """

    def __init__(self, config: Config, *, tick: float) -> None:
        self.config = config
        self.tick = tick
        self.devices: dict[str, Device] = {}
        self.ports: dict[PortKey, PortRecord] = {}
        #: Devices seen since the last flush.
        self.touched: dict[str, Device] = {}
        #: The ICCID a connection's modem announced, by link id.
        self.link_iccid: dict[int, str] = {}
        self.silence_check_at = -math.inf  # see sweep_silent()
        self.swept_at = -math.inf

    def get(self, phy_id: str) -> Device | None:
        return self.devices.get(phy_id)

    def cache(self, record: DeviceRecord) -> Device:
        """The one object for the device of *record*; cached now if it was not.

        Never replaces a cached one: an order holds its device object, and two tasks
        that loaded the same new device across an ``await`` must end up sharing one.
        """
        cached = self.devices.get(record.phy_id)
        if cached is not None:
            return cached
        device = Device(id=record.id, phy_id=record.phy_id, protocol=record.protocol,
                        online=record.online, last_seen=float(record.last_seen_at or 0),
                        firmware=record.firmware, iccid=record.iccid, rssi=record.rssi)
        self.devices[record.phy_id] = device
        if device.online:
            self.silence_check_at = -math.inf
        return device

    def load_ports(self, ports: list[PortRecord]) -> None:
        """Stored ports of a device being loaded; what is cached already is newer."""
        for port in ports:
            self.ports.setdefault((port.device_id, port.socket_no, port.port_no), port)

    def release(self, phy_id: str) -> Device | None:
        """Forget a device another node now serves; returns it if it was cached."""
        device = self.devices.pop(phy_id, None)
        if device is not None:
            for key in [k for k in self.ports if k[0] == device.id]:
                del self.ports[key]
            self.touched.pop(phy_id, None)
        return device

    # --- presence -----------------------------------------------------------------------

    def seen(self, device: Device, remote_addr: str, now: float, changes: Changes) -> None:
        """A frame of *device* arrived: it is online; coming online sends what
        waits for it."""
        device.last_seen = now
        self.touched[device.phy_id] = device
        if device.online:
            return
        device.online = True
        changes.undo.append(lambda: setattr(device, "online", False))
        silent_at = now + self.config.offline_after_for(device.protocol.value)
        self.silence_check_at = min(self.silence_check_at, silent_at - self.tick)
        phy_id = device.phy_id
        changes.write(lambda db: db.set_device_online(phy_id, True, int(now)))
        changes.events.append(device_event("device.online", phy_id, now,
                                           {"remote_addr": remote_addr}))
        changes.intents.append(Dispatch(phy_id))

    def set_offline(self, device: Device, now: float, reason: str,
                    changes: Changes) -> bool:
        """Mark *device* offline; False if it was not online."""
        if not device.online:
            return False
        device.online = False
        link_id, device.link_id = device.link_id, None
        changes.undo.append(lambda: _set_link(device, True, link_id))
        phy_id = device.phy_id
        changes.write(lambda db: db.set_device_online(phy_id, False, int(now)))
        changes.events.append(device_event("device.offline", phy_id, now, {"reason": reason}))
        return True

    def sweep_silent(self, now: float, changes: Changes) -> list[Device]:
        """Mark the online devices silent past their ``offline_after`` offline, and
        close their connections; returns them.

        Runs only when a device may have fallen silent, or when the clock went
        back since the last sweep (the bound it computed no longer holds): an
        online device's ``last_seen`` only grows, and a device coming online
        lowers the bound to its own (in seen()). At 10,000 devices a sweep
        blocks the event loop for some milliseconds; four a second added up.
        """
        if now < self.silence_check_at and now >= self.swept_at:
            return []
        limits = {protocol: self.config.offline_after_for(protocol.value)
                  for protocol in ProtocolFamily}
        next_check = math.inf
        silent: list[Device] = []
        for device in self.devices.values():
            if not device.online:
                continue
            limit = limits[device.protocol]
            if now - device.last_seen > limit:
                link_id = device.link_id
                self.set_offline(device, now, "silent", changes)
                changes.intents.append(CloseLink(device.phy_id, link_id, "silent"))
                silent.append(device)
            else:
                next_check = min(next_check, device.last_seen + limit)
        self.silence_check_at = next_check - self.tick
        self.swept_at = now
        return silent

    def take_touches(self) -> list[DeviceTouch]:
        """The batched last-seen times and signal strengths, for the flush."""
        touched, self.touched = self.touched, {}
        return [DeviceTouch(phy_id=device.phy_id, seen_at=int(device.last_seen),
                            rssi=device.rssi) for device in touched.values()]

    # --- reports --------------------------------------------------------------------------

    def registered(self, device: Device, event: DeviceRegistered, remote_addr: str,
                   now: float, changes: Changes) -> None:
        """The device registered (the shell stores its firmware)."""
        device.firmware = event.firmware or device.firmware
        if event.port_count:
            device.port_count = event.port_count
        changes.events.append(device_event("device.registered", device.phy_id, now, {
            "protocol": device.protocol.value, "firmware": event.firmware,
            "port_count": event.port_count, "device_type": event.device_type,
            "remote_addr": remote_addr}))

    def heartbeat(self, device: Device, event: DeviceHeartbeat, now: float,
                  changes: Changes, *, sampling: int) -> None:
        """A heartbeat: every *sampling*-th one (the 1st, then …) is an event."""
        rssi = _reported_rssi(device.protocol, event)
        if rssi is not None and device.rssi is None:
            # The first value is stored with this read, so the device's view shows it
            # as soon as the heartbeat's events do; later changes ride the batched touch.
            device.rssi = rssi
            changes.undo.append(lambda: setattr(device, "rssi", None))
            touch = DeviceTouch(phy_id=device.phy_id, seen_at=int(now), rssi=rssi)
            changes.write(lambda db: db.touch_devices([touch]))
        elif rssi is not None:  # stored with the next flush's touch
            device.rssi = rssi
        if (event.firmware and event.firmware != device.firmware) or (
                event.iccid and event.iccid != device.iccid):
            device.firmware = event.firmware or device.firmware
            device.iccid = event.iccid or device.iccid
            phy_id, protocol = device.phy_id, device.protocol
            firmware, iccid = event.firmware, event.iccid
            changes.write(lambda db: db.upsert_device(phy_id, protocol, int(now),
                                                      firmware=firmware, iccid=iccid))
        device.heartbeats += 1
        if device.heartbeats % sampling == 1:
            changes.events.append(device_event("device.heartbeat", device.phy_id, now, {
                "heartbeat_count": device.heartbeats, "rssi": event.rssi,
                "voltage": volts(event.voltage_dv), "firmware": event.firmware,
                "iccid": event.iccid}))

    def put_port(self, device: Device, old: PortRecord | None, port: PortRecord,
                 fault_msg: str, now: float, changes: Changes) -> None:
        """Store *port* if it changed from *old*, and report a change of its status."""
        key = (port.device_id, port.socket_no, port.port_no)
        if old is None or _port_changed(old, port):
            self.ports[key] = port
            changes.undo.append(lambda: self._restore_port(key, old))
            changes.write(lambda db: db.put_port(port))
        if old is None or old.status is not port.status:
            changes.events.append(device_event("port.status_changed", device.phy_id, now, {
                "socket_no": port.socket_no, "port_no": port.port_no,
                "status": int(port.status), "status_name": port.status.name.lower(),
                "previous_status": None if old is None else int(old.status),
                "fault_code": port.fault_code, "fault_msg": fault_msg,
                "power_w": port.power_w, "order_no": port.order_no}))

    def idle_ports(self, device: Device, socket_no: int) -> list[int]:
        """The socket's ports the device last reported idle, lowest first."""
        return sorted(port.port_no for key, port in self.ports.items()
                      if key[0] == device.id and key[1] == socket_no
                      and port.status is PortState.IDLE)

    def _restore_port(self, key: PortKey, port: PortRecord | None) -> None:
        if port is None:
            self.ports.pop(key, None)
        else:
            self.ports[key] = port


def _reported_rssi(protocol: ProtocolFamily, event: DeviceHeartbeat) -> int | None:
    """The heartbeat's signal strength, None when it reports none: 99 is the modem's
    "not known"; an AP3000 port heartbeat (no ICCID) sends 0 for "wired or not
    supported", which must not replace the modem heartbeat's value."""
    rssi = event.rssi
    if rssi is None or rssi == 99:
        return None
    if protocol is ProtocolFamily.AP3000 and rssi == 0 and not event.iccid:
        return None
    return rssi


def _port_changed(old: PortRecord, new: PortRecord) -> bool:
    return (old.status, old.power_w, old.voltage, old.fault_code, old.order_no,
            old.business_no) != (new.status, new.power_w, new.voltage, new.fault_code,
                                 new.order_no, new.business_no)


def _set_link(device: Device, online: bool, link_id: int | None) -> None:
    device.online = online
    device.link_id = link_id
