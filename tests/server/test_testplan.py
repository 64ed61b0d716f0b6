"""The executable test plan: its report, its command line, and a short real run."""
from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import trio

from reference_server import service
from reference_server.simulator import Fleet, SimClock, bkv_gateway
from reference_server.testplan.cli import EXIT_INTERRUPTED, main
from reference_server.testplan.crowd import crowd_running, heartbeat_latencies
from reference_server.testplan.plan import FAST_DEVICES, REAL_DEVICES, STEPS
from reference_server.testplan.report import Item, Report, Verdict
from reference_server.testplan.runner import PlanSettings, plan_profile, run_plan

from .harness import e2e_config, server_running


def test_the_report_renders_every_row_and_fails_on_any_failure() -> None:
    report = Report(settings={"speed": 60})
    report.add(Item(item_id="TC001", title="by | duration", verdict=Verdict.PASS,
                    measured="3600 s", target="< 5 s"))
    report.add(Item(item_id="TC002", title="remote stop", verdict=Verdict.FAIL,
                    detail="no settlement"))
    report.add(Item(item_id="8.9 DB query", title="db", verdict=Verdict.SKIP))

    markdown = report.to_markdown()
    document = json.loads(report.to_json())

    assert not report.passed
    assert "**FAILED**: 1 passed, 1 failed, 1 skipped" in markdown
    assert "| TC001 | by \\| duration | pass | 3600 s | < 5 s |  |" in markdown
    assert {"pass": 1, "fail": 1, "skip": 1, "not_run": 0} == document["counts"]
    assert ["TC001", "TC002", "8.9 DB query"] == [i["item_id"] for i in document["items"]]


def test_every_step_declares_the_items_it_reports_and_ids_are_unique() -> None:
    items = [item for step in STEPS for item in step.items]
    assert len(items) == len(set(items))
    assert len({s.step_id for s in STEPS}) == len(STEPS)
    phy_ids = [d.phy_id for d in (*FAST_DEVICES, *REAL_DEVICES)]
    assert len(phy_ids) == len(set(phy_ids))


