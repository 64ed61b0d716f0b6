# Records → the JSON objects of API responses (api.md §3 units, §6.3 fields,
# test-plan.md §3.6). The database keeps integers in small units; here, once, they
# become the API's: kWh with 2 decimals, W and V with 1, A with 3, yuan with 2 next
# to the integer cents. Enums become their names. Pure functions of records; the
# handlers fetch, these shape. openapi.py describes the same shapes, and a test
# checks that the keys produced here are exactly the documented ones.
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from bkvcodec import OrderState, PortState

from ..eventdata import END_REASON_MESSAGES, REFUSED_START, refusal_message
from ..units import amperes, kwh, volts, watts, yuan

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..requests import ChargeResult
    from ..storage import (
        CardLedgerEntry,
        CardRecord,
        CommandRecord,
        DeviceIdentity,
        DeviceRecord,
        EventRecord,
        OrderRecord,
        PortRecord,
        ProgressSample,
    )

__all__ = [
    "card_view",
    "charge_result_view",
    "command_view",
    "device_summary_view",
    "device_view",
    "event_view",
    "identity_view",
    "ledger_entry_view",
    "order_view",
    "port_view",
    "progress_view",
]


def device_summary_view(device: DeviceRecord) -> dict[str, object]:
    """A device without its ports (the items of ``GET /devices``)."""
    return {
        "device_phy_id": device.phy_id,
        "protocol": device.protocol.value,
        "online": device.online,
        "last_seen_at": device.last_seen_at,
        "remote_addr": device.remote_addr,
        "firmware": device.firmware,
        "iccid": device.iccid,
        "rssi": device.rssi,
        "created_at": device.created_at,
        "updated_at": device.updated_at,
    }


def port_view(port: PortRecord, *, device_online: bool = True) -> dict[str, object]:
    """One charging point: ``status`` 0 idle, 1 charging, 2 fault, 3 offline.

    The ports of an offline device show 3 (offline): their last report is stale.
    """
    status = port.status if device_online else PortState.OFFLINE
    return {
        "socket_no": port.socket_no,
        "port_no": port.port_no,
        "status": int(status),
        "status_name": status.name.lower(),
        "power_w": port.power_w,  # stored in whole watts (ports.power_w, api.md §3)
        "voltage_v": volts(port.voltage),
        "fault_code": port.fault_code,
        "order_no": port.order_no,
        "updated_at": port.updated_at,
    }


def device_view(device: DeviceRecord, ports: Sequence[PortRecord]) -> dict[str, object]:
    """``GET /devices/{phy_id}``: the device and its ports."""
    return {**device_summary_view(device),
            "ports": [port_view(p, device_online=device.online) for p in ports]}


def _end_reason(order: OrderRecord) -> dict[str, object]:
    reason = order.end_reason
    detail = order.end_detail
    if reason is None:
        if order.status is OrderState.FAILED and detail is not None:
            # A refused start: the contract has no code for it, only this name.
            return {"end_reason": REFUSED_START, "end_reason_name": REFUSED_START,
                    "end_reason_code": None, "end_reason_msg": refusal_message(detail),
                    "end_reason_raw": order.end_reason_raw, "end_detail": detail}
        return {"end_reason": None, "end_reason_name": None, "end_reason_code": None,
                "end_reason_msg": None, "end_reason_raw": order.end_reason_raw,
                "end_detail": detail}
    name = reason.name.lower()
    return {"end_reason": name, "end_reason_name": name, "end_reason_code": int(reason),
            "end_reason_msg": END_REASON_MESSAGES.get(reason),
            "end_reason_raw": order.end_reason_raw, "end_detail": detail}


