# ``python -m reference_server monitor``: a live terminal view of one device or the
# whole fleet, read from a running server's HTTP API (nothing else: it works from any
# machine that can reach the API). A snapshot is fetched, then rendered as plain
# text; the refresh loop redraws it in place with cursor-home + clear-screen, which
# every terminal understands, so no TUI library is needed.
#
# Exit status: 0 after --once or --count snapshots (or Ctrl-C), 1 when the server
# cannot be reached (with --once or at the first snapshot) or the key is refused,
# 2 for a usage error.
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NotRequired, TextIO, TypedDict, cast, final

import trio

from .client import ApiClient, ApiError, KeyRefused, ServerUnreachable, api_client

__all__ = ["CLEAR_SCREEN", "DeviceSnapshot", "FleetSnapshot", "MonitorOptions", "main",
           "parse_arguments", "render_snapshot", "run_monitor", "take_snapshot"]

#: Cursor home, then clear the screen: the whole redraw, without scrolling.
CLEAR_SCREEN = "\x1b[H\x1b[2J"

#: The order states shown as "current".
OPEN_ORDER_STATES = "pending,charging,stopping"

DESCRIPTION = """\
A live view of one device (with PHY_ID) or of the whole fleet, read from a running
server's HTTP API: online state, last frame, signal, ports with status and power,
current orders with elapsed time, energy and amount, pending commands and the most
recent frames decoded. It redraws in place every --interval seconds; --once prints
one snapshot without escape codes and exits."""

EPILOG = """\
examples:
  monitor 82210225000520 --url http://127.0.0.1:7055 --api-key KEY
  monitor --url http://127.0.0.1:7055 --api-key KEY --once
  monitor 82210225000520 --url http://127.0.0.1:7055 --api-key KEY --once --json

exit status: 0 at the end, 1 when the server cannot be reached or refuses the key,
2 for a usage error. The key needs the read role."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorOptions:
    """What to watch and how.

    Attributes:
        phy_id: One device, or None for the fleet.
        url: The server's HTTP address.
        api_key: A key with the ``read`` role.
        interval: Seconds between refreshes.
        once: One snapshot, no escape codes.
        count: Stop after this many refreshes (None: until interrupted).
        as_json: Print the snapshot as JSON (one object per refresh).
        frames: How many recent frames a device view shows.
    """

    phy_id: str | None
    url: str
    api_key: str
    interval: float = 5.0
    once: bool = False
    count: int | None = None
    as_json: bool = False
    frames: int = 8


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reference_server monitor", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phy_id", nargs="?", metavar="PHY_ID",
                        help="the device to watch; the whole fleet when left out")
    parser.add_argument("--url", required=True, help="the server's HTTP API, e.g. "
                                                     "http://127.0.0.1:7055")
    parser.add_argument("--api-key", required=True, metavar="KEY",
                        help="an API key with the read role")
    parser.add_argument("--interval", type=float, default=5.0, metavar="SECONDS",
                        help="seconds between refreshes (default 5)")
    parser.add_argument("--once", action="store_true",
                        help="print one snapshot without escape codes and exit")
    parser.add_argument("--count", type=int, metavar="N",
                        help="stop after N refreshes (default: until Ctrl-C)")
    parser.add_argument("--json", action="store_true", dest="as_json",
                        help="print each snapshot as one JSON object")
    parser.add_argument("--frames", type=int, default=8, metavar="N",
                        help="recent frames shown in a device view (default 8)")
    return parser


def parse_arguments(argv: Sequence[str]) -> MonitorOptions:
    """The options of a command line; exits 2 (argparse) on a bad one."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be positive")
    if args.count is not None and args.count < 1:
        parser.error("--count must be at least 1")
    if not 0 <= args.frames <= 500:
        parser.error("--frames must be from 0 to 500")
    return MonitorOptions(phy_id=args.phy_id, url=args.url, api_key=args.api_key,
                          interval=args.interval, once=args.once, count=args.count,
                          as_json=args.as_json, frames=args.frames)


# --- the snapshot ----------------------------------------------------------------------------
# The parts of the API's answers that the screen shows (the answers carry more).

class PortData(TypedDict):
    socket_no: int
    port_no: int
    status_name: str
    power_w: int
    voltage_v: float | None
    fault_code: int
    order_no: str | None


class DeviceData(TypedDict):
    device_phy_id: str
    protocol: str
    online: bool
    last_seen_at: int | None
    rssi: int | None
    firmware: str | None
    remote_addr: str | None
    ports: NotRequired[list[PortData]]


class OrderData(TypedDict):
    order_no: str
    device_phy_id: str
    socket_no: int
    port_no: int
    status: str
    start_time: int | None
    created_at: int
    duration_sec: int
    total_kwh: float
    current_power: float
    amount: int | None