@pytest.mark.parametrize(("argv", "complaint"), [
    (["--attach", "example:7055:7065"], "--attach needs --api-key and --webhook-secret"),
    (["--attach", "example:7055", "--api-key", "k", "--webhook-secret", "s"],
     "--attach takes HOST:PORT:PORT"),
    (["--api-key", "k"], "go with --attach"),
])
def test_the_command_line_refuses_half_an_attachment(
        argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert 2 == exit_info.value.code
    assert complaint in capsys.readouterr().err


@pytest.mark.trio
async def test_a_short_run_against_a_server_it_starts(tmp_path: Path) -> None:
    chosen = [s for s in STEPS if s.step_id in ("matrix 2.3", "exception 3")]
    with trio.fail_after(60):
        report = await run_plan(chosen, FAST_DEVICES, REAL_DEVICES,
                                PlanSettings(speed=60, progress=io.StringIO(),
                                             load_devices=0))

    assert report.passed, report.to_markdown()
    assert {"matrix 2.3", "matrix 2.5", "matrix 5.3", "exception 3", "matrix 4.5",
            "matrix 4.6"} == {i.item_id for i in report.items}


@pytest.mark.trio
async def test_the_device_crowd_runs_in_a_child_process_and_reports_its_window(
        tmp_path: Path) -> None:
    async with server_running(e2e_config(tmp_path / "iot.db", None, offline_after=60)) as server:
        host, port = server.addresses.tcp_host, server.addresses.tcp_port
        with trio.fail_after(60):
            async with crowd_running(host, port, 6, window=0.3, settle=0.1) as crowd:
                before = await crowd.next_statistics()
                after = await crowd.next_statistics()
                listed = await server.call("GET", "/devices?online=true&limit=50")

    assert 6 == before.connected == after.connected
    assert after.frames_received >= before.frames_received > 0
    assert 6 == len(listed.json()["data"]["items"])


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@contextmanager
def _server_process(tmp_path: Path, *flags: str,
                    key: tuple[str, ...] = ("--api-key", "attached-key")
                    ) -> Iterator[tuple[int, int, int]]:
    """``python -m reference_server`` on free ports, webhooks to a third port; yields
    (http, tcp, webhook) ports once the API answers."""
    http_port, tcp_port, webhook_port = _free_ports(3)
    command = [sys.executable, "-m", "reference_server", "--http-host", "127.0.0.1",
               "--http-port", str(http_port), "--tcp-host", "127.0.0.1", "--tcp-port",
               str(tcp_port), "--db", str(tmp_path / "attached.db"), *key,
               "--webhook-url", f"http://127.0.0.1:{webhook_port}/webhook",
               "--webhook-secret", "attached-secret", "--offline-after", "30",
               "--log-level", "warning", *flags]
    log = tmp_path / "attached-server.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, stderr=stderr)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        yield http_port, tcp_port, webhook_port
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_attach_mode_runs_the_plan_over_the_api_of_a_server_started_apart(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # device_policy known: the plan provisions its device ids through the API.
    with _server_process(tmp_path, "--device-policy", "known") as (http, tcp, webhook):
        status = main(["--attach", f"127.0.0.1:{http}:{tcp}", "--api-key", "attached-key",
                       "--webhook-secret", "attached-secret", "--webhook-listen",
                       f"127.0.0.1:{webhook}", "--only", "exception 3", "--only",
                       "heartbeat", "--speed", "300", "--report", str(tmp_path / "report")])

    document = json.loads((tmp_path / "report" / "report.json").read_text())
    verdicts = {i["item_id"]: (i["verdict"], i["detail"]) for i in document["items"]}
    out, err = capsys.readouterr()
    assert 0 == status, out
    assert f"its webhooks must go to http://127.0.0.1:{webhook}/webhook" in err
    assert {"pass": 4, "fail": 0, "skip": 3, "not_run": 0} == document["counts"]
    assert all(verdicts[i][0] == "pass" for i in ("exception 3", "matrix 4.5", "matrix 4.6",
                                                  "heartbeat sampling"))
    assert "needs busy_port_policy=replace" in verdicts["exception 3 replace"][1]
    assert "attached: http://127.0.0.1" in str(document["settings"]["server"])
    assert "test plan PASSED: 4 passed, 0 failed, 3 skipped" in out


def test_attach_mode_goes_on_when_the_key_may_not_provision_devices(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "server.toml"
    config.write_text('[[api_keys]]\nname = "operator"\nkey = "attached-key"\n'
                      'roles = ["read", "operate"]\n', encoding="utf-8")
    with _server_process(tmp_path, key=("--config", str(config))) as (http, tcp, webhook):
        status = main(["--attach", f"127.0.0.1:{http}:{tcp}", "--api-key", "attached-key",
                       "--webhook-secret", "attached-secret", "--webhook-listen",
                       f"127.0.0.1:{webhook}", "--only", "exception 3", "--speed", "300",
                       "--report", str(tmp_path / "report")])

    document = json.loads((tmp_path / "report" / "report.json").read_text())
    _, err = capsys.readouterr()
    assert "cannot provision the plan's devices (403 from POST /api/v1/third/devices)" in err
    assert 0 == status
    assert {"pass": 3, "fail": 0, "skip": 3, "not_run": 0} == document["counts"]


def test_attach_mode_runs_the_replace_policy_when_the_server_has_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with _server_process(tmp_path, "--busy-port-policy", "replace") as (http, tcp, webhook):
        status = main(["--attach", f"127.0.0.1:{http}:{tcp}", "--api-key", "attached-key",
                       "--webhook-secret", "attached-secret", "--webhook-listen",
                       f"127.0.0.1:{webhook}", "--only", "exception 3", "--speed",
                       "300", "--report", str(tmp_path / "report")])

    document = json.loads((tmp_path / "report" / "report.json").read_text())
    verdicts = {i["item_id"]: (i["verdict"], i["detail"]) for i in document["items"]}
    assert 0 == status, capsys.readouterr().out
    assert {"pass": 3, "fail": 0, "skip": 3, "not_run": 0} == document["counts"]
    assert all(verdicts[i][0] == "pass" for i in ("exception 3 replace",
                                                  "exception 3 replace settled",
                                                  "exception 3 replace new order"))
    assert "needs busy_port_policy=reject" in verdicts["exception 3"][1]


def test_ctrl_c_writes_a_partial_report_and_exits_130(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "reference_server", "testplan", "--only", "matrix 2.3",
               "--only", "matrix 5.2", "--speed", "20", "--report", str(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "done   matrix 2.3:" in line:
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)

    document = json.loads((tmp_path / "report.json").read_text())
    verdicts = {i["item_id"]: i["verdict"] for i in document["items"]}
    assert EXIT_INTERRUPTED == process.returncode, "".join(lines) + err
    assert document["interrupted"] is True
    assert "pass" == verdicts["matrix 2.3"] == verdicts["matrix 5.3"]
    assert "not_run" == verdicts["matrix 5.2"] == verdicts["matrix 5.2 stop"]
    assert "test plan INTERRUPTED: 3 passed, 0 failed, 0 skipped, 4 not run" in out
    assert "**INTERRUPTED**" in (tmp_path / "report.md").read_text()


@pytest.mark.trio
async def test_the_new_items_pass_and_quiet_waits_print_progress() -> None:
    chosen = [s for s in STEPS if s.step_id in ("matrix 5.2", "exception 3 replace",
                                                "heartbeat sampling")]
    progress = io.StringIO()
    with trio.fail_after(60):
        report = await run_plan(chosen, FAST_DEVICES, REAL_DEVICES,
                                PlanSettings(speed=300, progress=progress, progress_every=0.5,
                                             load_devices=0, catch_interrupt=False))

    assert report.passed, report.to_markdown()
    assert {"matrix 5.2", "matrix 5.2 stop", "exception 3 replace",
            "exception 3 replace settled", "exception 3 replace new order",
            "heartbeat sampling"} <= {i.item_id for i in report.items}
    assert "wait   matrix 5.2: device 82210225000608 to end its 1800 s charge (" \
        in progress.getvalue()


@pytest.mark.trio
async def test_the_sampling_item_fails_when_the_server_samples_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "HEARTBEAT_SAMPLING", 5)
    chosen = [s for s in STEPS if s.step_id == "heartbeat sampling"]
    with trio.fail_after(60):
        report = await run_plan(chosen, FAST_DEVICES, REAL_DEVICES,
                                PlanSettings(speed=300, progress=io.StringIO(),
                                             load_devices=0, catch_interrupt=False))

    [item] = report.items
    assert Verdict.FAIL is item.verdict, item.measured


@pytest.mark.trio
async def test_heartbeat_latency_is_timed_from_the_heartbeat_to_its_answer(
        tmp_path: Path) -> None:
    fast = plan_profile(heartbeat_s=2.0)
    specs = [bkv_gateway("82210225000901", profile=fast)]
    async with server_running(e2e_config(tmp_path / "iot.db", None)) as server:
        host, port = server.addresses.tcp_host, server.addresses.tcp_port
        # Ten times faster than real time: latencies are converted back to real seconds.
        clock = SimClock(10.0)
        async with Fleet.connect(host, port, specs, clock=clock) as fleet:
            await fleet.wait_registered()
            opened = clock.now()
            await trio.sleep(1.0)
            closed = clock.now()
            await trio.sleep(0.2)  # the answer to the window's last heartbeat
            latencies = heartbeat_latencies(fleet.devices[0], opened, closed)

    # A heartbeat every 0.2 real seconds: five in the window, give or take its edges.
    assert 4 <= len(latencies) <= 6
    assert all(0 < latency < 0.1 for latency in latencies), latencies
