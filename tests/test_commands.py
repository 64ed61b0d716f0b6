"""Commands are checked when they are built: an impossible value is refused with a
LocalProtocolError that names it, before any protocol is involved."""
from __future__ import annotations

from typing import Any

import pytest

from bkvcodec import (
    ChargeMode,
    LocalProtocolError,
    ModifyCharge,
    NetworkSocketSpec,
    PowerTierSpec,
    QueryParams,
    SendFirmware,
    SendMessage,
    SetNetworkList,
    SetParams,
    StartCharging,
    StartOta,
    StopCharging,
)
from bkvcodec import ap3000 as a

IDS: dict[str, Any] = {"command_id": "c1", "phy_id": "04A228CD"}
TIER = PowerTierSpec(max_power_w=200, price_cents=10, minutes=60)


@pytest.mark.parametrize(("build", "problem"), [
    (lambda: StartCharging(**{**IDS, "command_id": ""}, port_no=1, order_no="A",
                           mode=ChargeMode.UNTIL_FULL), "command_id"),
    (lambda: StartCharging(**IDS, port_no=0, order_no="A", mode=ChargeMode.UNTIL_FULL),
     "port_no"),
    (lambda: StartCharging(**IDS, port_no=1, order_no="ORDER-NUMBER-TOO-LONG",
                           mode=ChargeMode.UNTIL_FULL), "order_no"),
    (lambda: StartCharging(**IDS, port_no=1, order_no="订单", mode=ChargeMode.UNTIL_FULL),
     "order_no"),
    (lambda: StartCharging(**IDS, port_no=1, order_no="A", mode=ChargeMode.TIME),
     "duration_s"),
    (lambda: StartCharging(**IDS, port_no=1, order_no="A", mode=ChargeMode.TIME,
                           duration_s=0), "duration_s"),
    (lambda: StartCharging(**IDS, port_no=1, order_no="A", mode=ChargeMode.ENERGY),
     "energy_wh"),
    (lambda: StartCharging(**IDS, port_no=1, order_no="A", mode=ChargeMode.POWER_TIERS),
     "1 to 5 tiers"),
    (lambda: StartCharging(**IDS, port_no=1, order_no="A", mode=ChargeMode.POWER_TIERS,
                           power_tiers=(TIER,) * 6), "1 to 5 tiers"),
    (lambda: StartCharging(**IDS, port_no=1, order_no="A", mode=ChargeMode.TIME,
                           duration_s=60, power_tiers=(TIER,)), "power_tiers"),
    (lambda: StartCharging(**IDS, port_no=1, order_no="A", mode=ChargeMode.UNTIL_FULL,
                           amount_cents=-1), "amount_cents"),
    (lambda: PowerTierSpec(max_power_w=0, price_cents=10, minutes=60), "max_power_w"),
    (lambda: StopCharging(**IDS, port_no=256), "port_no"),
    (lambda: ModifyCharge(**IDS, port_no=1), "exactly one"),
    (lambda: ModifyCharge(**IDS, port_no=1, duration_s=60, energy_wh=10), "exactly one"),
    (lambda: SetParams(**IDS), "at least one"),
    (lambda: SetParams(**IDS, params={"heartbeat_interval_s": -1}), "heartbeat_interval_s"),
    (lambda: QueryParams(**IDS, names=("mute", "mute")), "repeat"),
    (lambda: StartOta(**IDS, ftp_host="", file_name="f"), "ftp_host"),
    (lambda: StartOta(**IDS, ftp_host="h", file_name="f", ftp_port=70000), "ftp_port"),
    (lambda: SendFirmware(**IDS, image=b""), "image"),
    (lambda: NetworkSocketSpec(socket_no=1, mac="00112233445"), "mac"),
    (lambda: NetworkSocketSpec(socket_no=251, mac="001122334455"), "socket_no"),
    (lambda: SetNetworkList(**IDS, sockets=(), add=True), "exactly one"),
    (lambda: SetNetworkList(**IDS, sockets=(), channel=16), "channel"),
    (lambda: SendMessage(**IDS, message=a.Ap3000Locate(duration_s=300)), "Ap3000Locate"),
    (lambda: SendMessage(**IDS, message=a.Ap3000Heartbeat(
        voltage_0p1v=2200, port_status=(0,), signal_strength=1, env_temp_raw=0)),
     "sent by devices"),
], ids=lambda value: value if isinstance(value, str) else "")
def test_an_impossible_command_is_refused_when_built(build: Any, problem: str) -> None:
    with pytest.raises(LocalProtocolError, match=problem):
        build()


def test_a_device_numbered_ap3000_order_can_be_stopped() -> None:
    # A card start numbers the order itself; the server shows it in hex.
    order = "00A1B2C3D4E5F60718293A4B5C6D7E8F"
    command = StopCharging(**IDS, port_no=1, order_no=order)

    assert bytes.fromhex(order) == a.encode_order_no(command.order_no or "")
    assert order == a.decode_order_no(a.encode_order_no(order))