def order_view(order: OrderRecord, phy_id: str) -> dict[str, object]:
    """``GET /orders/{order_no}``: the order's fields, the settlement and the request.

    Money: ``amount`` and every ``*_cents`` in cents, ``final_amount`` in yuan.
    """
    tiers: object = None if order.power_tiers_json is None else json.loads(order.power_tiers_json)
    return {
        "order_no": order.order_no,
        "device_phy_id": phy_id,
        "socket_no": order.socket_no,
        "port_no": order.port_no,
        "status": order.status.value,
        "charge_mode": int(order.charge_mode),
        "tariff": order.tariff.value,
        "start_time": order.start_time,
        "end_time": order.end_time,
        "duration_sec": order.duration_sec,
        "total_kwh": kwh(order.total_kwh),
        "current_power": watts(order.current_power),
        "peak_power": watts(order.peak_power),
        "amount": order.amount,
        "price_per_kwh": order.price_per_kwh,
        "service_fee": order.service_fee,
        "requested_duration_sec": order.requested_duration_sec,
        "requested_energy_wh": order.requested_energy_wh,
        "power_tiers": tiers,
        **_end_reason(order),
        "final_amount": yuan(order.final_amount),
        "final_amount_cents": order.final_amount,
        "refund_cents": order.refund_amount,
        "energy_fee_cents": order.energy_fee,
        "service_fee_cents": order.service_fee_amount,
        "device_amount_cents": order.device_amount,
        "card_no": order.card_no,
        "stop_reason": order.stop_reason,
        "key_name": order.key_name,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }


def charge_result_view(result: ChargeResult, phy_id: str) -> dict[str, object]:
    """``POST /devices/{phy_id}/charge``'s answer; ``old_order``/``new_order`` when the
    busy-port policy ``replace`` settled a running order."""
    order = result.order
    data: dict[str, object] = {
        "order_no": order.order_no,
        "device_phy_id": phy_id,
        "socket_no": order.socket_no,
        "port_no": order.port_no,
        "status": order.status.value,
        "device_online": result.device_online,
    }
    if result.replaced_order is not None:
        data.update(old_order=result.replaced_order, new_order=order.order_no)
    return data


def progress_view(sample: ProgressSample) -> dict[str, object]:
    """One progress report: time, duration, energy, power, voltage, current."""
    return {
        "time": sample.at,
        "duration_sec": sample.duration_sec,
        "total_kwh": kwh(sample.total_kwh),
        "power": watts(sample.power),
        "voltage": volts(sample.voltage),
        "current": amperes(sample.current),
    }


def command_view(command: CommandRecord) -> dict[str, object]:
    """``GET /commands/{id}``; ``command_id`` repeats ``id`` for the POST answers."""
    result: object = None if command.result_json is None else json.loads(command.result_json)
    return {
        "id": command.id,
        "command_id": command.id,
        "device_phy_id": command.phy_id,
        "kind": command.kind,
        "status": command.status.value,
        "reason": command.reason,
        "result": result,
        "attempts": command.attempts,
        "msg_id": command.msg_id,
        "order_no": command.order_no,
        "created_at": command.created_at,
        "sent_at": command.sent_at,
        "finished_at": command.finished_at,
        "expires_at": command.expires_at,
        "key_name": command.key_name,
    }


def event_view(event: EventRecord) -> dict[str, object]:
    """A recorded event in the webhook envelope's shape, with ``seq``."""
    return {
        "seq": event.seq,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "device_phy_id": event.device_phy_id,
        "order_no": event.order_no,
        "timestamp": event.created_at,
        "data": event.data(),
    }


def identity_view(phy_id: str, identity: DeviceIdentity | None) -> dict[str, object]:
    """A device id's provisioning and ICCID binding; None: withdrawn."""
    if identity is None:
        return {"device_phy_id": phy_id, "provisioned": False, "protocol": None,
                "bound_iccid": None, "created_at": None, "updated_at": None}
    return {"device_phy_id": identity.phy_id, "provisioned": identity.provisioned,
            "protocol": None if identity.protocol is None else identity.protocol.value,
            "bound_iccid": identity.bound_iccid, "created_at": identity.created_at,
            "updated_at": identity.updated_at}


def card_view(card: CardRecord) -> dict[str, object]:
    """A card of the registry."""
    return {
        "card_no": card.card_no,
        "balance_cents": card.balance_cents,
        "balance": yuan(card.balance_cents),
        "held_cents": card.held_cents,
        "available_cents": card.available_cents,
        "status": card.status.value,
        "charge_mode": None if card.charge_mode is None else int(card.charge_mode),
        "duration": card.duration,
        "energy_wh": card.energy_wh,
        "created_at": card.created_at,
        "updated_at": card.updated_at,
    }


def ledger_entry_view(entry: CardLedgerEntry) -> dict[str, object]:
    """One entry of a card's ledger."""
    return {
        "entry_id": entry.entry_id,
        "kind": entry.kind.value,
        "amount_cents": entry.amount_cents,
        "order_no": entry.order_no,
        "key_name": entry.key_name,
        "reason": entry.reason,
        "created_at": entry.created_at,
    }
