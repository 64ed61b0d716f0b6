"""Billing by tariff (bkvcodec/_billing.py; api.md §5, §11.1)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bkvcodec import (
    ChargeMode,
    ChargingSession,
    EndReason,
    LocalProtocolError,
    MeterReading,
    OrderCompleted,
    ProtocolFamily,
    ServerConnection,
    SettlementReported,
    Tariff,
    TariffKind,
    compute_bill,
    encode,
)
from bkvcodec._billing import tiers_fee
from bkvcodec._commands import PowerTierSpec
from bkvcodec.bkv import BkvFrame, CardChargeEnd

from .helpers import DevicePair

GATEWAY = "82210225000520"
T0 = 1729407600.0
#: 100 cents per 60 minutes up to 1 kW; 200 cents per 60 minutes up to 3 kW.
TIERS = (PowerTierSpec(max_power_w=1000, price_cents=100, minutes=60),
         PowerTierSpec(max_power_w=3000, price_cents=200, minutes=60))


@pytest.mark.parametrize(("mode", "price", "amount", "card", "expected"), [
    (ChargeMode.POWER_TIERS, 150, 500, False, TariffKind.TIERS),
    (ChargeMode.POWER_TIERS, 0, None, False, TariffKind.TIERS),
    (ChargeMode.POWER_TIERS, 0, 500, True, TariffKind.FLAT),
    (ChargeMode.TIME, 150, 500, False, TariffKind.ENERGY),
    (ChargeMode.ENERGY, 1, None, False, TariffKind.ENERGY),
    (ChargeMode.TIME, 0, 500, False, TariffKind.TIME),
    (ChargeMode.TIME, 0, 500, True, TariffKind.FLAT),
    (ChargeMode.TIME, 0, None, False, TariffKind.FLAT),
    (ChargeMode.UNTIL_FULL, 0, 500, False, TariffKind.FLAT),
    (ChargeMode.ENERGY, 0, 500, False, TariffKind.FLAT),
])
def test_the_tariff_of_a_new_order(mode: ChargeMode, price: int, amount: int | None,
                                   card: bool, expected: TariffKind) -> None:
    kind = TariffKind.for_order(mode, price_per_kwh_cents=price, amount_cents=amount, card=card)

    assert expected == kind


def test_tiers_bill_the_minutes_per_tier_at_each_tier_price() -> None:
    tariff = Tariff(amount_cents=500, kind=TariffKind.TIERS, power_tiers=TIERS)

    bill = compute_bill(tariff, energy_centikwh=80, used_s=50 * 60, tier_minutes=(30, 20))

    # 30 min × 100/60 + 20 min × 200/60 = 50 + 66.67 → 117 (rounded once, half up).
    assert (117, 117, 383, TariffKind.TIERS) == (bill.energy_fee_cents, bill.final_cents,
                                                 bill.refund_cents, bill.tariff)


def test_tiers_with_price_zero_are_not_billed_the_whole_amount() -> None:
    # Story 8 of issue 12: price 0 billed a power-tier order its whole prepaid amount.
    tariff = Tariff(amount_cents=1000, price_per_kwh_cents=0, kind=TariffKind.TIERS,
                    power_tiers=TIERS)

    bill = compute_bill(tariff, energy_centikwh=10, used_s=600, tier_minutes=(10,))

    assert (17, 983) == (bill.final_cents, bill.refund_cents)


def test_tiers_are_capped_at_the_prepaid_amount_and_extra_tiers_are_free() -> None:
    tariff = Tariff(amount_cents=100, kind=TariffKind.TIERS, power_tiers=TIERS)

    capped = compute_bill(tariff, energy_centikwh=0, used_s=0, tier_minutes=(600, 0, 900))
    nothing = compute_bill(tariff, energy_centikwh=0, used_s=0)

    assert (1000, 100, 0) == (capped.energy_fee_cents, capped.final_cents,
                              capped.refund_cents)
    assert (0, 100) == (nothing.final_cents, nothing.refund_cents)


def test_tiers_without_a_prepaid_amount_bill_the_tiers() -> None:
    tariff = Tariff(kind=TariffKind.TIERS, power_tiers=TIERS)

    bill = compute_bill(tariff, energy_centikwh=0, used_s=0, tier_minutes=(60, 60))

    assert (300, 0) == (bill.final_cents, bill.refund_cents)


def test_flat_and_time_kinds_follow_the_amount() -> None:
    flat = compute_bill(Tariff(amount_cents=700, duration_s=3600, kind=TariffKind.FLAT),
                        energy_centikwh=5, used_s=60)
    time_ = compute_bill(Tariff(amount_cents=700, duration_s=3600, kind=TariffKind.TIME),
                         energy_centikwh=5, used_s=1800)
    time_without_duration = compute_bill(Tariff(amount_cents=700, kind=TariffKind.TIME),
                                         energy_centikwh=5, used_s=1800)

    assert (700, 350, 700) == (flat.final_cents, time_.final_cents,
                               time_without_duration.final_cents)


def test_a_tiers_tariff_needs_tiers_and_minutes_are_not_negative() -> None:
    with pytest.raises(LocalProtocolError):
        Tariff(kind=TariffKind.TIERS)
    with pytest.raises(LocalProtocolError):
        tiers_fee(TIERS, (1, -1))


def test_the_derived_kind_without_an_explicit_one() -> None:
    assert TariffKind.ENERGY == Tariff(price_per_kwh_cents=1).effective_kind
    assert TariffKind.TIME == Tariff(amount_cents=1, duration_s=60).effective_kind
    assert TariffKind.FLAT == Tariff(amount_cents=1).effective_kind


readings = st.integers(min_value=0, max_value=2**32 - 1)
amounts = st.none() | st.integers(min_value=0, max_value=10**7)


@given(kind=st.sampled_from(TariffKind), amount=amounts,
       price=st.integers(min_value=0, max_value=10**4),
       fee=st.integers(min_value=0, max_value=1000),
       duration=st.none() | st.integers(min_value=1, max_value=10**6),
       energy=readings, used=readings,
       minutes=st.lists(st.integers(min_value=0, max_value=0xFFFF), max_size=6))
def test_final_is_never_negative_nor_above_the_prepaid_amount(
        kind: TariffKind, amount: int | None, price: int, fee: int, duration: int | None,
        energy: int, used: int, minutes: list[int]) -> None:
    tariff = Tariff(amount_cents=amount, price_per_kwh_cents=price, service_fee_permille=fee,
                    duration_s=duration, kind=kind, power_tiers=TIERS)

    bill = compute_bill(tariff, energy_centikwh=energy, used_s=used, tier_minutes=minutes)

    assert bill.final_cents >= 0
    if amount is not None:
        assert 0 <= bill.final_cents <= amount
        assert amount == bill.final_cents + bill.refund_cents


def test_a_session_bills_the_tier_minutes_of_its_settlement() -> None:
    session = ChargingSession(order_no="THD1729407600000", device_phy_id=GATEWAY, port_no=1,
                              charge_mode=ChargeMode.POWER_TIERS,
                              tariff=Tariff(amount_cents=500, kind=TariffKind.TIERS,
                                            power_tiers=TIERS))
    session.start_requested(T0)
    session.progress(T0 + 60, MeterReading(duration_s=60, energy_centikwh=1))

    events = session.settlement(T0 + 3000, MeterReading(duration_s=3000, energy_centikwh=80),
                                end_reason=EndReason.NORMAL, tier_minutes=(30, 20))
    again = session.settlement(T0 + 3010, MeterReading(duration_s=3000, energy_centikwh=80),
                               end_reason=EndReason.NORMAL, tier_minutes=(50, 50))

    completed = events[-1]
    assert isinstance(completed, OrderCompleted)
    assert (117, TariffKind.TIERS) == (completed.bill.final_cents, completed.bill.tariff)
    assert [] == again
    assert (30, 20) == session.tier_minutes
    assert 5 == session.events_emitted  # created, started, progress, ended, completed


def test_a_bkv_gateway_reports_minutes_per_tier_with_gn_0x18() -> None:
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)
    pair.connect(T0)
    report = SettlementReported(
        phy_id=GATEWAY, socket_no=3, port_no=2, business_no=0x1234,
        reading=MeterReading(duration_s=50 * 60, energy_centikwh=80, power_dw=1200),
        end_reason=EndReason.FULL, amount_cents=117, tier_minutes=(30, 20))

    [settled] = pair.device_sends(report, T0 + 1)
    [remote_stop] = pair.device_sends(
        SettlementReported(phy_id=GATEWAY, socket_no=3, port_no=1, business_no=7,
                           reading=MeterReading(duration_s=60, energy_centikwh=1),
                           end_reason=EndReason.REMOTE_STOP, end_reason_raw=5,
                           tier_minutes=()), T0 + 2)

    assert isinstance(settled, SettlementReported)
    assert ((30, 20), 117, EndReason.FULL, 1) == (
        settled.tier_minutes, settled.amount_cents, settled.end_reason,
        settled.end_reason_raw)
    assert isinstance(remote_stop, SettlementReported)
    assert ((), EndReason.REMOTE_STOP, 0) == (remote_stop.tier_minutes,
                                              remote_stop.end_reason,
                                              remote_stop.amount_cents)


def test_a_plain_bkv_charge_end_has_no_tier_minutes() -> None:
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)
    pair.connect(T0)

    [settled] = pair.device_sends(SettlementReported(
        phy_id=GATEWAY, socket_no=1, port_no=1, business_no=1,
        reading=MeterReading(duration_s=60, energy_centikwh=1), end_reason=EndReason.NORMAL),
        T0 + 1)

    assert isinstance(settled, SettlementReported)
    assert (None, None) == (settled.tier_minutes, settled.amount_cents)


@pytest.mark.parametrize(("billing_mode", "expected"), [(3, ((12, 3), 45)), (1, (None, None))])
def test_a_card_charge_end_in_power_mode_reports_its_tier_minutes(
        billing_mode: int, expected: tuple[tuple[int, ...] | None, int | None]) -> None:
    frame = BkvFrame(gateway_id=GATEWAY, message=CardChargeEnd(
        socket_no=1, socket_version=b"\xff\xff", temperature_c=30, rssi=30, port=0,
        status=1, business_no=5, power_dw=0, current_ma=0, energy_wh=100, duration_min=15,
        card_no=bytes.fromhex("0102030405ab"), card_type=0, billing_mode=billing_mode,
        amount_fen=45 if billing_mode == 3 else 0, settlement_power_dw=0,
        tier_durations_min=(12, 3) if billing_mode == 3 else ()))

    [settled] = ServerConnection().receive_data(encode(frame), T0)

    assert isinstance(settled, SettlementReported)
    assert expected == (settled.tier_minutes, settled.amount_cents)
