# The frame log (cmd_logs) as the API shows it: each logged read or write with the
# frames it held, decoded again by the library. The log keeps raw bytes only (the
# gateway writes them in batches and must stay cheap), so decoding happens here, on
# the few rows an operator asks for.
from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING

from bkvcodec import Direction, FrameDecoder, FrameRejected
from bkvcodec.ap3000 import Ap3000Frame
from bkvcodec.bkv import BkvFrame

if TYPE_CHECKING:
    from ..storage import CmdLogRecord

__all__ = ["decode_logged_bytes", "frame_log_view"]


def _plain(value: object) -> object:
    """*value* as JSON: dataclasses as objects, enums by name, bytes in hex."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, tuple | list | frozenset | set):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _decoded_item(item: object) -> dict[str, object]:
    if isinstance(item, BkvFrame | Ap3000Frame):
        return {"protocol": "bkv" if isinstance(item, BkvFrame) else "ap3000",
                "command": f"0x{item.command:04x}",
                "message": type(item.message).__name__,
                "fields": _plain(item.message)}
    if isinstance(item, FrameRejected):
        return {"protocol": None, "command": None, "message": "FrameRejected",
                "fields": {"error": _plain(item.error)}}
    # The AP3000 modem's own items (ICCID announcement, keep-alive) and the decoder's
    # "not a known protocol" notice.
    fields = _plain(item)
    return {"protocol": None, "command": None, "message": type(item).__name__,
            "fields": fields if isinstance(fields, dict) else {}}


def decode_logged_bytes(data: bytes, direction: Direction) -> list[dict[str, object]]:
    """Every item in one logged read or write. AP3000 frames do not state their
    direction, so the logged one selects their layout."""
    decoder = FrameDecoder(direction=direction)
    return [_decoded_item(item) for item in decoder.feed(data)]


def frame_log_view(entry: CmdLogRecord) -> dict[str, object]:
    """One ``cmd_logs`` row with its frames decoded."""
    return {
        "id": entry.id,
        "device_phy_id": entry.phy_id,
        "direction": entry.direction.value,
        "cmd": entry.cmd,
        "hex": entry.hex,
        "created_at": entry.created_at,
        "frames": decode_logged_bytes(bytes.fromhex(entry.hex), entry.direction),
    }
