# Scenario files: a TOML description of devices and of what happens to them when
# ("device X port 1: plug in at 5 s, unplug at 65 s"), parsed into typed records
# and run against a Fleet on its simulated clock. Parsing is strict: an unknown
# key, a wrong type or a port the device lacks is an error naming the file, the
# entry and the key, so a typo never silently does nothing.
#
# Format (docs/simulator.rst has the full reference):
#
#     speed = 60                      # optional run settings; the CLI overrides them
#     duration = "2h"
#     [[devices]]
#     protocol = "bkv"
#     phy_id = "82210225000520"
#     sockets = 2
#     [[steps]]
#     at = "5s"
#     device = "82210225000520"       # or the index of a [[devices]] entry
#     port = 1
#     action = "plug_in"
#     charger = { power_w = 250, soc = 0.3 }
from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import trio

from bkvcodec import ProtocolFamily

from ..logs import Logger
from .charger import Charger
from .faults import FAULTS, Fault
from .fleet import Fleet
from .specs import (
    DeviceProfile,
    DeviceSpec,
    ap3000_phy_id,
    ap3000_unit,
    bkv_gateway,
    bkv_phy_id,
)

__all__ = [
    "Action",
    "ChangeIp",
    "ClearFault",
    "Dribble",
    "DropNetwork",
    "InjectFault",
    "PlugIn",
    "Reboot",
    "Scenario",
    "ScenarioError",
    "SendGarbage",
    "Step",
    "StepFailure",
    "StopAtDevice",
    "SwipeCard",
    "Unplug",
    "apply_step",
    "load_scenario",
    "parse_duration",
    "parse_scenario",
    "run_scenario",
    "with_cadence",
]


class ScenarioError(ValueError):
    """A scenario file is not valid; the message names the file, entry and key."""


# --- actions ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class PlugIn:
    """``plug_in``: plug a charger into the port (table ``charger``: Charger fields)."""

    charger: Charger


