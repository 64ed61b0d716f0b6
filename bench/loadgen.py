"""A cheap load generator: many heartbeating devices per process, one epoll loop.

``bench_load.py`` starts several of these processes (``--gen-processes``); each holds
devices ``first … first+count-1`` of the fleet on plain non-blocking sockets in one
epoll loop, with one heap for the schedule (ramp, heartbeats, reconnections); timers
due within :data:`TIMER_SLACK` of each other fire in one wake-up (the lag this adds is
in the reported loop lag, not in the round trips). Nothing is decoded on the hot path:

* every device's frames are encoded once, with the library's encoders, when it first
  connects (:class:`DeviceFrames`): the greeting and first heartbeat that register it,
  and its heartbeat. A BKV heartbeat goes out with sequence 0 every time, as the
  library's device sends it, so it is the same bytes every time; an AP3000 heartbeat
  carries the unit's message id, which goes up by one per frame as on a real unit, and
  a checksum over it: both are patched into the encoded frame (two bytes each);
* the server's answer is recognised by its envelope (:class:`AnswerScanner`): header,
  length, checksum and trailer checked, then the command, the device's id and, for
  AP3000, the message id of the heartbeat compared. Bytes that are not a well-formed
  frame are counted as garbage and skipped, never taken for an answer. A well-formed
  frame that is not the answer (a command the server sent) goes to a full
  :class:`bkvcodec.DeviceConnection`, made for that device when it first gets one,
  which acknowledges what it can; the frames and the acknowledgements are counted.

A connection the server closes, or that does not answer its registration within
:data:`REPLY_TIMEOUT`, is opened again after a backoff (1 s, doubling to 30 s), and
counted. Each process binds its connections to its own loopback source address
(``--source``, e.g. ``127.0.0.2``) so that its ephemeral ports are its own, and stays
under the file-descriptor limit (about 20,000 here) with its share of the devices.

It talks to the orchestrator by JSON lines: ``progress``, ``ready`` and ``result`` out on
stdout; the measurement window (``{"from": wall, "to": wall}``) in on stdin, and
stdin's end (or a second line) to close the connections and exit.
"""
from __future__ import annotations

import argparse
import errno
import gc
import heapq
import json
import math
import os
import random
import resource
import select
import socket
import struct
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field, fields

from bkvcodec import (
    CommandAcknowledged,
    DeviceConnection,
    DeviceHeartbeat,
    LocalProtocolError,
    ProtocolFamily,
)

#: A heartbeat with no answer within this many seconds counts as unanswered.
REPLY_TIMEOUT = 10.0
#: Timers due within this many seconds of the first due one fire together.
TIMER_SLACK = 0.005
#: Reconnection backoff: first wait and longest wait, seconds.
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0
#: Linux: let connect() pick the source port, per destination (bind((src, 0)) alone
#: would take a port for every destination, ~28,000 per source address).
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)

_GOLDEN = (math.sqrt(5) - 1) / 2


def device_identity(index: int, ap3000_every: int) -> tuple[ProtocolFamily, str]:
    """The *index*-th simulated device: every *ap3000_every*-th one is AP3000."""
    if ap3000_every and index % ap3000_every == ap3000_every - 1:
        return ProtocolFamily.AP3000, f"{0x10000000 + index:08X}"
    return ProtocolFamily.BKV, f"8221{index:010d}"


def heartbeat_phase(index: int) -> float:
    """Where in the heartbeat period device *index* beats, as a fraction of it.

    Uniform over the fleet, and uncorrelated with the index, hence with the order
    in which devices connect: devices that connect together beat at all points of
    the period, as in a real fleet. (Phases in index order would put every device
    of one second of the ramp into one 0.1 s of the period, and the server's
    "every 10th heartbeat" webhooks of 900 devices into bursts.)
    """
    return (index * _GOLDEN) % 1.0


# --- frames -----------------------------------------------------------------------------

