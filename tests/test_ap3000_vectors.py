"""Every golden AP3000 vector through the library API: decode, expected fields, encode
back to the same bytes, the reference grammar, the JSON form; every malformed input
one-shot and in the stream decoder; the modem's non-frame items (ap3000.md §10)."""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from bkvcodec import (
    Direction,
    FrameDecoder,
    FrameRejected,
    IncompleteFrame,
    LocalProtocolError,
    ProtocolFamily,
    RemoteProtocolError,
    frame_from_json,
    frame_to_json,
)
from bkvcodec._ap3000.codec import reference_decode
from bkvcodec._cli import decode_text
from bkvcodec._jsonform import error_to_json
from bkvcodec.ap3000 import (
    AP3000_REQUIRED_REPLIES,
    Ap3000CardSwipe,
    Ap3000FirmwarePacketSlave,
    Ap3000FirmwareVerification,
    Ap3000Frame,
    Ap3000Heartbeat,
    Ap3000HeartbeatReply,
    Ap3000HostHeartbeat,
    Ap3000LegacyHeartbeat,
    Ap3000OfflineOrder,
    Ap3000PortStatus,
    Ap3000Register,
    Ap3000SlaveVersions,
    Ap3000StopReason,
    IccidAnnouncement,
    LinkKeepAlive,
    card_id_decimal,
    format_phy_id,
    make_physical_id,
    parse_phy_id,
)
from bkvcodec.bkv import BcdTime
from bkvcodec.errors import (
    ChecksumMismatch,
    Incomplete,
    LengthTooLarge,
    LengthTooSmall,
    NoHeader,
    PayloadTooShort,
    TrailingBytes,
)

from .helpers import contains, load_vectors, vector_params

VECTORS = load_vectors("ap3000")
BY_ID = {case["id"]: case for case in VECTORS["vectors"]}


def _decode(case: dict[str, Any]) -> tuple[bytes, Direction, Ap3000Frame]:
    data = bytes.fromhex(case["hex"])
    direction = Direction(case["direction"])
    return data, direction, Ap3000Frame.decode(data, direction)


@pytest.mark.parametrize("case", vector_params("ap3000", "vectors"))
def test_vector_decodes_to_expected_fields(case: dict[str, Any]) -> None:
    data, _, frame = _decode(case)

    assert contains(frame_to_json(frame, data), case["expect"]) is None


@pytest.mark.parametrize("case", vector_params("ap3000", "vectors"))
def test_vector_physical_id_parts(case: dict[str, Any]) -> None:
    _, _, frame = _decode(case)
    expect = case["expect"]

    assert expect["physical_id"] == frame.phy_id
    assert expect["device_type_code"] == frame.device_type_code
    assert expect["device_number"] == frame.device_number
    assert frame.physical_id == make_physical_id(frame.device_type_code, frame.device_number)


@pytest.mark.parametrize("case", vector_params("ap3000", "vectors"))
def test_vector_encodes_to_the_same_bytes(case: dict[str, Any]) -> None:
    data, direction, frame = _decode(case)

    assert data == frame.encode()
    assert frame == Ap3000Frame.decode(frame.encode(), direction)
    assert direction is frame.direction


@pytest.mark.parametrize("case", vector_params("ap3000", "vectors"))
def test_vector_reference_grammar_agrees(case: dict[str, Any]) -> None:
    data, direction, frame = _decode(case)

    assert frame == reference_decode(data, direction)


@pytest.mark.parametrize("case", vector_params("ap3000", "vectors"))
def test_vector_json_form_encodes_back(case: dict[str, Any]) -> None:
    data, _, frame = _decode(case)
    text = json.dumps(frame_to_json(frame, data))

    assert data == frame_from_json(json.loads(text)).encode()


@pytest.mark.parametrize("case", vector_params("ap3000", "vectors"))
def test_vector_in_the_stream_decoder(case: dict[str, Any]) -> None:
    data, direction, frame = _decode(case)
    decoder = FrameDecoder(direction=direction)

    assert [frame] == decoder.feed(data)
    assert ProtocolFamily.AP3000 is decoder.protocol


# --- malformed inputs (ap3000.md §2.7) -------------------------------------------------------

_ONE_SHOT_ERRORS = {
    "no_header": NoHeader, "length_too_small": LengthTooSmall,
    "length_too_large": LengthTooLarge, "incomplete": Incomplete,
    "checksum_mismatch": ChecksumMismatch, "payload_too_short": PayloadTooShort,
}
#: The numbers of ap3000.md's malformed vectors under the names of the JSON form, which
#: are the same for both protocols (docs/errors.rst, "Errors as JSON").
_JSON_NAMES = {"declared_checksum": "actual_checksum", "computed_checksum": "expected_checksum",
               "declared_total": "needed", "available": "available",
               "declared_length": "length", "max_length": "limit", "min_length": "minimum",
               "command": "command", "frame_valid": "frame_valid", "direction": "direction"}