@dataclass(frozen=True, slots=True, kw_only=True)
class Unplug:
    """``unplug``: pull the plug."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InjectFault:
    """``fault``: trip the port (``fault`` = short_circuit, over_current, over_temperature)."""

    fault: Fault


@dataclass(frozen=True, slots=True, kw_only=True)
class ClearFault:
    """``clear_fault``: clear a latched fault."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StopAtDevice:
    """``stop_at_device``: the user stops the charge at the device."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SwipeCard:
    """``swipe_card``: present a card (``card_no``, optional ``balance_only``)."""

    card_no: str
    balance_only: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class DropNetwork:
    """``drop_network``: lose the network (``duration``, optional ``close``)."""

    duration: float | None = None
    close: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Reboot:
    """``reboot``: power-cycle (optional ``keep_orders``, ``boot_time``)."""

    keep_orders: bool | None = None
    boot_time: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeIp:
    """``change_ip``: reconnect from another address (optional ``source_address``,
    ``delay``)."""

    source_address: str | None = None
    delay: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SendGarbage:
    """``garbage``: write junk (``size`` random bytes, or ``hex``)."""

    data: bytes | None = None
    size: int = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class Dribble:
    """``dribble``: slow the link (``chunk_size`` bytes every ``delay``; 0 ends it)."""

    chunk_size: int | None = 1
    delay: float = 0.05


Action: TypeAlias = (PlugIn | Unplug | InjectFault | ClearFault | StopAtDevice | SwipeCard
                     | DropNetwork | Reboot | ChangeIp | SendGarbage | Dribble)
"""One thing a step does."""

#: Actions that concern the whole device, not one port.
_DEVICE_ACTIONS = (DropNetwork, Reboot, ChangeIp, SendGarbage, Dribble)


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One timed action.

    Attributes:
        at: Simulated seconds after the scenario starts.
        device: The device's ``phy_id``.
        action: What happens.
        socket_no: The socket (BKV), 1 by default.
        port_no: The port, 1 by default.
        index: Position in the file's ``[[steps]]`` (for messages).
    """

    at: float
    device: str
    action: Action
    socket_no: int = 1
    port_no: int = 1
    index: int = 0

    def describe(self) -> str:
        """``steps[3] (plug_in at 5 s on 82210225000520 socket 1 port 1)``."""
        where = f"{self.device}" if isinstance(self.action, _DEVICE_ACTIONS) else (
            f"{self.device} socket {self.socket_no} port {self.port_no}")
        name = _ACTION_NAMES[type(self.action)]
        return f"steps[{self.index}] ({name} at {self.at:g} s on {where})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """A parsed scenario file.

    Attributes:
        devices: The devices the file declares.
        steps: Its steps, in time order.
        server: ``host:port`` to connect to, if the file names one.
        speed: Clock speed, if given.
        seed: Random seed, if given.
        cadence: Heartbeat and progress period for every device, if given.
        duration: How long to run (simulated seconds), if given.
    """

    devices: tuple[DeviceSpec, ...] = ()
    steps: tuple[Step, ...] = ()
    server: str | None = None
    speed: float | None = None
    seed: int | None = None
    cadence: float | None = None
    duration: float | None = None

    @property
    def end(self) -> float:
        """When the scenario is over: its duration, or its last step."""
        last = self.steps[-1].at if self.steps else 0.0
        return max(self.duration or 0.0, last)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepFailure:
    """A step that could not be carried out."""

    step: Step
    error: str


# --- parsing ---------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|h|m|s)?")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, None: 1.0}


def parse_duration(value: object, where: str = "duration") -> float:
    """Seconds from a number or a string such as ``"90"``, ``"90s"``, ``"5m"``,
    ``"1h30m"``, ``"1.5h"``, ``"250ms"``.

    Raises:
        ScenarioError: Not a non-negative duration.
    """
    if isinstance(value, bool):
        raise ScenarioError(f"{where}: expected a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        position, seconds, units = 0, 0.0, 0
        while position < len(text):
            match = _DURATION.match(text, position)
            if match is None or (units and match.group(2) is None):
                raise ScenarioError(f"{where}: cannot read {value!r} as a duration "
                                    "(examples: 90, \"90s\", \"5m\", \"1h30m\")")
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            position = match.end()
            units += 1
            while position < len(text) and text[position] == " ":
                position += 1
        if units == 0:
            raise ScenarioError(f"{where}: empty duration")
    else:
        raise ScenarioError(f"{where}: expected a duration, got {type(value).__name__}")
    if not seconds >= 0:
        raise ScenarioError(f"{where}: a duration cannot be negative")
    return seconds


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file.

    Raises:
        ScenarioError: The file cannot be read or is not valid.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ScenarioError(f"{path}: cannot read: {err.strerror or err}") from None
    return parse_scenario(text, source=str(path))


def parse_scenario(text: str, *, source: str = "<scenario>") -> Scenario:
    """Check a scenario given as TOML text.

    Raises:
        ScenarioError: The text is not valid TOML or not a valid scenario.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"{source}: not valid TOML: {err}") from None
    return _Parser(source).scenario(document)


_TOP_KEYS = {"server", "speed", "seed", "cadence", "duration", "devices", "steps"}
_DEVICE_KEYS = {"protocol", "phy_id", "count", "sockets", "ports", "profile", "cadence"}
_STEP_KEYS = {"at", "device", "socket", "port", "action"}
_ACTION_KEYS: dict[str, set[str]] = {
    "plug_in": {"charger"}, "unplug": set(), "fault": {"fault"}, "clear_fault": set(),
    "stop_at_device": set(), "swipe_card": {"card_no", "balance_only"},
    "drop_network": {"duration", "close"}, "reboot": {"keep_orders", "boot_time"},
    "change_ip": {"source_address", "delay"}, "garbage": {"size", "hex"},
    "dribble": {"chunk_size", "delay"},
}
_ACTION_NAMES: dict[type, str] = {
    PlugIn: "plug_in", Unplug: "unplug", InjectFault: "fault", ClearFault: "clear_fault",
    StopAtDevice: "stop_at_device", SwipeCard: "swipe_card", DropNetwork: "drop_network",
    Reboot: "reboot", ChangeIp: "change_ip", SendGarbage: "garbage", Dribble: "dribble",
}
_CHARGER_KEYS = {f.name for f in dataclasses.fields(Charger)}


