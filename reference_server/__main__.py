"""``python -m reference_server``: the server and its companion commands.

With no command, or with server flags only, it runs the server (``serve``), so
``python -m reference_server`` alone starts it on its embedded defaults. The
commands are listed in :data:`COMMANDS`; ``--help`` names them.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from .config import Config, ConfigError, load_config
from .server import main_async

Entry = Callable[[list[str]], int]


@dataclass(frozen=True, slots=True)
class Subcommand:
    """A command of the command line: what it does in one line, and where its
    ``main(argv) -> int`` lives. Modules are imported only when their command runs,
    so the server does not load the tools, nor the tools the server's tasks."""

    summary: str
    module: str | None = None

    def entry(self) -> Entry:
        if self.module is None:
            return serve
        entry: Entry = importlib.import_module(self.module, __package__).main
        return entry


#: Every command, in the order ``--help`` lists them.
COMMANDS: dict[str, Subcommand] = {
    "serve": Subcommand("run the server (the default when no command is given)"),
    "simulate": Subcommand("run simulated BKV/GN and AP3000 devices against a server",
                           ".simulator.cli"),
    "testplan": Subcommand("run the executable test plan and write its report",
                           ".testplan.cli"),
    "monitor": Subcommand("a live terminal view of a device or the fleet, over the HTTP API",
                          ".tools.monitor"),
    "batch": Subcommand("start many orders through the HTTP API and summarise the outcome",
                        ".tools.batch"),
}


def command_parser() -> argparse.ArgumentParser:
    """The top-level parser: it lists the commands (each parses its own arguments)."""
    parser = argparse.ArgumentParser(
        prog="python -m reference_server",
        description="bkvcodec reference server: device TCP gateway, HTTP API, SQLite, "
                    "webhooks, and tools that work against it.",
        epilog="Without a command the server runs, taking the server flags directly: "
               "'python -m reference_server --http-port 8055' is "
               "'python -m reference_server serve --http-port 8055'. "
               "'python -m reference_server COMMAND --help' describes each command.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, command in COMMANDS.items():
        commands.add_parser(name, help=command.summary, add_help=False)
    return parser


def serve(args: list[str]) -> int:
    """Run the server with flags, ``IOT_*`` variables and TOML."""
    try:
        config = load_config(args, os.environ)
    except ConfigError as err:
        print(f"reference_server: {err}", file=sys.stderr)
        return 2
    if config.workers > 1:
        problem = _workers_problem(config)
        if problem is not None:
            print(f"reference_server: --workers {config.workers}: {problem}", file=sys.stderr)
            return 2
        from .workers import run_workers

        trio.run(run_workers, config, args)
        return 0
    try:
        trio.run(main_async, config)
    except KeyboardInterrupt:
        # A second Ctrl-C during shutdown is held back until the shutdown is done
        # and then re-raised by trio; the server has already stopped cleanly.
        pass
    return 0


def _workers_problem(config: Config) -> str | None:
    """Why *config* cannot run as several workers, if it cannot."""
    if config.redis_url is None:
        return "the workers form a cluster: set redis_url (IOT_REDIS_URL)"
    if config.tcp_port == 0 or config.http_port == 0:
        return "the workers share their ports: give tcp_port and http_port, not 0"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named first, or the server."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        command_parser().print_help()
        return 0
    if args and args[0] in COMMANDS:
        return COMMANDS[args[0]].entry()(args[1:])
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
