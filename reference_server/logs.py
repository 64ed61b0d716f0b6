# JSON-lines logging (api.md §9): one object per line on stderr, with ``msg`` and
# the fields of the event, the plan's messages kept verbatim. A plain function,
# not the logging module's machinery: the server logs little, always structured,
# and must never log a secret (callers pass only what is safe).
from __future__ import annotations

import json
import sys
import time
from typing import TextIO

__all__ = ["LEVELS", "Logger"]

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class Logger:
    """Writes ``{"ts": …, "level": …, "msg": …, **fields}`` lines.

    Args:
        level: The lowest level written (``debug``, ``info``, ``warning``, ``error``).
        stream: Where to write (stderr by default).
    """

    def __init__(self, level: str = "info", stream: TextIO | None = None) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown log level {level!r}")
        self.threshold = LEVELS[level]
        self.stream = stream if stream is not None else sys.stderr

    def log(self, level: str, msg: str, **fields: object) -> None:
        """Write one line if *level* passes the threshold.

        A line the stream cannot take (closed, full disk) is dropped: a log
        failure must not take down the connection or request that logged.
        """
        if LEVELS[level] < self.threshold:
            return
        record: dict[str, object] = {"ts": round(time.time(), 3), "level": level, "msg": msg}
        record.update(fields)
        try:
            self.stream.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def debug(self, msg: str, **fields: object) -> None:
        self.log("debug", msg, **fields)

    def info(self, msg: str, **fields: object) -> None:
        self.log("info", msg, **fields)

    def warning(self, msg: str, **fields: object) -> None:
        self.log("warning", msg, **fields)

    def error(self, msg: str, **fields: object) -> None:
        # Diagnostics grep for the word "error" (test-plan.md §5.10).
        self.log("error", msg, **{"error": fields.pop("error", "error"), **fields})
