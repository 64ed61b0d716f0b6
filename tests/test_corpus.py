"""``python -m bkvcodec corpus``: the seed corpus for fuzzers, and the real frames
embedded in the package for it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bkvcodec import Direction, FrameDecoder, RemoteProtocolError
from bkvcodec._cli import main
from bkvcodec._known_frames import KNOWN_FRAMES
from bkvcodec.ap3000 import Ap3000Frame
from bkvcodec.bkv import BkvFrame
from bkvcodec.errors import ChecksumMismatch

VECTORS = Path(__file__).resolve().parent / "vectors"


def _corpus(tmp_path: Path, *args: str) -> dict[str, bytes]:
    assert 0 == main(["corpus", str(tmp_path), *args])
    return {path.name: path.read_bytes() for path in tmp_path.iterdir()}


def test_embedded_frames_are_the_vector_files() -> None:
    expected = []
    for protocol in ("bkv", "ap3000"):
        doc = json.loads((VECTORS / f"{protocol}.json").read_text(encoding="utf-8"))
        for kind in ("vectors", "non_frame", "malformed"):
            for case in doc.get(kind, []):
                expected.append((protocol, kind, case["id"],
                                 case["hex"].replace(" ", "").lower()))

    assert expected == [(k.protocol, k.kind, k.id, k.hex) for k in KNOWN_FRAMES]


def test_count_zero_writes_the_real_frames(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    files = _corpus(tmp_path, "--count", "0")

    assert {f"vector-{k.protocol}-{k.id}": bytes.fromhex(k.hex) for k in KNOWN_FRAMES} == files
    assert f"wrote {len(KNOWN_FRAMES)} files to {tmp_path}\n" == capsys.readouterr().out


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    first = _corpus(tmp_path / "a", "--count", "1", "--seed", "7")
    again = _corpus(tmp_path / "b", "--count", "1", "--seed", "7")
    other = _corpus(tmp_path / "c", "--count", "1", "--seed", "8")

    assert first == again
    assert first != other


def test_generated_files_are_what_their_names_say(tmp_path: Path) -> None:
    files = _corpus(tmp_path, "--count", "2")
    kinds = {name.split("-")[0] for name in files}

    assert {"vector", "frame", "stream", "malformed"} == kinds
    for name, data in files.items():
        if name.startswith("frame-bkv-"):
            assert data == BkvFrame.decode(data).encode()
        elif name.startswith("frame-ap3000-"):
            direction = Direction.UP if "-up-" in name else Direction.DOWN
            assert data == Ap3000Frame.decode(data, direction).encode()
        elif name.startswith("malformed-bkv-bad_checksum-"):
            with pytest.raises(ChecksumMismatch):
                BkvFrame.decode(data)
        elif name.startswith("malformed-ap3000-truncated-"):
            with pytest.raises(RemoteProtocolError):
                Ap3000Frame.decode(data, Direction.UP)
        elif name.startswith("stream-bkv-"):
            decoder = FrameDecoder()
            assert all(isinstance(item, BkvFrame) for item in decoder.feed(data))
    # Every message kind of both protocols has its frames.
    assert any(name.startswith("frame-bkv-Bkv1013Report-") for name in files)
    assert any(name.startswith("frame-ap3000-82-down-") for name in files)
    assert any(name.startswith("malformed-ap3000-length_above_maximum-") for name in files)


def test_console_script_and_module_agree(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "bkvcodec"
    run = subprocess.run([str(script), "corpus", str(tmp_path / "a"), "--count", "0"],
                         capture_output=True, text=True, check=True)

    assert run.stdout.startswith(f"wrote {len(KNOWN_FRAMES)} files")


def test_negative_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["corpus", str(tmp_path), "--count", "-1"])


def test_without_hypothesis_the_command_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("bkvcodec._corpus", "bkvcodec.testing"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "hypothesis", None)

    assert 2 == main(["corpus", str(tmp_path / "out")])
    assert "pip install 'bkvcodec[testing]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
