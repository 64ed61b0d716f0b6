"""Billing that follows the tariff, and reports that cannot be true (issue 12 story 8,
api.md §5, §11.1), against the real server over loopback."""
from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from bkvcodec import (
    ChargeMode,
    ChargingSession,
    CommandAcknowledged,
    EndReason,
    MeterReading,
    PowerTierSpec,
    ProgressReported,
    ProtocolFamily,
    ServerAnswered,
    SettlementReported,
    StartCharging,
    Tariff,
    TariffKind,
    encode,
)
from bkvcodec.bkv import BkvFrame, FeeChargeEnd
from reference_server.money import cap_reading, max_energy_centikwh

from ..server.harness import BKV_ID, Device, RunningServer, e2e_config, server_running

BUSINESS_NO = 0x61
#: The most a BKV gateway can report: 2³²−1 Wh (as 0.01 kWh, whole tens of Wh).
ABSURD_CENTIKWH = (2**32 - 1) // 10
TIERS = [{"max_power_w": 1000, "price_cents": 100, "minutes": 60},
         {"max_power_w": 3000, "price_cents": 200, "minutes": 60}]


@asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[tuple[RunningServer, Device, Path]]:
    """The server with the contract's default rating (3,500 W per port) and a gateway."""
    db_path = tmp_path / "iot.db"
    with trio.fail_after(30):
        async with server_running(e2e_config(db_path, None, rated_power_w=3500,
                                             offline_after=60)) as server, \
                trio.open_nursery() as nursery:
            device = Device(ProtocolFamily.BKV, BKV_ID)
            await device.connect(nursery, server.addresses.tcp_port)
            await server.wait_online(BKV_ID)
            yield server, device, db_path
            nursery.cancel_scope.cancel()


async def charging(server: RunningServer, device: Device, **body: object) -> str:
    response = await server.call("POST", f"/devices/{BKV_ID}/charge", {"port_no": 1, **body})
    assert 200 == response.status_code, response.text
    order_no: str = response.json()["data"]["order_no"]
    start = await device.expect(StartCharging)
    await device.send(CommandAcknowledged(command_id=start.command_id, phy_id=BKV_ID,
                                          business_no=BUSINESS_NO))
    await report(device, 60, 5)
    await server.wait_order(order_no, "charging")
    return order_no


async def report(device: Device, seconds: int, energy: int, power_dw: int = 20000) -> None:
    await device.send(ProgressReported(
        phy_id=BKV_ID, socket_no=1, port_no=1, business_no=BUSINESS_NO,
        reading=MeterReading(duration_s=seconds, energy_centikwh=energy, power_dw=power_dw)))


async def settled(server: RunningServer, device: Device, order_no: str,
                  settlement: SettlementReported) -> dict[str, Any]:
    await device.send(settlement)
    await device.expect(ServerAnswered, lambda a: a.name == "charge_end_ack")
    return await server.wait_order(order_no, "completed")


def events(db_path: Path, order_no: str, event_type: str) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(db_path)) as db:
        rows = db.execute("SELECT payload_json FROM events WHERE order_no = ? AND "
                          "event_type = ? ORDER BY seq", (order_no, event_type)).fetchall()
    return [json.loads(row[0]) for row in rows]


@pytest.mark.trio
async def test_absurd_energy_without_a_prepaid_amount_is_capped_not_billed(
        tmp_path: Path) -> None:
    async with running(tmp_path) as (server, device, db_path):
        order_no = await charging(server, device, charge_mode=4, price_per_kwh=100)

        # A BKV fee-mode end (0x1004) carries energy in a 32-bit field: all ones.
        assert device.stream is not None
        await device.stream.send_all(encode(BkvFrame(gateway_id=BKV_ID, message=FeeChargeEnd(
            socket_no=1, port=0, business_no=BUSINESS_NO, energy_wh=2**32 - 1,
            duration_min=60, end_reason=0))))
        order = await server.wait_order(order_no, "completed")
        [anomaly] = events(db_path, order_no, "order.anomaly")
        [completed] = events(db_path, order_no, "order.completed")

    # 3,500 W × (3,600 + 60) s × 1.2 = 4.27 kWh at 100 cents/kWh: 427 cents, not
    # 429,496,729.
    assert ("energy", 4.27, 427, None) == (order["tariff"], order["total_kwh"],
                                           order["final_amount_cents"], order["amount"])
    assert ("energy_above_rating", "total_kwh", 4294967.29, 4.27, "settlement") == (
        anomaly["reason"], anomaly["field"], anomaly["reported"], anomaly["accepted"],
        anomaly["report"])
    assert ("energy", 427) == (completed["tariff"], completed["final_amount_cents"])


@pytest.mark.trio
async def test_a_power_tier_order_with_price_zero_bills_its_tiers(tmp_path: Path) -> None:
    async with running(tmp_path) as (server, device, db_path):
        order_no = await charging(server, device, charge_mode=3, amount=1000,
                                  power_tiers=TIERS, price_per_kwh=0)
        created = await server.order(order_no)

        # 30 min in tier 1 (100 per 60 min) + 20 min in tier 2 (200 per 60 min) = 117.
        order = await settled(server, device, order_no, SettlementReported(
            phy_id=BKV_ID, socket_no=1, port_no=1, business_no=BUSINESS_NO,
            reading=MeterReading(duration_s=3000, energy_centikwh=80, power_dw=15000),
            end_reason=EndReason.NORMAL, amount_cents=117, tier_minutes=(30, 20)))

        assert ("tiers", "tiers") == (created["tariff"], order["tariff"])
        assert (117, 883, 117) == (order["final_amount_cents"], order["refund_cents"],
                                   order["device_amount_cents"])
        assert [] == events(db_path, order_no, "order.anomaly")
        [completed] = events(db_path, order_no, "order.completed")
        assert ("tiers", 117) == (completed["tariff"], completed["final_amount_cents"])


