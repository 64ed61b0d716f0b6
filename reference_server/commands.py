# Downlink commands as stored rows (api.md §7: persisted first, sent later).
# A command is saved as its kind plus a JSON payload of the library command's
# fields, and rebuilt from that row when it is (re)sent, after a reconnect or a
# restart. Enums are stored by value, firmware images as base64, power tiers
# as objects, a SendMessage's message as the codec's JSON form of a frame that
# carries it (the form `bkvcodec decode --jsonl` prints and `encode` reads).
from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping

from bkvcodec import (
    ChargeMode,
    Command,
    FirmwareTarget,
    LocalProtocolError,
    ModifyCharge,
    NetworkSocketSpec,
    PowerTierSpec,
    ProtocolFamily,
    QueryParams,
    QueryStatus,
    SendFirmware,
    SendMessage,
    SetNetworkList,
    SetParams,
    StartCharging,
    StartOta,
    StopCharging,
    frame_from_json,
    frame_to_json,
)
from bkvcodec.ap3000 import Ap3000Frame, Ap3000Message, parse_phy_id
from bkvcodec.bkv import BkvFrame, BkvMessage

# The records module, not the storage package: reference_server.core imports
# this module and must not reach the storage's trio layer.
from .storage._records import CommandRecord, load_json_object

__all__ = ["COMMAND_KINDS", "command_from_record", "command_kind", "command_payload",
           "message_from_json", "message_json"]

#: Stored ``commands.kind`` → the library's command class.
COMMAND_KINDS: Mapping[str, type[Command]] = {
    "start_charging": StartCharging,
    "stop_charging": StopCharging,
    "query_status": QueryStatus,
    "set_params": SetParams,
    "query_params": QueryParams,
    "modify_charge": ModifyCharge,
    "start_ota": StartOta,
    "set_network_list": SetNetworkList,
    "send_firmware": SendFirmware,
    "send_message": SendMessage,
}
_KIND_OF: Mapping[type[Command], str] = {cls: kind for kind, cls in COMMAND_KINDS.items()}
# Fields that live in their own columns, not in the payload.
_COLUMNS = ("command_id", "phy_id")


def command_kind(command: Command) -> str:
    """The stored kind of *command* (``start_charging`` …)."""
    return _KIND_OF[type(command)]


def command_payload(command: Command) -> dict[str, object]:
    """The JSON-ready fields of *command*, without its id and device."""
    payload: dict[str, object] = {}
    for f in dataclasses.fields(command):
        if f.name in _COLUMNS:
            continue
        payload[f.name] = _to_json(getattr(command, f.name))
    if isinstance(command, SendMessage):
        payload["message"] = _message_json(command)
    return payload


def message_from_json(protocol: ProtocolFamily, phy_id: str, name: str,
                      fields: Mapping[str, object]) -> BkvMessage | Ap3000Message:
    """The *protocol* message called *name* with *fields* (the codec's JSON form), as
    carried to the device *phy_id*.

    Raises:
        LocalProtocolError: No such message, or fields it cannot take.
    """
    if protocol is ProtocolFamily.AP3000:
        obj: dict[str, object] = {"protocol": "ap3000", "physical_id": phy_id,
                                  "message": name, "fields": dict(fields)}
    else:
        obj = {"protocol": "bkv", "header": "fcff", "gateway_id": phy_id, "message": name,
               "fields": dict(fields)}
    return _frame_message(obj)


def _frame_message(obj: Mapping[str, object]) -> BkvMessage | Ap3000Message:
    try:
        frame = frame_from_json(obj)
    except LocalProtocolError:
        raise
    except (ValueError, TypeError, OverflowError, KeyError) as err:
        raise LocalProtocolError(f"the message cannot be built: {err}") from None
    if not isinstance(frame, BkvFrame | Ap3000Frame):
        raise LocalProtocolError("not a protocol message")
    return frame.message


def message_json(phy_id: str, message: BkvMessage | Ap3000Message) -> dict[str, object]:
    """*message* (to or from the device *phy_id*) in the codec's JSON form of a frame."""
    frame: BkvFrame | Ap3000Frame
    if isinstance(message, Ap3000Message):
        frame = Ap3000Frame(physical_id=parse_phy_id(phy_id), message_id=0, message=message)
    else:
        frame = BkvFrame(gateway_id=phy_id, message=message, seq=0)
    return frame_to_json(frame)


def _message_json(command: SendMessage) -> dict[str, object]:
    return message_json(command.phy_id, command.message)


def command_from_record(record: CommandRecord) -> Command:
    """Rebuild the library command a stored row describes.

    Raises:
        ValueError: The row's kind or payload is not one this server writes.
    """
    cls = COMMAND_KINDS.get(record.kind)
    if cls is None:
        raise ValueError(f"command {record.id}: unknown kind {record.kind!r}")
    payload = load_json_object(record.payload_json)
    kwargs: dict[str, object] = {"command_id": record.id, "phy_id": record.phy_id}
    for name, value in payload.items():
        kwargs[name] = _FROM_JSON.get(name, _same)(value)
    if cls is SendFirmware and isinstance(kwargs.get("target"), int):
        # StartOta.target is a plain int; SendFirmware.target a FirmwareTarget.
        kwargs["target"] = FirmwareTarget(kwargs["target"])
    try:
        return cls(**kwargs)  # type: ignore[arg-type]
    except (TypeError, LocalProtocolError) as err:
        raise ValueError(f"command {record.id}: bad payload: {err}") from None


def _to_json(value: object) -> object:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, ChargeMode | FirmwareTarget):
        return value.value
    if isinstance(value, tuple):
        return [_to_json(item) for item in value]
    if isinstance(value, PowerTierSpec | NetworkSocketSpec):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _same(value: object) -> object:
    return value


def _tiers(value: object) -> tuple[PowerTierSpec, ...]:
    assert isinstance(value, list)
    return tuple(PowerTierSpec(**item) for item in value)


def _sockets(value: object) -> tuple[NetworkSocketSpec, ...]:
    assert isinstance(value, list)
    return tuple(NetworkSocketSpec(**item) for item in value)


def _image(value: object) -> bytes:
    assert isinstance(value, str)
    return base64.b64decode(value)


def _mode(value: object) -> ChargeMode:
    assert isinstance(value, int)
    return ChargeMode(value)


def _message(value: object) -> BkvMessage | Ap3000Message:
    assert isinstance(value, dict)
    return _frame_message(value)


def _names(value: object) -> tuple[str, ...]:
    assert isinstance(value, list)
    return tuple(str(name) for name in value)


_FROM_JSON = {"power_tiers": _tiers, "sockets": _sockets, "image": _image, "mode": _mode,
              "names": _names, "message": _message}
