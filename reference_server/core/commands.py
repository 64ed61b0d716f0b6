# Commands: the commands in flight, from staging (stored with the change that
# makes them, sent after its commit) to their outcome (acknowledged, refused,
# unanswered, expired), and the waits of partial AP3000 parameter sets.
#
# A command is written first and sent afterwards: a Send intent, carried out by
# the shell once the row exists. Being handed to a connection is remembered per
# link, so a reconnect sends it again and a repeated dispatch does not.
#
# An AP3000 set command carries every field of its frame, so a set naming only
# some is completed when it is sent: with the device's last reported values
# (its query answers and acknowledged sets, kept in memory: after a restart the
# device is asked again), else after a parameter query queued for it. The set
# row keeps what the client asked; its result shows what was sent.
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from bkvcodec import (
    Command,
    CommandAcknowledged,
    CommandRejected,
    CommandSent,
    CommandTimedOut,
    LocalProtocolError,
    ParamsReported,
    ProtocolFamily,
    QueryParams,
    ServerConnection,
    SetParams,
)
from bkvcodec.ap3000 import Ap3000Message, Ap3000ParameterCommand, parameter_command
from bkvcodec.bkv import BkvMessage

from ..commands import command_kind, command_payload, message_json
from ..config import Config
from ..logs import Logger
from ..metrics import Metrics
from ..storage._records import CommandRecord, CommandStatus, NewCommand
from .changes import Changes, device_event, new_id
from .devices import Device, Devices
from .intents import Send

__all__ = ["Commands", "OpenCommand", "ParamsWait", "partial_set", "sending_problem"]


@dataclass(eq=False)
class OpenCommand:
    id: str
    kind: str
    device: Device
    order_no: str | None
    handed_to: int | None = None  # the link the command was given to
    #: The link whose first frame of the command gave ``commands.msg_id``.
    msg_id_link: int | None = None


@dataclass(eq=False)
class ParamsWait:
    """A partial AP3000 parameter set waiting for the device's current values."""

    set_command: OpenCommand
    command: SetParams
    owner: Ap3000ParameterCommand
    #: When the set expires: the query's answer must come before.
    deadline: float


