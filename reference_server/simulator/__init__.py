"""Simulated charging devices for the reference server: fleets of BKV/GN gateways
and AP3000 units built on bkvcodec's device role, with an e-bike charger model,
simulated time, scenario files and a command line (``python -m reference_server
simulate``). See ``docs/simulator.rst``.
"""
from __future__ import annotations

from .charger import Charger, ChargerPhase, ChargerState
from .clock import SimClock
from .device import DeviceOffline, SimDevice
from .faults import FAULTS, OVER_CURRENT, OVER_TEMPERATURE, SHORT_CIRCUIT, Fault
from .fleet import Fleet
from .port import SimPort
from .protocols import DeviceSettings, PortCondition
from .records import (
    ChargeRecord,
    DeviceStatistics,
    EndCause,
    FleetStatistics,
    Garbage,
    JournalEntry,
    JournalItem,
    LinkChange,
)
from .scenario import (
    Scenario,
    ScenarioError,
    Step,
    StepFailure,
    apply_step,
    load_scenario,
    parse_scenario,
    run_scenario,
)
from .specs import (
    DeviceProfile,
    DeviceSpec,
    ap3000_phy_id,
    ap3000_unit,
    bkv_gateway,
    bkv_phy_id,
    fleet_specs,
)

__all__ = [
    "FAULTS",
    "OVER_CURRENT",
    "OVER_TEMPERATURE",
    "SHORT_CIRCUIT",
    "ChargeRecord",
    "Charger",
    "ChargerPhase",
    "ChargerState",
    "DeviceOffline",
    "DeviceProfile",
    "DeviceSettings",
    "DeviceSpec",
    "DeviceStatistics",
    "EndCause",
    "Fault",
    "Fleet",
    "FleetStatistics",
    "Garbage",
    "JournalEntry",
    "JournalItem",
    "LinkChange",
    "PortCondition",
    "Scenario",
    "ScenarioError",
    "SimClock",
    "SimDevice",
    "SimPort",
    "Step",
    "StepFailure",
    "ap3000_phy_id",
    "ap3000_unit",
    "apply_step",
    "bkv_gateway",
    "bkv_phy_id",
    "fleet_specs",
    "load_scenario",
    "parse_scenario",
    "run_scenario",
]
