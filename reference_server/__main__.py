"""``python -m reference_server``: run the server (configuration: api.md §1)."""
from __future__ import annotations

import os
import sys

import trio

from .config import ConfigError, load_config
from .server import main_async


def main(argv: list[str] | None = None) -> int:
    """Load the configuration from flags, ``IOT_*`` variables and the TOML file; run."""
    try:
        config = load_config(sys.argv[1:] if argv is None else argv, os.environ)
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