class CommandData(TypedDict):
    id: str
    kind: str
    status: str
    attempts: int
    created_at: int
    order_no: str | None


class DecodedFrameData(TypedDict):
    message: str
    fields: dict[str, object]


class LoggedFrameData(TypedDict):
    created_at: int
    direction: str
    cmd: str
    frames: list[DecodedFrameData]


@final  # so that "device" in snapshot tells the two apart
class DeviceSnapshot(TypedDict):
    """One device's screen (``--json`` prints it)."""

    server: str
    at: int
    device: DeviceData
    orders: list[OrderData]
    pending_commands: list[CommandData]
    frames: list[LoggedFrameData]


@final
class FleetSnapshot(TypedDict):
    """The fleet's screen (``--json`` prints it)."""

    server: str
    at: int
    devices: list[DeviceData]
    orders: list[OrderData]


def _items(data: object) -> list[object]:
    return cast("list[object]", cast("dict[str, object]", data)["items"])


async def take_snapshot(client: ApiClient, options: MonitorOptions
                        ) -> DeviceSnapshot | FleetSnapshot:
    """Everything one screen shows, as the API answered it.

    Raises:
        ServerUnreachable, KeyRefused, ApiError: As :meth:`ApiClient.call`.
    """
    if options.phy_id is None:
        first = await client.get("/devices", limit=1)  # the server's clock, and a key check
        return FleetSnapshot(
            server=client.base_url, at=first.timestamp,
            devices=cast("list[DeviceData]", await client.all_pages("/devices")),
            orders=cast("list[OrderData]",
                        await client.all_pages("/orders", status=OPEN_ORDER_STATES)))
    phy_id = options.phy_id
    device = await client.get(f"/devices/{phy_id}")
    orders = await client.get("/orders", device_phy_id=phy_id, status=OPEN_ORDER_STATES,
                              limit=50)
    commands = await client.get(f"/devices/{phy_id}/commands")
    frames: list[object] = []
    if options.frames:
        frames = _items((await client.get(f"/devices/{phy_id}/frames",
                                          limit=options.frames)).data)
    return DeviceSnapshot(
        server=client.base_url, at=device.timestamp, device=cast("DeviceData", device.data),
        orders=cast("list[OrderData]", _items(orders.data)),
        pending_commands=cast("list[CommandData]", _items(commands.data)),
        frames=cast("list[LoggedFrameData]", frames))


# --- rendering -------------------------------------------------------------------------------

def _clock(unix: int | None) -> str:
    if unix is None:
        return "-"
    return time.strftime("%H:%M:%S", time.gmtime(unix))


def _ago(unix: int | None, now: int) -> str:
    if unix is None:
        return "never"
    return f"{_span(now - unix)} ago"