_BKV_UP, _BKV_DOWN, _BKV_TRAILER = b"\xfc\xfe", b"\xfc\xff", b"\xfc\xee"
#: BKV envelope: magic 2, length 2, command 2, seq 4, flag 1, gateway 7 … checksum 1,
#: trailer 2; the length counts everything after itself.
_BKV_OVERHEAD = 21
_BKV_HEARTBEAT = 0x0000
_DNY = b"DNY"
#: AP3000: "DNY", length 2, physical id 4, message id 2, command 1, data, checksum 2;
#: the length counts from the physical id to the checksum.
_AP_MIN_LENGTH, _AP_MAX_LENGTH = 9, 1024
_AP_HEARTBEAT = 0x21
_AP_MESSAGE_ID = 9  # offset of the message id
_U16_LE = struct.Struct("<H")


class DeviceFrames:
    """One simulated device's frames, encoded once with the library's encoders.

    ``hello`` registers the device (the AP3000 modem's ICCID announcement, then a
    heartbeat); :meth:`heartbeat` gives the next heartbeat and the message id the
    answer must carry (None for BKV, whose answer carries sequence 0).
    """

    __slots__ = ("_ap_base", "_ap_head", "_ap_tail", "_bkv", "gateway", "hello",
                 "message_id", "phy_id", "physical_id", "protocol")

    def __init__(self, protocol: ProtocolFamily, phy_id: str) -> None:
        self.protocol, self.phy_id = protocol, phy_id
        connection = DeviceConnection(protocol=protocol, phy_id=phy_id)
        heartbeat = DeviceHeartbeat(phy_id=phy_id, protocol=protocol, rssi=20)
        connection.send(heartbeat, 0.0)
        greeting_and_first = connection.data_to_send()
        connection.send(heartbeat, 0.0)
        second = connection.data_to_send()
        self.hello = greeting_and_first
        if protocol is ProtocolFamily.BKV:
            self._bkv = second
            self.gateway = second[11:18]
            self.physical_id = b""
            self.message_id = 0
            self._ap_head = self._ap_tail = b""
            self._ap_base = 0
        else:
            self._bkv = b""
            self.gateway = b""
            self.physical_id = second[5:9]
            self.message_id = _U16_LE.unpack_from(second, _AP_MESSAGE_ID)[0]
            self._ap_head = second[:_AP_MESSAGE_ID]
            self._ap_tail = second[_AP_MESSAGE_ID + 2:-2]
            # The checksum is the byte sum of everything before it: the sum without
            # the message id, to which each heartbeat adds its id's two bytes.
            self._ap_base = sum(self._ap_head) + sum(self._ap_tail)

    def first_message_id(self) -> int | None:
        """The message id of the heartbeat in ``hello`` (None for BKV)."""
        if self.protocol is ProtocolFamily.BKV:
            return None
        at = len(self.hello) - len(self._ap_tail) - 4
        return self.hello[at] | self.hello[at + 1] << 8

    def heartbeat(self) -> tuple[bytes, int | None]:
        """The next heartbeat frame, and the message id its answer carries."""
        if self.protocol is ProtocolFamily.BKV:
            return self._bkv, None
        message_id = self.message_id = (self.message_id + 1) & 0xFFFF
        low, high = message_id & 0xFF, message_id >> 8
        check = (self._ap_base + low + high) & 0xFFFF
        return (self._ap_head + bytes((low, high)) + self._ap_tail
                + bytes((check & 0xFF, check >> 8))), message_id


