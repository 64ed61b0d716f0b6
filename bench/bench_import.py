"""Import time: ``import bkvcodec`` in a fresh interpreter, and the first decode after it.

Every figure is a median over ``--runs`` fresh interpreters, started one after the
other with ``python -c``:

* ``import bkvcodec``: wall time of ``python -c "import bkvcodec"`` minus that of
  ``python -c "pass"`` (the interpreter's own start, run alternately with it). Target
  < 100 ms. That includes the interpreter's shutdown, which has more to free with
  the package loaded; beside it the same without the shutdown (``os._exit(0)`` after
  the import) and the cumulative figure ``python -X importtime`` gives for
  ``bkvcodec``.
* first decode: ``bkvcodec.decode()`` of a BKV heartbeat and of an AP3000 heartbeat,
  each the first decode of its protocol after the import (what a server pays for its
  first device), and the first ``encode()`` of the decoded heartbeat. Target < 20 ms
  for the decodes.

The children run with bytecode caching on (``PYTHONDONTWRITEBYTECODE`` is dropped
from their environment and a warm-up run writes the ``.pyc`` files), as for an
installed wheel: compiling the sources is not part of the figure. They run in an
empty temporary directory, so that ``python -c`` does not find a ``bkvcodec`` in the
current one.

Run: ``python bench/bench_import.py [--runs 15] [--src DIR] [--json FILE]``;
``--src`` imports ``bkvcodec`` from another source tree (``PYTHONPATH``), for a
before/after comparison with the same interpreter.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_IMPORT_MS = 100.0
TARGET_FIRST_DECODE_MS = 20.0

#: A BKV gateway heartbeat (command 0x0000 up) and an AP3000 heartbeat (0x21 up).
BKV_HEARTBEAT = ("fcfe002e000000000000018224121800038238393836303835353130323444313938"
                 "383139363230302e312e31371152fcee")
AP3000_HEARTBEAT = "444E5910003B37AB0401002198080200000905EE02"

_FIRST_USE = f"""
import json, time
t0 = time.perf_counter()
import bkvcodec
t1 = time.perf_counter()
bkv = bkvcodec.decode(bytes.fromhex({BKV_HEARTBEAT!r}))
t2 = time.perf_counter()
bkvcodec.decode(bytes.fromhex({BKV_HEARTBEAT!r}))
t3 = time.perf_counter()
bkvcodec.decode(bytes.fromhex({AP3000_HEARTBEAT!r}))
t4 = time.perf_counter()
bkv.encode()
t5 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "first_decode_bkv": t2 - t1, "second_decode_bkv": t3 - t2,
                  "first_decode_ap3000": t4 - t3, "first_encode_bkv": t5 - t4}}))
