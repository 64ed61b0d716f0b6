"""Write a seed corpus for the fuzz targets: every golden vector and malformed input,
one file each, plus a few concatenations for the stream target.

Usage: ``python fuzz/seed_corpus.py DIR``
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "vectors"


def seeds() -> list[bytes]:
    """The seed inputs, in a stable order."""
    out: list[bytes] = []
    for file in sorted(VECTORS.glob("*.json")):
        doc = json.loads(file.read_text(encoding="utf-8"))
        for kind in ("vectors", "non_frame", "malformed"):
            for case in doc.get(kind, []):
                out.append(bytes.fromhex(case["hex"].replace(" ", "")))
    # The stream target reads its chunk size from the first byte.
    out += [b"\x07" + out[i] + out[i + 1] for i in range(0, len(out) - 1, 5)]
    return out


def main() -> int:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    for data in seeds():
        (target / hashlib.sha1(data).hexdigest()).write_bytes(data)
    print(f"wrote {len(seeds())} seeds to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
