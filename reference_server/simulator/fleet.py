# A fleet of simulated devices in one trio nursery, one task per device: the
# entry point of the simulator's Python API. Fleet.connect() starts every device
# against one server and stops them all on exit; a device that fails is logged
# and restarted by its own task, so one device never takes the fleet down.
from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager

import trio

from ..logs import Logger
from .clock import SimClock
from .device import SimDevice
from .records import FleetStatistics
from .specs import DeviceSpec

__all__ = ["Fleet"]


class Fleet:
    """Simulated devices talking to one server. Make one with :meth:`connect`.

    ``fleet[phy_id]`` is a :class:`SimDevice`; iterating gives every device.

    Attributes:
        clock: The simulated clock every device runs on.
        host: The server's host.
        port: The server's device TCP port.
    """

    def __init__(self, nursery: trio.Nursery, host: str, port: int, *, clock: SimClock,
                 seed: int | str, logger: Logger, journal_limit: int | None,
                 ramp_up: float, latency: float, source_addresses: Sequence[str]) -> None:
        self.clock = clock
        self.host = host
        self.port = port
        self._nursery = nursery
        self._seed = seed
        self._log = logger
        self._journal_limit = journal_limit
        self._ramp_up = ramp_up
        self._latency = latency
        self._source_addresses = tuple(source_addresses)
        self._devices: dict[str, SimDevice] = {}

    @classmethod
    @asynccontextmanager
    async def connect(cls, host: str, port: int, devices: Iterable[DeviceSpec] = (), *,
                      clock: SimClock | None = None, seed: int | str = 0,
                      logger: Logger | None = None, journal_limit: int | None = 1000,
                      ramp_up: float = 0.0, latency: float = 0.0,
                      source_addresses: Sequence[str] = ()) -> AsyncIterator[Fleet]:
        """Run *devices* against the server at *host*:*port* for the ``async with``
        block; every device is stopped (its sockets closed) when the block exits.

        Devices connect in the background: ``await fleet.wait_connected()`` waits for
        them. Simulated time 0 is when the fleet starts.

        Args:
            host: The server's host.
            port: The server's device TCP port.
            devices: What to simulate (:func:`bkv_gateway`, :func:`ap3000_unit`,
                :func:`fleet_specs`).
            clock: The simulated clock (real time, ``SimClock(speed=1)``, if None).
            seed: Seeds every device's random generator (with its id), so runs
                repeat.
            logger: Where devices log failures (JSON lines on stderr, warnings and
                above, if None).
            journal_limit: Journal entries kept per device (None: all; 0: none).
            ramp_up: Spread first connections over this many simulated seconds.
            latency: One-way delay of every device's writes, in real seconds (network
                latency does not compress with the clock). A real 4G link adds 30-100
                ms; 0 answers at loopback speed.
            source_addresses: Local addresses :meth:`SimDevice.change_ip` cycles through.
        """
        chosen_clock = clock if clock is not None else SimClock()
        chosen_clock.now()  # simulated time 0 is now
        async with trio.open_nursery() as nursery:
            fleet = cls(nursery, host, port, clock=chosen_clock, seed=seed,
                        logger=logger if logger is not None else Logger("warning"),
                        journal_limit=journal_limit, ramp_up=ramp_up, latency=latency,
                        source_addresses=source_addresses)
            for spec in devices:
                fleet.add(spec)
            try:
                yield fleet
            finally:
                nursery.cancel_scope.cancel()

    def add(self, spec: DeviceSpec) -> SimDevice:
        """Start one more device; returns it at once (it connects in the background).

        Raises:
            ValueError: A device with this id is already in the fleet.
        """
        if spec.phy_id in self._devices:
            raise ValueError(f"device {spec.phy_id} is already in the fleet")
        device = SimDevice(spec, host=self.host, port=self.port, clock=self.clock,
                           seed=self._seed, logger=self._log,
                           journal_limit=self._journal_limit, latency=self._latency,
                           source_addresses=self._source_addresses)
        self._devices[spec.phy_id] = device
        start_after = device.random.uniform(0.0, self._ramp_up) if self._ramp_up > 0 else 0.0
        self._nursery.start_soon(lambda: device.run(start_after=start_after))
        return device

    def __getitem__(self, phy_id: str) -> SimDevice:
        device = self._devices.get(phy_id) or self._devices.get(phy_id.lower()) \
            or self._devices.get(phy_id.upper())
        if device is None:
            raise KeyError(phy_id)
        return device

    def __contains__(self, phy_id: object) -> bool:
        return isinstance(phy_id, str) and any(
            key in self._devices for key in (phy_id, phy_id.lower(), phy_id.upper()))

    def __iter__(self) -> Iterator[SimDevice]:
        return iter(self._devices.values())

    def __len__(self) -> int:
        return len(self._devices)

    @property
    def devices(self) -> tuple[SimDevice, ...]:
        """Every device, in the order added."""
        return tuple(self._devices.values())

    async def wait_connected(self) -> None:
        """Return once every device has an open connection."""
        for device in self.devices:
            await device.wait_connected()

    async def wait_registered(self) -> None:
        """Return once the server has answered every device on its connection."""
        for device in self.devices:
            await device.wait_registered()

    def statistics(self) -> FleetStatistics:
        """Counters summed over the devices."""
        stats = [d.statistics() for d in self._devices.values()]
        return FleetStatistics(
            devices=len(stats), connected=sum(s.connected for s in stats),
            ever_connected=sum(s.connections > 0 for s in stats),
            charging_ports=sum(s.charging_ports for s in stats),
            frames_sent=sum(s.frames_sent for s in stats),
            frames_received=sum(s.frames_received for s in stats),
            bytes_sent=sum(s.bytes_sent for s in stats),
            bytes_received=sum(s.bytes_received for s in stats),
            reconnects=sum(max(s.connections - 1, 0) for s in stats),
            connect_failures=sum(s.connect_failures for s in stats),
            errors=sum(s.errors for s in stats))
