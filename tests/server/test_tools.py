"""The operator tools (``monitor``, ``batch``) and the command line that names them,
against a real server on loopback: a library device-role connection where the test
must hold a command unanswered, simulated devices where orders must run by
themselves."""
from __future__ import annotations

import argparse
import io
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from bkvcodec import (
    CommandAcknowledged,
    MeterReading,
    ProgressReported,
    ProtocolFamily,
    QueryParams,
    StartCharging,
)
from reference_server.__main__ import COMMANDS, command_parser
from reference_server.__main__ import main as cli
from reference_server.api.openapi import DATA_SCHEMAS
from reference_server.config import ApiKey
from reference_server.simulator import Charger, Fleet, SimClock, bkv_gateway
from reference_server.tools.batch import parse_arguments as batch_arguments
from reference_server.tools.batch import percentile, run_batch
from reference_server.tools.monitor import CLEAR_SCREEN, run_monitor
from reference_server.tools.monitor import parse_arguments as monitor_arguments

from .harness import API_KEY, BKV_ID, Device, RunningServer, e2e_config, server_running

REPOSITORY = Path(__file__).resolve().parents[2]
UNKNOWN_ID = "82210225009999"


def url(server: RunningServer) -> str:
    return f"http://{server.addresses.http_host}:{server.addresses.http_port}"


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def charging_device(tmp_path: Path) -> AsyncIterator[tuple[RunningServer, str, str]]:
    """A BKV gateway charging on port 1 at 1,500 W, with a parameter query sent to it
    and left unanswered (so pending); yields the server, the order and the command."""
    config = e2e_config(tmp_path / "iot.db", None, command_ttl=60, offline_after=60)
    with trio.fail_after(20):
        async with server_running(config) as server, trio.open_nursery() as nursery:
            device = Device(ProtocolFamily.BKV, BKV_ID)
            await device.connect(nursery, server.addresses.tcp_port)
            await server.wait_online(BKV_ID)
            order_no = (await server.charge(BKV_ID, port_no=1))["order_no"]
            start = await device.expect(StartCharging)
            await device.send(CommandAcknowledged(command_id=start.command_id, phy_id=BKV_ID,
                                                  business_no=0x61))
            await device.send(ProgressReported(
                phy_id=BKV_ID, socket_no=1, port_no=1, order_no=order_no, business_no=0x61,
                reading=MeterReading(duration_s=60, energy_centikwh=3, power_dw=15000)))
            await server.wait_order(order_no, "charging")
            response = await server.call("GET", f"/devices/{BKV_ID}/params?socket_no=1")
            assert response.status_code == 200, response.text
            command_id = response.json()["data"]["id"]
            await device.expect(QueryParams)
            # The frame log is written in batches: wait until the progress report is in.
            while not any("ProgressReported" in f["cmd"] for f in await frames(server)):
                await trio.sleep(0.1)
            yield server, order_no, command_id
            nursery.cancel_scope.cancel()


async def frames(server: RunningServer) -> list[dict[str, Any]]:
    response = await server.call("GET", f"/devices/{BKV_ID}/frames?limit=50")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["data"]["items"]
    return items


