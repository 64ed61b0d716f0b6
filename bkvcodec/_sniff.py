# ``bkvcodec sniff``: a capture in, one JSON line per frame out. Part of the CLI
# (an edge: it reads files); ``_cli`` imports it only for that command, and it
# imports scapy, the capture reader, only when the input is a pcap or pcapng file.
#
# The work is done in three passes over the input, held in memory:
#
# 1. Read the input into chunks: the bytes each side of each connection sent, in
#    stream order. For a capture, the TCP segments of every direction of every
#    4-tuple are reassembled by sequence number (_Reassembler): retransmitted and
#    overlapping bytes are dropped, segments that arrive early are held until the
#    bytes before them come, SYN sets the stream's start, FIN and RST end it. A
#    hole is given up (reported as a gap) once the peer acknowledges the bytes
#    after it, which the capture therefore lost, or when the connection ends.
#    Text inputs (hex lines, JSON lines) are already byte chunks of a direction.
# 2. Decide each connection's direction (_Connection.decide): the side on a
#    --server-port is the server; else the side that sent frames only a device
#    sends (BKV ``fcfe`` frames, AP3000 modem items and uplink-only commands) or
#    only a server sends is the device or the server; else the side that opened
#    the connection (SYN) is the device; else the side that spoke first.
# 3. Feed every side's chunks, in capture order, to its own FrameDecoder (AP3000
#    frames are decoded in the side's direction) and turn what it returns into
#    lines (_SideReport). The decoder skips what it cannot use; the report finds
#    every item's bytes in the stream so that the bytes between them are
#    reported as garbage, and what is left at the end as a partial frame.
from __future__ import annotations

import datetime
import heapq
import io
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from ._ap3000.codec import Ap3000Frame
from ._ap3000.messages import MESSAGE_TYPES
from ._ap3000.nonframe import IccidAnnouncement, LinkKeepAlive
from ._bkv.codec import BkvFrame
from ._decoder import FrameDecoder, FrameRejected, StreamItem, UnidentifiedStream
from ._errors import BkvError, PayloadError
from ._fastinit import frozen_record
from ._jsonform import JsonObject, error_to_json, frame_to_json
from ._types import Direction, ProtocolFamily

__all__ = ["Chunk", "Segment", "SniffError", "capture_segments", "lines", "read_chunks", "sniff",
           "tcp_chunks"]

_PCAP_MAGICS = (b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d",
                b"\x4d\x3c\xb2\xa1")
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_MOD = 1 << 32
_BSD_AF_INET6 = (24, 28, 30)  # the loopback (NULL) link type's IPv6 values
_DIRECTION_WORDS = {"up": Direction.UP, "uplink": Direction.UP, "down": Direction.DOWN,
                    "downlink": Direction.DOWN}
_DIRECTION_NAMES = {Direction.UP: "uplink", Direction.DOWN: "downlink"}


def _one_way_commands(direction: Direction) -> frozenset[int]:
    """The AP3000 command bytes that only *direction* uses."""
    ways: dict[int, set[Direction]] = {}
    for command, way, _ in MESSAGE_TYPES.values():
        ways.setdefault(command, set()).add(way)
    return frozenset(c for c, w in ways.items() if w == {direction})


_AP3000_UP_ONLY = _one_way_commands(Direction.UP)
_AP3000_DOWN_ONLY = _one_way_commands(Direction.DOWN)


