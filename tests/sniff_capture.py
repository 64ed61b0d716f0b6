"""Captures for ``bkvcodec sniff``: a real BKV and a real AP3000 exchange, written as
TCP segments in a pcap or pcapng file, with the faults a real capture has.

Write one::

    python -m tests.sniff_capture /tmp/charging.pcapng
    bkvcodec sniff /tmp/charging.pcapng --server-port 8888

The exchanges are played by a :class:`bkvcodec.DeviceConnection` and a
:class:`bkvcodec.ServerConnection` connected in memory. The BKV connection (IPv4) has
its frames split across segments and merged into segments, a retransmitted segment,
two segments out of order and garbage between two frames; the AP3000 connection
(IPv6) ends its uplink with a truncated frame.
"""
from __future__ import annotations

import argparse
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bkvcodec import (
    ChargeMode,
    CommandAcknowledged,
    DeviceConnection,
    DeviceHeartbeat,
    Direction,
    ProtocolFamily,
    ServerConnection,
    StartCharging,
)

T0 = 1729407600.0
SERVER_PORT = 8888
DEVICES = {ProtocolFamily.BKV: "82210225000520", ProtocolFamily.AP3000: "04A228CD"}
GARBAGE = b"\x00\x13noise!\x00"


def exchange(protocol: ProtocolFamily) -> list[tuple[Direction, bytes]]:
    """What a device and the server send each other: greeting, a heartbeat, a start
    and its acknowledgement, one entry per write (a write may hold several frames)."""
    phy_id = DEVICES[protocol]
    device = DeviceConnection(protocol=protocol, phy_id=phy_id)
    server = ServerConnection(protocol=protocol)
    wire: list[tuple[Direction, bytes]] = []
    received: list[Any] = []
    now = T0

    def pump() -> None:
        while True:
            up = device.data_to_send()
            if up:
                wire.append((Direction.UP, up))
                server.receive_data(up, now)
                for event in server.held():
                    server.acknowledge(event)
            down = server.data_to_send()
            if down:
                wire.append((Direction.DOWN, down))
                received.extend(device.receive_data(down, now))
            if not up and not down:
                return

    pump()
    device.send(DeviceHeartbeat(phy_id=phy_id, protocol=protocol), now)
    pump()
    server.send(StartCharging(command_id="c1", phy_id=phy_id, port_no=1, order_no="A1",
                              mode=ChargeMode.TIME, duration_s=3600, amount_cents=1000), now)
    pump()
    [start] = [r for r in received if isinstance(r, StartCharging)]
    device.send(CommandAcknowledged(command_id=start.command_id, phy_id=phy_id,
                                    business_no=0x61), now)
    pump()
    now += 60
    device.send(DeviceHeartbeat(phy_id=phy_id, protocol=protocol), now)
    pump()
    return wire


@dataclass
class Segment:
    """One TCP segment to write."""

    time: float
    up: bool
    seq: int
    payload: bytes = b""
    flags: str = "PA"
    ack: int = 0


@dataclass
class Connection:
    """A TCP connection's segments, and the bytes each way carries (what sniff must
    reassemble)."""

    protocol: ProtocolFamily
    device: tuple[str, int]
    server: tuple[str, int]
    segments: list[Segment]
    wire: list[tuple[Direction, bytes]]
    uplink: bytes
    downlink: bytes
    truncated: bytes = b""  #: the start of a frame that ends the uplink