class _Parser:
    """Walks the TOML document; every message starts with the source and the entry."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> ScenarioError:
        return ScenarioError(f"{self.source}: {where}: {message}")

    def table(self, value: object, where: str, allowed: set[str]) -> Mapping[str, object]:
        if not isinstance(value, dict):
            raise self.fail(where, "expected a table")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(where, f"unknown key {unknown[0]!r} (allowed: "
                                   f"{', '.join(sorted(allowed)) or 'none'})")
        return {str(k): v for k, v in value.items()}

    def number(self, value: object, where: str, *, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(where, f"expected a number, got {value!r}")
        if positive and not value > 0:
            raise self.fail(where, "must be positive")
        return float(value)

    def integer(self, value: object, where: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"expected a whole number, got {value!r}")
        if not low <= value <= high:
            raise self.fail(where, f"must be between {low} and {high}")
        return value

    def boolean(self, value: object, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true or false, got {value!r}")
        return value

    def string(self, value: object, where: str) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"expected a string, got {value!r}")
        return value

    def duration(self, value: object, where: str) -> float:
        try:
            return parse_duration(value, where)
        except ScenarioError as err:
            raise ScenarioError(f"{self.source}: {err}") from None

    def scenario(self, document: Mapping[str, object]) -> Scenario:
        top = self.table(document, "top level", _TOP_KEYS)
        cadence = (self.duration(top["cadence"], "cadence") if "cadence" in top else None)
        if cadence is not None and cadence <= 0:
            raise self.fail("cadence", "must be positive")
        devices = self.devices(top.get("devices", []))
        steps = self.steps(top.get("steps", []), devices)
        server = self.string(top["server"], "server") if "server" in top else None
        return Scenario(
            devices=tuple(devices), steps=tuple(sorted(steps, key=lambda s: (s.at, s.index))),
            server=server,
            speed=self.number(top["speed"], "speed", positive=True) if "speed" in top else None,
            seed=self.integer(top["seed"], "seed", -2**63, 2**63 - 1) if "seed" in top else None,
            cadence=cadence,
            duration=self.duration(top["duration"], "duration") if "duration" in top else None)

    def devices(self, entries: object) -> list[DeviceSpec]:
        if not isinstance(entries, list):
            raise self.fail("devices", "expected an array of tables ([[devices]])")
        specs: list[DeviceSpec] = []
        counters = {ProtocolFamily.BKV: 0, ProtocolFamily.AP3000: 0}
        for n, entry in enumerate(entries):
            where = f"devices[{n}]"
            table = self.table(entry, where, _DEVICE_KEYS)
            protocol_name = self.string(table.get("protocol"), f"{where}.protocol")
            try:
                protocol = ProtocolFamily(protocol_name)
            except ValueError:
                raise self.fail(f"{where}.protocol",
                                f"expected 'bkv' or 'ap3000', got {protocol_name!r}") from None
            count = self.integer(table.get("count", 1), f"{where}.count", 1, 100_000)
            if "phy_id" in table and count != 1:
                raise self.fail(where, "give either phy_id or count, not both")
            profile = self.profile(table.get("profile", {}), f"{where}.profile")
            if "cadence" in table:
                period = self.duration(table["cadence"], f"{where}.cadence")
                profile = dataclasses.replace(profile, heartbeat_s=period, progress_s=period)
            for _ in range(count):
                counters[protocol] += 1
                specs.append(self.device(protocol, table, where, profile, counters[protocol]))
        seen: set[str] = set()
        for spec in specs:
            if spec.phy_id in seen:
                raise self.fail("devices", f"device {spec.phy_id} is declared twice")
            seen.add(spec.phy_id)
        return specs

    def device(self, protocol: ProtocolFamily, table: Mapping[str, object], where: str,
               profile: DeviceProfile, number: int) -> DeviceSpec:
        try:
            if protocol is ProtocolFamily.BKV:
                if "ports" in table:
                    raise self.fail(f"{where}.ports", "BKV sockets always have ports 1 and 2;"
                                                      " set sockets instead")
                sockets = self.integer(table.get("sockets", 1), f"{where}.sockets", 1, 250)
                phy_id = (self.string(table["phy_id"], f"{where}.phy_id") if "phy_id" in table
                          else bkv_phy_id(900_000 + number))
                return bkv_gateway(phy_id, sockets=sockets, profile=profile)
            if "sockets" in table:
                raise self.fail(f"{where}.sockets", "an AP3000 unit has one socket; set ports")
            ports = self.integer(table.get("ports", 2), f"{where}.ports", 1, 16)
            phy_id = (self.string(table["phy_id"], f"{where}.phy_id") if "phy_id" in table
                      else ap3000_phy_id(900_000 + number, ports=ports))
            return ap3000_unit(phy_id, ports=ports, profile=profile)
        except ScenarioError:
            raise
        except ValueError as err:
            raise self.fail(where, str(err)) from None

    def profile(self, value: object, where: str) -> DeviceProfile:
        allowed = {f.name for f in dataclasses.fields(DeviceProfile)}
        table = self.table(value, where, allowed)
        base = DeviceProfile()

        def number(key: str, default: float) -> float:
            return self.number(table[key], f"{where}.{key}") if key in table else default

        def period(key: str, default: float | None) -> float | None:
            return (self.number(table[key], f"{where}.{key}", positive=True) if key in table
                    else default)

        def pair(key: str, default: tuple[float, float]) -> tuple[float, float]:
            item = table.get(key, default)
            if not isinstance(item, list | tuple) or len(item) != 2:
                raise self.fail(f"{where}.{key}", "expected [low, high]")
            return (self.number(item[0], f"{where}.{key}"),
                    self.number(item[1], f"{where}.{key}"))

        start = self.string(table.get("start_without_charger", "wait"),
                            f"{where}.start_without_charger")
        if start not in ("wait", "reject"):
            raise self.fail(f"{where}.start_without_charger", "expected 'wait' or 'reject'")
        try:
            return DeviceProfile(
                heartbeat_s=period("heartbeat_s", base.heartbeat_s),
                progress_s=period("progress_s", base.progress_s),
                settlement_retry_s=period("settlement_retry_s", base.settlement_retry_s),
                reconnect_delay_s=pair("reconnect_delay_s", base.reconnect_delay_s),
                max_backoff_s=number("max_backoff_s", base.max_backoff_s),
                plug_detect_s=pair("plug_detect_s", base.plug_detect_s),
                boot_s=pair("boot_s", base.boot_s),
                keep_orders_on_reboot=self.boolean(
                    table.get("keep_orders_on_reboot", base.keep_orders_on_reboot),
                    f"{where}.keep_orders_on_reboot"),
                start_without_charger="wait" if start == "wait" else "reject",
                plug_wait_s=number("plug_wait_s", base.plug_wait_s),
                full_power_w=number("full_power_w", base.full_power_w),
                full_delay_s=number("full_delay_s", base.full_delay_s),
                no_load_power_w=number("no_load_power_w", base.no_load_power_w),
                no_load_delay_s=number("no_load_delay_s", base.no_load_delay_s),
                max_charge_time_s=number("max_charge_time_s", base.max_charge_time_s),
                mains_voltage_v=number("mains_voltage_v", base.mains_voltage_v),
                firmware=self.string(table.get("firmware", base.firmware), f"{where}.firmware"),
                rssi=self.integer(table.get("rssi", base.rssi), f"{where}.rssi", 0, 31))
        except ScenarioError:
            raise
        except ValueError as err:
            raise self.fail(where, str(err)) from None

    def steps(self, entries: object, devices: list[DeviceSpec]) -> list[Step]:
        if not isinstance(entries, list):
            raise self.fail("steps", "expected an array of tables ([[steps]])")
        known = {spec.phy_id: spec for spec in devices}
        steps: list[Step] = []
        for n, entry in enumerate(entries):
            where = f"steps[{n}]"
            if not isinstance(entry, dict):
                raise self.fail(where, "expected a table")
            name = self.string(entry.get("action"), f"{where}.action")
            if name not in _ACTION_KEYS:
                raise self.fail(f"{where}.action", f"unknown action {name!r} (expected one of: "
                                                   f"{', '.join(sorted(_ACTION_KEYS))})")
            table = self.table(entry, where, _STEP_KEYS | _ACTION_KEYS[name])
            if "at" not in table:
                raise self.fail(where, "missing 'at' (when the step happens)")
            at = self.duration(table["at"], f"{where}.at")
            phy_id = self.target(table.get("device"), f"{where}.device", devices)
            socket_no = self.integer(table.get("socket", 1), f"{where}.socket", 1, 250)
            port_no = self.integer(table.get("port", 1), f"{where}.port", 1, 16)
            spec = known.get(phy_id.lower()) or known.get(phy_id.upper())
            if spec is not None and (socket_no > spec.sockets or port_no > spec.ports):
                raise self.fail(where, f"device {spec.phy_id} has no socket {socket_no} "
                                       f"port {port_no}")
            action = self.action(name, table, where)
            steps.append(Step(at=at, device=phy_id, action=action, socket_no=socket_no,
                              port_no=port_no, index=n))
        return steps

    def target(self, value: object, where: str, devices: list[DeviceSpec]) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value < len(devices):
                raise self.fail(where, f"no device number {value} (the file declares "
                                       f"{len(devices)})")
            return devices[value].phy_id
        if isinstance(value, str) and value:
            return value
        raise self.fail(where, "expected a phy_id or a device number")

    def action(self, name: str, table: Mapping[str, object], where: str) -> Action:
        if name == "plug_in":
            charger = self.table(table.get("charger", {}), f"{where}.charger", _CHARGER_KEYS)
            values = {k: self.number(v, f"{where}.charger.{k}") for k, v in charger.items()}
            try:
                return PlugIn(charger=Charger(**values))
            except ValueError as err:
                raise self.fail(f"{where}.charger", str(err)) from None
        if name == "fault":
            fault_name = self.string(table.get("fault", "short_circuit"), f"{where}.fault")
            if fault_name not in FAULTS:
                raise self.fail(f"{where}.fault", f"unknown fault {fault_name!r} (expected one "
                                                  f"of: {', '.join(sorted(FAULTS))})")
            return InjectFault(fault=FAULTS[fault_name])
        if name == "swipe_card":
            if "card_no" not in table:
                raise self.fail(where, "missing 'card_no'")
            return SwipeCard(card_no=self.string(table["card_no"], f"{where}.card_no"),
                             balance_only=self.boolean(table.get("balance_only", False),
                                                       f"{where}.balance_only"))
        if name == "drop_network":
            return DropNetwork(
                duration=self.duration(table["duration"], f"{where}.duration")
                if "duration" in table else None,
                close=self.boolean(table.get("close", False), f"{where}.close"))
        if name == "reboot":
            return Reboot(
                keep_orders=self.boolean(table["keep_orders"], f"{where}.keep_orders")
                if "keep_orders" in table else None,
                boot_time=self.duration(table["boot_time"], f"{where}.boot_time")
                if "boot_time" in table else None)
        if name == "change_ip":
            return ChangeIp(
                source_address=self.string(table["source_address"], f"{where}.source_address")
                if "source_address" in table else None,
                delay=self.duration(table["delay"], f"{where}.delay")
                if "delay" in table else None)
        if name == "garbage":
            if "hex" in table:
                text = self.string(table["hex"], f"{where}.hex")
                try:
                    return SendGarbage(data=bytes.fromhex(text))
                except ValueError:
                    raise self.fail(f"{where}.hex", "not hex digits") from None
            return SendGarbage(size=self.integer(table.get("size", 64), f"{where}.size",
                                                 1, 65536))
        if name == "dribble":
            size = self.integer(table.get("chunk_size", 1), f"{where}.chunk_size", 0, 65536)
            return Dribble(chunk_size=size or None,
                           delay=self.duration(table.get("delay", 0.05), f"{where}.delay"))
        if name == "unplug":
            return Unplug()
        if name == "clear_fault":
            return ClearFault()
        return StopAtDevice()


def with_cadence(spec: DeviceSpec, cadence: float) -> DeviceSpec:
    """*spec* with its heartbeat and progress period set to *cadence* seconds."""
    profile = dataclasses.replace(spec.profile, heartbeat_s=cadence, progress_s=cadence)
    return dataclasses.replace(spec, profile=profile)


# --- running --------------------------------------------------------------------------------

async def apply_step(fleet: Fleet, step: Step) -> None:
    """Carry out one step now.

    Raises:
        KeyError: No such device or port in the fleet.
        DeviceOffline, RuntimeError: The action is not possible now.
    """
    device = fleet[step.device]
    action = step.action
    if isinstance(action, DropNetwork):
        await device.drop_network(action.duration, close=action.close)
    elif isinstance(action, Reboot):
        await device.reboot(keep_orders=action.keep_orders, boot_time=action.boot_time)
    elif isinstance(action, ChangeIp):
        await device.change_ip(action.source_address, delay=action.delay)
    elif isinstance(action, SendGarbage):
        await device.send_garbage(action.data, size=action.size)
    elif isinstance(action, Dribble):
        device.dribble(action.chunk_size, action.delay)
    else:
        port = device.port(step.port_no, step.socket_no)
        if isinstance(action, PlugIn):
            await port.plug_in(action.charger)
        elif isinstance(action, Unplug):
            await port.unplug()
        elif isinstance(action, InjectFault):
            await port.inject_fault(action.fault)
        elif isinstance(action, ClearFault):
            await port.clear_fault()
        elif isinstance(action, StopAtDevice):
            await port.stop_at_device()
        else:
            await port.swipe_card(action.card_no, balance_only=action.balance_only)


async def run_scenario(fleet: Fleet, scenario: Scenario, *,
                       logger: Logger | None = None) -> list[StepFailure]:
    """Run the scenario's steps at their times, counted from now on the fleet's clock,
    each in its own task (a slow one never delays the next). Returns once every step
    has finished and the scenario's duration has passed; a step that fails is logged
    and returned, never raised."""
    log = logger if logger is not None else Logger("warning")
    start = fleet.clock.now()
    failures: list[StepFailure] = []

    async def run(step: Step) -> None:
        try:
            await apply_step(fleet, step)
        except Exception as err:  # one step's failure must not stop the others
            failures.append(StepFailure(step=step, error=f"{type(err).__name__}: {err}"))
            log.error("scenario step failed", step=step.describe(), error=repr(err))

    async with trio.open_nursery() as nursery:
        for step in scenario.steps:
            await fleet.clock.sleep_until(start + step.at)
            nursery.start_soon(run, step)
        await fleet.clock.sleep_until(start + scenario.end)
    return failures
