# Webhook payloads (api.md §6.4, test-plan.md §4.3–§4.4): the library's order
# events and the server's device happenings as (event_type, data), in the
# contract's units (§3). Pure functions; the service records what they return.
from __future__ import annotations

from collections.abc import Mapping

from bkvcodec import (
    Bill,
    ChargingEnded,
    ChargingProgress,
    ChargingStarted,
    DeviceAlarm,
    EndReason,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderEvent,
    OrderException,
    OrderFailed,
)

from .units import amperes, kwh, volts, watts, yuan

__all__ = ["END_REASON_MESSAGES", "REFUSED_START", "order_event_data", "refusal_message"]

#: The end reason shown for a start the device refused. The contract's reasons have
#: no code for it: it is shown by name only (``end_reason_code`` null), with the
#: device's own reason as ``end_detail``.
REFUSED_START = "device_rejected"

#: Words for each end reason (``end_reason_msg``), as the plan's receiver shows them.
END_REASON_MESSAGES: Mapping[EndReason, str] = {
    EndReason.NORMAL: "charging complete",
    EndReason.FULL: "battery full",
    EndReason.INSUFFICIENT_BALANCE: "balance used up",
    EndReason.REMOTE_STOP: "stopped remotely",
    EndReason.FAULT: "port fault",
    EndReason.TIMEOUT: "maximum charging time reached",
    EndReason.USER_STOP: "stopped at the device",
    EndReason.NO_CONFIRMATION: "the device did not confirm the start",
    EndReason.DEVICE_LOST_ORDER: "the device lost the order",
    EndReason.COMMAND_EXPIRED: "the device stayed offline; the start command expired",
}


def refusal_message(detail: str | None) -> str:
    """Words for a refused start, with the device's reason when it gave one."""
    return ("the device refused the start" if not detail or detail == REFUSED_START
            else f"the device refused the start ({detail})")


def _bill(bill: Bill, amount_cents: int | None) -> dict[str, object]:
    return {"final_amount": yuan(bill.final_cents), "final_amount_cents": bill.final_cents,
            "refund_cents": bill.refund_cents, "energy_fee_cents": bill.energy_fee_cents,
            "service_fee_cents": bill.service_fee_cents, "amount": amount_cents}


def _reason(reason: EndReason | None) -> dict[str, object]:
    if reason is None:
        return {"end_reason": None, "end_reason_msg": None}
    return {"end_reason": reason.name.lower(), "end_reason_msg": END_REASON_MESSAGES[reason]}


def _avg_power_w(energy_centikwh: int, duration_s: int) -> float:
    # 0.01 kWh over s → W: centikwh * 10 Wh * 3600 s/h / s.
    return round(energy_centikwh * 36000 / duration_s, 1) if duration_s > 0 else 0.0


def order_event_data(event: OrderEvent, *, device_phy_id: str, amount_cents: int | None,
                     tariff: str | None = None) -> tuple[str, dict[str, object]]:
    """The webhook type and payload of one order event.

    Args:
        event: What the order's session produced.
        device_phy_id: The order's device.
        amount_cents: The order's prepaid amount, repeated in settlement payloads.
        tariff: The order's tariff, in every order payload when given.
    """
    common: dict[str, object] = {"order_no": event.order_no, "device_phy_id": device_phy_id,
                                 "socket_no": event.socket_no, "port_no": event.port_no}
    if tariff is not None:
        common["tariff"] = tariff
    if isinstance(event, OrderCreated):
        return "order.created", {**common, "charge_mode": int(event.charge_mode),
                                 "amount": event.amount_cents, "status": "pending"}
    if isinstance(event, ChargingStarted):
        return "charging.started", {**common, "start_time": int(event.start_time)}
    if isinstance(event, ChargingProgress):
        r = event.reading
        return "charging.progress", {
            **common, "duration_sec": r.duration_s, "total_kwh": kwh(r.energy_centikwh),
            "current_power": watts(r.power_dw), "peak_power": watts(event.peak_power_dw),
            "voltage": volts(r.voltage_dv), "current": amperes(r.current_ma),
            "temp": r.temperature_c}
    if isinstance(event, ChargingEnded):
        return "charging.ended", {
            **common, "duration_sec": event.duration_s,
            "total_kwh": kwh(event.energy_centikwh), **_reason(event.end_reason),
            "end_reason_raw": event.end_reason_raw}
    if isinstance(event, OrderCompleted):
        return "order.completed", {
            **common, "status": "completed", "duration_sec": event.duration_s,
            "total_kwh": kwh(event.energy_centikwh), "peak_power": watts(event.peak_power_dw),
            "avg_power": _avg_power_w(event.energy_centikwh, event.duration_s),
            **_bill(event.bill, amount_cents), **_reason(event.end_reason),
            "end_reason_raw": event.end_reason_raw,
            "start_time": None if event.start_time is None else int(event.start_time),
            "end_time": int(event.end_time)}
    if isinstance(event, OrderException):
        return "order.exception", {
            **common, "status": "exception", "duration_sec": event.duration_s,
            "total_kwh": kwh(event.energy_centikwh), **_bill(event.bill, amount_cents),
            **_reason(event.end_reason), "refund_flagged": True,
            "start_time": None if event.start_time is None else int(event.start_time),
            "end_time": int(event.end_time)}
    if isinstance(event, OrderFailed):
        reason = (_reason(event.end_reason) if event.end_reason is not None else
                  {"end_reason": REFUSED_START, "end_reason_msg": refusal_message(event.detail)})
        return "order.failed", {**common, "status": "failed", **reason,
                                "detail": event.detail, **_bill(event.bill, amount_cents)}
    if isinstance(event, OrderCancelled):
        return "order.cancelled", {**common, "status": "cancelled",
                                   **_bill(event.bill, amount_cents)}
    if isinstance(event, DeviceAlarm):
        return "device.alarm", {**common, "alarm_type": "port_fault",
                                "fault_code": event.fault_code, "fault_msg": event.fault_msg}
    raise TypeError(f"not an order event: {event!r}")