def connection(protocol: ProtocolFamily, device: tuple[str, int], server: tuple[str, int],
               start: float, *, seed: int = 0, garbage: bool = False,
               truncated: bool = False) -> Connection:
    """A connection carrying :func:`exchange` with split and merged segments, a
    retransmission and an out-of-order pair; *garbage* between the first and second
    uplink writes, a *truncated* frame at the end of the uplink."""
    rng = random.Random(seed)
    wire = exchange(protocol)
    if garbage:
        ups = [i for i, (d, _) in enumerate(wire) if d is Direction.UP]
        wire.insert(ups[1], (Direction.UP, GARBAGE))
    cut = b""
    if truncated:
        last_up = next(data for d, data in reversed(wire) if d is Direction.UP)
        cut = last_up[:len(last_up) // 2]
        wire.append((Direction.UP, cut))
    seq = {True: 1000, False: 500_000}
    time = start
    segments = [Segment(time, True, seq[True] - 1, flags="S"),
                Segment(time, False, seq[False] - 1, flags="SA", ack=seq[True]),
                Segment(time, True, seq[True], flags="A", ack=seq[False])]
    sent = {True: bytearray(), False: bytearray()}
    # Merge two consecutive writes of the same direction into one segment.
    merged: list[tuple[Direction, bytes]] = []
    for direction, data in wire:
        if merged and merged[-1][0] is direction and rng.random() < 0.5:
            merged[-1] = (direction, merged[-1][1] + data)
        else:
            merged.append((direction, data))
    for direction, data in merged:
        up = direction is Direction.UP
        sent[up] += data
        # Split each write at random places (mid-frame).
        cuts = sorted(rng.sample(range(1, len(data)), min(2, len(data) - 1)))
        for piece_start, piece_end in zip([0, *cuts], [*cuts, len(data)], strict=True):
            time += 0.01
            piece = data[piece_start:piece_end]
            # Acknowledges all the other way sent so far (it arrived in memory).
            segments.append(Segment(time, up, seq[up], piece, ack=seq[not up]))
            seq[up] += len(piece)
    data_segments = [i for i, s in enumerate(segments) if s.payload]
    # A retransmission of the third data segment, a little later.
    again = segments[data_segments[2]]
    segments.insert(data_segments[2] + 2, Segment(again.time + 0.005, again.up, again.seq,
                                                  again.payload, ack=again.ack))
    # Swap two consecutive data segments of the same direction (out of order).
    for a, b in itertools.pairwise(data_segments[4:]):
        if segments[a].up == segments[b].up and b == a + 1:
            segments[a], segments[b] = segments[b], segments[a]
            segments[a].time, segments[b].time = segments[b].time, segments[a].time
            break
    else:
        raise AssertionError("no pair of segments to swap")
    time += 0.01
    segments += [Segment(time, True, seq[True], flags="FA", ack=seq[False]),
                 Segment(time, False, seq[False], flags="FA", ack=seq[True] + 1)]
    return Connection(protocol, device, server, segments, wire, bytes(sent[True]),
                      bytes(sent[False]), cut)


def packets(conn: Connection) -> list[Any]:
    """scapy packets (Ethernet) of *conn*'s segments."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    ip_layer = IPv6 if ":" in conn.device[0] else IP
    out = []
    for seg in conn.segments:
        src, dst = (conn.device, conn.server) if seg.up else (conn.server, conn.device)
        packet = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                  / ip_layer(src=src[0], dst=dst[0])
                  / TCP(sport=src[1], dport=dst[1], flags=seg.flags, seq=seg.seq, ack=seg.ack))
        if seg.payload:
            packet = packet / Raw(seg.payload)
        packet.time = seg.time
        out.append(packet)
    return out


def default_connections() -> list[Connection]:
    """A BKV connection (IPv4, garbage) and an AP3000 one (IPv6, truncated end),
    overlapping in time."""
    return [connection(ProtocolFamily.BKV, ("10.0.0.2", 50123), ("10.0.0.1", SERVER_PORT),
                       T0, seed=1, garbage=True),
            connection(ProtocolFamily.AP3000, ("fd00::2", 40200), ("fd00::1", SERVER_PORT),
                       T0 + 0.015, seed=2, truncated=True)]


def interleaved(connections: Sequence[Connection]) -> list[Any]:
    """The packets of *connections* in time order."""
    return sorted((p for c in connections for p in packets(c)), key=lambda p: float(p.time))


def write_capture(path: Path, connections: Sequence[Connection], *, pcapng: bool) -> None:
    """Write *connections* to *path* as pcap or pcapng."""
    from scapy.utils import PcapNgWriter, wrpcap

    all_packets = interleaved(connections)
    if pcapng:
        with PcapNgWriter(str(path)) as writer:
            for packet in all_packets:
                writer.write(packet)
    else:
        wrpcap(str(path), all_packets)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="where to write (.pcapng: pcapng, else pcap)")
    args = parser.parse_args(argv)
    write_capture(args.path, default_connections(), pcapng=args.path.suffix == ".pcapng")
    print(f"wrote {args.path}")


if __name__ == "__main__":
    main()
