"""The example servers are safe against real hardware: run against the project's
simulated devices for a fixed time, each exchanges a bounded number of frames per
device. (Querying an AP3000 unit's status on every registration loops: the query
makes the unit register again. Pointed at one simulated unit for 60 s, an earlier
version of the trio example exchanged 221,766 frames.)"""
from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import trio

from bkvcodec import ConnectionEvent, DeviceRegistered
from reference_server.simulator import DeviceSpec, Fleet, SimClock, ap3000_unit, bkv_gateway

from ..helpers import load_example
from .harness import AP3000_ID, BKV_ID

#: How long the devices talk to an example (real seconds).
WINDOW = 6.0
#: Frames sent plus frames received per device in WINDOW: connecting, registering,
#: the status query and its answers, a few heartbeats. A loop makes thousands.
MAX_FRAMES_PER_DEVICE = 40


async def run_devices(port: int, specs: list[DeviceSpec]) -> dict[str, int]:
    """Run *specs* against the example on *port* for WINDOW; frames per device."""
    with trio.fail_after(WINDOW + 20):
        async with Fleet.connect("127.0.0.1", port, specs, clock=SimClock(speed=1.0),
                                 seed=3) as fleet:
            await fleet.wait_connected()
            await trio.sleep(WINDOW)
            counts = {device.phy_id: device.statistics().frames_sent
                      + device.statistics().frames_received for device in fleet}
    return counts


def check(example: str, counts: dict[str, int], events: list[ConnectionEvent]) -> None:
    print(f"{example}: frames per device in {WINDOW:.0f} s: {counts}")
    for phy_id, frames in counts.items():
        assert frames <= MAX_FRAMES_PER_DEVICE, (phy_id, frames)
        assert any(isinstance(e, DeviceRegistered) and e.phy_id == phy_id for e in events)


@pytest.mark.trio
async def test_the_trio_example_exchanges_a_bounded_number_of_frames() -> None:
    example = load_example("trio_server")
    events: list[ConnectionEvent] = []
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(lambda task_status: example.serve(
            0, on_event=events.append, task_status=task_status))
        port = listeners[0].socket.getsockname()[1]
        counts = await run_devices(port, [bkv_gateway(BKV_ID), ap3000_unit(AP3000_ID)])
        nursery.cancel_scope.cancel()

    check("trio_server", counts, events)


@contextmanager
def asyncio_example(on_event: Callable[[ConnectionEvent], None]) -> Iterator[int]:
    """The asyncio example serving in a thread of its own; yields its port."""
    example = load_example("asyncio_server")
    started: list[tuple[asyncio.AbstractEventLoop, asyncio.Event, int]] = []
    ready = threading.Event()

    async def main() -> None:
        stop = asyncio.Event()
        async with await example.start(0, "127.0.0.1", on_event=on_event) as server:
            started.append((asyncio.get_running_loop(), stop,
                            server.sockets[0].getsockname()[1]))
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    loop, stop, port = started[0]
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


@pytest.mark.trio
async def test_the_asyncio_example_exchanges_a_bounded_number_of_frames() -> None:
    events: list[ConnectionEvent] = []
    with asyncio_example(events.append) as port:
        counts = await run_devices(port, [bkv_gateway(BKV_ID), ap3000_unit(AP3000_ID)])

    check("asyncio_server", counts, events)


@pytest.mark.trio
async def test_the_blocking_example_exchanges_a_bounded_number_of_frames() -> None:
    example = load_example("blocking_server")
    events: list[ConnectionEvent] = []
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    thread = threading.Thread(target=example.serve_socket, args=(listener, events.append),
                              daemon=True)
    thread.start()
    try:
        # One connection at a time: one device, the AP3000 unit a status query
        # makes register again.
        counts = await run_devices(port, [ap3000_unit(AP3000_ID)])
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        listener.close()
        thread.join(10)

    check("blocking_server", counts, events)