class SniffError(Exception):
    """The input cannot be read; *status* is the exit status to return."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


# --- pass 1: chunks ---------------------------------------------------------------------------

Endpoint = tuple[str, int]


def _label(endpoint: Endpoint | None) -> str | None:
    if endpoint is None:
        return None
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(eq=False)
class _Side:
    """One direction of one connection (or of one text input's stream)."""

    connection: _Connection
    src: Endpoint | None
    dst: Endpoint | None
    direction: Direction | None = None
    chunks: int = 0


@frozen_record
class Chunk:
    """Bytes one side sent (after any *gap* bytes that never arrived), or its end."""

    time: float | None
    side: _Side
    data: bytes = b""
    gap: int = 0
    end: bool = False


@dataclass(eq=False)
class _Connection:
    stream: int
    sides: dict[object, _Side] = field(default_factory=dict)
    opener: Endpoint | None = None  # the sender of the SYN
    first: Endpoint | None = None  # the first side that sent data
    how: str = "unknown"
    closed: bool = False
    last: float = 0.0  # the time of its last segment

    def side(self, key: object, src: Endpoint | None, dst: Endpoint | None) -> _Side:
        if key not in self.sides:
            self.sides[key] = _Side(self, src, dst)
        return self.sides[key]

    def decide(self, server_ports: Sequence[int], votes: dict[int, tuple[int, int]]) -> None:
        """Set each side's direction (see the header comment)."""
        sides = [s for s in self.sides.values() if s.src is not None]
        if not sides:
            return
        net = {id(s): votes.get(id(s), (0, 0))[0] - votes.get(id(s), (0, 0))[1] for s in sides}
        best = max(sides, key=lambda s: net[id(s)])
        worst = min(sides, key=lambda s: net[id(s)])
        device: Endpoint | None
        if any(s.src is not None and s.src[1] in server_ports for s in sides):
            self.how = "server-port"
            device = next(s.dst for s in sides if s.src is not None and s.src[1] in server_ports)
        elif any(s.dst is not None and s.dst[1] in server_ports for s in sides):
            self.how = "server-port"
            device = next(s.src for s in sides if s.dst is not None and s.dst[1] in server_ports)
        elif net[id(best)] > 0:
            self.how, device = "frames", best.src
        elif net[id(worst)] < 0:
            self.how, device = "frames", worst.dst
        elif self.opener is not None:
            self.how, device = "syn", self.opener
        else:
            self.how, device = "first-sender", self.first
        for s in sides:
            s.direction = Direction.UP if s.src == device else Direction.DOWN


def _diff(a: int, b: int) -> int:
    """a - b in sequence-number space (signed, modulo 2**32)."""
    return (a - b + (1 << 31)) % _MOD - (1 << 31)


class _Reassembler:
    """One direction of a TCP connection: segments in, in-order bytes out.

    Early segments wait in a heap ordered by their offset in the stream (the
    sequence number unwrapped against the next byte expected, which only moves
    forward), so each segment costs a logarithmic step however many wait: a
    capture of many out-of-order segments must not take quadratic time.
    """

    def __init__(self) -> None:
        self.next: int | None = None
        #: The stream offset of ``next`` (sequence numbers wrap, offsets do not).
        self.offset = 0
        self.held: list[tuple[int, bytes]] = []  # a heap of (stream offset, payload)
        self.fin: int | None = None
        self.ended = False
        self.reported = False  # whether its end chunk was made

    def segment(self, seq: int, syn: bool, fin: bool, payload: bytes) -> list[tuple[int, bytes]]:
        if syn:
            if self.next is None:
                self.next = (seq + 1) % _MOD
            seq = (seq + 1) % _MOD
        if self.next is None:  # the capture started after the handshake
            self.next = seq
        if payload and _diff((seq + len(payload)) % _MOD, self.next) > 0:
            heapq.heappush(self.held, (self.offset + _diff(seq, self.next), payload))
        if fin:
            self.fin = (seq + len(payload)) % _MOD
        return self._drain()

    def _advance(self, count: int) -> None:
        assert self.next is not None
        self.next = (self.next + count) % _MOD
        self.offset += count

    def _drain(self) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        held = self.held
        while held and held[0][0] <= self.offset:
            start, data = heapq.heappop(held)
            fresh = start + len(data) - self.offset
            if fresh > 0:  # else all of it was delivered already (a retransmission)
                out.append((0, data[-fresh:]))
                self._advance(fresh)
        if self.fin is not None and self.fin == self.next:
            self.ended = True
        return out

    def _skip_to(self, offset: int) -> list[tuple[int, bytes]]:
        """Give up the hole before *offset*: (hole size, the bytes after it)."""
        gap = offset - self.offset
        self._advance(gap)
        drained = self._drain()
        return [(gap, drained[0][1] if drained else b""), *drained[1:]]

    def acked(self, ack: int) -> list[tuple[int, bytes]]:
        """The peer acknowledged the bytes before *ack*: those the capture lacks will
        not come (the sender does not send acknowledged bytes again), so the holes
        before *ack* are given up: (hole size, bytes after it)."""
        out: list[tuple[int, bytes]] = []
        if self.next is None or self.ended:
            return out
        if self.fin is not None and _diff(ack, self.fin) > 0:
            ack = self.fin  # the FIN takes a sequence number, not a byte
        acked_to = self.offset + _diff(ack, self.next)
        while acked_to > self.offset:
            nearest = self.held[0][0] if self.held else acked_to
            out += self._skip_to(min(nearest, acked_to))
        return out

    def flush(self) -> list[tuple[int, bytes]]:
        """Deliver what is held beyond holes that never filled: (hole size, bytes)."""
        out: list[tuple[int, bytes]] = []
        while self.held and self.next is not None:
            drained = self._skip_to(self.held[0][0])
            if drained[0][1]:
                out += drained
        self.ended = True
        return out


@frozen_record
class Segment:
    """One TCP segment of a capture: its time, addresses, sequence number, the
    SYN, ACK, FIN and RST flags, its payload and its acknowledgement number."""

    time: float
    src: Endpoint
    dst: Endpoint
    seq: int
    syn: bool
    ack: bool
    fin: bool
    rst: bool
    payload: bytes
    ack_no: int = 0


class _Problems(logging.Handler):
    """Collects scapy's warnings about the capture (a truncated record …)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def capture_segments(data: bytes, problems: list[str]) -> Iterator[Segment]:
    """The TCP segments of a pcap or pcapng capture (needs scapy); what is wrong
    with the capture is added to *problems*."""
    try:
        from scapy.error import Scapy_Exception, log_runtime
        from scapy.layers.inet import IP, TCP
        from scapy.layers.inet6 import IPv6
        from scapy.layers.l2 import Loopback  # (and registers the link types)
        from scapy.packet import Padding
        from scapy.utils import PcapReader
    except ImportError:
        raise SniffError("reading pcap and pcapng files needs scapy: "
                         "pip install 'bkvcodec[sniff]'", 2) from None
    handler = _Problems()
    log_runtime.addHandler(handler)
    propagate, log_runtime.propagate = log_runtime.propagate, False
    cut = 0
    try:
        # scapy reads file objects too (its annotation names only a path).
        with PcapReader(io.BytesIO(data)) as reader:  # type: ignore[arg-type]
            for packet in reader:
                wirelen = getattr(packet, "wirelen", None)
                if isinstance(wirelen, int) and len(packet) < wirelen:
                    cut += 1
                if isinstance(packet, Loopback) and packet.type in _BSD_AF_INET6 \
                        and not packet.haslayer(IPv6):
                    # scapy knows Linux's AF_INET6 only; BSD and macOS captures use these.
                    time, packet = packet.time, IPv6(bytes(packet.payload))
                    packet.time = time
                tcp = packet.getlayer(TCP)
                ip = packet.getlayer(IP) or packet.getlayer(IPv6)
                if tcp is None or ip is None:
                    continue
                if ip.getlayer(TCP) is not tcp:  # TCP inside ICMP or a tunnel
                    continue
                payload = bytes(tcp.payload)
                pad = tcp.getlayer(Padding)
                if pad is not None:
                    payload = payload[:len(payload) - len(bytes(pad))]
                flags = int(tcp.flags)
                yield Segment(float(packet.time), (str(ip.src), int(tcp.sport)),
                              (str(ip.dst), int(tcp.dport)), int(tcp.seq),
                              bool(flags & 0x02), bool(flags & 0x10), bool(flags & 0x01),
                              bool(flags & 0x04), payload, int(tcp.ack))
    except (Scapy_Exception, EOFError, ValueError, OSError) as err:
        raise SniffError(f"not a readable pcap/pcapng capture: {err}") from None
    finally:
        log_runtime.removeHandler(handler)
        log_runtime.propagate = propagate
        problems += handler.messages
        if cut:
            problems.append(f"{cut} packets were cut short by the capture's snap length")


def tcp_chunks(segments: Iterator[Segment]) -> tuple[list[Chunk], list[_Connection]]:
    chunks: list[Chunk] = []
    connections: list[_Connection] = []
    live: dict[frozenset[Endpoint], tuple[_Connection, dict[Endpoint, _Reassembler]]] = {}

    def close(conn: _Connection, flows: dict[Endpoint, _Reassembler], time: float) -> None:
        for src, flow in flows.items():
            if flow.reported:
                continue
            side = conn.sides[src]
            for gap, data in flow.flush():
                chunks.append(Chunk(time, side, data, gap))
            chunks.append(Chunk(time, side, end=True))
            flow.reported = True
        conn.closed = True

    for seg in segments:
        key = frozenset((seg.src, seg.dst))
        entry = live.get(key)
        if entry is not None and seg.syn and not seg.ack and (
                entry[0].closed or any(f.next is not None and f.next != (seg.seq + 1) % _MOD
                                       for s, f in entry[1].items() if s == seg.src)):
            if not entry[0].closed:
                close(*entry, seg.time)
            entry = None
        if entry is None:
            conn = _Connection(len(connections))
            connections.append(conn)
            entry = live[key] = (conn, {})
        conn, flows = entry
        if conn.closed:
            continue
        conn.last = seg.time
        if seg.syn and not seg.ack and conn.opener is None:
            conn.opener = seg.src
        side = conn.side(seg.src, seg.src, seg.dst)
        conn.side(seg.dst, seg.dst, seg.src)
        flow = flows.setdefault(seg.src, _Reassembler())
        flows.setdefault(seg.dst, _Reassembler())
        if not flow.reported:  # (after its FIN, a segment carries an acknowledgement only)
            for gap, data in flow.segment(seg.seq, seg.syn, seg.fin, seg.payload):
                if conn.first is None:
                    conn.first = seg.src
                chunks.append(Chunk(seg.time, side, data, gap))
            if flow.ended:
                close(conn, {seg.src: flow}, seg.time)
                conn.closed = False
        peer = flows[seg.dst]
        if seg.ack and not seg.rst:
            for gap, data in peer.acked(seg.ack_no):
                chunks.append(Chunk(seg.time, conn.sides[seg.dst], data, gap))
            if peer.ended and not peer.reported:
                close(conn, {seg.dst: peer}, seg.time)
                conn.closed = False
        if seg.rst:
            close(conn, flows, seg.time)
        elif all(f.reported for f in flows.values()):
            conn.closed = True
    for conn, flows in live.values():
        if not conn.closed:
            close(conn, flows, conn.last)
    return chunks, connections


def _parse_time(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) \
            and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return number
        try:
            moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=datetime.UTC)
            return moment.timestamp()
    raise SniffError(f"{where}: not a time (epoch seconds or ISO 8601): {value!r}")


def _text_chunks(text: str) -> tuple[list[Chunk], list[_Connection]]:
    """Hex lines or JSON lines: each line a chunk of one direction's stream."""
    chunks: list[Chunk] = []
    connections: dict[str, _Connection] = {}
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    json_lines = bool(lines) and lines[0][1].startswith("{")
    for number, line in lines:
        where = f"line {number}"
        stream = ""
        if json_lines:
            time, word, hex_text, stream = _json_line(line, where)
        else:
            time, word, hex_text = _hex_line(line, where)
        direction = None
        if word is not None:
            if word.lower() not in _DIRECTION_WORDS:
                raise SniffError(f"{where}: not a direction (up, down): {word!r}")
            direction = _DIRECTION_WORDS[word.lower()]
        try:
            data = bytes.fromhex(hex_text)
        except ValueError:
            raise SniffError(f"{where}: not a hex string: {hex_text[:80]!r}") from None
        conn = connections.get(stream)
        if conn is None:
            conn = connections[stream] = _Connection(len(connections), how="input")
        side = conn.side(direction, None, None)
        side.direction = direction
        chunks.append(Chunk(time, side, data))
    for conn in connections.values():
        for side in conn.sides.values():
            last = max((c.time for c in chunks if c.side is side and c.time is not None),
                       default=None)
            chunks.append(Chunk(last, side, end=True))
    return chunks, list(connections.values())


def _hex_line(line: str, where: str) -> tuple[float | None, str | None, str]:
    """``[TIME] [up|down] HEX``."""
    words = line.split()
    time = None
    word = None
    if len(words) > 1 and words[0].lower() not in _DIRECTION_WORDS and not _is_hex(words[0]):
        time = _parse_time(words.pop(0), where)
    elif len(words) > 2 and words[1].lower() in _DIRECTION_WORDS:
        time = _parse_time(words.pop(0), where)
    if len(words) > 1 and words[0].lower() in _DIRECTION_WORDS:
        word = words.pop(0)
    return time, word, "".join(words)


def _is_hex(word: str) -> bool:
    return len(word) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in word)


