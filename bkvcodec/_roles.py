# What a protocol must provide to play the server or the device role of a
# connection, and the closed sets of events each role reports. The connections
# (_connection, _device) hold one rules object per protocol (_bkv.server,
# _ap3000.server, _bkv.device, _ap3000.device) and talk to it only through these
# interfaces, so the protocols sit below the connections and never import them.
from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol, TypeAlias

from ._commands import (
    Command,
    ModifyCharge,
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
from ._decoder import FrameRejected, UnidentifiedStream
from ._events import (
    AlarmRaised,
    AnswerWithheld,
    CardAnswered,
    CardPresented,
    CommandAcknowledged,
    CommandDropped,
    CommandRejected,
    CommandTimedOut,
    DeviceHeartbeat,
    DeviceRegistered,
    Event,
    FirmwareProgress,
    ModemIdentified,
    ParamsReported,
    PortStatusReported,
    ProgressReported,
    ServerAnswered,
    SettlementReported,
    StartConfirmed,
    UnknownMessage,
    UpgradeRequested,
)
from ._tracker import CommandTiming, InFlight, MessageIds

__all__ = ["ConnectionEvent", "DeviceInput", "DeviceOutput", "DeviceRules", "RulesContext",
           "ServerRules"]

ConnectionEvent: TypeAlias = (
    ModemIdentified | DeviceRegistered | DeviceHeartbeat | PortStatusReported
    | StartConfirmed | ProgressReported | SettlementReported | CommandAcknowledged
    | CommandRejected | CommandTimedOut | CardPresented | AlarmRaised | ParamsReported
    | FirmwareProgress | UpgradeRequested | UnknownMessage | FrameRejected | UnidentifiedStream
    | CommandDropped | AnswerWithheld
)
"""Everything a :class:`ServerConnection` reports."""

DeviceInput: TypeAlias = (
    StartCharging | StopCharging | QueryStatus | SetParams | QueryParams | ModifyCharge
    | StartOta | SetNetworkList | SendFirmware | SendMessage | ServerAnswered | CardAnswered
    | UnknownMessage | FrameRejected
)
"""What a :class:`DeviceConnection` receives."""

DeviceOutput: TypeAlias = (
    DeviceRegistered | DeviceHeartbeat | PortStatusReported | StartConfirmed
    | ProgressReported | SettlementReported | CardPresented | AlarmRaised | ParamsReported
    | CommandAcknowledged | CommandRejected
)
"""What a :class:`DeviceConnection` sends."""


class RulesContext(Protocol):
    """What a protocol's server rules may do to their connection."""

    def reply(self, data: bytes) -> None: ...

    def answer(self, event: Event, data: bytes) -> None: ...

    def resolve(self, key: Hashable, now: float) -> InFlight | None: ...

    def in_flight(self, phy_id: str) -> InFlight | None: ...

    def submit(self, command_id: str, phy_id: str, key: Hashable, data: bytes, now: float,
               timing: CommandTiming | None = None, *, message_id: int) -> None: ...


class ServerRules(Protocol):
    """One protocol's server-side behaviour (``_bkv.server``, ``_ap3000.server``)."""

    timing: CommandTiming
    #: Where command message ids come from; :meth:`encode` takes one per command.
    message_ids: MessageIds

    def on_frame(self, frame: object, now: float,
                 context: RulesContext) -> list[ConnectionEvent]: ...

    def encode(self, command: Command, now: float) -> tuple[bytes, Hashable | None]: ...

    def answer_card(self, event: CardPresented, *, accept: bool, command_id: str,
                    order_no: str | None, now: float, balance_cents: int,
                    duration_s: int | None, energy_wh: int | None,
                    refusal_code: int | None) -> tuple[bytes, Hashable | None]: ...

    def stop_sent(self, command: StopCharging) -> None: ...

    def command_timing(self, command: Command) -> CommandTiming | None: ...


class DeviceRules(Protocol):
    """One protocol's device-side behaviour (``_bkv.device``, ``_ap3000.device``)."""

    def on_frame(self, frame: object, now: float) -> list[DeviceInput]: ...

    def encode(self, event: DeviceOutput, now: float) -> bytes: ...

    def greeting(self) -> bytes: ...

    def take_output(self) -> bytes: ...