class AnswerScanner:
    """Splits what a device reads into well-formed frames by their envelope, without
    decoding them, and tells the answer to its heartbeat from anything else.

    :meth:`feed` returns how many heartbeat answers (with the expected message id,
    for AP3000) the bytes completed, and keeps every other well-formed frame in
    ``others``; bytes that are no frame are dropped from the buffer and counted in
    ``garbage``.
    """

    __slots__ = ("_buffer", "expected_id", "garbage", "others", "protocol", "whom")

    def __init__(self, frames: DeviceFrames) -> None:
        self.protocol = frames.protocol
        self.whom = frames.gateway if frames.protocol is ProtocolFamily.BKV \
            else frames.physical_id
        self.expected_id: int | None = None
        self._buffer = b""
        self.garbage = 0
        self.others: list[bytes] = []

    def feed(self, data: bytes) -> int:
        buffer = self._buffer + data if self._buffer else data
        bkv = self.protocol is ProtocolFamily.BKV
        answers, start, size = 0, 0, len(buffer)
        while start < size:
            total = (_bkv_frame if bkv else _ap_frame)(buffer, start, size)
            if total == 0:
                break  # a frame's beginning: wait for the rest
            if total < 0:
                # Not a frame here: skip to the next possible header.
                found = buffer.find(_BKV_DOWN[:1] if bkv else _DNY[:1], start + 1)
                end = size if found < 0 else found
                self.garbage += end - start
                start = end
                continue
            if bkv:
                answer = (buffer[start + 4] == 0 and buffer[start + 5] == _BKV_HEARTBEAT
                          and total == _BKV_OVERHEAD + 7
                          and buffer[start + 11:start + 18] == self.whom)
            else:
                answer = (buffer[start + 11] == _AP_HEARTBEAT
                          and buffer[start + 5:start + 9] == self.whom
                          and _U16_LE.unpack_from(buffer, start + _AP_MESSAGE_ID)[0]
                          == self.expected_id)
            if answer:
                answers += 1
            else:
                self.others.append(buffer[start:start + total])
            start += total
        self._buffer = buffer[start:] if start < size else b""
        return answers


def _bkv_frame(buffer: bytes, start: int, size: int) -> int:
    """The size of the downlink BKV frame at *start*; 0: incomplete; -1: no frame."""
    available = size - start
    if buffer[start] != 0xFC or (available > 1 and buffer[start + 1] != 0xFF):
        return -1
    if available < 4:
        return 0
    total = (buffer[start + 2] << 8 | buffer[start + 3]) + 4
    if total < _BKV_OVERHEAD:
        return -1
    if available < total:
        return 0 if total <= 4096 else -1
    end = start + total
    if buffer[end - 2:end] != _BKV_TRAILER:
        return -1
    # The checksum is the byte sum after the magic; adler32's low half is 1 + that sum
    # while it stays below 65521 (frames of up to 259 bytes).
    check = (zlib.adler32(buffer[start + 2:end - 3]) - 1) & 0xFF if total <= 259 \
        else sum(buffer[start + 2:end - 3]) & 0xFF
    if buffer[end - 3] != check:
        return -1
    return total


def _ap_frame(buffer: bytes, start: int, size: int) -> int:
    """The size of the AP3000 frame at *start*; 0: incomplete; -1: no frame."""
    available = size - start
    head = buffer[start:start + 3]
    if head != _DNY[:len(head)]:
        return -1
    if available < 5:
        return 0
    length = buffer[start + 3] | buffer[start + 4] << 8
    if not _AP_MIN_LENGTH <= length <= _AP_MAX_LENGTH:
        return -1
    total = length + 5
    if available < total:
        return 0
    end = start + total
    check = (zlib.adler32(buffer[start:end - 2]) & 0xFFFF) - 1 if total <= 256 \
        else sum(buffer[start:end - 2]) & 0xFFFF
    if check != (buffer[end - 2] | buffer[end - 1] << 8):
        return -1
    return total


# --- the fleet of one process ---------------------------------------------------------------

@dataclass
class FleetStats:
    connected: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    reconnects: int = 0
    sent: int = 0
    answered: int = 0
    unanswered: int = 0
    late_answers: int = 0
    garbage_bytes: int = 0
    unexpected_frames: int = 0
    #: What the full device connection made of them, by kind (a late answer to an
    #: earlier AP3000 heartbeat is a ``ServerAnswered``).
    unexpected_kinds: dict[str, int] = field(default_factory=dict)
    commands_acknowledged: int = 0
    rtts: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    outstanding: int = 0
    connected_at_end: int = 0

    @classmethod
    def from_message(cls, message: dict[str, object]) -> FleetStats:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in message.items() if k in names})  # type: ignore[arg-type]


# Device states.
_IDLE, _CONNECTING, _REGISTERING, _UP = range(4)
_READABLE, _WRITABLE = select.EPOLLIN, select.EPOLLOUT
_CLOSED = select.EPOLLHUP | select.EPOLLERR
# Timer kinds (heap entries: due, kind, index, generation).
_CONNECT, _BEAT = 0, 1