@pytest.mark.trio
async def test_a_device_amount_that_disagrees_raises_an_anomaly_and_the_tiers_bill(
        tmp_path: Path) -> None:
    async with running(tmp_path) as (server, device, db_path):
        order_no = await charging(server, device, charge_mode=3, amount=1000,
                                  power_tiers=TIERS)

        order = await settled(server, device, order_no, SettlementReported(
            phy_id=BKV_ID, socket_no=1, port_no=1, business_no=BUSINESS_NO,
            reading=MeterReading(duration_s=3000, energy_centikwh=80),
            end_reason=EndReason.NORMAL, amount_cents=1000, tier_minutes=(30, 20)))
        [anomaly] = events(db_path, order_no, "order.anomaly")

    assert (117, 1000) == (order["final_amount_cents"], order["device_amount_cents"])
    assert ("device_amount_mismatch", 1000, 117) == (anomaly["reason"], anomaly["reported"],
                                                     anomaly["accepted"])


@pytest.mark.trio
async def test_tier_minutes_beyond_the_reported_time_are_trimmed(tmp_path: Path) -> None:
    async with running(tmp_path) as (server, device, db_path):
        order_no = await charging(server, device, charge_mode=3, amount=1000,
                                  power_tiers=TIERS)

        order = await settled(server, device, order_no, SettlementReported(
            phy_id=BKV_ID, socket_no=1, port_no=1, business_no=BUSINESS_NO,
            reading=MeterReading(duration_s=600, energy_centikwh=10),
            end_reason=EndReason.NORMAL, amount_cents=117, tier_minutes=(30, 20)))
        reasons = [a["reason"] for a in events(db_path, order_no, "order.anomaly")]

    # 10 minutes charged (+1 of slack): 11 minutes of tier 1 = 18 cents.
    assert 18 == order["final_amount_cents"]
    assert ["tier_minutes_above_duration", "device_amount_mismatch"] == reasons


@pytest.mark.trio
async def test_counters_that_go_backwards_in_a_connection_are_kept_and_raised(
        tmp_path: Path) -> None:
    async with running(tmp_path) as (server, device, db_path):
        order_no = await charging(server, device, charge_mode=4, price_per_kwh=100)
        await report(device, 600, 50)
        await report(device, 300, 20)  # backwards: raised once
        await report(device, 240, 10)
        await report(device, 660, 55, power_dw=900_000)  # 90 kW on one port: capped

        order = await settled(server, device, order_no, SettlementReported(
            phy_id=BKV_ID, socket_no=1, port_no=1, business_no=BUSINESS_NO,
            reading=MeterReading(duration_s=720, energy_centikwh=60),
            end_reason=EndReason.NORMAL))
        anomalies = [(a["reason"], a["field"], a["reported"], a["accepted"])
                     for a in events(db_path, order_no, "order.anomaly")]

    assert [("counter_backwards", "total_kwh", 0.2, 0.5),
            ("counter_backwards", "duration_sec", 300, 600),
            ("power_above_rating", "current_power", 90000.0, 4200.0)] == anomalies
    assert (720, 0.6, 60, 4200.0) == (order["duration_sec"], order["total_kwh"],
                                      order["final_amount_cents"], order["peak_power"])


readings = st.builds(MeterReading, duration_s=st.integers(0, 0xFFFF * 60),
                     energy_centikwh=st.integers(0, ABSURD_CENTIKWH),
                     power_dw=st.integers(0, 0xFFFF))


@given(mode=st.sampled_from(ChargeMode), amount=st.none() | st.integers(0, 10**6),
       price=st.integers(0, 10**4), duration=st.none() | st.integers(1, 86_400),
       reports=st.lists(readings, min_size=1, max_size=5), final=readings,
       tier_minutes=st.lists(st.integers(0, 0xFFFF), max_size=5))
def test_any_reports_bill_within_zero_and_the_amount(
        mode: ChargeMode, amount: int | None, price: int, duration: int | None,
        reports: list[MeterReading], final: MeterReading, tier_minutes: list[int]) -> None:
    """What the server does with device reports (cap, then the session's bill)."""
    kind = TariffKind.for_order(mode, price_per_kwh_cents=price, amount_cents=amount)
    session = ChargingSession(
        order_no="THD1729407600000", device_phy_id=BKV_ID, port_no=1, charge_mode=mode,
        tariff=Tariff(amount_cents=amount, price_per_kwh_cents=price, duration_s=duration,
                      kind=kind, power_tiers=tuple(PowerTierSpec(**t) for t in TIERS)))
    session.start_requested(0)
    for reading in reports:
        session.progress(1, cap_reading(reading, 3500)[0])

    session.settlement(2, cap_reading(final, 3500)[0], end_reason=EndReason.NORMAL,
                       tier_minutes=tier_minutes)

    assert session.bill is not None
    assert session.bill.final_cents >= 0
    if amount is not None:
        assert session.bill.final_cents <= amount
    assert session.energy_centikwh <= max(max_energy_centikwh(3500, r.duration_s)
                                          for r in [*reports, final])