async def monitor(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = await run_monitor(monitor_arguments(list(argv)), out, err)
    return status, out.getvalue(), err.getvalue()


# --- the read-only routes the monitor uses ----------------------------------------------------

@pytest.mark.trio
async def test_frames_and_pending_commands_are_served_decoded_and_documented(
        tmp_path: Path) -> None:
    async with charging_device(tmp_path) as (server, _, command_id):
        logged = await frames(server)
        commands = (await server.call("GET", f"/devices/{BKV_ID}/commands")).json()["data"]
        missing = await server.call("GET", f"/devices/{UNKNOWN_ID}/frames")

    assert [command_id] == [c["id"] for c in commands["items"]]
    assert "sent" == commands["items"][0]["status"]
    assert set(DATA_SCHEMAS["CommandList"]["properties"]) == set(commands)
    assert set(DATA_SCHEMAS["Command"]["properties"]) == set(commands["items"][0])
    ids = [f["id"] for f in logged]
    assert sorted(ids, reverse=True) == ids
    assert set(DATA_SCHEMAS["LoggedFrame"]["properties"]) == set(logged[0])
    decoded = [x for f in logged for x in f["frames"]]
    assert set(DATA_SCHEMAS["DecodedFrame"]["properties"]) == set(decoded[0])
    heartbeat = next(x for x in decoded if x["message"] == "Heartbeat")
    assert ("bkv", "0x0000") == (heartbeat["protocol"], heartbeat["command"])
    charge_down = next(f for f in logged if "StartCharging" in f["cmd"])
    assert "down" == charge_down["direction"]
    assert charge_down["frames"][0]["message"] != "FrameRejected"
    assert (404, "device_not_found") == (missing.status_code, missing.json()["error"])


@pytest.mark.trio
async def test_a_read_only_key_may_watch_but_not_charge(tmp_path: Path) -> None:
    keys = (ApiKey("e2e", API_KEY), ApiKey("watcher", "watch-key", roles=frozenset({"read"})))
    config = e2e_config(tmp_path / "iot.db", None, api_keys=keys)
    async with server_running(config) as server, trio.open_nursery() as nursery:
        device = Device(ProtocolFamily.BKV, BKV_ID)
        await device.connect(nursery, server.addresses.tcp_port)
        await server.wait_online(BKV_ID)
        watcher = {"X-Api-Key": "watch-key"}
        statuses = [(await server.call("GET", f"/devices/{BKV_ID}/{route}",
                                       headers=watcher)).status_code
                    for route in ("frames", "commands")]
        charge = await server.call("POST", f"/devices/{BKV_ID}/charge",
                                   {"port_no": 1, "charge_mode": 1, "duration": 60},
                                   headers=watcher)
        document = (await server.api.get("/openapi.json")).json()
        nursery.cancel_scope.cancel()
    assert [200, 200] == statuses
    assert 403 == charge.status_code
    for path in ("/api/v1/third/devices/{phy_id}/frames",
                 "/api/v1/third/devices/{phy_id}/commands"):
        assert "read" == document["paths"][path]["get"]["x-required-role"]


# --- monitor ---------------------------------------------------------------------------------

@pytest.mark.trio
async def test_monitor_once_shows_the_device_its_order_commands_and_frames(
        tmp_path: Path) -> None:
    async with charging_device(tmp_path) as (server, order_no, command_id):
        status, text, err = await monitor(BKV_ID, "--url", url(server), "--api-key", API_KEY,
                                          "--once")
        fleet_status, fleet, _ = await monitor("--url", url(server), "--api-key", API_KEY,
                                               "--once")
        json_status, as_json, _ = await monitor(BKV_ID, "--url", url(server), "--api-key",
                                                API_KEY, "--once", "--json")

    assert (0, "") == (status, err)
    assert "\x1b" not in text
    lines = text.splitlines()
    assert f"device {BKV_ID} (bkv)  ONLINE" in lines[2]
    port_row = next(line.split() for line in lines if line.strip().startswith("1/1"))
    assert ["1/1", "charging", "1500"] == port_row[:3] and order_no == port_row[-1]
    order_row = next(line.split() for line in lines if line.strip().startswith(order_no))
    assert ["1/1", "charging"] == order_row[1:3]
    assert ["0.03", "1500.0", "10.00"] == order_row[-3:]  # kWh, W, prepaid yuan
    assert "pending commands (1)" in lines
    command_row = next(line.split() for line in lines if line.strip().startswith(command_id))
    assert ["query_params", "sent"] == command_row[1:3]
    frames_at = lines.index(next(line for line in lines if line.startswith("recent frames")))
    assert any("StartCharging" in line and "ChargeControl" in line
               for line in lines[frames_at:])
    assert any("Heartbeat" in line for line in lines[frames_at:])

    assert 0 == fleet_status
    assert "fleet: 1 devices, 1 online, 1 current orders" in fleet
    device_row = next(line.split() for line in fleet.splitlines() if line.startswith(
        f"  {BKV_ID}"))
    assert ["bkv", "online"] == device_row[1:3] and ["1", "1500.0"] == device_row[-2:]

    assert 0 == json_status
    snapshot = json.loads(as_json)
    assert (True, [order_no], [command_id]) == (
        snapshot["device"]["online"], [o["order_no"] for o in snapshot["orders"]],
        [c["id"] for c in snapshot["pending_commands"]])


@pytest.mark.trio
async def test_monitor_once_as_a_subprocess(tmp_path: Path) -> None:
    async with charging_device(tmp_path) as (server, order_no, _):
        done = await trio.run_process(
            [sys.executable, "-m", "reference_server", "monitor", BKV_ID, "--url", url(server),
             "--api-key", API_KEY, "--once"],
            capture_stdout=True, capture_stderr=True, check=False, cwd=REPOSITORY,
            env={**os.environ, "PYTHONWARNINGS": "error"})
    text = done.stdout.decode()
    assert (0, b"") == (done.returncode, done.stderr)
    assert f"device {BKV_ID} (bkv)  ONLINE" in text and order_no in text
    assert "\x1b" not in text


@pytest.mark.trio
async def test_monitor_redraws_in_place_each_interval(tmp_path: Path) -> None:
    async with charging_device(tmp_path) as (server, _, _):
        started = trio.current_time()
        status, text, _ = await monitor(BKV_ID, "--url", url(server), "--api-key", API_KEY,
                                        "--interval", "0.3", "--count", "2")
        elapsed = trio.current_time() - started
    assert 0 == status
    screens = text.split(CLEAR_SCREEN)
    assert "" == screens[0] and 3 == len(screens)
    assert all(s.startswith("bkvcodec monitor") and f"device {BKV_ID}" in s
               for s in screens[1:])
    assert elapsed >= 0.3


@pytest.mark.trio
async def test_monitor_says_when_the_server_is_unreachable_or_refuses_the_key(
        tmp_path: Path) -> None:
    status, text, err = await monitor("--url", f"http://127.0.0.1:{free_port()}",
                                      "--api-key", API_KEY, "--once")
    assert (1, "") == (status, text)
    assert err.startswith("monitor: cannot reach the server at http://127.0.0.1:")

    config = e2e_config(tmp_path / "iot.db", None)
    async with server_running(config) as server:
        status, text, err = await monitor("--url", url(server), "--api-key", "wrong", "--once")
        unknown = await monitor(UNKNOWN_ID, "--url", url(server), "--api-key", API_KEY,
                                "--once")
    assert (1, "") == (status, text)
    assert "refused the API key (HTTP 401 unauthorized" in err
    assert 1 == unknown[0] and f"does not know device {UNKNOWN_ID}" in unknown[2]


# --- batch -----------------------------------------------------------------------------------

@asynccontextmanager
async def simulated_gateway(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A simulated BKV gateway (two ports, chargers plugged) at 3,600 × real time."""
    config = e2e_config(tmp_path / "iot.db", None)
    async with server_running(config) as server, Fleet.connect(
            "127.0.0.1", server.addresses.tcp_port, [bkv_gateway(BKV_ID)],
            clock=SimClock(speed=3600), seed=7, latency=0.02) as fleet:
        await fleet.wait_registered()
        await server.wait_online(BKV_ID)
        for device in fleet:
            for port in (1, 2):
                await device.port(port).plug_in(Charger())
        yield server


@pytest.mark.trio
async def test_batch_counts_completions_and_names_each_failure(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with simulated_gateway(tmp_path) as server:
            # Order i goes to device i % 2, port (i // 2) % 2: two orders complete on the
            # gateway's ports, three go to a device the server never saw, and the fifth
            # finds port 1 taken by the first.
            options = batch_arguments([
                "--url", url(server), "--api-key", API_KEY, "--devices",
                f"{BKV_ID},{UNKNOWN_ID}", "--ports", "1,2", "--orders", "6",
                "--concurrency", "6", "--duration-s", "3600", "--poll-interval", "0.05",
                "--json"])
            out, err = io.StringIO(), io.StringIO()
            status = await run_batch(options, out, err)

    summary = json.loads(out.getvalue())
    assert (1, "") == (status, err.getvalue())
    assert (6, 2, 2, 2, 4) == (summary["attempted"], summary["started"], summary["charged"],
                               summary["completed"], summary["failed"])
    assert {"HTTP 404 device_not_found": 3, "HTTP 409 port_busy": 1} == summary["failures"]
    assert {"normal": 2} == summary["end_reasons"]
    assert 6 == summary["charge_call_ms"]["count"]
    assert 2 == summary["pending_to_charging_ms"]["count"]
    call = summary["charge_call_ms"]
    assert 0 < call["p50"] <= call["p95"] <= call["p99"] <= call["max"]
    assert {(BKV_ID, 1), (BKV_ID, 2)} == {(o["device_phy_id"], o["port_no"])
                                          for o in summary["orders"] if o["failure"] is None}


@pytest.mark.trio
async def test_batch_stops_orders_when_asked_and_prints_a_table(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with simulated_gateway(tmp_path) as server:
            options = batch_arguments([
                "--url", url(server), "--api-key", API_KEY, "--devices", BKV_ID,
                "--ports", "1,2", "--duration-s", "36000", "--stop-after", "0.2",
                "--poll-interval", "0.05"])
            out, err = io.StringIO(), io.StringIO()
            status = await run_batch(options, out, err)

    text = out.getvalue()
    assert (0, "") == (status, err.getvalue())
    assert text.startswith("batch: 2 attempted, 2 started, 2 charged, 2 completed, 0 failed "
                           "(2 stopped on request)")
    assert "      2  remote_stop" in text.splitlines()
    assert any(line.split()[:3] == ["charge", "call", "2"] for line in text.splitlines())


@pytest.mark.trio
async def test_batch_refuses_to_start_against_a_wrong_key(tmp_path: Path) -> None:
    config = e2e_config(tmp_path / "iot.db", None)
    async with server_running(config) as server:
        options = batch_arguments(["--url", url(server), "--api-key", "wrong",
                                   "--devices", BKV_ID])
        out, err = io.StringIO(), io.StringIO()
        status = await run_batch(options, out, err)
        orders = (await server.call("GET", "/orders")).json()["data"]["items"]
    assert (1, "", []) == (status, out.getvalue(), orders)
    assert "HTTP 401 unauthorized" in err.getvalue() and "operate role" in err.getvalue()


@pytest.mark.parametrize(("share", "expected"), [(0.5, 5), (0.95, 10), (0.99, 10), (0.1, 1)])
def test_percentiles_are_nearest_rank(share: float, expected: float) -> None:
    assert expected == percentile([float(v) for v in range(10, 0, -1)], share)
    assert percentile([], share) is None


# --- the command line ------------------------------------------------------------------------

def test_help_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert 0 == cli(["--help"])
    text = capsys.readouterr().out
    listed = next(action.choices for action in command_parser()._actions
                  if isinstance(action, argparse._SubParsersAction))
    assert list(COMMANDS) == list(listed)
    for name in listed:
        assert f"    {name} " in text
    for name in ("serve", "simulate", "testplan", "monitor", "batch"):
        assert name in COMMANDS


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_has_its_own_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli([name, "--help"])
    assert 0 == exited.value.code
    assert capsys.readouterr().out.startswith("usage: python -m reference_server")


def test_server_flags_still_work_without_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli(["--version"])
    assert capsys.readouterr().out.startswith("bkvcodec-server ")
    assert 2 == cli(["--http-port", "not-a-port"])
