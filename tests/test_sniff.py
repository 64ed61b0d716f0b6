"""``bkvcodec sniff``: captures made here from real exchanges (tests/sniff_capture.py),
written as pcap and pcapng with scapy's writers, decoded back frame by frame."""
from __future__ import annotations

import datetime
import importlib.util
import io
import itertools
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bkvcodec import Direction, ProtocolFamily
from bkvcodec._cli import decode_text, main
from bkvcodec._sniff import Segment, lines, tcp_chunks

from .sniff_capture import (
    GARBAGE,
    SERVER_PORT,
    Connection,
    connection,
    default_connections,
    exchange,
    interleaved,
    write_capture,
)

# The capture tests need the capture reader (bkvcodec[sniff], in the dev extra); the
# text inputs, the message without it and the segmentation property do not.
needs_scapy = pytest.mark.skipif(importlib.util.find_spec("scapy") is None,
                                 reason="needs scapy (pip install -e '.[sniff]')")

ROOT = Path(__file__).resolve().parent.parent


def split_frames(data: bytes) -> list[bytes]:
    """*data*, whole frames end to end, cut at the frames' length fields."""
    out = []
    pos = 0
    while pos < len(data):
        if data[pos:pos + 2] in (b"\xfc\xfe", b"\xfc\xff"):
            size = int.from_bytes(data[pos + 2:pos + 4], "big") + 4
        elif data[pos:pos + 3] == b"DNY":
            size = int.from_bytes(data[pos + 3:pos + 5], "little") + 5
        elif data[pos:pos + 2] == b"89":
            size = 20
        else:
            raise AssertionError(f"no frame at {pos}: {data[pos:pos + 8].hex()}")
        out.append(data[pos:pos + size])
        pos += size
    return out


def expected_frames(conn: Connection, up: bool) -> list[bytes]:
    """The frames *conn* carries one way: its writes without the garbage and the
    truncated frame at the end."""
    direction = Direction.UP if up else Direction.DOWN
    writes = [data for d, data in conn.wire if d is direction and data != GARBAGE]
    if up and conn.truncated:
        assert writes[-1] == conn.truncated
        writes.pop()
    return split_frames(b"".join(writes))


def label(endpoint: tuple[str, int]) -> str:
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_connection(out: list[dict[str, Any]], stream: int, conn: Connection) -> None:
    """Every frame of *conn* once, in order, right direction and fields; the garbage
    and the truncated frame reported; every byte of both directions accounted for."""
    for up in (True, False):
        name = "uplink" if up else "downlink"
        data = conn.uplink if up else conn.downlink
        mine = [line for line in out if line["stream"] == stream and line["direction"] == name]
        assert mine, (stream, name)
        src, dst = (conn.device, conn.server) if up else (conn.server, conn.device)
        assert {(line["src"], line["dst"]) for line in mine} == {(label(src), label(dst))}
        frames = [line for line in mine if line["kind"] == "frame"]
        wanted = expected_frames(conn, up)
        got = [data[line["offset"]:line["offset"] + line["length"]] for line in frames]
        assert got == wanted
        word = "up " if up else "down "
        assert [line["frame"] for line in frames] == [decode_text(word + f.hex()) for f in wanted]
        assert {line["protocol"] for line in frames} == {conn.protocol.value}
        # Every byte once: frames, garbage and the partial frame tile the stream.
        spans = sorted((line["offset"], line["offset"] + line["length"]) for line in mine
                       if line["kind"] in ("frame", "garbage", "partial"))
        assert [s for s, _ in spans] == [0, *(e for _, e in spans[:-1])]
        assert spans[-1][1] == len(data)
        garbage = [line["hex"] for line in mine if line["kind"] == "garbage"]
        partial = [line["hex"] for line in mine if line["kind"] == "partial"]
        has_garbage = up and GARBAGE in data
        assert garbage == ([GARBAGE.hex()] if has_garbage else [])
        assert partial == ([conn.truncated.hex()] if up and conn.truncated else [])
        assert not [line for line in mine if line["kind"] not in ("frame", "garbage", "partial")]
        epochs = [line["epoch"] for line in mine]
        assert epochs == sorted(epochs)
        for line in mine:
            moment = datetime.datetime.fromisoformat(line["time"])
            assert moment.tzinfo is not None and line["time"].endswith("Z")
            assert abs(moment.timestamp() - line["epoch"]) < 1e-5


