"""The executable test plan: its report, its command line, and a short real run."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import trio

from reference_server.testplan.cli import main
from reference_server.testplan.crowd import crowd_running
from reference_server.testplan.plan import FAST_DEVICES, REAL_DEVICES, STEPS
from reference_server.testplan.report import Item, Report, Verdict
from reference_server.testplan.runner import PlanSettings, run_plan

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
    assert {"pass": 1, "fail": 1, "skip": 1} == document["counts"]
    assert ["TC001", "TC002", "8.9 DB query"] == [i["item_id"] for i in document["items"]]


def test_every_step_declares_the_items_it_reports_and_ids_are_unique() -> None:
    items = [item for step in STEPS for item in step.items]
    assert len(items) == len(set(items))
    assert len({s.step_id for s in STEPS}) == len(STEPS)
    phy_ids = [d.phy_id for d in (*FAST_DEVICES, *REAL_DEVICES)]
    assert len(phy_ids) == len(set(phy_ids))


def test_the_command_line_refuses_half_an_external_server(capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--server-http", "http://example:7055"])
    assert 2 == exit_info.value.code
    assert "an external server needs" in capsys.readouterr().err


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