"""


def child_env(src: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME", "PYTHONPATH")}
    if src:
        env["PYTHONPATH"] = str(Path(src).resolve())
    return env


#: The children's working directory (``python -c`` puts it first on sys.path).
WORKDIR = tempfile.mkdtemp(prefix="bench-import-")


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, cwd=WORKDIR, check=True, capture_output=True,
                          text=True)


def wall(python: str, code: str, env: dict[str, str]) -> float:
    """Seconds from start to exit of ``python -c code``."""
    started = time.perf_counter()
    run([python, "-c", code], env)
    return time.perf_counter() - started


def importtime(python: str, env: dict[str, str]) -> tuple[float, list[tuple[int, int, str]]]:
    """bkvcodec's cumulative import time in seconds, and every (self µs, cumulative µs,
    module) line of ``-X importtime``."""
    result = run([python, "-X", "importtime", "-c", "import bkvcodec"], env)
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        rows.append((int(own), int(cumulative), name.rstrip()))
    total = next(cumulative for _, cumulative, name in rows if name.strip() == "bkvcodec")
    return total / 1e6, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per figure")
    parser.add_argument("--python", default=sys.executable, help="interpreter to measure")
    parser.add_argument("--src", help="import bkvcodec from this source tree instead")
    parser.add_argument("--top", type=int, default=12,
                        help="slowest modules (self time) of -X importtime to print")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    env = child_env(args.src)
    where = run([args.python, "-c", "import bkvcodec; print(bkvcodec.__file__)"],
                env).stdout.strip()
    for _ in range(2):  # warm-up: .pyc files written, disk caches filled
        wall(args.python, "import bkvcodec", env)

    bare, full, no_exit, first, cumulative = [], [], [], [], []
    rows_by_run = []
    for _ in range(args.runs):
        bare.append(wall(args.python, "pass", env))
        full.append(wall(args.python, "import bkvcodec", env))
        no_exit.append(wall(args.python, "import bkvcodec, os; os._exit(0)", env))
        first.append(json.loads(run([args.python, "-c", _FIRST_USE], env).stdout))
        total, rows = importtime(args.python, env)
        cumulative.append(total)
        rows_by_run.append(rows)

    def med(values: list[float]) -> float:
        return statistics.median(values) * 1e3

    import_ms = med(full) - med(bare)
    first_ms = {key: med([run[key] for run in first]) for key in first[0]}
    # The run whose bkvcodec total is the median one, for the table of slowest modules.
    middle = sorted(range(args.runs), key=lambda i: cumulative[i])[args.runs // 2]
    top = sorted(rows_by_run[middle], reverse=True)[:args.top]

    def verdict(value: float, target: float) -> str:
        return "met" if value < target else "MISSED"

    load = os.getloadavg()[0]
    print(f"bkvcodec import benchmark — Python {platform.python_version()} on "
          f"{platform.system()}, {args.runs} fresh interpreters per figure, "
          f"load average {load:.2f}")
    print(f"  bkvcodec from {where}")
    print(f"{'figure':<40} {'median':>10}   target")
    rows_out = [
        ("import bkvcodec (minus interpreter start)", import_ms, TARGET_IMPORT_MS),
        ("  python -c 'import bkvcodec'", med(full), None),
        ("  python -c 'pass'", med(bare), None),
        ("  without the interpreter's shutdown", med(no_exit) - med(bare), None),
        ("  -X importtime, bkvcodec cumulative", med(cumulative), None),
        ("first decode, BKV heartbeat", first_ms["first_decode_bkv"], TARGET_FIRST_DECODE_MS),
        ("first decode, AP3000 heartbeat", first_ms["first_decode_ap3000"],
         TARGET_FIRST_DECODE_MS),
        ("second decode, BKV heartbeat", first_ms["second_decode_bkv"], None),
        ("first encode, BKV heartbeat", first_ms["first_encode_bkv"], None),
    ]
    for label, value, target in rows_out:
        goal = f"< {target:.0f} ms  {verdict(value, target)}" if target is not None else ""
        print(f"{label:<40} {value:>7.2f} ms   {goal}")
    print("slowest modules by self time (-X importtime, the median run; ms):")
    for own, total, name in top:
        print(f"  {own / 1e3:7.2f} self {total / 1e3:7.2f} cumulative  {name.strip()}")
    missed = [label for label, value, target in rows_out
              if target is not None and value >= target]
    print(f"{'all targets met' if not missed else 'MISSED: ' + ', '.join(missed)}")
    if args.json:
        figures = {
            "python": platform.python_version(), "runs": args.runs, "bkvcodec": where,
            "load_average": load,
            "import_ms": import_ms, "import_wall_ms": med(full), "interpreter_ms": med(bare),
            "import_without_shutdown_ms": med(no_exit) - med(bare),
            "importtime_cumulative_ms": med(cumulative),
            **{f"{key}_ms": value for key, value in first_ms.items() if key != "import"},
            "targets": {"import_ms": TARGET_IMPORT_MS,
                        "first_decode_ms": TARGET_FIRST_DECODE_MS},
            "importtime_top": [{"module": name.strip(), "self_ms": own / 1e3,
                                "cumulative_ms": total / 1e3} for own, total, name in top],
            "missed": missed,
        }
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        os.rmdir(WORKDIR)
