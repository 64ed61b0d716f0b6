"""The device simulator (reference_server/simulator): the charger model, the simulated
clock and scenario files on their own, then simulated BKV gateways and AP3000 units
against the real server (real sockets, a temporary database) at ×60 and faster,
checking what the server recorded against the model's own truth."""
from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from bkvcodec import ChargeMode, EndReason, ProgressReported, SettlementReported
from reference_server.simulator import (
    SHORT_CIRCUIT,
    Charger,
    ChargerPhase,
    DeviceSpec,
    EndCause,
    Fleet,
    LinkChange,
    PortCondition,
    SimClock,
    SimDevice,
    SimPort,
    ap3000_phy_id,
    ap3000_unit,
    bkv_gateway,
    bkv_phy_id,
)
from reference_server.simulator.cli import main as simulate
from reference_server.simulator.scenario import (
    DropNetwork,
    InjectFault,
    PlugIn,
    Reboot,
    ScenarioError,
    Unplug,
    load_scenario,
    parse_duration,
    parse_scenario,
)

from .harness import AP3000_ID, BKV_ID, RunningServer, e2e_config, server_running

#: Real seconds each device write is delayed, as a mobile link would. At loopback
#: speed a device answers a start before the server has finished creating the order,
#: and the server then misses the answer (reported with the simulator).
LATENCY = 0.02


# --- the charger model ------------------------------------------------------------------------

def integrate(charger: Charger, seconds: float, step: float = 2.0) -> float:
    """∫P dt in Wh by the trapezoid rule over the power sampled every *step* seconds."""
    state = charger.start()
    energy_ws, elapsed = 0.0, 0.0
    while elapsed < seconds:
        dt = min(step, seconds - elapsed)
        before = state.power_w
        state.advance(dt)
        energy_ws += (before + state.power_w) / 2 * dt
        elapsed += dt
    return energy_ws / 3600


@pytest.mark.parametrize("hours", [0.5, 3.0, 4.5, 8.0])
def test_charger_energy_is_the_integral_of_its_power(hours: float) -> None:
    charger = Charger()

    exact = charger.start().advance(hours * 3600)

    assert exact == pytest.approx(integrate(charger, hours * 3600), rel=2e-3)


def test_charger_is_flat_then_tapers_then_cuts_off() -> None:
    state = Charger().start()  # 250 W, 960 Wh at 20 %, taper from 85 %, cut-off at 20 W
    taper_starts = (0.85 - 0.2) * 960 / 0.88 / 250 * 3600

    state.advance(taper_starts - 60)
    assert (ChargerPhase.CONSTANT_CURRENT, 250.0) == (state.phase, state.power_w)
    state.advance(120)
    powers = []
    for _ in range(5):
        powers.append(state.power_w)
        state.advance(600)
    assert state.phase is ChargerPhase.TAPER
    assert powers == sorted(powers, reverse=True) and powers[0] < 250.0
    cut_off = state.seconds_until_power_at_most(20.0)
    assert cut_off is not None
    state.advance(cut_off + 1)
    assert (ChargerPhase.DONE, 1.5) == (state.phase, state.power_w)


def test_charger_full_detection_and_energy_targets_are_exact() -> None:
    charger = Charger(soc=0.7)
    below_30w = charger.start().seconds_until_power_at_most(30.0)
    assert below_30w is not None

    state = charger.start()
    state.advance(below_30w)
    assert state.power_w == pytest.approx(30.0)
    for target in (10.0, 150.0, 260.0):
        seconds = charger.start().seconds_until_energy(target)
        assert seconds is not None
        assert charger.start().advance(seconds) == pytest.approx(target)


def test_a_full_battery_is_no_load() -> None:
    state = Charger(soc=1.0).start()

    assert (ChargerPhase.DONE, 1.5) == (state.phase, state.power_w)
    assert 1.5 * 600 / 3600 == pytest.approx(state.advance(600))
    assert state.seconds_until_power_at_most(1.0) is None


