"""A minimal blocking BKV server: answers heartbeats, status reports and charge ends.

Run it, then point a gateway (or ``nc``) at port 7065. One connection at a time;
a real server would use a thread or task per connection.
"""
from __future__ import annotations

import datetime
import socket

from bkvcodec import (
    BcdTime,
    BkvFrame,
    ChargeEnd,
    ChargeEndAck,
    FrameDecoder,
    FrameRejected,
    Heartbeat,
    HeartbeatAck,
    StatusReport,
    StatusReportAck,
)

CHINA = datetime.timezone(datetime.timedelta(hours=8))


def reply_to(frame: BkvFrame) -> BkvFrame | None:
    """The reply the protocol requires for *frame*, if any."""
    message = frame.message
    if isinstance(message, Heartbeat):
        now = datetime.datetime.now(CHINA)
        return BkvFrame(gateway_id=frame.gateway_id,
                        message=HeartbeatAck(time=BcdTime.from_datetime(now)))
    if isinstance(message, StatusReport):
        return BkvFrame(gateway_id=frame.gateway_id,
                        message=StatusReportAck(ack=1, bkv_seq=message.bkv_seq))
    if isinstance(message, ChargeEnd):
        return BkvFrame(gateway_id=frame.gateway_id,
                        message=ChargeEndAck(socket_no=message.socket_no, result=1))
    return None


def serve(port: int = 7065) -> None:
    with socket.create_server(("", port)) as server:
        while True:
            conn, peer = server.accept()
            with conn:
                decoder = FrameDecoder()
                while data := conn.recv(4096):
                    for item in decoder.feed(data):
                        if isinstance(item, FrameRejected):
                            print(peer, "rejected:", item.error.code)
                            continue
                        print(peer, type(item.message).__name__, item.gateway_id)
                        reply = reply_to(item)
                        if reply is not None:
                            conn.sendall(reply.encode())


if __name__ == "__main__":
    serve()
