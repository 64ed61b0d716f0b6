# The body of POST /devices/{phy_id}/commands: {"kind": ..., ...fields}, one body
# per library command kind. Each body is declared with the specs of fields.py, so
# openapi.py renders one schema per kind (a oneOf) from the same declarations the
# parser enforces.
#
# The split of checks: this module refuses what is not the right JSON (a missing
# field, a string for a number, bad base64) with InvalidArgument (400) naming the
# field; what the library refuses (a value its frame cannot carry, a field the
# command needs, a command the device's protocol lacks) is the library's message,
# raised when the service builds the command (422 invalid_command). Ranges here are
# only wide JSON bounds; the library's are the real ones.
#
# send_message takes one server-to-device message of the device's protocol in the
# codec's JSON form (its name and fields, as `bkvcodec decode --jsonl` prints them):
# the escape hatch for the commands no other kind covers (AP3000 reboot, locate,
# EEPROM access; BKV voice windows …). Messages that change firmware need the
# firmware role like the firmware kinds.
#
# start_charging and stop_charging are refused with a pointer to /charge and /stop:
# a start through this route would run on the device with no order, no tariff and
# no bill, and a stop would leave the order it ends open.
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bkvcodec import (
    Command,
    ModifyCharge,
    NetworkSocketSpec,
    ProtocolFamily,
    QueryParams,
    QueryStatus,
    SendFirmware,
    SendMessage,
    SetNetworkList,
    SetParams,
    StartOta,
    message_name,
)
from bkvcodec import ap3000 as a
from bkvcodec import bkv as b

from ..commands import message_from_json
from ..errors import InvalidCommand
from .fields import (
    BodySpec,
    BoolField,
    ChoiceField,
    FieldSpec,
    IntField,
    ObjectField,
    ObjectListField,
    ParamsField,
    StrField,
    StrListField,
    invalid,
)
from .parse import FIRMWARE_OTA_BODY, FTP_OTA_BODY, parse_firmware_ota, parse_ftp_ota

__all__ = ["COMMAND_BODIES", "COMMAND_KIND_NAMES", "FIRMWARE_MESSAGES", "MAX_PARAM_VALUE",
           "NETWORK_SOCKET_BODY", "ORDER_KINDS", "CommandBody", "parse_command"]

_U32 = 2**32 - 1
#: Most parameter names in a query and entries in a network list.
_MAX_NAMES = 64
_MAX_SOCKETS = 250

#: The kinds that start or end an order: refused here, see the module comment.
ORDER_KINDS: Mapping[str, str] = {
    "start_charging": "start an order with POST /devices/{phy_id}/charge (it creates the "
                      "order, its tariff and its bill)",
    "stop_charging": "stop an order with POST /devices/{phy_id}/stop (it settles the order)",
}

_SOCKET_NO = IntField("socket_no", 1, 250, "Socket under a BKV gateway (1-250); default 1.")
#: The largest integer JSON carries exactly: the AP3000 0x86 card keys are 48-bit.
MAX_PARAM_VALUE = 2**53 - 1
_PARAMS = ParamsField("params", IntField("value", 0, MAX_PARAM_VALUE, "Parameter value."),
                      "Parameter names of the device's protocol → whole numbers. On AP3000 "
                      "the names pick the set command; fields of it left out take the "
                      "device's last reported values (queried first when none are known).")
_NAMES = StrListField("names", StrField("name", 64, "A parameter name."), _MAX_NAMES,
                      "The parameters wanted; the server picks the query that reports "
                      "them (AP3000 0x90-0x93). Empty or absent: the protocol's first "
                      "parameter query.")
_PORT_NO = IntField("port_no", 1, 255, "Port, 1-based.")
_DURATION_S = IntField("duration_s", 0, _U32, "New time limit, seconds (or energy_wh).")
_ENERGY_WH = IntField("energy_wh", 0, _U32, "New energy limit, Wh (or duration_s).")
_STOP_WHEN_FULL = BoolField("stop_when_full", "With duration_s: also stop when full.")
_NET_SOCKET_NO = IntField("socket_no", 1, 250, "The socket's number under the gateway.")
_MAC = StrField("mac", 12, "The socket's MAC, 12 hex digits.")
NETWORK_SOCKET_BODY = BodySpec("NetworkSocket", "A socket of a BKV gateway's network list.",
                               (_NET_SOCKET_NO, _MAC), required=("socket_no", "mac"))
_SOCKETS = ObjectListField("sockets", NETWORK_SOCKET_BODY, _MAX_SOCKETS,
                           "The sockets (exactly one with add).")