@pytest.mark.parametrize("settings", [
    {"soc": 1.5}, {"power_w": 0}, {"taper_soc": 1.0}, {"cutoff_w": 300}, {"standby_w": 25},
])
def test_charger_rejects_impossible_settings(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Charger(**settings)


# --- the clock ------------------------------------------------------------------------------------

@pytest.mark.trio
async def test_the_clock_runs_speed_times_faster(autojump_clock: trio.abc.Clock) -> None:
    clock = SimClock(speed=60)
    started = trio.current_time()
    assert 0.0 == clock.now()

    await clock.sleep(3600)
    assert trio.current_time() - started == pytest.approx(60.0)
    assert clock.now() == pytest.approx(3600.0)
    await clock.sleep_until(7200)
    assert 7200.0 == pytest.approx(clock.now())
    assert 123.0 == pytest.approx(clock.to_sim(clock.to_trio(123.0)))
    assert 0.5 == clock.real_seconds(30)
    await clock.sleep_until(10)  # in the past: returns at once
    assert 7200.0 == pytest.approx(clock.now())


@pytest.mark.parametrize("speed", [0, -1, math.inf, math.nan])
def test_the_clock_speed_must_be_positive(speed: float) -> None:
    with pytest.raises(ValueError):
        SimClock(speed=speed)


# --- one device's timing, without a server -------------------------------------------------------

def offline_device(spec: DeviceSpec) -> SimDevice:
    """A device whose loop never runs: time only passes through catch_up()."""
    return SimDevice(spec, host="127.0.0.1", port=9, clock=SimClock(speed=1))


async def plugged_port(device: SimDevice, charger: Charger) -> tuple[float, SimPort]:
    port = device.port(1)
    await port.plug_in(charger)
    detected = device.clock.now() + 5.0  # the plug sensor takes 2-5 s
    device.catch_up(detected)
    assert port.condition is PortCondition.PLUGGED
    return detected, port


@pytest.mark.trio
async def test_an_until_full_order_ends_when_the_charger_is_full(
        autojump_clock: trio.abc.Clock) -> None:
    device = offline_device(ap3000_unit(AP3000_ID))
    charger = Charger(soc=0.8)
    at, port = await plugged_port(device, charger)

    port.accept_order(at=at, order_no="THD1729407600001", business_no=None, command_id="1",
                      mode=ChargeMode.UNTIL_FULL, limit_s=None, limit_wh=None,
                      stop_when_full=True, obey_max_time=True)
    device.catch_up(at + 8 * 3600)

    [record] = port.history
    low = charger.start().seconds_until_power_at_most(30.0)  # the full threshold …
    assert low is not None
    assert (EndCause.FULL, EndReason.FULL) == (record.end_cause, record.end_reason)
    assert low + 180.0 == pytest.approx(record.duration_s)  # … held for 180 s
    assert charger.start().advance(low + 180.0) == pytest.approx(record.energy_wh)
    assert port.condition is PortCondition.FULL


@pytest.mark.trio
async def test_a_timed_order_reports_exact_meters_and_a_no_load_port_ends_early(
        autojump_clock: trio.abc.Clock) -> None:
    gateway = offline_device(bkv_gateway(BKV_ID))
    at, port = await plugged_port(gateway, Charger())
    port.accept_order(at=at, order_no=None, business_no=7, command_id="1",
                      mode=ChargeMode.TIME, limit_s=5400, limit_wh=None,
                      stop_when_full=True, obey_max_time=True)
    gateway.catch_up(at + 3 * 3600)

    [timed] = port.history
    assert EndCause.TIME_LIMIT is timed.end_cause
    assert (timed.duration_s, timed.energy_wh) == pytest.approx((5400.0, 375.0))
    assert timed.reported is not None
    assert (5400, 37) == (timed.reported.duration_s, timed.reported.energy_centikwh)

    unit = offline_device(ap3000_unit(AP3000_ID))
    at, port = await plugged_port(unit, Charger(soc=1.0))
    port.accept_order(at=at, order_no="THD1729407600002", business_no=None, command_id="2",
                      mode=ChargeMode.TIME, limit_s=3600, limit_wh=None,
                      stop_when_full=False, obey_max_time=False)
    unit.catch_up(at + 3600)

    [no_load] = port.history
    # Below 5 W for 60 s: an AP3000 unit counts it as unplugged (reason normal).
    assert (EndCause.NO_LOAD, EndReason.NORMAL) == (no_load.end_cause, no_load.end_reason)
    assert (no_load.duration_s, no_load.energy_wh) == pytest.approx((60.0, 1.5 * 60 / 3600))


def test_generated_ids_have_the_real_formats() -> None:
    assert ("82900000000001", "04E4E1C1", "06E4E1C1") == (
        bkv_phy_id(1), ap3000_phy_id(1), ap3000_phy_id(1, ports=16))
    with pytest.raises(ValueError):
        bkv_gateway("8221022500052")  # 13 digits
    with pytest.raises(ValueError):
        ap3000_unit(AP3000_ID, ports=17)


# --- scenario files ------------------------------------------------------------------------

PLAN = """
speed = 60
duration = "2h"
cadence = 11

[[devices]]
protocol = "bkv"
phy_id = "82210225000520"
sockets = 2

[[devices]]
protocol = "ap3000"
phy_id = "04a228cd"
ports = 4
profile = { keep_orders_on_reboot = true, plug_detect_s = [1, 2] }

[[steps]]
at = "65s"
device = "82210225000520"
port = 1
action = "unplug"

[[steps]]
at = 5
device = "82210225000520"
port = 1
action = "plug_in"
charger = { power_w = 200, soc = 0.5 }

[[steps]]
at = "1h 30m"
device = 1
port = 4
action = "fault"
fault = "short_circuit"

[[steps]]
at = "20m"
device = 1
action = "drop_network"
duration = "8s"

[[steps]]
at = "25m"
device = 1
action = "reboot"
keep_orders = false
"""


def test_a_scenario_file_is_parsed_into_typed_steps(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(PLAN, encoding="utf-8")

    scenario = load_scenario(path)

    assert (60.0, 7200.0, 11.0, 7200.0) == (scenario.speed, scenario.duration,
                                            scenario.cadence, scenario.end)
    assert [("82210225000520", 2, 2), ("04A228CD", 1, 4)] == [
        (d.phy_id, d.sockets, d.ports) for d in scenario.devices]
    assert (True, (1.0, 2.0)) == (scenario.devices[1].profile.keep_orders_on_reboot,
                                  scenario.devices[1].profile.plug_detect_s)
    assert [5.0, 65.0, 1200.0, 1500.0, 5400.0] == [s.at for s in scenario.steps]
    plug, unplug, drop, reboot, fault = (s.action for s in scenario.steps)
    assert PlugIn(charger=Charger(power_w=200, soc=0.5)) == plug
    assert (Unplug(), DropNetwork(duration=8.0), Reboot(keep_orders=False),
            InjectFault(fault=SHORT_CIRCUIT)) == (unplug, drop, reboot, fault)
    assert ("04A228CD", 4) == (scenario.steps[-1].device, scenario.steps[-1].port_no)


def test_devices_can_be_counted_instead_of_named() -> None:
    scenario = parse_scenario('[[devices]]\nprotocol = "ap3000"\ncount = 3\nports = 10\n')

    assert 3 == len({d.phy_id for d in scenario.devices})
    assert {"05"} == {d.phy_id[:2] for d in scenario.devices}  # the 10-port type code


@pytest.mark.parametrize(("text", "message"), [
    ("speed = ", "plan.toml: not valid TOML"),
    ('[[steps]]\nat = 5\ndevice = "82210225000520"\naction = "plugin"',
     "plan.toml: steps[0].action: unknown action 'plugin' (expected one of: change_ip,"),
    ('[[steps]]\ndevice = "82210225000520"\naction = "unplug"',
     "plan.toml: steps[0]: missing 'at'"),
    ('[[steps]]\nat = "5 minutes"\ndevice = "82210225000520"\naction = "unplug"',
     "plan.toml: steps[0].at: cannot read '5 minutes' as a duration"),
    ('[[steps]]\nat = 5\ndevice = "82210225000520"\naction = "unplug"\ncharger = {}',
     "plan.toml: steps[0]: unknown key 'charger'"),
    ('[[devices]]\nprotocol = "bkv"\nphy_id = "82210225000520"\n[[steps]]\nat = 5\n'
     'device = 0\nsocket = 2\naction = "unplug"',
     "plan.toml: steps[0]: device 82210225000520 has no socket 2 port 1"),
    ('[[steps]]\nat = 5\ndevice = 3\naction = "unplug"',
     "plan.toml: steps[0].device: no device number 3 (the file declares 0)"),
    ('[[devices]]\nprotocol = "ocpp"', "plan.toml: devices[0].protocol: expected 'bkv' or"),
    ('[[devices]]\nprotocol = "bkv"\nphy_id = "8221"',
     "plan.toml: devices[0]: a BKV gateway id is 14 hex digits"),
    ('[[devices]]\nprotocol = "bkv"\nports = 4',
     "plan.toml: devices[0].ports: BKV sockets always have ports 1 and 2"),
    ('[[devices]]\nprotocol = "ap3000"\nprofile = { heartbeat_s = "often" }',
     "plan.toml: devices[0].profile.heartbeat_s: expected a number"),
    ('[[steps]]\nat = 5\ndevice = "04A228CD"\naction = "plug_in"\ncharger = { soc = 2 }',
     "plan.toml: steps[0].charger: soc must be between 0 and 1"),
    ('[[steps]]\nat = 5\ndevice = "04A228CD"\naction = "fault"\nfault = "fire"',
     "plan.toml: steps[0].fault: unknown fault 'fire'"),
    ("colour = 1", "plan.toml: top level: unknown key 'colour'"),
])
def test_an_invalid_scenario_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(ScenarioError) as error:
        parse_scenario(text, source="plan.toml")

    assert str(error.value).startswith(message), str(error.value)


def test_a_missing_scenario_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nowhere.toml")


@pytest.mark.parametrize(("text", "seconds"), [
    (90, 90.0), ("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1h30m", 5400.0),
    ("1.5h", 5400.0), ("250ms", 0.25), ("2h 5s", 7205.0),
])
def test_durations_are_read_in_several_units(text: object, seconds: float) -> None:
    assert seconds == pytest.approx(parse_duration(text))


# --- against the real server -----------------------------------------------------------------

@asynccontextmanager
async def simulation(tmp_path: Path, specs: list[DeviceSpec], *, speed: float,
                     seconds: float = 15, **overrides: Any
                     ) -> AsyncIterator[tuple[RunningServer, Fleet]]:
    """The server on free ports and a fleet running against it, registered."""
    with trio.fail_after(seconds):
        config = e2e_config(tmp_path / "iot.db", None, **overrides)
        async with server_running(config) as server, Fleet.connect(
                "127.0.0.1", server.addresses.tcp_port, specs, clock=SimClock(speed=speed),
                seed=7, latency=LATENCY) as fleet:
            await fleet.wait_registered()
            yield server, fleet


def both() -> list[DeviceSpec]:
    return [bkv_gateway(BKV_ID), ap3000_unit(AP3000_ID)]


async def charge(server: RunningServer, fleet: Fleet, **body: object) -> dict[str, str]:
    """One order on port 1 of every device; returns the order numbers by device."""
    body.setdefault("amount", 5000)
    body.setdefault("price_per_kwh", 150)
    return {d.phy_id: (await server.charge(d.phy_id, port_no=1, **body))["order_no"]
            for d in fleet}


async def events(server: RunningServer, event_type: str) -> list[dict[str, Any]]:
    response = await server.call("GET", "/events?after=0&limit=500")
    return [e for e in response.json()["data"]["items"] if e["event_type"] == event_type]


def duration_slack(device: SimDevice) -> float:
    """BKV reports whole minutes (api.md §10.1); AP3000 whole seconds."""
    return 60.0 if device.spec.protocol.value == "bkv" else 5.0


@pytest.mark.trio
async def test_a_gateway_and_a_unit_connect_and_register(tmp_path: Path) -> None:
    specs = [bkv_gateway(BKV_ID, sockets=2), ap3000_unit(AP3000_ID, ports=4)]
    async with simulation(tmp_path, specs, speed=60) as (server, fleet):
        views = {}
        for device in fleet:
            await server.wait_online(device.phy_id)
            while len((view := await server.device(device.phy_id))["ports"]) < 4:
                await trio.sleep(0.02)
            views[device.phy_id] = view

        assert {(BKV_ID, "bkv", True), (AP3000_ID, "ap3000", True)} == {
            (v["device_phy_id"], v["protocol"], v["online"]) for v in views.values()}
        assert [(1, 1), (1, 2), (2, 1), (2, 2)] == [
            (p["socket_no"], p["port_no"]) for p in views[BKV_ID]["ports"]]
        assert [1, 2, 3, 4] == [p["port_no"] for p in views[AP3000_ID]["ports"]]
        registered = {e["device_phy_id"] for e in await events(server, "device.registered")}
        assert {BKV_ID, AP3000_ID} == registered
        assert all(d.registered and d.statistics().frames_sent > 0 for d in fleet)


@pytest.mark.trio
async def test_a_duration_order_runs_to_the_devices_own_end(tmp_path: Path) -> None:
    async with simulation(tmp_path, both(), speed=3600) as (server, fleet):
        for device in fleet:
            await device.port(1).plug_in(Charger())
        orders = await charge(server, fleet, charge_mode=1, duration=7200)

        for device in fleet:
            record = await device.port(1).wait_charge_ended()
            order = await server.wait_order(orders[device.phy_id], "completed")

            assert (EndCause.TIME_LIMIT, EndReason.NORMAL, "normal") == (
                record.end_cause, record.end_reason, order["end_reason"])
            assert 7200.0 == pytest.approx(record.duration_s)
            assert abs(order["duration_sec"] - record.duration_s) <= 5
            assert order["total_kwh"] == pytest.approx(record.energy_kwh, rel=0.02)


@pytest.mark.trio
async def test_unplugging_mid_charge_settles_and_bills_the_actual_use(tmp_path: Path) -> None:
    async with simulation(tmp_path, both(), speed=3600) as (server, fleet):
        for device in fleet:
            await device.port(1).plug_in(Charger())
        orders = await charge(server, fleet, charge_mode=1, duration=4 * 3600)
        for device in fleet:
            await device.port(1).wait_until_charging()
        await fleet.clock.sleep(2.5 * 3600)
        for device in fleet:
            await device.port(1).unplug()

        for device in fleet:
            record = await device.port(1).wait_charge_ended()
            order = await server.wait_order(orders[device.phy_id], "completed")

            assert (EndCause.UNPLUGGED, "normal") == (record.end_cause, order["end_reason"])
            assert 2.4 * 3600 < record.duration_s < 2.6 * 3600
            assert abs(order["duration_sec"] - record.duration_s) <= duration_slack(device)
            assert order["total_kwh"] == pytest.approx(record.energy_kwh, rel=0.02)
            centi_kwh = round(order["total_kwh"] * 100)
            assert (centi_kwh * 150 + 50) // 100 == order["final_amount_cents"]
            assert 5000 - order["final_amount_cents"] == order["refund_cents"]


@pytest.mark.trio
async def test_an_order_that_ends_offline_is_settled_on_reconnection(tmp_path: Path) -> None:
    async with simulation(tmp_path, both(), speed=100) as (server, fleet):
        for device in fleet:
            await device.port(1).plug_in(Charger(power_w=600))
        orders = await charge(server, fleet, charge_mode=1, duration=300)
        starts = []
        for device in fleet:
            await device.port(1).wait_until_charging()
            running = device.port(1).order
            assert running is not None and running.started_at is not None
            starts.append(running.started_at)

        # The link drops 6 s before the timers run out, for 10 s (test-plan.md §1.6).
        await fleet.clock.sleep_until(max(starts) + 294)
        for device in fleet:
            await device.drop_network(10, close=True)

        for device in fleet:
            record = await device.port(1).wait_charge_ended()
            await device.wait_registered()
            order = await server.wait_order(orders[device.phy_id], "completed")

            down, up = _outage(device)
            assert record.ended_at is not None and record.reported is not None
            assert down < record.ended_at < up  # it ended, and settled, while offline
            assert (300, 300) == (order["duration_sec"], record.reported.duration_s)
            assert record.reported.energy_centikwh == round(order["total_kwh"] * 100)
            assert 2 == device.statistics().connections
        offline = {e["device_phy_id"] for e in await events(server, "device.offline")}
        assert {BKV_ID, AP3000_ID} <= offline


def _outage(device: SimDevice) -> tuple[float, float]:
    """When the device's link last went down, and came back."""
    changes = [(e.at, e.item.up) for e in device.journal if isinstance(e.item, LinkChange)]
    down = max(at for at, up in changes if not up)
    return down, min(at for at, up in changes if up and at > down)


@pytest.mark.trio
async def test_a_fault_ends_the_order_with_reason_fault_and_an_alarm(tmp_path: Path) -> None:
    async with simulation(tmp_path, both(), speed=600) as (server, fleet):
        for device in fleet:
            await device.port(1).plug_in()
        orders = await charge(server, fleet, charge_mode=1, duration=3600)
        for device in fleet:
            await device.port(1).wait_until_charging()
        await fleet.clock.sleep(300)
        for device in fleet:
            await device.port(1).inject_fault(SHORT_CIRCUIT)

        for device in fleet:
            record = await device.port(1).wait_charge_ended()
            order = await server.wait_order(orders[device.phy_id], "completed")

            assert (EndCause.FAULT, EndReason.FAULT, "fault") == (
                record.end_cause, record.end_reason, order["end_reason"])
            port = (await server.device(device.phy_id))["ports"][0]
            assert (2, True) == (port["status"], port["fault_code"] != 0)
        alarms = {(e["device_phy_id"], e["data"]["port_no"], e["data"]["fault_code"])
                  for e in await events(server, "device.alarm")}
        # api.md §10.4: BKV the fault bits (over-current | over-power), AP3000 the status.
        assert {(BKV_ID, 1, 0x03), (AP3000_ID, 1, 0x0D)} == alarms


@pytest.mark.trio
async def test_a_reboot_keeps_or_loses_the_order(tmp_path: Path) -> None:
    specs = [ap3000_unit(AP3000_ID), ap3000_unit("04A26CF3")]
    async with simulation(tmp_path, specs, speed=600, offline_after=1) as (server, fleet):
        keeps, loses = fleet.devices
        for device in fleet:
            await device.port(1).plug_in()
        orders = await charge(server, fleet, charge_mode=1, duration=1800)
        for device in fleet:
            await device.port(1).wait_until_charging()
        await fleet.clock.sleep(300)
        await keeps.reboot(keep_orders=True, boot_time=20)  # TC004 option B
        await loses.reboot(keep_orders=False, boot_time=20)  # option A

        kept = await keeps.port(1).wait_charge_ended()
        completed = await server.wait_order(orders[keeps.phy_id], "completed")
        lost = await server.wait_order(orders[loses.phy_id], "exception")

        assert (EndCause.TIME_LIMIT, 1800) == (kept.end_cause, completed["duration_sec"])
        assert kept.duration_s == pytest.approx(1800.0)
        assert EndCause.LOST is loses.port(1).history[0].end_cause
        assert "device_lost_order" == lost["end_reason"]


@pytest.mark.trio
async def test_a_noisy_slow_link_and_an_ip_change_leave_the_device_working(
        tmp_path: Path) -> None:
    async with simulation(tmp_path, [ap3000_unit(AP3000_ID)], speed=600) as (server, fleet):
        [device] = fleet.devices
        first_address = (await server.device(AP3000_ID))["remote_addr"]
        await device.send_garbage(size=200)
        device.dribble(chunk_size=3, delay=0.01)
        await device.change_ip(delay=5)
        await device.wait_registered()
        await device.port(1).plug_in()
        [order_no] = (await charge(server, fleet, charge_mode=1, duration=600)).values()

        record = await device.port(1).wait_charge_ended(order_no=order_no)
        order = await server.wait_order(order_no, "completed")

        assert (600, EndCause.TIME_LIMIT) == (order["duration_sec"], record.end_cause)
        assert first_address != (await server.device(AP3000_ID))["remote_addr"]
        assert device.sent(ProgressReported)
        assert device.sent(SettlementReported)
        assert 0 == device.statistics().errors


# --- the command line ------------------------------------------------------------------------

def test_simulate_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        simulate(["--help"])

    assert 0 == exit_.value.code
    assert "--scenario FILE" in capsys.readouterr().out


def test_simulate_refuses_a_run_without_devices(capsys: pytest.CaptureFixture[str]) -> None:
    assert 2 == simulate(["--server", "127.0.0.1:7065"])
    assert "no devices" in capsys.readouterr().err


@pytest.mark.trio
async def test_simulate_runs_a_scenario_to_its_end(tmp_path: Path) -> None:
    scenario = tmp_path / "plug.toml"
    scenario.write_text(f"""
speed = 600
cadence = 11
[[devices]]
protocol = "bkv"
phy_id = "{BKV_ID}"
[[steps]]
at = "5s"
device = "{BKV_ID}"
port = 1
action = "plug_in"
[[steps]]
at = "65s"
device = "{BKV_ID}"
port = 1
action = "unplug"
""", encoding="utf-8")
    output = tmp_path / "out.txt"

    def run(port: int) -> int:
        with output.open("w", encoding="utf-8") as out:
            import contextlib
            with contextlib.redirect_stdout(out):
                return simulate(["--server", f"127.0.0.1:{port}", "--scenario", str(scenario),
                                 "--ap3000", "1", "--duration", "2m", "--status-every", "0"])

    with trio.fail_after(15):
        async with server_running(e2e_config(tmp_path / "iot.db", None)) as server:
            status = await trio.to_thread.run_sync(run, server.addresses.tcp_port)
            changes = await events(server, "port.status_changed")

    assert 0 == status, output.read_text(encoding="utf-8")
    assert "connected 2/2" in output.read_text(encoding="utf-8")
    # Plugged in, then out again: the gateway reported both changes.
    assert 2 <= len([e for e in changes if e["device_phy_id"] == BKV_ID])


def test_simulate_fails_when_no_device_can_connect(capsys: pytest.CaptureFixture[str]) -> None:
    status = simulate(["--server", "127.0.0.1:1", "--bkv", "1", "--speed", "100",
                       "--duration", "10s", "--status-every", "0"])

    assert 1 == status
    assert "1 of 1 devices never connected" in capsys.readouterr().out
