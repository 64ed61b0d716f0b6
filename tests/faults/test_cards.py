"""Issue 12, stories 2, 9 and 10, against the real server over loopback: a card is a
ledger (api.md §11.1). Two swipes can never spend the same cents, every cent billed to
a card is collected or raised as ``card.debit_failed``, card changes are idempotent and
a card is never created twice, and a card answer is written at once whatever command
waits on the connection.

Figures (story 2, balance 500, two swipes on two gateways at once, each order billed
400): before, both swipes were authorised for 500 and 400 of 800 billed was collected,
the second debit failing silently. Now the second swipe is refused (0 available), the
first collects 400 and releases 100; a later swipe is authorised for the 100 left and
its bill is capped there: 500 billed, 500 collected.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from bkvcodec import (
    CardAnswered,
    CardPresented,
    CommandAcknowledged,
    EndReason,
    MeterReading,
    ProgressReported,
    ProtocolFamily,
    SetParams,
    SettlementReported,
    StartCharging,
)
from reference_server.storage import CardRecord, Database, InsufficientFunds, LedgerKind

from ..server.harness import (
    Device,
    Receiver,
    RunningServer,
    e2e_config,
    receiver_running,
    server_running,
)

GATEWAYS = ("82210225000520", "82210225000521")
CARD = "0000A1B2C3D4"
#: 1.00 kWh costs 100 cents, so a report of 4.00 kWh bills 400.
PRICE = 100


@dataclass
class Stack:
    server: RunningServer
    receiver: Receiver
    nursery: trio.Nursery

    async def gateway(self, phy_id: str) -> Device:
        device = Device(ProtocolFamily.BKV, phy_id)
        await device.connect(self.nursery, self.server.addresses.tcp_port)
        await self.server.wait_online(phy_id)
        return device

    async def card(self) -> dict[str, Any]:
        response = await self.server.call("GET", f"/cards/{CARD}")
        assert 200 == response.status_code, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    async def ledger(self) -> list[dict[str, Any]]:
        response = await self.server.call("GET", f"/cards/{CARD}/ledger?limit=500")
        assert 200 == response.status_code, response.text
        items: list[dict[str, Any]] = response.json()["data"]["items"]
        return items


@asynccontextmanager
async def stack(tmp_path: Path, **overrides: Any) -> AsyncIterator[Stack]:
    # A hang guard, not a measurement.
    with trio.fail_after(30):
        async with receiver_running() as (receiver, url):
            config = e2e_config(tmp_path / "iot.db", url, default_price_per_kwh=PRICE,
                                **overrides)
            async with server_running(config) as server, trio.open_nursery() as nursery:
                yield Stack(server, receiver, nursery)
                nursery.cancel_scope.cancel()


async def swipe(device: Device, request_id: int, port_no: int = 1) -> CardAnswered:
    await device.send(CardPresented(phy_id=device.phy_id, socket_no=1, port_no=port_no,
                                    card_no=CARD, request_id=request_id))
    return await device.expect(CardAnswered, lambda a: a.request_id == request_id)


async def charge_and_settle(s: Stack, device: Device, answer: CardAnswered,
                            energy_centikwh: int) -> dict[str, Any]:
    """The device starts the accepted card order, reports, and settles it."""
    business = 0x42
    assert answer.command_id is not None
    await device.send(CommandAcknowledged(command_id=answer.command_id, phy_id=device.phy_id,
                                          business_no=business))
    while not (swiped := [e for e in s.receiver.of_type("card.swiped", device=device.phy_id)
                          if e["data"]["accepted"]]):
        await s.receiver.wait_changed()
    order_no = swiped[-1]["data"]["order_no"]
    await device.send(ProgressReported(
        phy_id=device.phy_id, socket_no=1, port_no=1, business_no=business,
        reading=MeterReading(duration_s=600, energy_centikwh=energy_centikwh // 2,
                             power_dw=15000)))
    await device.send(SettlementReported(
        phy_id=device.phy_id, socket_no=1, port_no=1, business_no=business,
        reading=MeterReading(duration_s=1200, energy_centikwh=energy_centikwh),
        end_reason=EndReason.NORMAL))
    return await s.server.wait_order(order_no, "completed")


# --- story 2: a card pays for two charges -------------------------------------------------------

@pytest.mark.trio
async def test_story_2_two_swipes_never_spend_the_same_cents(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        created = await s.server.call("POST", "/cards", {"card_no": CARD,
                                                         "balance_cents": 500})
        assert 200 == created.status_code, created.text
        first, second = [await s.gateway(phy_id) for phy_id in GATEWAYS]

        answers: dict[str, CardAnswered] = {}

        async def swipe_on(device: Device, request_id: int) -> None:
            answers[device.phy_id] = await swipe(device, request_id)

        async with trio.open_nursery() as both:  # the two swipes at once
            both.start_soon(swipe_on, first, 1)
            both.start_soon(swipe_on, second, 2)
        accepted = [d for d in (first, second) if answers[d.phy_id].accepted]
        refused = [d for d in (first, second) if not answers[d.phy_id].accepted]
        held = await s.card()
        assert (1, 1) == (len(accepted), len(refused))
        assert (500, 500, 0) == (held["balance_cents"], held["held_cents"],
                                 held["available_cents"])
        [refusal] = await s.receiver.wait_for("card.swiped", device=refused[0].phy_id)
        assert ("insufficient_balance", 0) == (refusal["data"]["reason"],
                                               refusal["data"]["available_cents"])

        # The accepted order is billed 400: 400 collected, 100 released.
        one = await charge_and_settle(s, accepted[0], answers[accepted[0].phy_id], 400)
        after_one = await s.card()
        # The card's last 100 cents authorise one more swipe, billed 400 but capped at 100.
        again = await swipe(refused[0], 3)
        assert again.accepted
        two = await charge_and_settle(s, refused[0], again, 400)
        card = await s.card()
        ledger = await s.ledger()

        assert (400, 100, 0, 100) == (one["final_amount_cents"], after_one["balance_cents"],
                                      after_one["held_cents"], after_one["available_cents"])
        assert 100 == two["final_amount_cents"]
        billed = one["final_amount_cents"] + two["final_amount_cents"]
        collected = sum(e["amount_cents"] for e in ledger if e["kind"] == "debit")
        assert (500, 500) == (billed, collected)
        assert (0, 0, 0) == (card["balance_cents"], card["held_cents"],
                             card["available_cents"])
        assert [("topup", 500, None), ("hold", 500, one["order_no"]),
                ("debit", 400, one["order_no"]), ("release", 100, one["order_no"]),
                ("hold", 100, two["order_no"]), ("debit", 100, two["order_no"])] == [
            (e["kind"], e["amount_cents"], e["order_no"]) for e in ledger]
        assert [] == s.receiver.of_type("card.debit_failed")


@pytest.mark.trio
async def test_a_card_order_that_never_charges_releases_its_hold(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        await s.server.call("POST", "/cards", {"card_no": CARD, "balance_cents": 300})
        device = await s.gateway(GATEWAYS[0])

        answer = await swipe(device, 1)
        assert answer.command_id is not None
        await device.send(CommandAcknowledged(command_id=answer.command_id,
                                              phy_id=device.phy_id, business_no=0x42))
        [swiped] = await s.receiver.wait_for("card.swiped")
        order_no = swiped["data"]["order_no"]
        held = await s.card()
        # Stopped before the device reported any charge: the order is cancelled.
        stopped = await s.server.call("POST", f"/devices/{device.phy_id}/stop",
                                      {"port_no": 1, "order_no": order_no})
        assert 200 == stopped.status_code, stopped.text
        order = await s.server.wait_order(order_no, "cancelled")
        card = await s.card()

        assert (300, 300, 0) == (held["balance_cents"], held["held_cents"],
                                 held["available_cents"])
        assert 0 == order["final_amount_cents"]
        assert (300, 0, 300) == (card["balance_cents"], card["held_cents"],
                                 card["available_cents"])
        assert ["topup", "hold", "release"] == [e["kind"] for e in await s.ledger()]


@pytest.mark.trio
async def test_a_bill_the_card_cannot_pay_raises_card_debit_failed(tmp_path: Path) -> None:
    # An API order naming a card holds nothing (only swipes are authorised against
    # the card): when its bill exceeds what the card has, the shortfall is an alarm.
    async with stack(tmp_path) as s:
        await s.server.call("POST", "/cards", {"card_no": CARD, "balance_cents": 300})
        device = await s.gateway(GATEWAYS[0])
        order_no = (await s.server.charge(device.phy_id, port_no=1, amount=1000,
                                          card_no=CARD))["order_no"]
        start = await device.expect(StartCharging)
        await device.send(CommandAcknowledged(command_id=start.command_id,
                                              phy_id=device.phy_id, business_no=0x42))
        await device.send(SettlementReported(
            phy_id=device.phy_id, socket_no=1, port_no=1, business_no=0x42,
            reading=MeterReading(duration_s=1200, energy_centikwh=800),
            end_reason=EndReason.NORMAL))
        order = await s.server.wait_order(order_no, "completed")
        [alarm] = await s.receiver.wait_for("card.debit_failed")
        card = await s.card()

        assert 800 == order["final_amount_cents"]
        assert {"card_no": CARD, "order_no": order_no, "billed_cents": 800,
                "debited_cents": 300, "shortfall_cents": 500,
                "reason": "insufficient_funds"} == {
            k: alarm["data"][k] for k in ("card_no", "order_no", "billed_cents",
                                          "debited_cents", "shortfall_cents", "reason")}
        assert (0, 0) == (card["balance_cents"], card["held_cents"])
        assert '"card debit failed"' in s.server.log.getvalue()


# --- story 9: the cards API ----------------------------------------------------------------

@pytest.mark.trio
async def test_story_9_a_retried_top_up_credits_once(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        await s.server.call("POST", "/cards", {"card_no": CARD, "balance_cents": 100})
        key = {"Idempotency-Key": "topup-2026-0001"}

        first = await s.server.call("POST", f"/cards/{CARD}/topup", {"amount_cents": 500},
                                    headers=key)
        retried = await s.server.call("POST", f"/cards/{CARD}/topup", {"amount_cents": 500},
                                      headers=key)
        other_body = await s.server.call("POST", f"/cards/{CARD}/topup",
                                         {"amount_cents": 900}, headers=key)
        card = await s.card()

        assert 200 == first.status_code == retried.status_code
        assert first.json() == retried.json()
        assert "true" == retried.headers["Idempotency-Replayed"]
        assert (422, "idempotency_key_reused") == (other_body.status_code,
                                                   other_body.json()["error"])
        assert 600 == card["balance_cents"]
        assert [("topup", 100), ("topup", 500)] == [
            (e["kind"], e["amount_cents"]) for e in await s.ledger()]


@pytest.mark.trio
async def test_story_9_creating_an_existing_card_is_409_and_keeps_its_balance(
        tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        await s.server.call("POST", "/cards", {"card_no": CARD, "balance_cents": 700})

        again = await s.server.call("POST", "/cards", {"card_no": CARD, "balance_cents": 0})
        lower_case = await s.server.call("POST", "/cards", {"card_no": CARD.lower(),
                                                             "balance_cents": 5})
        card = await s.card()

        for response in (again, lower_case):
            assert (409, "card_exists") == (response.status_code, response.json()["error"])
        assert (700, 700) == (card["balance_cents"], card["available_cents"])


@pytest.mark.trio
async def test_adjustments_carry_a_reason_and_never_take_held_cents(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        await s.server.call("POST", "/cards", {"card_no": CARD, "balance_cents": 500})
        device = await s.gateway(GATEWAYS[0])
        assert (await swipe(device, 1)).accepted  # holds all 500

        refused = await s.server.call("POST", f"/cards/{CARD}/adjust",
                                      {"amount_cents": -1, "reason": "chargeback"})
        added = await s.server.call("POST", f"/cards/{CARD}/adjust",
                                    {"amount_cents": 250, "reason": "goodwill"},
                                    headers={"Idempotency-Key": "adj-1"})
        taken = await s.server.call("POST", f"/cards/{CARD}/adjust",
                                    {"amount_cents": -250, "reason": "goodwill revoked"})
        card = await s.card()
        ledger = await s.ledger()

        assert (409, "insufficient_balance") == (refused.status_code, refused.json()["error"])
        assert {"card_no": CARD.lower(), "requested_cents": 1,
                "available_cents": 0} == refused.json()["data"]
        assert 200 == added.status_code == taken.status_code
        assert (500, 500, 0) == (card["balance_cents"], card["held_cents"],
                                 card["available_cents"])
        assert [("adjust", 250, "goodwill", "e2e"), ("adjust", -250, "goodwill revoked", "e2e")
                ] == [(e["kind"], e["amount_cents"], e["reason"], e["key_name"])
                      for e in ledger if e["kind"] == "adjust"]


# --- story 10: a card answer never waits for the device's next frame ---------------------------

@pytest.mark.trio
async def test_story_10_a_swipe_right_after_a_command_is_answered_at_once(
        tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        await s.server.call("POST", "/cards", {"card_no": CARD, "balance_cents": 500})
        device = await s.gateway(GATEWAYS[0])
        queued = await s.server.call("POST", f"/devices/{device.phy_id}/params",
                                     {"params": {"power_limit_dw": 7000}})
        command_id = queued.json()["data"]["command_id"]
        await device.expect(SetParams)  # and never answered

        answer = await swipe(device, 1)  # no other frame from the device
        command = (await s.server.call("GET", f"/commands/{command_id}")).json()["data"]

        # Before: the answer queued behind the unanswered command until it timed
        # out (twice the 10 s reply timeout), while the device gave up on the swipe.
        assert answer.accepted
        assert ("sent", 1) == (command["status"], command["attempts"])
        assert [] == [i for i in device.inputs if isinstance(i, SetParams)]


@pytest.mark.trio
async def test_story_10_a_command_held_by_the_spacing_goes_at_its_deadline(
        tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        device = await s.gateway(GATEWAYS[0])
        ids = []
        for power in (7000, 6000):
            response = await s.server.call("POST", f"/devices/{device.phy_id}/params",
                                           {"params": {"power_limit_dw": power}})
            ids.append(response.json()["data"]["command_id"])
        first = await device.expect(SetParams)
        await device.send(CommandAcknowledged(command_id=first.command_id,
                                              phy_id=device.phy_id))

        # Written by the connection's timer when the spacing allows: no device frame
        # follows the acknowledgement.
        second = await device.expect(SetParams)

        assert ({"power_limit_dw": 7000}, {"power_limit_dw": 6000}) == (
            dict(first.params), dict(second.params))


# --- the ledger's arithmetic, over random interleavings ---------------------------------------

_OPS = st.lists(st.one_of(
    st.tuples(st.just("swipe")),
    st.tuples(st.just("settle"), st.integers(0, 30), st.integers(0, 100)),
    st.tuples(st.just("topup"), st.integers(1, 1000)),
    st.tuples(st.just("adjust"), st.integers(-1000, 1000).filter(bool)),
), max_size=40)


@given(balance=st.integers(0, 2000), ops=_OPS)
def test_holds_and_settlements_collect_every_cent(balance: int,
                                                  ops: list[tuple[Any, ...]]) -> None:
    """Random swipes, settlements (any open order, in any order), top-ups and
    adjustments on one card: every bill is collected (Σ debits = Σ finals), nothing
    is ever negative, the card's sums are its ledger's, and all holds end released."""
    db = Database.open(":memory:")
    try:
        db.create_card("c", 0, balance_cents=balance)
        open_orders: dict[str, int] = {}  # order → its hold
        finals: list[int] = []
        for number, op in enumerate(ops):
            card = db.get_card("c")
            assert card is not None
            if op[0] == "swipe":
                if card.available_cents > 0:  # the service's rule: authorise what is available
                    db.hold_card("c", f"o{number}", card.available_cents, number)
                    open_orders[f"o{number}"] = card.available_cents
            elif op[0] == "settle" and open_orders:
                order_no = sorted(open_orders)[op[1] % len(open_orders)]
                final = open_orders.pop(order_no) * op[2] // 100  # billing: final ≤ amount
                settled = db.settle_card_order("c", order_no, final, number)
                assert settled is not None and 0 == settled.shortfall_cents
                finals.append(final)
            elif op[0] == "topup":
                db.top_up_card("c", op[1], number)
            elif op[0] == "adjust":
                try:
                    db.adjust_card("c", op[1], number, reason="property")
                except InsufficientFunds:
                    assert card.available_cents < -op[1]
            _check_against_ledger(db)
        for order_no in sorted(open_orders):
            db.settle_card_order("c", order_no, 0, len(ops))
        card = _check_against_ledger(db)
        debits = sum(e.amount_cents for e in db.list_card_ledger("c", limit=500).items
                     if e.kind is LedgerKind.DEBIT)

        assert sum(finals) == debits
        assert 0 == card.held_cents
    finally:
        db.close()


def _check_against_ledger(db: Database) -> CardRecord:
    card = db.get_card("c")
    assert card is not None
    sums = dict.fromkeys(LedgerKind, 0)
    for entry in db.list_card_ledger("c", limit=500).items:
        sums[entry.kind] += entry.amount_cents
    balance = sums[LedgerKind.TOPUP] + sums[LedgerKind.ADJUST] - sums[LedgerKind.DEBIT]
    held = sums[LedgerKind.HOLD] - sums[LedgerKind.RELEASE] - sums[LedgerKind.DEBIT]
    assert (balance, held) == (card.balance_cents, card.held_cents)
    assert card.balance_cents >= 0 and card.held_cents >= 0 and card.available_cents >= 0
    return card