_CHANNEL = IntField("channel", 0, 255, "Radio channel 1-15; default 1 (ignored with add).")
_ADD = BoolField("add", "Add one socket (GN 0x09) instead of replacing the list (0x08).")
_PROTOCOLS: Mapping[str, ProtocolFamily] = {p.value: p for p in ProtocolFamily}
_PROTOCOL = ChoiceField("protocol", tuple(_PROTOCOLS),
                        "The device's protocol (the message names are per protocol).")
_MESSAGE = StrField("message", 64, "A server-to-device message name, as the codec's JSON "
                    "form names it (locate, reboot, voice_config …).")
_MESSAGE_FIELDS = ObjectField("fields", "The message's fields in the codec's JSON form "
                              "(integers, hex strings for bytes); default none.")
#: The messages that change a device's firmware, by protocol: they need the firmware role.
FIRMWARE_MESSAGES: Mapping[ProtocolFamily, frozenset[str]] = {
    ProtocolFamily.AP3000: frozenset(message_name(cls) for cls in (
        a.Ap3000FirmwarePacketSlave, a.Ap3000FirmwarePacketPowerBoard,
        a.Ap3000FirmwarePacketHost, a.Ap3000TriggerSelfUpgrade,
        a.Ap3000LegacyFirmwarePacket)),
    ProtocolFamily.BKV: frozenset({message_name(b.OtaUpgrade)}),
}


def _kind(name: str, description: str) -> ChoiceField:
    return ChoiceField("kind", (name,), description)


def _body(kind: str, title: str, description: str, fields: tuple[FieldSpec, ...],
          required: tuple[str, ...] = ()) -> BodySpec:
    return BodySpec(title, description, (_kind(kind, description), *fields),
                    required=("kind", *required))


#: One body per kind (the OpenAPI document's oneOf).
COMMAND_BODIES: Mapping[str, BodySpec] = {
    "query_status": _body("query_status", "QueryStatusCommand",
                          "Ask the device to report its status now.", (_SOCKET_NO,)),
    "set_params": _body("set_params", "SetParamsCommand",
                        "Set device parameters (the answer also arrives as webhook "
                        "device.params_result).", (_PARAMS, _SOCKET_NO), ("params",)),
    "query_params": _body("query_params", "QueryParamsCommand",
                          "Read device parameters; the values are the command's result.",
                          (_NAMES, _SOCKET_NO)),
    "modify_charge": _body("modify_charge", "ModifyChargeCommand",
                           "Change the limit of the charge running on a port (AP3000 "
                           "0x8A); exactly one of duration_s and energy_wh. The order's "
                           "stored tariff is not changed.",
                           (_PORT_NO, _DURATION_S, _ENERGY_WH, _STOP_WHEN_FULL, _SOCKET_NO),
                           ("port_no",)),
    "start_ota": _body("start_ota", "StartOtaCommand",
                       "BKV: the gateway fetches firmware by FTP. Role firmware.",
                       FTP_OTA_BODY.fields, FTP_OTA_BODY.required),
    "send_firmware": _body("send_firmware", "SendFirmwareCommand",
                           "AP3000: the server sends the image in packets. Role firmware.",
                           FIRMWARE_OTA_BODY.fields, FIRMWARE_OTA_BODY.required),
    "set_network_list": _body("set_network_list", "SetNetworkListCommand",
                              "BKV/GN: replace the gateway's socket list, or add one socket.",
                              (_SOCKETS, _CHANNEL, _ADD), ("sockets",)),
    "send_message": _body("send_message", "SendMessageCommand",
                          "One message of the device's protocol, paced and retransmitted "
                          "like every command; the outcome is the device's answer. Messages "
                          "that change firmware need the firmware role.",
                          (_PROTOCOL, _MESSAGE, _MESSAGE_FIELDS), ("protocol", "message")),
}
#: Every kind the route knows: the commands it sends and the order kinds it refuses.
COMMAND_KIND_NAMES: tuple[str, ...] = (*COMMAND_BODIES, *ORDER_KINDS)
_ANY_KIND = ChoiceField("kind", COMMAND_KIND_NAMES, "The command.")


@dataclass(frozen=True, slots=True)
class CommandBody:
    """A validated command body.

    Attributes:
        kind: The command's kind (a key of :data:`COMMAND_BODIES`).
        build: Makes the library command from a command id; raises the library's
            ``LocalProtocolError`` for values the command cannot carry.
    """

    kind: str
    build: Callable[[str], Command]
    changes_firmware: bool = False