def _span(seconds: int) -> str:
    seconds = max(0, seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    cells = [[str(c) for c in header]] + [["-" if c is None else str(c) for c in r]
                                         for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in cells]


def _money(cents: int | None) -> str:
    return "-" if cents is None else f"{cents / 100:.2f}"


def _order_rows(orders: Sequence[OrderData], now: int, *, with_device: bool
                ) -> list[list[object]]:
    rows: list[list[object]] = []
    for o in orders:
        since = o["start_time"] if o["start_time"] is not None else o["created_at"]
        row: list[object] = [o["order_no"]]
        if with_device:
            row.append(o["device_phy_id"])
        row += [f"{o['socket_no']}/{o['port_no']}", o["status"], _span(now - since),
                o["duration_sec"], f"{o['total_kwh']:.2f}", f"{o['current_power']:.1f}",
                _money(o["amount"])]
        rows.append(row)
    return rows


_ORDER_HEADER = ["socket/port", "status", "elapsed", "device s", "kWh", "power W", "prepaid"]


def _device_lines(snapshot: DeviceSnapshot) -> list[str]:
    now = snapshot["at"]
    d = snapshot["device"]
    ports = d.get("ports", [])
    state = "ONLINE" if d["online"] else "OFFLINE"
    rssi = "-" if d["rssi"] is None else d["rssi"]
    lines = [f"device {d['device_phy_id']} ({d['protocol']})  {state}  "
             f"last seen {_ago(d['last_seen_at'], now)}  rssi {rssi}  "
             f"firmware {d['firmware'] or '-'}  from {d['remote_addr'] or '-'}", ""]
    lines.append(f"ports ({len(ports)})")
    lines += _table(["socket/port", "status", "power W", "voltage V", "fault", "order"],
                    [[f"{p['socket_no']}/{p['port_no']}", p["status_name"], p["power_w"],
                      p["voltage_v"], p["fault_code"], p["order_no"]] for p in ports])
    lines += ["", f"current orders ({len(snapshot['orders'])})"]
    if snapshot["orders"]:
        lines += _table(["order", *_ORDER_HEADER],
                        _order_rows(snapshot["orders"], now, with_device=False))
    lines += ["", f"pending commands ({len(snapshot['pending_commands'])})"]
    if snapshot["pending_commands"]:
        lines += _table(["command", "kind", "status", "attempts", "age", "order"],
                        [[c["id"], c["kind"], c["status"], c["attempts"],
                          _span(now - c["created_at"]), c["order_no"]]
                         for c in snapshot["pending_commands"]])
    lines += ["", f"recent frames ({len(snapshot['frames'])}, newest first)"]
    if snapshot["frames"]:
        lines += _table(["time", "dir", "cmd", "decoded"],
                        [[_clock(f["created_at"]), f["direction"], f["cmd"],
                          ", ".join(_frame_words(x) for x in f["frames"]) or "-"]
                         for f in snapshot["frames"]])
    return lines


def _frame_words(frame: DecodedFrameData) -> str:
    if frame["message"] == "FrameRejected":
        return f"rejected ({frame['fields'].get('error', '?')})"
    return str(frame["message"])


def _fleet_lines(snapshot: FleetSnapshot) -> list[str]:
    now = snapshot["at"]
    devices = snapshot["devices"]
    orders = snapshot["orders"]
    open_by_device: dict[str, list[OrderData]] = {}
    for order in orders:
        open_by_device.setdefault(order["device_phy_id"], []).append(order)
    online = sum(1 for d in devices if d["online"])
    lines = [f"fleet: {len(devices)} devices, {online} online, {len(orders)} current orders",
             ""]
    rows: list[list[object]] = []
    for d in devices:
        running = open_by_device.get(d["device_phy_id"], [])
        rows.append([d["device_phy_id"], d["protocol"], "online" if d["online"] else "offline",
                     _ago(d["last_seen_at"], now), d["rssi"], len(running),
                     f"{sum(o['current_power'] for o in running):.1f}"])
    lines += _table(["device", "protocol", "state", "last seen", "rssi", "orders", "power W"],
                    rows)
    lines += ["", f"current orders ({len(orders)})"]
    if orders:
        lines += _table(["order", "device", *_ORDER_HEADER],
                        _order_rows(orders, now, with_device=True))
    return lines


def render_snapshot(snapshot: DeviceSnapshot | FleetSnapshot) -> str:
    """The snapshot as the text a terminal shows (no escape codes)."""
    moment = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(snapshot["at"]))
    body = _device_lines(snapshot) if "device" in snapshot else _fleet_lines(snapshot)
    return "\n".join([f"bkvcodec monitor  {snapshot['server']}  {moment}", "", *body]) + "\n"


# --- the loop --------------------------------------------------------------------------------

def _problem(err: Exception, options: MonitorOptions) -> str:
    if isinstance(err, KeyRefused):
        return (f"the server refused the API key ({err}); the monitor needs a key with "
                "the read role")
    if isinstance(err, ApiError) and err.status == 404 and options.phy_id is not None:
        return f"the server does not know device {options.phy_id} ({err})"
    return str(err)


async def run_monitor(options: MonitorOptions, out: TextIO, err: TextIO) -> int:
    """Fetch and show snapshots until --once, --count or cancellation; the exit status."""
    shown = 0
    async with api_client(options.url, options.api_key) as client:
        while True:
            try:
                snapshot = await take_snapshot(client, options)
            except (ServerUnreachable, ApiError) as problem:
                if options.once or shown == 0 or isinstance(problem, KeyRefused):
                    print(f"monitor: {_problem(problem, options)}", file=err)
                    return 1
                # The server went away mid-watch; it may come back, so say so and retry.
                message = f"monitor: {_problem(problem, options)}; retrying"
                if options.as_json:
                    print(message, file=err)
                else:
                    out.write(f"{CLEAR_SCREEN}{message}\n")
            else:
                if options.as_json:
                    out.write(json.dumps(snapshot, ensure_ascii=False) + "\n")
                elif options.once:
                    out.write(render_snapshot(snapshot))
                else:
                    out.write(CLEAR_SCREEN + render_snapshot(snapshot))
            out.flush()
            shown += 1
            if options.once or (options.count is not None and shown >= options.count):
                return 0
            await trio.sleep(options.interval)


def main(argv: Sequence[str]) -> int:
    """The ``monitor`` subcommand."""
    options = parse_arguments(argv)
    try:
        return trio.run(run_monitor, options, sys.stdout, sys.stderr)
    except KeyboardInterrupt:
        return 0
