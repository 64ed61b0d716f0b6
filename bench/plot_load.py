"""Plots of ``bench_load.py`` runs against the number of connected devices.

Each ``--series NAME=FILE,FILE,...`` is one line: the ``--json`` figures of runs of
one version of the server at different fleet sizes (a size measured more than once
is averaged). These PNG files are written to ``--out``:

* ``load-latency.png``: heartbeat round trip p50 and p99 (client side) and the
  server's handling p99, with the 50 ms target;
* ``load-cpu.png``: server CPU (% of one core);
* ``load-cpu-per-heartbeat.png``: server CPU per heartbeat, with the 100 µs target;
* ``load-memory.png``: server RSS per device, with the 10 KB target;
* ``load-rss.png``: server RSS at the window's end.

Run::

    .venv/bin/python bench/plot_load.py --out bench/plots \\
        --series "before=b-1k.json,b-10k.json" --series "after=a-1k.json,a-10k.json"

Needs matplotlib (in the ``dev`` extra).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

# The figures plotted, by key: their name in the report of bench_load.py.
FIGURES = {
    "rtt_p50": "heartbeat round trip (client) p50",
    "rtt_p99": "heartbeat round trip (client) p99",
    "handling_p99": "server handling histogram p99 (est.)",
    "cpu": "server CPU over the window",
    "cpu_per_heartbeat": "server CPU per heartbeat",
    "rss": "server RSS at window end",
    "rss_per_device": "server RSS per device (window end − idle)",
}
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def read_run(path: Path) -> tuple[int, dict[str, float]]:
    """The fleet size of a run and its figures (see FIGURES) as numbers."""
    figures = json.loads(path.read_text())
    devices = int(figures["args"]["devices"])
    values: dict[str, float] = {}
    by_name = {row["figure"]: row["value"] for row in figures.get("target1", [])}
    for key, name in FIGURES.items():
        text = by_name.get(name)
        match = _NUMBER.search(text or "")
        if match:
            values[key] = float(match.group())
    return devices, values


def read_series(spec: str) -> tuple[str, dict[int, dict[str, float]]]:
    """``NAME=FILE,FILE`` → the name and, per fleet size, the mean of each figure."""
    name, _, files = spec.partition("=")
    runs: dict[int, list[dict[str, float]]] = defaultdict(list)
    for file in filter(None, files.split(",")):
        devices, values = read_run(Path(file))
        runs[devices].append(values)
    means = {devices: {key: sum(v[key] for v in group if key in v)
                       / max(1, sum(key in v for v in group))
                       for key in FIGURES}
             for devices, group in sorted(runs.items())}
    return name, means


def plot(series: list[tuple[str, dict[int, dict[str, float]]]], out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    panels = [
        ("load-latency.png", "Heartbeat latency", [
            ("rtt_p50", "round trip p50 (ms)", "-"), ("rtt_p99", "round trip p99 (ms)", "--"),
            ("handling_p99", "server handling p99 (ms)", ":")], "ms (log scale)", 50.0,
         "target 50 ms"),
        ("load-cpu.png", "Server CPU", [("cpu", "% of one core", "-")], "% of one core",
         None, ""),
        ("load-cpu-per-heartbeat.png", "Server CPU per heartbeat",
         [("cpu_per_heartbeat", "µs per heartbeat", "-")], "µs", 100.0, "target 100 µs"),
        ("load-memory.png", "Server memory per connected device",
         [("rss_per_device", "RSS per device (KB)", "-")], "KB", 10.0, "target 10 KB"),
        ("load-rss.png", "Server RSS", [("rss", "RSS at the window's end (MB)", "-")], "MB",
         None, ""),
    ]
    for filename, title, lines, unit, target, target_label in panels:
        figure, axes = plt.subplots(figsize=(7, 4.2), dpi=110)
        for number, (name, points) in enumerate(series):
            sizes = sorted(points)
            for key, label, style in lines:
                xs = [n for n in sizes if key in points[n]]
                axes.plot(xs, [points[n][key] for n in xs], style, marker="o",
                          color=f"C{number}", label=f"{name}: {label}")
        if target is not None:
            axes.axhline(target, color="red", linewidth=0.8, label=target_label)
        axes.set_title(title)
        axes.set_xlabel("connected devices")
        axes.set_ylabel(unit)
        if "log" in unit:  # latencies span milliseconds to seconds
            axes.set_yscale("log")
        else:
            axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
        figure.tight_layout()
        path = out / filename
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--series", action="append", required=True,
                        help="NAME=FILE,FILE,... (bench_load.py --json files)")
    parser.add_argument("--out", type=Path, default=Path("bench/plots"))
    args = parser.parse_args()
    series = [read_series(spec) for spec in args.series]
    for name, points in series:
        for devices, values in points.items():
            shown = ", ".join(f"{k} {v:g}" for k, v in values.items())
            print(f"{name} {devices}: {shown}")
    for path in plot(series, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