class _Device:
    __slots__ = ("backoff", "counted", "frames", "full", "generation", "index", "out",
                 "phase", "scanner", "sent_at", "slot", "sock", "state", "tried")

    def __init__(self, slot: int, index: int, phase: float) -> None:
        self.slot, self.index, self.phase = slot, index, phase
        self.frames: DeviceFrames | None = None
        self.scanner: AnswerScanner | None = None
        self.full: DeviceConnection | None = None
        self.sock: socket.socket | None = None
        self.state = _IDLE
        self.generation = 0
        self.sent_at = 0.0  # perf_counter of the write awaiting its answer, or 0
        self.counted = False  # that heartbeat is in the window
        self.backoff = BACKOFF_FIRST
        self.tried = False
        self.out = b""


class Fleet:
    """Devices ``first … first+count-1`` in one epoll loop."""

    def __init__(self, *, host: str, port: int, source: str, first: int, count: int,
                 period: float, epoch: float, ramp_rate: float, ap3000_every: int) -> None:
        self.address = (host, port)
        self.source = source
        self.period, self.epoch, self.rate = period, epoch, ramp_rate
        self.ap3000_every = ap3000_every
        self.devices = [_Device(n, first + n, heartbeat_phase(first + n) * period)
                        for n in range(count)]
        self.stats = FleetStats()
        self.epoll = select.epoll()
        self.by_fd: dict[int, _Device] = {}
        self.timers: list[tuple[float, int, int, int]] = []
        self.window: tuple[float, float] | None = None
        self.attempted = 0
        self.offset = time.time() - time.monotonic()  # wall = monotonic + offset
        self.stopping = False
        self.control = b""

    # --- schedule ---------------------------------------------------------------------

    def _at(self, wall: float, kind: int, device: _Device) -> None:
        heapq.heappush(self.timers, (wall - self.offset, kind, device.slot, device.generation))

    def _next_beat(self, device: _Device, after: float) -> None:
        beat = math.ceil((after - self.epoch - device.phase) / self.period)
        self._at(self.epoch + device.phase + beat * self.period, _BEAT, device)

    # --- connections ------------------------------------------------------------------

    def _connect(self, device: _Device) -> None:
        if device.frames is None:
            protocol, phy_id = device_identity(device.index, self.ap3000_every)
            device.frames = DeviceFrames(protocol, phy_id)
        device.generation += 1
        device.scanner = AnswerScanner(device.frames)
        device.full = None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((self.source, 0))
            code = sock.connect_ex(self.address)
            if code not in (0, errno.EINPROGRESS):
                raise OSError(code, os.strerror(code))
        except OSError:
            sock.close()
            self._failed(device)
            return
        device.sock = sock
        device.state = _CONNECTING
        self.by_fd[sock.fileno()] = device
        self.epoll.register(sock.fileno(), _WRITABLE)

    def _connected(self, device: _Device) -> None:
        sock = device.sock
        assert sock is not None and device.frames is not None and device.scanner is not None
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self._failed(device)
            return
        self.epoll.modify(sock.fileno(), _READABLE)
        device.state = _REGISTERING
        device.scanner.expected_id = device.frames.first_message_id()
        device.sent_at = time.perf_counter()
        device.counted = False
        self._write(device, device.frames.hello)

    def _registered(self, device: _Device) -> None:
        device.state = _UP
        device.backoff = BACKOFF_FIRST
        self.stats.connected += 1
        self._tried(device)
        self._next_beat(device, time.time())

    def _tried(self, device: _Device) -> None:
        if not device.tried:
            device.tried = True
            self.attempted += 1

    def _close(self, device: _Device) -> None:
        if device.sock is not None:
            fd = device.sock.fileno()
            if self.by_fd.pop(fd, None) is not None:
                self.epoll.unregister(fd)
            device.sock.close()
            device.sock = None
        device.generation += 1
        device.out = b""

    def _failed(self, device: _Device) -> None:
        """The connection could not be made, or ended: count it, try again later."""
        was = device.state
        if device.sent_at and device.counted:
            self.stats.unanswered += 1
            self.stats.outstanding -= 1
        device.sent_at, device.counted = 0.0, False
        self._close(device)
        if was == _UP:
            self.stats.connected -= 1
            self.stats.disconnects += 1
        else:
            self.stats.connect_failures += 1
            self._tried(device)
        device.state = _IDLE
        if self.stopping:
            return
        self.stats.reconnects += 1
        wait = device.backoff * random.uniform(0.75, 1.25)
        device.backoff = min(BACKOFF_MAX, device.backoff * 2)
        self._at(time.time() + wait, _CONNECT, device)

    def _write(self, device: _Device, data: bytes) -> None:
        sock = device.sock
        assert sock is not None
        if device.out:
            device.out += data
            return
        try:
            written = sock.send(data)
        except BlockingIOError:
            written = 0
        except OSError:
            self._failed(device)
            return
        if written < len(data):
            device.out = data[written:]
            self.epoll.modify(sock.fileno(), _READABLE | _WRITABLE)

    def _flush(self, device: _Device) -> None:
        sock = device.sock
        assert sock is not None
        try:
            written = sock.send(device.out)
        except BlockingIOError:
            return
        except OSError:
            self._failed(device)
            return
        device.out = device.out[written:]
        if not device.out:
            self.epoll.modify(sock.fileno(), _READABLE)

    def _readable(self, device: _Device, now: float) -> None:
        sock, scanner = device.sock, device.scanner
        assert sock is not None and scanner is not None
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._failed(device)
            return
        answers = scanner.feed(data)
        if scanner.garbage:
            self.stats.garbage_bytes += scanner.garbage
            scanner.garbage = 0
        if scanner.others:
            self._commands(device)
            if device.sock is None:
                return
        if not answers:
            return
        if device.sent_at:
            if device.counted:
                self.stats.answered += 1
                self.stats.outstanding -= 1
                self.stats.rtts.append(now - device.sent_at)
            device.sent_at, device.counted = 0.0, False
            if device.state == _REGISTERING:
                self._registered(device)
        else:
            self.stats.late_answers += answers

    def _commands(self, device: _Device) -> None:
        """Frames other than the answer: a full device connection acknowledges what it
        can (the bulk fleet is not expected to get any)."""
        scanner, frames = device.scanner, device.frames
        assert scanner is not None and frames is not None
        if device.full is None:
            device.full = DeviceConnection(protocol=frames.protocol, phy_id=frames.phy_id)
            device.full.data_to_send()  # its greeting was sent with hello
        full = device.full
        kinds = self.stats.unexpected_kinds
        for frame in scanner.others:
            self.stats.unexpected_frames += 1
            for item in full.receive_data(frame, time.time()):
                kind = type(item).__name__
                kinds[kind] = kinds.get(kind, 0) + 1
                command_id = getattr(item, "command_id", None)
                if not isinstance(command_id, str):
                    continue
                try:
                    full.send(CommandAcknowledged(command_id=command_id,
                                                  phy_id=frames.phy_id), time.time())
                except LocalProtocolError:
                    continue
                self.stats.commands_acknowledged += 1
        scanner.others.clear()
        out = full.data_to_send()
        if out:
            self._write(device, out)

    def _beat(self, device: _Device, due: float) -> None:
        """Send the heartbeat due at *due* (monotonic); schedule the next one."""
        frames, scanner = device.frames, device.scanner
        assert frames is not None and scanner is not None
        stats = self.stats
        if device.sent_at:  # the previous one never got its answer
            if device.counted:
                stats.unanswered += 1
                stats.outstanding -= 1
            device.sent_at, device.counted = 0.0, False
        due_wall = due + self.offset
        window = self.window
        if window is not None and window[0] <= due_wall < window[1]:
            device.counted = True
            stats.sent += 1
            stats.outstanding += 1
            stats.lags.append(time.time() - due_wall)
        data, scanner.expected_id = frames.heartbeat()
        device.sent_at = time.perf_counter()
        self._write(device, data)
        if device.sock is not None:
            heapq.heappush(self.timers, (due + self.period, _BEAT, device.slot,
                                         device.generation))

    def _sweep(self, now: float) -> None:
        """Heartbeats and registrations without an answer for REPLY_TIMEOUT."""
        limit = now - REPLY_TIMEOUT
        for device in self.devices:
            if device.sent_at and device.sent_at < limit:
                if device.state == _REGISTERING:
                    self._failed(device)
                    continue
                if device.counted:
                    self.stats.unanswered += 1
                    self.stats.outstanding -= 1
                device.sent_at, device.counted = 0.0, False

    # --- the loop ---------------------------------------------------------------------

    def run(self) -> None:
        stdin = sys.stdin.fileno()
        os.set_blocking(stdin, False)
        self.epoll.register(stdin, _READABLE)
        ramp_started = time.monotonic()
        wall = time.time()
        for n, each in enumerate(self.devices):
            self._at(wall + n / self.rate, _CONNECT, each)
        ready_sent = False
        ramp_deadline = ramp_started + len(self.devices) / self.rate + REPLY_TIMEOUT + 5
        next_sweep = next_progress = ramp_started + 1.0
        result_at: float | None = None
        timers, devices, by_fd = self.timers, self.devices, self.by_fd
        poll, perf, monotonic = self.epoll.poll, time.perf_counter, time.monotonic
        while True:
            now = monotonic()
            wait = min(next_sweep, timers[0][0] + TIMER_SLACK if timers else next_sweep) - now
            for fd, mask in poll(max(0.0, wait)):
                device = by_fd.get(fd)
                if device is None:
                    if fd == stdin and self._control():
                        return
                    continue
                if device.state == _CONNECTING:
                    self._connected(device)
                    continue
                if mask & _WRITABLE and device.out:
                    self._flush(device)
                    if device.sock is None:
                        continue
                if mask & (_READABLE | _CLOSED):
                    self._readable(device, perf())
            now = monotonic()
            while timers and timers[0][0] <= now:
                due, kind, slot, generation = heapq.heappop(timers)
                timed = devices[slot]
                if generation != timed.generation:
                    continue
                if kind == _CONNECT:
                    self._connect(timed)
                elif timed.state == _UP:
                    self._beat(timed, due)
            if now >= next_sweep:
                next_sweep = now + 1.0
                self._sweep(perf())
                if not ready_sent and (self.attempted == len(devices)
                                       or now >= ramp_deadline):
                    ready_sent = True
                    gc.collect()
                    gc.freeze()
                    emit({"type": "ready", "connected": self.stats.connected,
                          "connect_failures": self.stats.connect_failures,
                          "ramp_s": now - ramp_started})
                elif not ready_sent and now >= next_progress:
                    next_progress = now + 1.0
                    emit({"type": "progress", "connected": self.stats.connected})
                if self.window is not None and result_at is None:
                    result_at = self.window[1] - self.offset
                if result_at is not None and now >= result_at and (
                        not self.stats.outstanding or now >= result_at + REPLY_TIMEOUT + 1):
                    result_at = math.inf
                    cpu = os.times()
                    self.stats.cpu_seconds = cpu.user + cpu.system
                    self.stats.connected_at_end = self.stats.connected
                    emit({"type": "result", **asdict(self.stats)})

    def _control(self) -> bool:
        """Read the orchestrator's lines; True when it is time to stop."""
        try:
            data = os.read(sys.stdin.fileno(), 4096)
        except BlockingIOError:
            return False
        if not data:
            return self._stop()
        self.control += data
        while b"\n" in self.control:
            line, _, self.control = self.control.partition(b"\n")
            if self.window is not None:
                return self._stop()
            window = json.loads(line)
            self.window = (float(window["from"]), float(window["to"]))
        return False

    def _stop(self) -> bool:
        self.stopping = True
        for device in self.devices:
            self._close(device)
        return True


def emit(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--source", default="127.0.0.1",
                        help="loopback source address of every connection")
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--period", type=float, default=11.0)
    parser.add_argument("--epoch", type=float, required=True)
    parser.add_argument("--ramp-rate", type=float, default=250.0)
    parser.add_argument("--ap3000-every", type=int, default=2)
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # Only young generations: the devices live for the whole run (and are frozen
    # out of the collector once connected).
    gc.set_threshold(700, 10, 1 << 30)
    Fleet(host=args.host, port=args.port, source=args.source, first=args.first,
          count=args.count, period=args.period, epoch=args.epoch, ramp_rate=args.ramp_rate,
          ap3000_every=args.ap3000_every).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
