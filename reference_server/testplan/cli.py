# ``python -m reference_server testplan``: run the customer's test plan against a
# server it starts itself (or one attached by address), print progress, write the
# report as Markdown and JSON, and exit non-zero if any item failed (130 when
# interrupted).
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio

from .acceptance import judge_acceptance
from .plan import FAST_DEVICES, REAL_DEVICES, STEPS
from .report import Report
from .runner import ExternalServer, PlanSettings, run_plan

#: The exit status of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reference_server testplan",
        description="Run the customer's test plan with simulated devices and a webhook "
                    "receiver that checks every signature. Ctrl-C writes the report of the "
                    "items checked so far and exits with 130.")
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
    parser.add_argument("--progress-every", type=float, default=10.0, metavar="SECONDS",
                        help="while steps wait, say every SECONDS what each waits for "
                             "(default 10)")
    parser.add_argument("--no-acceptance", action="store_true",
                        help="skip the acceptance lists at the end of the plan")
    attach = parser.add_argument_group(
        "attach mode", "run the plan against a server someone else started, through its "
        "API, its device port and its webhooks only; configure its webhook URL to the "
        "receiver (printed at the start) and its webhook secret to --webhook-secret; items "
        "that need the server's internals are reported as skipped")
    attach.add_argument("--attach", metavar="HOST:HTTP_PORT:TCP_PORT",
                        help="the server: its API on HTTP_PORT, its devices on TCP_PORT")
    attach.add_argument("--api-key", metavar="KEY", help="an API key of the server")
    attach.add_argument("--webhook-secret", metavar="SECRET",
                        help="the secret the server signs its webhooks with")
    attach.add_argument("--webhook-listen", metavar="HOST:PORT", default="127.0.0.1:8888",
                        help="where the plan's webhook receiver listens (default "
                             "127.0.0.1:8888); the server posts to http://HOST:PORT/webhook")
    return parser


def _attached(args: argparse.Namespace, parser: argparse.ArgumentParser
              ) -> ExternalServer | None:
    if args.attach is None:
        if args.api_key or args.webhook_secret:
            parser.error("--api-key and --webhook-secret go with --attach")
        return None
    if not (args.api_key and args.webhook_secret):
        parser.error("--attach needs --api-key and --webhook-secret")
    host, http_port, tcp_port = _address(str(args.attach), 2, "--attach", parser)
    listen_host, listen_port = _address(str(args.webhook_listen), 1, "--webhook-listen",
                                        parser)
    return ExternalServer(http_url=f"http://{_url_host(host)}:{http_port}", tcp_host=host,
                          tcp_port=int(tcp_port), api_key=args.api_key,
                          webhook_secret=args.webhook_secret, receiver_host=listen_host,
                          receiver_port=int(listen_port))


def _address(text: str, ports: int, option: str, parser: argparse.ArgumentParser
             ) -> list[str]:
    """``HOST:PORT…`` split at its last *ports* colons (an IPv6 host keeps its own)."""
    parts = text.rsplit(":", ports)
    if len(parts) != ports + 1 or not parts[0] or not all(
            p.isdigit() and 0 < int(p) < 65536 for p in parts[1:]):
        parser.error(f"{option} takes HOST" + ":PORT" * ports + f", got {text!r}")
    return [parts[0].strip("[]"), *parts[1:]]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def main(argv: list[str]) -> int:
    """Run the plan; 0 when every item passed, 1 when one failed, 2 on bad arguments,
    130 when interrupted (Ctrl-C) after writing the partial report."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.speed <= 0:
        parser.error("--speed must be positive")
    if args.progress_every <= 0:
        parser.error("--progress-every must be positive")
    settings = PlanSettings(speed=args.speed, only=tuple(args.only), seed=args.seed,
                            load_devices=args.load_devices,
                            progress=sys.stderr, progress_every=args.progress_every,
                            server=_attached(args, parser))
    after = None if args.no_acceptance or args.only else judge_acceptance
    try:
        report: Report = trio.run(run_plan, STEPS, FAST_DEVICES, REAL_DEVICES, settings,
                                  after)
    except KeyboardInterrupt:
        # A second Ctrl-C while the first one's report is being gathered.
        print("test plan INTERRUPTED again: no report written", file=sys.stderr)
        return EXIT_INTERRUPTED
    args.report.mkdir(parents=True, exist_ok=True)
    (args.report / "report.md").write_text(report.to_markdown(), encoding="utf-8")
    (args.report / "report.json").write_text(report.to_json(), encoding="utf-8")
    print(f"test plan {report.outcome()}: {report.summary()}; report in {args.report}/")
    for item in report.failed:
        print(f"  FAIL {item.item_id}: {item.title} — {item.measured} {item.detail}".rstrip())
    if report.interrupted:
        return EXIT_INTERRUPTED
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