def parse_command(phy_id: str, body: Mapping[str, object]) -> CommandBody:
    """``POST /devices/{phy_id}/commands`` → the kind and how to build its command.

    Raises:
        InvalidArgument: ``kind`` is missing or unknown, or a field is missing or of
            the wrong JSON type.
        InvalidCommand: ``start_charging`` or ``stop_charging`` (orders have their
            own routes).
    """
    kind = _ANY_KIND.take(body)
    if kind is None:
        invalid("kind", "is required; one of " + ", ".join(COMMAND_KIND_NAMES))
    if kind in ORDER_KINDS:
        raise InvalidCommand(kind, f"not sent through this route: {ORDER_KINDS[kind]}")
    if kind == "send_message":
        return _send_message(phy_id, body)
    return CommandBody(kind, _BUILDERS[kind](phy_id, body))


_Build = Callable[[str], Command]


def _query_status(phy_id: str, body: Mapping[str, object]) -> _Build:
    socket_no = _socket_no(body)
    return lambda command_id: QueryStatus(command_id=command_id, phy_id=phy_id,
                                          socket_no=socket_no)


def _set_params(phy_id: str, body: Mapping[str, object]) -> _Build:
    params = _PARAMS.take(body)
    if params is None:
        invalid(_PARAMS.name, "is required")
    socket_no = _socket_no(body)
    return lambda command_id: SetParams(command_id=command_id, phy_id=phy_id, params=params,
                                        socket_no=socket_no)


def _query_params(phy_id: str, body: Mapping[str, object]) -> _Build:
    names = _NAMES.take(body) or ()
    socket_no = _socket_no(body)
    return lambda command_id: QueryParams(command_id=command_id, phy_id=phy_id, names=names,
                                          socket_no=socket_no)


def _modify_charge(phy_id: str, body: Mapping[str, object]) -> _Build:
    port_no = _PORT_NO.require(body)
    duration_s, energy_wh = _DURATION_S.take(body), _ENERGY_WH.take(body)
    stop_when_full = bool(_STOP_WHEN_FULL.take(body))
    socket_no = _socket_no(body)
    return lambda command_id: ModifyCharge(
        command_id=command_id, phy_id=phy_id, port_no=port_no, duration_s=duration_s,
        energy_wh=energy_wh, stop_when_full=stop_when_full, socket_no=socket_no)


def _start_ota(phy_id: str, body: Mapping[str, object]) -> _Build:
    ota = parse_ftp_ota(body)
    return lambda command_id: StartOta(
        command_id=command_id, phy_id=phy_id, ftp_host=ota.ftp_host, file_name=ota.file_name,
        ftp_port=ota.ftp_port, target=ota.target)


def _send_firmware(phy_id: str, body: Mapping[str, object]) -> _Build:
    ota = parse_firmware_ota(body)
    return lambda command_id: SendFirmware(
        command_id=command_id, phy_id=phy_id, image=ota.image, target=ota.target,
        device_type=ota.device_type, firmware_version=ota.firmware_version)


def _set_network_list(phy_id: str, body: Mapping[str, object]) -> _Build:
    entries = _SOCKETS.take(body)
    if entries is None:
        invalid(_SOCKETS.name, "is required")
    pairs = [(_NET_SOCKET_NO.require(entry, f"sockets[{i}]."),
              _MAC.require(entry, f"sockets[{i}].")) for i, entry in enumerate(entries)]
    channel, add = _CHANNEL.take(body), bool(_ADD.take(body))

    def build(command_id: str) -> Command:
        # NetworkSocketSpec checks the MAC: the library's refusal, like the command's.
        sockets = tuple(NetworkSocketSpec(socket_no=no, mac=mac) for no, mac in pairs)
        return SetNetworkList(command_id=command_id, phy_id=phy_id, sockets=sockets,
                              channel=1 if channel is None else channel, add=add)
    return build


def _send_message(phy_id: str, body: Mapping[str, object]) -> CommandBody:
    protocol_name = _PROTOCOL.take(body)
    if protocol_name is None:
        invalid(_PROTOCOL.name, "is required")
    protocol = _PROTOCOLS[protocol_name]
    name = _MESSAGE.require(body)
    fields = _MESSAGE_FIELDS.take(body) or {}

    def build(command_id: str) -> Command:
        return SendMessage(command_id=command_id, phy_id=phy_id,
                           message=message_from_json(protocol, phy_id, name, fields))
    return CommandBody("send_message", build,
                       changes_firmware=name in FIRMWARE_MESSAGES[protocol])


def _socket_no(body: Mapping[str, object]) -> int:
    socket_no = _SOCKET_NO.take(body)
    return 1 if socket_no is None else socket_no


_BUILDERS: Mapping[str, Callable[[str, Mapping[str, object]], _Build]] = {
    "query_status": _query_status, "set_params": _set_params, "query_params": _query_params,
    "modify_charge": _modify_charge, "start_ota": _start_ota, "send_firmware": _send_firmware,
    "set_network_list": _set_network_list,
}
