# ``python -m reference_server testplan``: run the customer's test plan against a
# server it starts itself (or one given by address), print progress, write the
# report as Markdown and JSON, and exit non-zero if any item failed.
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio

from .acceptance import judge_acceptance
from .plan import FAST_DEVICES, REAL_DEVICES, STEPS
from .report import Report
from .runner import ExternalServer, PlanSettings, run_plan

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reference_server testplan",
        description="Run the customer's test plan with simulated devices "
                    "and a webhook receiver that checks every signature.")
    parser.add_argument("--speed", type=float, default=60.0,
                        help="simulated seconds per real second for the charging flows "
                             "(default 60: the hour of TC001 takes a minute)")
    parser.add_argument("--only", action="append", default=[], metavar="ID",
                        help="run only the steps whose id starts with ID (repeatable)")
    parser.add_argument("--report", type=Path, default=Path("testplan-report"),
                        metavar="DIR", help="where report.md and report.json go")
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulated devices")
    parser.add_argument("--load-devices", type=int, default=1000, metavar="N",
                        help="devices for the '1000+ devices online' item (0: skip it)")
    parser.add_argument("--no-acceptance", action="store_true",
                        help="skip the acceptance lists at the end of the plan")
    external = parser.add_argument_group(
        "an external server", "test a running server instead of starting one; configure "
        "its webhook_url to the receiver below and its webhook_secret to --webhook-secret")
    external.add_argument("--server-http", metavar="URL", help="e.g. http://host:7055")
    external.add_argument("--server-tcp", metavar="HOST:PORT", help="e.g. host:7065")
    external.add_argument("--api-key", metavar="KEY")
    external.add_argument("--webhook-secret", metavar="SECRET")
    external.add_argument("--receiver", metavar="HOST:PORT", default="127.0.0.1:8888",
                          help="where our webhook receiver listens (default 127.0.0.1:8888)")
    return parser


def _external(args: argparse.Namespace, parser: argparse.ArgumentParser
              ) -> ExternalServer | None:
    given = [args.server_http, args.server_tcp, args.api_key, args.webhook_secret]
    if not any(given):
        return None
    if not all(given):
        parser.error("an external server needs --server-http, --server-tcp, --api-key "
                     "and --webhook-secret")
    tcp_host, _, tcp_port = str(args.server_tcp).rpartition(":")
    receiver_host, _, receiver_port = str(args.receiver).rpartition(":")
    if not (tcp_port.isdigit() and receiver_port.isdigit()):
        parser.error("--server-tcp and --receiver take HOST:PORT")
    return ExternalServer(http_url=args.server_http, tcp_host=tcp_host,
                          tcp_port=int(tcp_port), api_key=args.api_key,
                          webhook_secret=args.webhook_secret, receiver_host=receiver_host,
                          receiver_port=int(receiver_port))


def main(argv: list[str]) -> int:
    """Run the plan; 0 when every item passed, 1 when one failed, 2 on bad arguments."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.speed <= 0:
        parser.error("--speed must be positive")
    settings = PlanSettings(speed=args.speed, only=tuple(args.only), seed=args.seed,
                            load_devices=args.load_devices,
                            server=_external(args, parser))
    after = None if args.no_acceptance or args.only else judge_acceptance
    report: Report = trio.run(run_plan, STEPS, FAST_DEVICES, REAL_DEVICES, settings, after)
    args.report.mkdir(parents=True, exist_ok=True)
    (args.report / "report.md").write_text(report.to_markdown(), encoding="utf-8")
    (args.report / "report.json").write_text(report.to_json(), encoding="utf-8")
    counts = report.counts()
    print(f"test plan {'PASSED' if report.passed else 'FAILED'}: {counts['pass']} passed, "
          f"{counts['fail']} failed, {counts['skip']} skipped; report in {args.report}/")
    for item in report.failed:
        print(f"  FAIL {item.item_id}: {item.title} — {item.measured} {item.detail}".rstrip())
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