MALFORMED_ONE_SHOT = [p for p in vector_params("ap3000", "malformed")
                      if p.values[0]["expect"]["error"] != "stream"]


@pytest.mark.parametrize("case", MALFORMED_ONE_SHOT)
def test_malformed_one_shot(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    expect = case["expect"]
    direction = Direction(expect.get("direction", "up"))

    with pytest.raises(RemoteProtocolError) as info:
        Ap3000Frame.decode(data, direction)

    assert isinstance(info.value, _ONE_SHOT_ERRORS[expect["error"]])
    answer = error_to_json(info.value, data, direction)
    assert contains(answer, {_JSON_NAMES.get(k, k): v for k, v in expect.items()
                             if k in _JSON_NAMES or k == "error"}) is None
    assert answer == decode_text(f"{direction.value} {case['hex']}")


@pytest.mark.parametrize("case", MALFORMED_ONE_SHOT)
def test_malformed_through_the_cli(case: dict[str, Any]) -> None:
    assert case["expect"]["error"] == decode_text(case["hex"])["error"]


def _stream_outcome(case_id: str) -> tuple[list[object], FrameDecoder]:
    decoder = FrameDecoder(protocol=ProtocolFamily.AP3000)
    return decoder.feed(bytes.fromhex(next(
        c["hex"] for c in VECTORS["malformed"] if c["id"] == case_id))), decoder


def test_stream_checksum_mismatch_drops_one_byte_and_resyncs() -> None:
    bad = bytes.fromhex("444E590A00F36CA204A0C096010604")
    good = bytes.fromhex(BY_ID["doc-21-up-heartbeat"]["hex"])
    decoder = FrameDecoder(protocol=ProtocolFamily.AP3000)

    items = decoder.feed(bad + good)

    assert [FrameRejected(error=ChecksumMismatch(1265, 1030), data=bad),
            Ap3000Frame.decode(good, Direction.UP)] == items
    assert len(bad) - 1 == decoder.statistics().skipped_bytes


def test_stream_length_too_large_is_refused_before_buffering() -> None:
    items, decoder = _stream_outcome("mal-04-length-too-large")

    assert [FrameRejected(error=LengthTooLarge(4095, 1024), data=bytes.fromhex("444E59FF0F"))
            ] == items
    assert 0 == decoder.statistics().pending_bytes


def test_stream_length_too_small() -> None:
    items, _ = _stream_outcome("mal-06-length-too-small")

    assert [FrameRejected(error=LengthTooSmall(5, 9), data=bytes.fromhex("444E590500"))] == items


def test_stream_truncated_frame_waits() -> None:
    items, decoder = _stream_outcome("mal-03-truncated-real")

    assert [] == items
    assert 16 == decoder.statistics().pending_bytes
    assert [IncompleteFrame(data=bytes.fromhex("444E590D00CD28A20479082263EE5C68"))] == (
        decoder.end())


def test_stream_no_header_is_skipped() -> None:
    items, decoder = _stream_outcome("mal-05-no-header")

    assert [] == items
    assert 8 == decoder.statistics().skipped_bytes
    assert 0 == decoder.statistics().pending_bytes


def test_stream_payload_error_rejects_the_whole_frame() -> None:
    data = bytes.fromhex("444E590E00A18601060101218E08100100F102")
    good = bytes.fromhex(BY_ID["doc-21-up-heartbeat"]["hex"])

    items = FrameDecoder().feed(data + good)

    assert [FrameRejected(error=PayloadTooShort("heartbeat", 21, 5), data=data),
            Ap3000Frame.decode(good, Direction.UP)] == items


@pytest.mark.parametrize("case", [p for p in vector_params("ap3000", "malformed")
                                  if p.values[0]["expect"]["error"] == "stream"])
def test_malformed_stream_case(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    expect = case["expect"]
    decoder = FrameDecoder()

    items = decoder.feed(data)

    assert [Ap3000Frame.decode(bytes.fromhex(h), Direction.UP) for h in expect["frames"]] == items
    stats = decoder.statistics()
    assert expect["discarded_prefix"] == stats.skipped_bytes
    assert expect["buffered_remainder"] == stats.pending_bytes


@pytest.mark.parametrize("case", vector_params("ap3000", "malformed"))
def test_malformed_byte_by_byte_gives_the_same_items(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    whole = FrameDecoder(protocol=ProtocolFamily.AP3000)
    split = FrameDecoder(protocol=ProtocolFamily.AP3000)

    expected = whole.feed(data)
    actual = [item for i in range(len(data)) for item in split.feed(data[i:i + 1])]

    assert expected == actual
    assert whole.statistics() == split.statistics()


def test_trailing_bytes() -> None:
    data = bytes.fromhex(BY_ID["doc-21-up-heartbeat"]["hex"])

    with pytest.raises(TrailingBytes) as info:
        Ap3000Frame.decode(data + b"\0", Direction.UP)

    assert (len(data), len(data) + 1) == (info.value.frame_length, info.value.available)


@pytest.mark.parametrize("data", [b"", b"D", b"DN", b"DNY", b"DNY\x09"])
def test_short_prefixes_are_incomplete(data: bytes) -> None:
    with pytest.raises(Incomplete):
        Ap3000Frame.decode(data, Direction.UP)


# --- non-frame items (ap3000.md §2.1) ---------------------------------------------------------

@pytest.mark.parametrize("case", vector_params("ap3000", "non_frame"))
def test_non_frame_item_through_the_stream_decoder(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    expect = case["expect"]
    decoder = FrameDecoder(protocol=ProtocolFamily.AP3000)

    items = decoder.feed(data)

    expected = (LinkKeepAlive() if expect["kind"] == "link"
                else IccidAnnouncement(iccid=expect["value"]))
    assert [expected] == items
    assert data == expected.encode()
    assert contains(frame_to_json(expected), expect) is None
    assert contains(decode_text(case["hex"]), expect) is None
    assert 1 == decoder.statistics().non_frame_items


def test_iccid_then_frames_as_a_device_connects() -> None:
    iccid = bytes.fromhex(VECTORS["non_frame"][0]["hex"])
    frames = [bytes.fromhex(BY_ID[i]["hex"]) for i in
              ("doc-20-up-register", "doc-22-up-time-request", "doc-21-up-heartbeat")]
    decoder = FrameDecoder()

    items = decoder.feed(iccid + b"".join(frames) + b"link")

    assert [IccidAnnouncement(iccid="898604D9162390488297"),
            *(Ap3000Frame.decode(f, Direction.UP) for f in frames), LinkKeepAlive()] == items


# --- device captures, values and helpers -------------------------------------------------------

#: Frames from device logs quoted in taoyao-code/iot-zinx (tests and docs), beyond the
#: vector file: their bytes pass the length and checksum rules.
CAPTURES = {
    "444e591d00f36ca2047d01018002260902000000000000000000000a00315d00d704": Ap3000LegacyHeartbeat,
    "444e591d00cd28a2048008018002460902000000000000000000001e00315e00ac04": Ap3000LegacyHeartbeat,
    "444e595000f36ca2040300116b0202dd888d681c0738393836303444393136323339303438383239375500003836"
    "3434353230363937363234373256312e302e30302e3030303030302e303631390000000000a711":
        Ap3000HostHeartbeat,
    "444e590f00cd28a2040108208002021e31069703": Ap3000Register,
    "444e591200f36ca2040400350131008002f36ca204f405": Ap3000SlaveVersions,
}


@pytest.mark.parametrize("hex_text", list(CAPTURES))
def test_device_captures(hex_text: str) -> None:
    data = bytes.fromhex(hex_text)

    frame = Ap3000Frame.decode(data, Direction.UP)

    assert isinstance(frame.message, CAPTURES[hex_text])
    assert data == frame.encode()
    assert frame == reference_decode(data, Direction.UP)


def test_capture_fields() -> None:
    legacy = Ap3000Frame.decode(bytes.fromhex(list(CAPTURES)[1]), Direction.UP).message
    host = Ap3000Frame.decode(bytes.fromhex(list(CAPTURES)[2]), Direction.UP).message
    slaves = Ap3000Frame.decode(bytes.fromhex(list(CAPTURES)[4]), Direction.UP).message

    assert isinstance(legacy, Ap3000LegacyHeartbeat) and isinstance(host, Ap3000HostHeartbeat)
    assert (640, 2374, (0, 0), 30, 0x31, 0x5E - 65) == (
        legacy.firmware_version, legacy.voltage_0p1v, legacy.port_status, legacy.virtual_id,
        legacy.device_type, (legacy.env_temp_raw or 0) - 65)
    assert ("898604D9162390488297", "864452069762472", "V1.0.00.000000.0619") == (
        host.iccid, host.imei, host.module_version)
    assert isinstance(slaves, Ap3000SlaveVersions)
    assert "04A26CF3" == slaves.entries[0].phy_id


def test_phy_id_helpers() -> None:
    assert "04CEAA40" == format_phy_id(make_physical_id(4, 13544000))
    assert 0x04D728D6 == parse_phy_id("04d728d6")
    assert 14100694 == parse_phy_id("04D728D6") & 0xFFFFFF
    with pytest.raises(ValueError):
        parse_phy_id("40aace0")


def test_card_numbers() -> None:
    _, _, frame = _decode(BY_ID["doc-02-up-card-swipe"])

    assert isinstance(frame.message, Ap3000CardSwipe)
    assert 2056062429 == frame.message.card_id_decimal == card_id_decimal(bytes.fromhex(
        "7A8D05DD"))


def test_offline_order_number() -> None:
    order_no = bytes.fromhex("202410201400357A8D05DD1354400030")

    order = Ap3000OfflineOrder.parse(order_no)

    assert Ap3000OfflineOrder(started_at=BcdTime(bytes.fromhex("20241020140035")),
                              device_number=13544000, port=0,
                              card_id=bytes.fromhex("7A8D05DD")) == order
    assert order_no == order.to_bytes()
    code = Ap3000OfflineOrder(started_at=order.started_at, device_number=1, port=1,
                              verification_code="123456")
    assert code == Ap3000OfflineOrder.parse(code.to_bytes())
    with pytest.raises(ValueError):
        Ap3000OfflineOrder.parse(b"THD1729407600001")


def test_value_sets() -> None:
    heartbeat = Ap3000Frame.decode(bytes.fromhex(BY_ID["con-21-up-heartbeat-10port"]["hex"]),
                                   Direction.UP).message

    assert isinstance(heartbeat, Ap3000Heartbeat)
    statuses = [Ap3000PortStatus(code) for code in heartbeat.port_status]
    assert [False, False, False, False, False, False, True, True, False, False] == [
        s.is_fault for s in statuses]
    assert Ap3000StopReason.SERVER_STOP == 7


def test_firmware_verification_packet() -> None:
    image = bytes(range(256)) * 2 + bytes(128)
    check = Ap3000FirmwareVerification.for_image(image, device_type=0x21, firmware_version=205)
    packet = Ap3000FirmwarePacketSlave(total_packets=5, packet_no=5, firmware=check.encode())

    frame = Ap3000Frame.decode(Ap3000Frame(physical_id=1, message=packet).encode(),
                               Direction.DOWN)

    assert isinstance(frame.message, Ap3000FirmwarePacketSlave)
    assert check == frame.message.verification
    assert {"image_sum": sum(image), "device_type": 0x21, "firmware_version": 205} == (
        frame_to_json(frame)["fields"]["verification"])  # type: ignore[index]


def test_reply_keeps_ids_and_checks_the_pairing() -> None:
    _, _, frame = _decode(BY_ID["doc-21-up-heartbeat"])

    reply = frame.reply(Ap3000HeartbeatReply())

    assert bytes.fromhex(BY_ID["doc-21-down-heartbeat-reply"]["hex"]) == reply.encode()
    assert AP3000_REQUIRED_REPLIES[Ap3000Heartbeat] is Ap3000HeartbeatReply
    with pytest.raises(LocalProtocolError):
        frame.reply(frame.message)


def test_encoder_writes_optional_fields_up_to_the_last_one_set() -> None:
    from bkvcodec.ap3000 import Ap3000ChargeControl

    message = Ap3000ChargeControl(rate_mode=0, balance_or_expiry=0, port=0, charge_command=1,
                                  charge_value=0, order_no=bytes(16), unplug_detect_off=1)

    data = Ap3000Frame(physical_id=1, message=message).encode()[12:-2]

    assert 35 == len(data)
    assert bytes.fromhex("0000" "0000" "00" "00" "0000" "02" "01") == data[25:]


def test_encoding_errors_are_local() -> None:
    with pytest.raises(LocalProtocolError):
        Ap3000Frame(physical_id=2**32, message=Ap3000HeartbeatReply()).encode()
    with pytest.raises(LocalProtocolError):
        Ap3000Frame(physical_id=1, message=Ap3000Heartbeat(
            voltage_0p1v=70000, port_status=(), signal_strength=0, env_temp_raw=0)).encode()
    with pytest.raises(LocalProtocolError):
        Ap3000Frame(physical_id=1, message=Ap3000CardSwipe(
            card_id=b"\0" * 4, card_type=0, port=0, card_balance_fen=0, card_no2_len=3,
            card_no2=b"ab")).encode()


def test_cli_round_trip() -> None:
    case = BY_ID["con-82-down-start-energy-ff-full"]
    run = subprocess.run(
        [sys.executable, "-m", "bkvcodec", "decode", "--jsonl"],
        input=f"down {case['hex']}\n", capture_output=True, text=True, check=True)
    again = subprocess.run([sys.executable, "-m", "bkvcodec", "encode"], input=run.stdout,
                           capture_output=True, text=True, check=True)

    assert case["hex"].lower() == again.stdout.strip()
