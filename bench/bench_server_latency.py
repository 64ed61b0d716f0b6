"""End-to-end latency of the reference server, measured over loopback.

Starts the whole server (temporary database, free ports) with a webhook receiver, connects
BKV and AP3000 devices from the library's device role over TCP, and runs charging orders:

* API → device: from sending ``POST /devices/{id}/charge`` to the start command arriving on
  the device's socket (target p99 < 50 ms);
* device → webhook: from the device writing its first progress frame to the
  ``charging.started`` webhook arriving at the receiver (target p99 < 200 ms).

Server, devices and receiver share one process and one trio loop, so the figures include
all three's work. Run: ``.venv/bin/python bench/bench_server_latency.py [--orders N]``.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bkvcodec import (
    CommandAcknowledged,
    DeviceConnection,
    DeviceHeartbeat,
    DeviceInput,
    EndReason,
    MeterReading,
    ProgressReported,
    ProtocolFamily,
    SettlementReported,
    StartCharging,
    verify_webhook,
)
from reference_server.api import serve_http
from reference_server.config import ApiKey, Config
from reference_server.logs import Logger
from reference_server.server import ServerAddresses, run_server

SECRET = "bench-secret"
KEY = "bench-key"
#: Ten BKV gateways and ten AP3000 units, taking orders in turn.
DEVICES = [(ProtocolFamily.BKV, f"822102250{n:05d}") for n in range(10)] + [
    (ProtocolFamily.AP3000, f"04A2{n:04X}") for n in range(10)]
#: The library paces commands to one device (BKV 0.5 s apart); orders to one device
#: are spaced wider than that, so the figure is the server's latency, not the pacing.
DEVICE_SPACING = 0.6


class Receiver:
    def __init__(self) -> None:
        self.started_at: dict[str, float] = {}
        self.arrived = trio.Event()

    async def endpoint(self, request: Request) -> JSONResponse:
        body = await request.body()
        event = verify_webhook(SECRET, "POST", request.url.path, dict(request.headers), body,
                               now=time.time())
        if event.event_type == "charging.started":
            order_no = event.data["order_no"]
            assert isinstance(order_no, str)
            self.started_at[order_no] = time.perf_counter()
            self.arrived.set()
            self.arrived = trio.Event()
        return JSONResponse({"success": True})

    async def wait(self, order_no: str) -> float:
        while order_no not in self.started_at:
            await self.arrived.wait()
        return self.started_at[order_no]


class Device:
    def __init__(self, protocol: ProtocolFamily, phy_id: str) -> None:
        self.protocol, self.phy_id = protocol, phy_id
        self.connection = DeviceConnection(protocol=protocol, phy_id=phy_id)
        self.inputs: trio.MemorySendChannel[tuple[float, DeviceInput]]
        self.inputs, self.received = trio.open_memory_channel(1000)

    async def run(self, port: int, task_status: trio.TaskStatus[None]) -> None:
        self.stream = await trio.open_tcp_stream("127.0.0.1", port)
        await self.stream.send_all(self.connection.data_to_send())
        await self.send(DeviceHeartbeat(phy_id=self.phy_id, protocol=self.protocol))
        task_status.started()
        while data := await self.stream.receive_some(65536):
            at = time.perf_counter()
            for item in self.connection.receive_data(bytes(data), time.time()):
                await self.inputs.send((at, item))
            out = self.connection.data_to_send()
            if out:
                await self.stream.send_all(out)

    async def send(self, event: object) -> None:
        self.connection.send(event, time.time())
        await self.stream.send_all(self.connection.data_to_send())

    async def next_start(self) -> tuple[float, StartCharging]:
        async for at, item in self.received:
            if isinstance(item, StartCharging):
                return at, item
        raise RuntimeError("connection closed")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def report(name: str, values_s: list[float], target_ms: float) -> None:
    ms = [v * 1000 for v in values_s]
    p50, p99 = statistics.median(ms), percentile(ms, 99)
    verdict = "met" if p99 < target_ms else "MISSED"
    print(f"{name:<34} n={len(ms):<5} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  "
          f"max {max(ms):7.2f} ms  (target p99 < {target_ms:.0f} ms: {verdict})")


async def bench(orders: int) -> None:
    receiver = Receiver()
    app = Starlette(routes=[Route("/hook", receiver.endpoint, methods=["POST"])])
    with tempfile.TemporaryDirectory() as tmp:
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(serve_http, app, "127.0.0.1", 0)
            config = replace(Config(), tcp_host="127.0.0.1", tcp_port=0,
                             http_host="127.0.0.1", http_port=0,
                             db_path=Path(tmp) / "iot.db", api_keys=(ApiKey("bench", KEY),),
                             webhook_url=f"http://{host}:{port}/hook", webhook_secret=SECRET,
                             device_command_rate=10_000, log_level="warning")
            addresses: ServerAddresses = await nursery.start(
                lambda task_status: run_server(config, logger=Logger("warning"),
                                               task_status=task_status))
            devices = [Device(protocol, phy_id) for protocol, phy_id in DEVICES]
            for device in devices:
                await nursery.start(device.run, addresses.tcp_port)
            api_to_device: list[float] = []
            frame_to_webhook: list[float] = []
            async with httpx.AsyncClient(
                    base_url=f"http://{addresses.http_host}:{addresses.http_port}",
                    headers={"X-Api-Key": KEY}) as api:
                await trio.sleep(0.5)  # let both devices register
                last_command: dict[str, float] = {}
                for n in range(orders):
                    device = devices[n % len(devices)]
                    wait = last_command.get(device.phy_id, 0.0) + DEVICE_SPACING
                    await trio.sleep(max(0.0, wait - time.perf_counter()))
                    sent = time.perf_counter()
                    last_command[device.phy_id] = sent
                    response = await api.post(
                        f"/api/v1/third/devices/{device.phy_id}/charge",
                        json={"port_no": 1, "charge_mode": 1, "duration": 600, "amount": 500})
                    response.raise_for_status()
                    order_no = response.json()["data"]["order_no"]
                    arrived, start = await device.next_start()
                    api_to_device.append(arrived - sent)
                    business = 0x100 + n if device.protocol is ProtocolFamily.BKV else None
                    await device.send(CommandAcknowledged(
                        command_id=start.command_id, phy_id=device.phy_id,
                        business_no=business))
                    reading = MeterReading(duration_s=60, energy_centikwh=5, power_dw=1500)
                    written = time.perf_counter()
                    await device.send(ProgressReported(
                        phy_id=device.phy_id, socket_no=1, port_no=1, order_no=order_no,
                        business_no=business, reading=reading))
                    frame_to_webhook.append(await receiver.wait(order_no) - written)
                    await device.send(SettlementReported(
                        phy_id=device.phy_id, socket_no=1, port_no=1, order_no=order_no,
                        business_no=business, reading=reading, end_reason=EndReason.NORMAL))
                    await trio.sleep(0.01)  # the settlement is handled before the next order
            nursery.cancel_scope.cancel()
    print(f"{orders} orders over loopback, server + devices + receiver in one process")
    report("API charge -> command on device", api_to_device, 50)
    report("device frame -> webhook received", frame_to_webhook, 200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    args = parser.parse_args()
    trio.run(bench, args.orders)


if __name__ == "__main__":
    main()