def run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]], str]:
    status = main(["sniff", *args])
    captured = capsys.readouterr()
    return status, [json.loads(line) for line in captured.out.splitlines()], captured.err


@pytest.fixture(scope="module")
def connections() -> list[Connection]:
    return default_connections()


@needs_scapy
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("ports", [[], ["--server-port", str(SERVER_PORT)]],
                         ids=["heuristic", "server-port"])
def test_capture(tmp_path: Path, fmt: str, ports: list[str], connections: list[Connection],
                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"c.{fmt}"
    write_capture(path, connections, pcapng=fmt == "pcapng")
    assert path.read_bytes()[:4] == (b"\x0a\x0d\x0d\x0a" if fmt == "pcapng"
                                     else b"\xd4\xc3\xb2\xa1")
    status, out, err = run(str(path), *ports, capsys=capsys)
    assert (status, err) == (0, "")
    for stream, conn in enumerate(connections):
        check_connection(out, stream, conn)
    epochs = [line["epoch"] for line in out]
    assert epochs == sorted(epochs)


@needs_scapy
def test_capture_output_file_and_subprocess(tmp_path: Path, connections: list[Connection]) -> None:
    path = tmp_path / "c.pcapng"
    write_capture(path, connections, pcapng=True)
    assert main(["sniff", str(path), "--output", str(tmp_path / "out.jsonl")]) == 0
    in_process = (tmp_path / "out.jsonl").read_text()
    done = subprocess.run([sys.executable, "-m", "bkvcodec", "sniff", "-"],
                          input=path.read_bytes(), capture_output=True, check=False, cwd=ROOT)
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.decode() == in_process
    check_connection([json.loads(line) for line in in_process.splitlines()], 0, connections[0])


def _relinked(packets: list[Any], kind: str) -> list[Any]:
    from scapy.layers.inet import IP
    from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Loopback

    out = []
    for packet in packets:
        ip = packet.payload
        v4 = isinstance(ip, IP)
        if kind == "sll":
            new = CookedLinux(proto=0x0800 if v4 else 0x86DD) / ip
        elif kind == "sll2":
            new = CookedLinuxV2(proto=0x0800 if v4 else 0x86DD) / ip
        elif kind == "null":
            new = Loopback(type=2 if v4 else 24) / ip
        else:
            new = ip.copy()
        new.time = packet.time
        out.append(new)
    return out


@needs_scapy
@pytest.mark.parametrize(("kind", "linktype"), [("sll", 113), ("sll2", 276), ("null", 0),
                                                ("raw", 101)])
def test_link_types(tmp_path: Path, kind: str, linktype: int, connections: list[Connection],
                    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from scapy.utils import wrpcap

    path = tmp_path / f"{kind}.pcap"
    # The writer warns that IPv4 and IPv6 packets differ in link type (not for DLT_RAW).
    monkeypatch.setattr(logging.getLogger("scapy.runtime"), "disabled", True)
    wrpcap(str(path), _relinked(interleaved(connections), kind), linktype=linktype)
    monkeypatch.undo()
    assert int.from_bytes(path.read_bytes()[20:24], "little") == linktype
    status, out, err = run(str(path), capsys=capsys)
    assert (status, err) == (0, "")
    for stream, conn in enumerate(connections):
        check_connection(out, stream, conn)


@needs_scapy
def test_protocol_named(tmp_path: Path, connections: list[Connection],
                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.pcap"
    write_capture(path, connections[1:], pcapng=False)
    status, out, _ = run(str(path), "--protocol", "ap3000", capsys=capsys)
    assert status == 0
    check_connection(out, 0, connections[1])
    with pytest.raises(SystemExit) as exit_:
        main(["sniff", str(path), "--protocol", "dny"])
    assert exit_.value.code == 2
    assert "invalid choice: 'dny'" in capsys.readouterr().err


@needs_scapy
def test_heuristic_without_handshake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A capture that starts after the handshake, on a port nobody named: the frames
    only a device sends tell which side is the device."""
    from scapy.utils import wrpcap

    conn = connection(ProtocolFamily.AP3000, ("192.168.1.9", 9000), ("192.168.1.1", 60000),
                      0.0, seed=5)
    conn.segments = [s for s in conn.segments if s.payload]
    path = tmp_path / "mid.pcap"
    wrpcap(str(path), interleaved([conn]))
    status, out, _ = run(str(path), capsys=capsys)
    assert status == 0
    check_connection(out, 0, conn)


@needs_scapy
def test_segment_missing_from_the_capture(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A segment the capture lost (the server acknowledged it): a gap, reported when
    the acknowledgement shows it will not come; the frame it cut is partial, the
    frames after it decode."""
    from scapy.utils import wrpcap

    conn = connection(ProtocolFamily.BKV, ("10.0.0.7", 50999), ("10.0.0.1", SERVER_PORT),
                      0.0, seed=3)
    frames = expected_frames(conn, True)
    # The segment that starts the second uplink write's second piece (once in the file).
    seqs = [s.seq for s in conn.segments if s.up and s.payload]
    index = next(i for i, s in enumerate(conn.segments) if s.up and s.payload
                 and seqs.count(s.seq) == 1 and 1000 + len(frames[0]) < s.seq
                 and s.seq + len(s.payload) < 1000 + len(conn.uplink) - len(frames[-1]))
    lost = conn.segments.pop(index)
    path = tmp_path / "lost.pcap"
    wrpcap(str(path), interleaved([conn]))
    status, out, _ = run(str(path), capsys=capsys)
    assert status == 0
    up = [line for line in out if line["direction"] == "uplink"]
    [gap] = [line for line in up if line["kind"] == "gap"]
    assert (gap["offset"], gap["length"]) == (lost.seq - 1000, len(lost.payload))
    assert gap["epoch"] < max(line["epoch"] for line in out) - 0.005  # not held to the end
    spans = sorted((line["offset"], line["offset"] + line["length"]) for line in up)
    assert [s for s, _ in spans] == [0, *(e for _, e in spans[:-1])]
    assert spans[-1][1] == len(conn.uplink)
    got = [conn.uplink[line["offset"]:line["offset"] + line["length"]] for line in up
           if line["kind"] == "frame"]
    assert got[0] == frames[0] and got[-1] == frames[-1]
    assert set(got) < set(frames)


def test_hex_lines(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    wire = exchange(ProtocolFamily.BKV)
    up = [data for d, data in wire if d is Direction.UP]
    down = [data for d, data in wire if d is Direction.DOWN]
    bad = bytearray(up[1])
    bad[-3] ^= 0xFF  # the checksum
    text = "\n".join([
        "# a comment, then TIME DIRECTION HEX",
        f"1729407600.5 up {up[0][:7].hex()}",
        f"1729407600.6 up {up[0][7:].hex()} {GARBAGE.hex()}",
        f"2024-10-20T07:00:01Z down {down[0].hex()}",
        f"down {down[1].hex()}",
        f"up {bytes(bad).hex()}",
        f"up {up[2].hex()}{up[1][:9].hex()}",
        "",
    ])
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    status, out, err = run("-", capsys=capsys)
    assert (status, err) == (0, "")
    kinds = [(line["direction"], line["kind"]) for line in out]
    assert kinds == [("uplink", "frame"), ("downlink", "frame"), ("downlink", "frame"),
                     ("uplink", "garbage"), ("uplink", "error"), ("uplink", "frame"),
                     ("uplink", "partial")]
    assert out[0]["frame"] == decode_text(up[0].hex())
    assert out[0]["epoch"] == 1729407600.6
    assert out[1]["time"] == "2024-10-20T07:00:01.000000Z"
    assert out[2]["time"] is None and out[2]["epoch"] is None  # the line has no time
    assert out[3]["hex"] == GARBAGE.hex()
    assert out[4]["error"]["error"] == "checksum_mismatch"
    assert out[4]["hex"] == bytes(bad).hex()
    assert out[5]["frame"] == decode_text(up[2].hex())
    assert out[6]["hex"] == up[1][:9].hex()
    assert out[6]["offset"] == len(up[0]) + len(GARBAGE) + len(bad) + len(up[2])


def test_json_lines_and_the_frame_log(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The simple format, and rows of the reference server's frame log (cmd_logs)."""
    wire = exchange(ProtocolFamily.AP3000)
    rows = [json.dumps({"id": n, "phy_id": "04A228CD", "direction": d.name, "cmd": "x",
                        "hex": data.hex(), "created_at": 1729407600 + n})
            for n, (d, data) in enumerate(wire)]
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(rows) + "\n")
    status, out, _ = run(str(path), capsys=capsys)
    assert status == 0
    assert all(line["kind"] == "frame" for line in out)
    want = [(d, f) for d, data in wire for f in split_frames(data)]
    assert [(line["direction"], line["frame"]) for line in out] == [
        ("uplink" if d is Direction.UP else "downlink",
         decode_text(("up " if d is Direction.UP else "down ") + f.hex())) for d, f in want]
    assert out[-1]["epoch"] == 1729407600 + len(wire) - 1

    simple = [{"t": "2024-10-20T07:00:00.250Z", "dir": "down", "hex": wire[2][1].hex()},
              {"hex": wire[1][1].hex()}]
    path.write_text("".join(json.dumps(row) + "\n" for row in simple))
    status, out, _ = run(str(path), capsys=capsys)
    assert status == 0
    assert out[0]["direction"] == "downlink" and out[0]["epoch"] == 1729407600.25
    assert out[0]["frame"]["direction"] == "down"
    # No direction given: AP3000 frames do not say theirs (decoded as uplink).
    assert out[1]["direction"] is None
    assert out[1]["frame"] == decode_text(wire[1][1].hex())


@pytest.mark.parametrize(("content", "message"), [
    (b"up 0102zz\n", "line 1: not a hex string"),
    (b'{"hex": "00"}\n{"dir": 3, "hex": "00"}\n', "line 2: not a direction"),
    (b'{"hex": "00"}\nnot json\n', "line 2: not JSON"),
    (b"\xff\xfe\x00garbage", "not a pcap or pcapng capture, nor hex or JSON lines"),
    pytest.param(b"\xd4\xc3\xb2\xa1\x02\x00", "not a readable pcap/pcapng capture",
                 marks=needs_scapy),
    pytest.param(b"\x0a\x0d\x0d\x0a\x00\x00", "not a readable pcap/pcapng capture",
                 marks=needs_scapy),
])
def test_unreadable_input(tmp_path: Path, content: bytes, message: str,
                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    status, _out, err = run(str(path), capsys=capsys)
    assert status == 1
    assert message in err and "Traceback" not in err
    assert err.startswith("bkvcodec sniff: ")


@needs_scapy
def test_damaged_capture(tmp_path: Path, connections: list[Connection],
                         capsys: pytest.CaptureFixture[str]) -> None:
    """A capture cut inside a record: what was read is decoded, then exit 1."""
    path = tmp_path / "c.pcap"
    write_capture(path, connections, pcapng=False)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 2 // 3])
    status, out, err = run(str(path), capsys=capsys)
    assert status == 1
    assert "damaged capture, read in part" in err and "Traceback" not in err
    assert [line for line in out if line["kind"] == "frame"]


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(str(tmp_path / "nothing.pcap"), capsys=capsys)
    assert status == 2
    assert "cannot read" in err


def test_without_scapy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.pcap"  # a pcap header (Ethernet), no packets
    path.write_bytes(bytes.fromhex("d4c3b2a102000400000000000000000000000400" "01000000"))
    monkeypatch.setitem(sys.modules, "scapy.error", None)
    status, out, err = run(str(path), capsys=capsys)
    assert (status, out) == (2, [])
    assert "pip install 'bkvcodec[sniff]'" in err and "Traceback" not in err


def test_import_stays_light() -> None:
    code = ("import sys, bkvcodec, bkvcodec._cli; "
            "print(any(m.split('.')[0] == 'scapy' for m in sys.modules), "
            "'bkvcodec._sniff' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    assert done.stdout.split() == ["False", "False"]


# --- the property: how the stream was cut into segments never changes the lines ----------

DEVICE, SERVER = ("10.1.0.2", 41000), ("10.1.0.1", SERVER_PORT)
BKV_WIRE = exchange(ProtocolFamily.BKV)
UP_FRAMES = split_frames(b"".join(d for w, d in BKV_WIRE if w is Direction.UP))
STREAMS = {  # garbage after the first frame, the start of a frame at the end
    True: UP_FRAMES[0] + GARBAGE + b"".join(UP_FRAMES[1:]) + b"\xfc\xfe\x00",
    False: b"".join(d for w, d in BKV_WIRE if w is Direction.DOWN),
}


def _segments(up: bool, cuts: list[int], resend: list[int], swaps: list[int],
              overlaps: tuple[tuple[int, int, int], ...] = ()) -> list[Segment]:
    data = STREAMS[up]
    src, dst = (DEVICE, SERVER) if up else (SERVER, DEVICE)
    isn = 4_294_967_000 if up else 7  # the upload wraps around 2**32
    bounds = sorted({0, len(data), *(c % len(data) for c in cuts)})
    # No ACK flags: the directions are mixed at random, acknowledgements would lie.
    out = [Segment(0.0, src, dst, (isn + a + 1) % 2**32, False, False, False, False,
                   data[a:b]) for a, b in itertools.pairwise(bounds)]
    for index in resend:
        out.insert(index % (len(out) + 1), out[index % len(out)])
    for where, start, size in overlaps:  # retransmitted differently: across segments
        a = start % len(data)
        out.insert(where % (len(out) + 1), Segment(0.0, src, dst, (isn + a + 1) % 2**32, False,
                                                   False, False, False, data[a:a + size]))
    for index in swaps:
        i = index % len(out)
        if i + 1 < len(out):
            out[i], out[i + 1] = out[i + 1], out[i]
    syn = Segment(0.0, src, dst, isn, True, False, False, False, b"")
    fin = Segment(0.0, src, dst, (isn + len(data) + 1) % 2**32, False, False, True, False, b"")
    return [syn, *out, fin]


def _lines(segments: list[Segment]) -> list[tuple[object, ...]]:
    chunks, conns = tcp_chunks(iter(segments))
    return [(line["direction"], line["kind"], line["offset"], line.get("length"),
             json.dumps(line.get("frame") or line.get("hex"), sort_keys=True))
            for line in lines(chunks, conns)]


def _by_side(result: list[tuple[object, ...]]) -> dict[object, list[tuple[object, ...]]]:
    sides: dict[object, list[tuple[object, ...]]] = {}
    for line in result:
        sides.setdefault(line[0], []).append(line)
    return sides


BASELINE = _by_side(_lines(_segments(True, [], [], []) + _segments(False, [], [], [])))


def test_baseline() -> None:
    up = [line[1] for line in BASELINE["uplink"]]
    assert up == ["frame", "garbage", *["frame"] * (len(UP_FRAMES) - 1), "partial"]
    assert [line[1] for line in BASELINE["downlink"]] == ["frame"] * len(
        split_frames(STREAMS[False]))


@settings(max_examples=60, deadline=None)
@given(up_cuts=st.lists(st.integers(0, 10_000), max_size=30),
       down_cuts=st.lists(st.integers(0, 10_000), max_size=30),
       resend=st.lists(st.integers(0, 100), max_size=4),
       swaps=st.lists(st.integers(0, 100), max_size=4),
       overlaps=st.lists(st.tuples(st.integers(0, 100), st.integers(0, 10_000),
                                   st.integers(1, 80)), max_size=3),
       interleave=st.randoms(use_true_random=False))
def test_segmentation_never_changes_the_frames(up_cuts: list[int], down_cuts: list[int],
                                               resend: list[int], swaps: list[int],
                                               overlaps: list[tuple[int, int, int]],
                                               interleave: Any) -> None:
    """Split anywhere, resent whole or across segment bounds, out of order, both
    directions mixed: the same lines."""
    up = _segments(True, up_cuts, resend, swaps, tuple(overlaps))
    down = _segments(False, down_cuts, resend, swaps)
    merged = [up[0], down[0]]  # the handshake first, then both ways mixed at random
    rest_up, rest_down = up[1:], down[1:]
    while rest_up or rest_down:
        pick = rest_up if rest_up and (not rest_down or interleave.random() < 0.5) else rest_down
        merged.append(pick.pop(0))
    assert _by_side(_lines(merged)) == BASELINE


def test_many_early_segments_are_delivered_in_order_across_the_wrap() -> None:
    # 5,000 segments arrive last-first behind a hole at the start, their sequence
    # numbers wrapping past 2**32; filling the hole releases them all, in order, once.
    from bkvcodec._sniff import _Reassembler

    reassembler = _Reassembler()
    isn = 2**32 - 20_000
    reassembler.segment(isn, True, False, b"")
    count = 5_000
    for index in range(count, 0, -1):
        seq = (isn + 1 + index * 10) % 2**32
        assert [] == reassembler.segment(seq, False, False, index.to_bytes(2, "big") * 5)
    released = reassembler.segment(isn + 1, False, False, b"\xff" * 10)

    expected = b"\xff" * 10 + b"".join(i.to_bytes(2, "big") * 5 for i in range(1, count + 1))
    assert expected == b"".join(data for _, data in released)
    assert all(gap == 0 for gap, _ in released)
    assert [] == reassembler.held
