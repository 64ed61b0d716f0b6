"""bkvcodec: sans-IO codecs for e-bike charging-station protocols.

The BKV gateway protocol with its GN sub-protocol, and AP3000 ("DNY"). Bytes and
the current time go in; typed events and bytes to write come out. This package
holds the protocol-neutral API:

- decoding: :class:`FrameDecoder` for a TCP stream, :func:`decode` /
  :func:`encode` for one captured frame, and their JSON form;
- the two roles of a connection, :class:`ServerConnection` and
  :class:`DeviceConnection`, with their events (all subclasses of :class:`Event`)
  and commands (subclasses of :class:`Command`);
- the order machine :class:`ChargingSession` with its billing;
- the error bases (every leaf is in :mod:`bkvcodec.errors`);
- the HMAC signatures of the reference server's API and webhooks.

The wire messages of each protocol are in :mod:`bkvcodec.bkv` and
:mod:`bkvcodec.ap3000`. Every other module is private.
"""
from __future__ import annotations

from ._billing import Bill, Tariff, TariffKind, compute_bill
from ._commands import (
    Command,
    FirmwareTarget,
    ModifyCharge,
    NetworkSocketSpec,
    PowerTierSpec,
    QueryParams,
    QueryStatus,
    SendFirmware,
    SendMessage,
    SetNetworkList,
    SetParams,
    StartCharging,
    StartOta,
    StopCharging,
)
from ._connection import ServerConnection
from ._decoder import (
    DecoderStatistics,
    Frame,
    FrameDecoder,
    FrameRejected,
    IncompleteFrame,
    StreamItem,
    UnidentifiedStream,
    decode,
    encode,
)
from ._device import DeviceConnection
from ._errors import (
    BkvError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from ._events import (
    AlarmRaised,
    AnswerWithheld,
    CardAnswered,
    CardPresented,
    ChargeMode,
    CommandAcknowledged,
    CommandDropped,
    CommandRejected,
    CommandTimedOut,
    DeviceHeartbeat,
    DeviceRegistered,
    EndReason,
    Event,
    FirmwareProgress,
    MeterReading,
    ModemIdentified,
    ParamsReported,
    PortState,
    PortStatusReported,
    ProgressReported,
    ServerAnswered,
    SettlementReported,
    StartConfirmed,
    UnknownMessage,
    UpgradeRequested,
)
from ._jsonform import frame_from_json, frame_to_json, message_name
from ._roles import ConnectionEvent, DeviceInput, DeviceOutput
from ._session import (
    ChargingEnded,
    ChargingProgress,
    ChargingSession,
    ChargingStarted,
    DeviceAlarm,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderEvent,
    OrderException,
    OrderFailed,
    OrderState,
    SessionInput,
    SessionTimeouts,
)
from ._signing import (
    SignatureError,
    WebhookEvent,
    canonical_text,
    sign,
    verify_signature,
    verify_webhook,
)
from ._tracker import CommandSent, CommandTiming, MessageIds
from ._types import Direction, ProtocolFamily
from ._version import __version__

__all__ = [
    "AlarmRaised",
    "AnswerWithheld",
    "Bill",
    "BkvError",
    "CardAnswered",
    "CardPresented",
    "ChargeMode",
    "ChargingEnded",
    "ChargingProgress",
    "ChargingSession",
    "ChargingStarted",
    "Command",
    "CommandAcknowledged",
    "CommandDropped",
    "CommandRejected",
    "CommandSent",
    "CommandTimedOut",
    "CommandTiming",
    "ConnectionEvent",
    "DecoderStatistics",
    "DeviceAlarm",
    "DeviceConnection",
    "DeviceHeartbeat",
    "DeviceInput",
    "DeviceOutput",
    "DeviceRegistered",
    "Direction",
    "EndReason",
    "Event",
    "FirmwareProgress",
    "FirmwareTarget",
    "Frame",
    "FrameDecoder",
    "FrameRejected",
    "IncompleteFrame",
    "LocalProtocolError",
    "MessageIds",
    "MeterReading",
    "ModemIdentified",
    "ModifyCharge",
    "NetworkSocketSpec",
    "OrderCancelled",
    "OrderCompleted",
    "OrderCreated",
    "OrderEvent",
    "OrderException",
    "OrderFailed",
    "OrderState",
    "ParamsReported",
    "PortState",
    "PortStatusReported",
    "PowerTierSpec",
    "ProgressReported",
    "ProtocolError",
    "ProtocolFamily",
    "QueryParams",
    "QueryStatus",
    "RemoteProtocolError",
    "SendFirmware",
    "SendMessage",
    "ServerAnswered",
    "ServerConnection",
    "SessionInput",
    "SessionTimeouts",
    "SetNetworkList",
    "SetParams",
    "SettlementReported",
    "SignatureError",
    "StartCharging",
    "StartConfirmed",
    "StartOta",
    "StopCharging",
    "StreamItem",
    "Tariff",
    "TariffKind",
    "UnidentifiedStream",
    "UnknownMessage",
    "UpgradeRequested",
    "WebhookEvent",
    "__version__",
    "canonical_text",
    "compute_bill",
    "decode",
    "encode",
    "frame_from_json",
    "frame_to_json",
    "message_name",
    "sign",
    "verify_signature",
    "verify_webhook",
]
