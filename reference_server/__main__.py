"""``python -m reference_server``: run the server.

``python -m reference_server simulate …`` runs simulated devices against a server,
``python -m reference_server testplan …`` the executable test plan; anything else
is the server's own command line.
"""
from __future__ import annotations

import os
import sys

import trio

from .config import ConfigError, load_config
from .server import main_async


def main(argv: list[str] | None = None) -> int:
    """Run the subcommand, or the server with flags, ``IOT_*`` variables and TOML."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["simulate"]:
        from .simulator.cli import main as simulate

        return simulate(args[1:])
    if args[:1] == ["testplan"]:
        from .testplan.cli import main as testplan

        return testplan(args[1:])
    try:
        config = load_config(args, os.environ)
    except ConfigError as err:
        print(f"reference_server: {err}", file=sys.stderr)
        return 2
    try:
        trio.run(main_async, config)
    except KeyboardInterrupt:
        # A second Ctrl-C during shutdown is held back until the shutdown is done
        # and then re-raised by trio; the server has already stopped cleanly.
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