class Commands:
    """The open commands of the cached devices."""

    def __init__(self, devices: Devices, config: Config, log: Logger,
                 metrics: Metrics) -> None:
        self.devices = devices
        self.config = config
        self.log = log
        self.metrics = metrics
        self.open: dict[str, OpenCommand] = {}
        #: Each device's parameters as it last reported or acknowledged them, by name.
        self.known_params: dict[str, dict[str, int]] = {}
        #: Partial parameter sets waiting for a query's answer, by the query's id.
        self.params_waits: dict[str, ParamsWait] = {}
        #: The parameters each SetParams in flight carries, by command id.
        self.params_sent: dict[str, dict[str, int]] = {}
        #: Wire message ids of commands just written, stored with the next commit.
        self.msg_ids: dict[str, int] = {}

    def get(self, command_id: str) -> OpenCommand | None:
        return self.open.get(command_id)

    def forget(self, command_id: str) -> None:
        self.open.pop(command_id, None)

    def reopen(self, record: CommandRecord, device: Device) -> OpenCommand:
        """The open command of a stored one (opened now if it was not)."""
        return self.open.setdefault(
            record.id, OpenCommand(record.id, record.kind, device, record.order_no))

    def card_answer(self, command_id: str, device: Device, order_no: str) -> None:
        """A card answer that starts an order was committed: its acknowledgement is
        the start command's."""
        self.open[command_id] = OpenCommand(command_id, "card_answer", device, order_no)

    def resume(self, device: Device, records: list[CommandRecord]) -> list[CommandRecord]:
        """Open the stored unfinished commands of a device being loaded; returns
        those opened now."""
        opened = []
        for record in records:
            if record.id in self.open:
                continue
            self.open[record.id] = OpenCommand(record.id, record.kind, device, record.order_no)
            opened.append(record)
        return opened

    def release(self, phy_id: str) -> Device | None:
        """Forget a device another node now serves, with its commands."""
        device = self.devices.release(phy_id)
        if device is not None:
            for command_id in [c for c, o in self.open.items() if o.device is device]:
                self.forget(command_id)
            self.known_params.pop(phy_id, None)
        return device

    # --- staging and sending --------------------------------------------------------------

    def stage(self, device: Device, command: Command, order_no: str | None, now: float,
              changes: Changes, *, key_name: str | None = None) -> OpenCommand:
        """Persist *command* with the change; send it after the commit if online."""
        new = NewCommand(id=command.command_id, device_id=device.id, phy_id=device.phy_id,
                         kind=command_kind(command), payload=command_payload(command),
                         created_at=int(now), expires_at=int(now) + self.config.command_ttl,
                         order_no=order_no, key_name=key_name)
        changes.write(lambda db: db.insert_command(new))
        open_command = OpenCommand(command.command_id, new.kind, device, order_no)
        self.open[command.command_id] = open_command
        changes.undo.append(lambda: self.forget(command.command_id))
        changes.intents.append(Send(command.command_id, command))
        return open_command

    def frames_sent(self, link_id: int, sent: list[CommandSent]) -> None:
        """Command frames just written to a link: each is logged; the first frame
        of a command on a link gives ``commands.msg_id`` (see store_msg_ids)."""
        for record in sent:
            open_command = self.open.get(record.command_id)
            self.log.info("outbound message sent", device=record.phy_id,
                          cmd=None if open_command is None else open_command.kind,
                          msg_id=record.message_id, command_id=record.command_id,
                          attempt=record.attempt)
            if record.attempt != 1:
                continue  # a retransmission: the same message id
            if open_command is not None:
                if open_command.msg_id_link == link_id:
                    continue  # a later frame of the command (an AP3000 firmware packet)
                open_command.msg_id_link = link_id
            self.msg_ids[record.command_id] = record.message_id

    def store_msg_ids(self, changes: Changes) -> None:
        """Write the message ids of the commands written since the last commit
        with *changes*, not in a transaction of their own."""
        if not self.msg_ids:
            return
        msg_ids, self.msg_ids = self.msg_ids, {}
        changes.write(lambda db: db.set_command_msg_ids(msg_ids))
        changes.undo.append(lambda: self.msg_ids.update(
            {k: v for k, v in msg_ids.items() if k not in self.msg_ids}))

    def handed_over(self, open_command: OpenCommand, link_id: int, now: float,
                    changes: Changes) -> None:
        """The connection *link_id* took the command."""
        open_command.handed_to = link_id
        command_id = open_command.id
        changes.write(lambda db: db.mark_command_sent(command_id, int(now)))

    def dropped(self, command_id: str) -> None:
        # Still 'sent' in the database: sent again when the device returns.
        open_command = self.open.get(command_id)
        if open_command is not None:
            open_command.handed_to = None

    def device_offline(self, device: Device, now: float, reason: str,
                       changes: Changes) -> None:
        """The device went offline: its commands are sent again when it returns."""
        if self.devices.set_offline(device, now, reason, changes):
            self._not_handed(device)

    def sweep_silent(self, now: float, changes: Changes) -> None:
        for device in self.devices.sweep_silent(now, changes):
            self._not_handed(device)

    def _not_handed(self, device: Device) -> None:
        for open_command in self.open.values():
            if open_command.device is device:
                open_command.handed_to = None

    # --- outcomes ------------------------------------------------------------------------------

    def finish(self, command_id: str, status: CommandStatus, now: float,
               changes: Changes, *, reason: str | None = None,
               result: Mapping[str, object] | None = None) -> None:
        open_command = self.open.pop(command_id, None)
        self.params_sent.pop(command_id, None)
        if open_command is not None:
            self.metrics.commands.labels(open_command.kind, status.value).inc()
            kept = open_command
            changes.undo.append(lambda: self.open.__setitem__(command_id, kept))
        changes.write(lambda db: db.finish_command(command_id, status, int(now), reason=reason,
                                                   result=result))

    def outcome(self, event: CommandAcknowledged | CommandRejected | CommandTimedOut,
                now: float, changes: Changes) -> OpenCommand | None:
        """The device answered a command, or did not: the command is finished.
        Returns it (None: not one of ours), for its order to follow."""
        open_command = self.open.get(event.command_id)
        if open_command is None:
            return None
        kind = open_command.kind
        if isinstance(event, CommandAcknowledged):
            self.log.info("device ack received", status="acked", device=event.phy_id,
                          cmd=kind, command_id=event.command_id)
            result: dict[str, object] = {"ok": True}
            if event.business_no is not None:
                result["business_no"] = event.business_no
            if kind == "send_message" and event.reply is not None:
                result["reply"] = _reply_json(event.phy_id, event.reply)
            sent_params = self.params_sent.pop(event.command_id, None)
            if sent_params is not None:
                # What the device took (a partial set: with the values filled in).
                result["params"] = sent_params
                self.known_params.setdefault(event.phy_id, {}).update(sent_params)
            self.finish(event.command_id, CommandStatus.ACKED, now, changes,
                        result=result if kind != "query_params" else None)
            if kind == "set_params":
                changes.events.append(device_event(
                    "device.params_result", event.phy_id, now,
                    {"command_id": event.command_id, "ok": True, "params": None}))
            return open_command
        reason = event.reason if isinstance(event, CommandRejected) else "no answer"
        if isinstance(event, CommandRejected):
            self.log.info("device ack received", status="rejected", device=event.phy_id,
                          cmd=kind, command_id=event.command_id, reason=reason,
                          raw_code=event.raw_code)
        self.log.warning("command failed", device=event.phy_id, cmd=kind,
                         command_id=event.command_id, reason=reason)
        self.finish(event.command_id, CommandStatus.FAILED, now, changes, reason=reason)
        self.params_query_failed(event.command_id, reason, now, changes)
        if kind in ("set_params", "query_params"):
            changes.events.append(device_event(
                "device.params_result", event.phy_id, now,
                {"command_id": event.command_id, "ok": False, "reason": reason}))
        return open_command

    def expired(self, record: CommandRecord) -> OpenCommand | None:
        """The database expired *record* (its lifetime ended unanswered)."""
        open_command = self.open.pop(record.id, None)
        self.metrics.commands.labels(record.kind, "expired").inc()
        self.log.warning("command expired", command_id=record.id, device=record.phy_id,
                         cmd=record.kind)
        return open_command

    # --- partial AP3000 parameter sets ---------------------------------------------------------

    def complete_params(self, open_command: OpenCommand, command: SetParams
                        ) -> SetParams | Ap3000ParameterCommand:
        """*command* ready to send (completed if partial), or the set command whose
        values must be asked for first."""
        device = open_command.device
        owner = partial_set(device.protocol, command.params)
        if owner is None:
            self.params_sent[open_command.id] = dict(command.params)
            return command
        known = self.known_params.get(device.phy_id, {})
        if all(name in command.params or name in known for name in owner.mandatory):
            params = {name: known[name] for name in owner.fields if name in known}
            params.update(command.params)
            self.params_sent[open_command.id] = params
            return dataclasses.replace(command, params=params)
        return owner

    def waits_for_values(self, command_id: str) -> bool:
        """Whether the partial set *command_id* waits for a query's answer."""
        return any(wait.set_command.id == command_id for wait in self.params_waits.values())

    def ask_for_params(self, open_command: OpenCommand, command: SetParams,
                       owner: Ap3000ParameterCommand, stored: CommandRecord, now: float,
                       changes: Changes) -> None:
        """Queue the query that reads the values a partial set lacks (*stored*:
        the set's row)."""
        device = open_command.device
        if not owner.query_names:
            self.fail_partial_set(open_command, owner, "no parameter query reports them",
                                  now, changes)
            return
        query = QueryParams(command_id=new_id("cmd"), phy_id=device.phy_id,
                            names=owner.query_names, socket_no=command.socket_no)
        self.stage(device, query, None, now, changes, key_name=stored.key_name)
        self.params_waits[query.command_id] = ParamsWait(
            open_command, command, owner, deadline=stored.expires_at)
        changes.undo.append(lambda: self._forget_params_wait(query.command_id))
        self.log.info("partial parameter set waits for the device's values",
                      command_id=open_command.id, query_command_id=query.command_id,
                      device=device.phy_id, set_command=owner.name)

    def _forget_params_wait(self, query_id: str) -> None:
        self.params_waits.pop(query_id, None)

    def params_reported(self, device: Device, event: ParamsReported, now: float,
                        changes: Changes) -> None:
        result = {"ok": True, "params": dict(event.params)}
        self._params_known(device, event, changes)
        if event.command_id is not None:
            self.finish(event.command_id, CommandStatus.ACKED, now, changes, result=result)
        changes.events.append(device_event("device.params_result", device.phy_id, now, {
            "command_id": event.command_id, "socket_no": event.socket_no, **result}))

    def _params_known(self, device: Device, event: ParamsReported,
                      changes: Changes) -> None:
        """Keep the reported values; a partial set waiting for them is sent next."""
        self.known_params.setdefault(device.phy_id, {}).update(event.params)
        wait = self.params_waits.pop(event.command_id or "", None)
        if wait is not None and wait.set_command.id in self.open:
            changes.intents.append(Send(wait.set_command.id, wait.command))

    def params_query_failed(self, query_id: str, reason: str, now: float,
                            changes: Changes) -> None:
        wait = self.params_waits.pop(query_id, None)
        if wait is not None:
            self.fail_partial_set(wait.set_command, wait.owner,
                                  f"the device did not answer the parameter query "
                                  f"{query_id} ({reason})", now, changes)

    def params_waits_due(self, now: float, changes: Changes) -> None:
        """Fail the partial sets whose lifetime ended before their query's answer."""
        due = [query_id for query_id, wait in self.params_waits.items()
               if wait.deadline <= now]
        for query_id in due:
            wait = self.params_waits.pop(query_id)
            self.fail_partial_set(wait.set_command, wait.owner,
                                  f"the device did not answer the parameter query "
                                  f"{query_id} within command_ttl", now, changes)

    def fail_partial_set(self, open_command: OpenCommand, owner: Ap3000ParameterCommand,
                         why: str, now: float, changes: Changes) -> None:
        if open_command.id not in self.open:
            return  # already ended (expired, or failed another way)
        reason = (f"partial parameter set: {owner.name} carries "
                  f"{', '.join(owner.mandatory)} together and the device's current values "
                  f"are not known: {why}; send every one of them to set without asking")
        self.log.warning("command failed", device=open_command.device.phy_id,
                         cmd=open_command.kind, msg_id=open_command.id, reason=reason)
        self.finish(open_command.id, CommandStatus.FAILED, now, changes, reason=reason)
        changes.events.append(device_event(
            "device.params_result", open_command.device.phy_id, now,
            {"command_id": open_command.id, "ok": False, "reason": reason}))


def sending_problem(protocol: ProtocolFamily, command: Command) -> str | None:
    """Why the library refuses to send *command* to a device of *protocol*, if it does."""
    scratch = ServerConnection(protocol=protocol)
    try:
        scratch.send(command, 0.0)
    except (LocalProtocolError, ValueError) as err:
        return str(err)
    return None


def partial_set(protocol: ProtocolFamily, params: Mapping[str, int]
                ) -> Ap3000ParameterCommand | None:
    """The AP3000 set command *params* names only some mandatory fields of, if so."""
    if protocol is not ProtocolFamily.AP3000:
        return None  # BKV's 0x1011 carries only what changes
    try:
        owner = parameter_command(params)
    except LocalProtocolError:
        return None  # unknown names or two commands: the library's refusal says which
    return owner if any(name not in params for name in owner.mandatory) else None


def _reply_json(phy_id: str, reply: BkvMessage | Ap3000Message) -> dict[str, object]:
    """The device's answer to a SendMessage: its message name and fields."""
    form = message_json(phy_id, reply)
    return {"message": form.get("message"), "fields": form.get("fields", {})}