def _json_line(line: str, where: str) -> tuple[float | None, str | None, str, str]:
    """``{"t": TIME, "dir": "up", "hex": HEX, "stream": KEY}``; the reference
    server's frame log rows (``direction``, ``hex``, ``created_at``, ``phy_id``)
    are read too."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise SniffError(f"{where}: not JSON: {err}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("hex"), str):
        raise SniffError(f"{where}: expected an object with a \"hex\" string")
    raw_time = next((obj[k] for k in ("t", "time", "created_at") if k in obj), None)
    word = next((obj[k] for k in ("dir", "direction") if obj.get(k) is not None), None)
    if word is not None and not isinstance(word, str):
        raise SniffError(f"{where}: not a direction (up, down): {word!r}")
    stream = next((obj[k] for k in ("stream", "phy_id") if obj.get(k) is not None), "")
    return _parse_time(raw_time, where), word, str(obj["hex"]), str(stream)


def read_chunks(data: bytes, problems: list[str]) -> tuple[list[Chunk], list[_Connection]]:
    """The chunks of an input, whatever its format (see the header comment); what is
    wrong with a capture that could be read in part is added to *problems*."""
    if data[:4] in _PCAP_MAGICS or data[:4] == _PCAPNG_MAGIC:
        return tcp_chunks(capture_segments(data, problems))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SniffError("not a pcap or pcapng capture, nor hex or JSON lines") from None
    return _text_chunks(text)


# --- pass 2: directions -----------------------------------------------------------------------

def _votes(item: StreamItem) -> tuple[int, int]:
    """(uplink, downlink) evidence of one decoded item."""
    if isinstance(item, BkvFrame):
        return (1, 0) if item.direction is Direction.UP else (0, 1)
    if isinstance(item, IccidAnnouncement | LinkKeepAlive):
        return 1, 0
    command = None
    if isinstance(item, Ap3000Frame):
        command = item.command
    elif isinstance(item, FrameRejected) and isinstance(item.error, PayloadError) \
            and item.data[:3] == b"DNY" and len(item.data) > 11:
        command = item.data[11]
    if command in _AP3000_UP_ONLY:
        return 1, 0
    if command in _AP3000_DOWN_ONLY:
        return 0, 1
    return 0, 0


def _decide(chunks: list[Chunk], connections: list[_Connection], server_ports: Sequence[int],
            protocol: ProtocolFamily | None) -> None:
    decoders: dict[int, FrameDecoder] = {}
    votes: dict[int, tuple[int, int]] = {}
    if not server_ports:
        for chunk in chunks:
            if chunk.end or chunk.side.connection.how == "input":
                continue
            key = id(chunk.side)
            if key not in decoders:
                decoders[key] = FrameDecoder(protocol=protocol)
            up, down = votes.get(key, (0, 0))
            for item in decoders[key].feed(chunk.data):
                vote = _votes(item)
                up, down = up + vote[0], down + vote[1]
            votes[key] = up, down
    for conn in connections:
        if conn.how != "input":
            conn.decide(server_ports, votes)


# --- pass 3: lines ----------------------------------------------------------------------------

def _iso(epoch: float | None) -> str | None:
    """*epoch* in ISO 8601 UTC, None when it has no date (beyond year 9999)."""
    if epoch is None:
        return None
    try:
        moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _protocol_of(data: bytes) -> str | None:
    if data[:1] == b"\xfc":
        return "bkv"
    if data[:3] == b"DNY":
        return "ap3000"
    return None


class _SideReport:
    """One side's decoder, and the lines its items make."""

    def __init__(self, side: _Side, protocol: ProtocolFamily | None) -> None:
        self.side = side
        self.direction = side.direction or Direction.UP
        self.protocol = protocol
        self.decoder = FrameDecoder(direction=self.direction, protocol=protocol)
        self.buffer = bytearray()
        self.base = 0  # the stream offset of buffer[0]
        self.cursor = 0  # where the next item is searched from
        self.covered = 0  # the end of the bytes reported so far
        self.time: float | None = None

    def line(self, kind: str, **fields: object) -> JsonObject:
        side = self.side
        direction = fields.pop("direction", side.direction)
        name = _DIRECTION_NAMES[direction] if isinstance(direction, Direction) else None
        out: JsonObject = {"kind": kind}
        out.update(time=_iso(self.time), epoch=self.time)
        out.update(stream=side.connection.stream, src=_label(side.src), dst=_label(side.dst),
                   direction=name)
        out.update(fields)
        return out

    def feed(self, chunk: Chunk) -> list[JsonObject]:
        self.time = chunk.time
        out: list[JsonObject] = []
        if chunk.gap:
            # A hole splits the stream: what came before ends there (a frame cut by
            # it is partial), and decoding starts again after it.
            out += self.end()
            offset = self.base + len(self.buffer)
            out.append(self.line("gap", offset=offset, length=chunk.gap, protocol=None))
            self.decoder = FrameDecoder(direction=self.direction,
                                        protocol=self.decoder.protocol or self.protocol)
            self.buffer = bytearray()
            self.base = self.cursor = self.covered = offset + chunk.gap
        if chunk.end:
            return out + self.end()
        self.buffer += chunk.data
        for item in self.decoder.feed(chunk.data):
            out += self.place(item)
        self.trim()
        return out

    def trim(self) -> None:
        drop = self.cursor - self.base
        if drop > 4096:
            del self.buffer[:drop]
            self.base += drop

    def find(self, data: bytes) -> int:
        """The stream offset of *data* at or after the cursor, or -1."""
        found = self.buffer.find(data, self.cursor - self.base)
        return -1 if found < 0 else found + self.base

    def locate(self, item: BkvFrame | Ap3000Frame) -> tuple[int, bytes | None]:
        """Where *item* starts and its bytes (the first frame at or after the cursor
        that decodes equal to it)."""
        try:
            encoded = item.encode()
        except BkvError:
            encoded = b""
        found = self.find(encoded) if encoded else -1
        if found >= 0:
            return found, encoded
        magics = (b"\xfc\xfe", b"\xfc\xff") if isinstance(item, BkvFrame) else (b"DNY",)
        pos = self.cursor - self.base
        buffer = self.buffer
        while True:
            starts = [i for i in (buffer.find(m, pos) for m in magics) if i >= 0]
            if not starts:
                return -1, None
            pos = min(starts)
            if isinstance(item, BkvFrame):
                data = bytes(buffer[pos:pos + int.from_bytes(buffer[pos + 2:pos + 4]) + 4])
            else:
                data = bytes(buffer[pos:pos + int.from_bytes(buffer[pos + 3:pos + 5],
                                                             "little") + 5])
            try:
                again = (BkvFrame.decode(data) if isinstance(item, BkvFrame)
                         else Ap3000Frame.decode(data, self.direction))
            except BkvError:
                again = None
            if again == item:
                return pos + self.base, data
            pos += 1

    def garbage_before(self, offset: int) -> list[JsonObject]:
        start = max(self.covered, self.cursor)
        if offset <= start:
            return []
        data = bytes(self.buffer[start - self.base:offset - self.base])
        return [self.line("garbage", offset=start, length=len(data), protocol=None,
                          hex=data.hex())]

    def place(self, item: StreamItem) -> list[JsonObject]:
        out: list[JsonObject] = []
        if isinstance(item, UnidentifiedStream):
            return [self.line("unidentified", protocol=None, examined=item.examined,
                              head=item.head.hex())]
        if isinstance(item, FrameRejected):
            offset = self.find(item.data)
            if offset >= 0:
                out += self.garbage_before(offset)
                self.cursor = offset + 1
                self.covered = max(self.covered, offset + len(item.data))
            out.append(self.line("error", offset=offset if offset >= 0 else None,
                                 length=len(item.data),
                                 protocol=_protocol_of(item.data), hex=item.data.hex(),
                                 error=error_to_json(item.error, item.data, self.direction)))
            return out
        raw: bytes | None
        if isinstance(item, IccidAnnouncement | LinkKeepAlive):
            raw = item.encode()
            offset = self.find(raw)
            direction: Direction | None = Direction.UP
            protocol = "ap3000"
        else:
            offset, raw = self.locate(item)
            direction = item.direction if isinstance(item, BkvFrame) else self.side.direction
            protocol = "bkv" if isinstance(item, BkvFrame) else "ap3000"
        if self.side.direction is not None:
            direction = self.side.direction
        if offset >= 0 and raw is not None:
            out += self.garbage_before(offset)
            self.cursor = offset + len(raw)
            self.covered = max(self.covered, self.cursor)
        out.append(self.line("frame", direction=direction, offset=offset if offset >= 0 else None,
                             length=len(raw) if raw is not None else None, protocol=protocol,
                             frame=frame_to_json(item, raw)))
        return out

    def end(self) -> list[JsonObject]:
        out: list[JsonObject] = []
        total = self.base + len(self.buffer)
        for incomplete in self.decoder.end():
            offset = total - len(incomplete.data)
            out += self.garbage_before(offset)
            out.append(self.line("partial", offset=offset, length=len(incomplete.data),
                                 protocol=_protocol_of(incomplete.data),
                                 hex=incomplete.data.hex()))
            self.covered = self.cursor = total
        out += self.garbage_before(total)
        self.covered = self.cursor = total
        return out


def lines(chunks: list[Chunk], connections: list[_Connection], *,
          server_ports: Sequence[int] = (),
          protocol: ProtocolFamily | None = None) -> Iterator[JsonObject]:
    """The JSON lines of *chunks* (passes 2 and 3)."""
    _decide(chunks, connections, server_ports, protocol)
    reports: dict[int, _SideReport] = {}
    for chunk in chunks:
        report = reports.get(id(chunk.side))
        if report is None:
            report = reports[id(chunk.side)] = _SideReport(chunk.side, protocol)
        yield from report.feed(chunk)


def sniff(data: bytes, out: TextIO, *, server_ports: Sequence[int] = (),
          protocol: ProtocolFamily | None = None) -> int:
    """Decode the capture *data* into JSON lines on *out*; return the lines written.

    Raises:
        SniffError: *data* cannot be read, or only in part (then the lines of
            what was read are written first).
    """
    problems: list[str] = []
    chunks, connections = read_chunks(data, problems)
    written = 0
    for line in lines(chunks, connections, server_ports=server_ports, protocol=protocol):
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
        written += 1
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise SniffError(f"damaged capture, read in part: {problems[0]}{more}")
    return written
