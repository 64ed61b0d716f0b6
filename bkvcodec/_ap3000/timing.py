# AP3000 session rules as data (ap3000.md §7): which uplinks the server must
# answer and with what, and the timing values of §7.2. The library does no
# timing itself (it is sans-IO); a session layer or server reads these values
# to arm its timers, so that the numbers live in one documented place.
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .._fastinit import frozen_dataclass
from .messages import (
    Ap3000CardSwipe,
    Ap3000CardSwipeReply,
    Ap3000Heartbeat,
    Ap3000HeartbeatReply,
    Ap3000HostTimeReply,
    Ap3000HostTimeRequest,
    Ap3000LegacyHeartbeat,
    Ap3000LegacyHeartbeatReply,
    Ap3000Message,
    Ap3000OrderConfirm,
    Ap3000OrderConfirmReply,
    Ap3000Register,
    Ap3000RegisterReply,
    Ap3000Settlement,
    Ap3000SettlementReply,
    Ap3000TimeReply,
    Ap3000TimeRequest,
)

__all__ = ["AP3000_REQUIRED_REPLIES", "AP3000_TIMING", "Ap3000Timing"]


@frozen_dataclass
class Ap3000Timing:
    """The protocol's timing rules, in seconds.

    :data:`AP3000_TIMING` holds the documented values; to tune them, pass
    another instance to the connection:
    ``ServerConnection(ap3000_timing=Ap3000Timing(max_retransmissions=2))``. The
    connection paces and retries its commands with the reply timeout,
    retransmissions, spacing and firmware values; the other values are for the
    application's own timers (when to call a device offline …). Replies to
    uplinks (:data:`AP3000_REQUIRED_REPLIES`) are sent at once and are not
    subject to the retry and spacing rules.

    Attributes:
        reply_timeout_s: How long to wait for the device's reply to a server
            command before retransmitting it (DEV, HOST: 15 s).
        max_retransmissions: Retransmissions of an unanswered command, with the
            same message ID (DEV, HOST: 1; ZINX allows 2).
        min_command_spacing_s: Minimum gap between two commands to one
            connection (DEV, HOST: 0.5 s; applied per connection because a host
            serialises its slaves on one bus).
        heartbeat_interval_s: The device's 0x21/0x01 interval (default 180 s,
            settable with 0x83).
        link_interval_s: The modem sends ``link`` after this much silence (30 s).
        connection_dead_after_s: Declare a connection dead after this much
            silence: three missed ``link`` (recommendation, 90 s).
        device_offline_after_s: Declare a device offline when its own frames
            (0x20/0x21/0x01/0x06) stop for this long: two heartbeat intervals
            plus a margin (recommendation, 420 s).
        power_heartbeat_interval_s: 0x06 interval while charging (5 min).
        settlement_retry_s: The device repeats an unanswered 0x03 this often (30 min).
        time_request_retry_s: The device repeats an unanswered 0x22/0x12 this
            often after power-up (3 min).
        time_resync_interval_s: The device asks for the time again this often (12 h).
        host_report_interval_s: Interval of 0x11 and 0x17 (30 min).
        firmware_reply_timeout_s: Wait this long for a firmware-packet reply
            before resending the packet (30 s).
        firmware_max_resends: Give a firmware packet up after this many resends (3).

    .. versionadded:: 0.1.0
    """

    reply_timeout_s: float = 15.0
    max_retransmissions: int = 1
    min_command_spacing_s: float = 0.5
    heartbeat_interval_s: float = 180.0
    link_interval_s: float = 30.0
    connection_dead_after_s: float = 90.0
    device_offline_after_s: float = 420.0
    power_heartbeat_interval_s: float = 300.0
    settlement_retry_s: float = 1800.0
    time_request_retry_s: float = 180.0
    time_resync_interval_s: float = 43200.0
    host_report_interval_s: float = 1800.0
    firmware_reply_timeout_s: float = 30.0
    firmware_max_resends: int = 3


#: The documented timing values.
AP3000_TIMING = Ap3000Timing()

#: Uplinks the server must answer, and the class of the answer.
#: Answer 0x01 *or* the same unit's 0x21, not both: a unit whose 0x21 is answered
#: stops sending 0x01. Uplinks not listed (0x05, 0x06, 0x11, 0x17, 0x35, 0x41-0x44,
#: ICCID, ``link``) get no answer.
AP3000_REQUIRED_REPLIES: Mapping[type[Ap3000Message], type[Ap3000Message]] = MappingProxyType({
    Ap3000LegacyHeartbeat: Ap3000LegacyHeartbeatReply,
    Ap3000CardSwipe: Ap3000CardSwipeReply,
    Ap3000Settlement: Ap3000SettlementReply,
    Ap3000OrderConfirm: Ap3000OrderConfirmReply,
    Ap3000HostTimeRequest: Ap3000HostTimeReply,
    Ap3000Register: Ap3000RegisterReply,
    Ap3000Heartbeat: Ap3000HeartbeatReply,
    Ap3000TimeRequest: Ap3000TimeReply,
})
