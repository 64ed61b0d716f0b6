# JSON-lines logging (api.md §9): one object per line on stderr, with ``msg`` and
# the fields of the event, the plan's messages kept verbatim. Or, for people at a
# terminal (``log_format = "text"``), one line of time, level, message and key=value
# fields; JSON stays the default, for collectors. A plain function,
# not the logging module's machinery: the server logs little, always structured,
# and must never log a secret (callers pass only what is safe).
#
# Logging never blocks the event loop (api.md §11.3). A write to stderr blocks when
# whoever reads it stalls (a full pipe, a stopped terminal, a slow collector); done
# on the trio thread, that froze every connection's heartbeats. So a line for the
# process's stderr is formatted by the caller and put on a bounded queue; one daemon
# thread writes and flushes. When the queue is full the line is dropped and
# counted (``iot_log_lines_dropped_total``): losing log lines is the lesser harm.
# A logger given its own stream (tests, tools: an io.StringIO that cannot stall)
# writes at once unless told otherwise.
from __future__ import annotations

import atexit
import json
import queue
import sys
import threading
import time
from typing import Literal, TextIO

__all__ = ["LEVELS", "LOG_FORMATS", "LOG_QUEUE_SIZE", "LogFormat", "Logger", "text_line"]

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}

#: ``json``: one JSON object per line (the default); ``text``: readable single lines.
LogFormat = Literal["json", "text"]
LOG_FORMATS: tuple[LogFormat, ...] = ("json", "text")

#: Lines waiting for the writer thread; beyond, lines are dropped and counted.
LOG_QUEUE_SIZE = 10_000
#: At exit, wait at most this long for the queued lines to be written.
_EXIT_DRAIN_SECONDS = 2.0


class _BackgroundWriter:
    """A bounded queue of lines and the daemon thread that writes them to a stream."""

    def __init__(self, stream: TextIO | None, size: int) -> None:
        #: None: the process's stderr as it is at each write.
        self.stream = stream
        self.dropped = 0
        self._queue: queue.Queue[str] = queue.Queue(maxsize=size)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def put(self, line: str) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="log-writer",
                                                    daemon=True)
                    self._thread.start()
                    atexit.register(self.drain, _EXIT_DRAIN_SECONDS)
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def drain(self, timeout: float) -> bool:
        """Wait up to *timeout* seconds for the queued lines to be written."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def _run(self) -> None:
        while True:
            line = self._queue.get()
            stream = self.stream if self.stream is not None else sys.stderr
            try:
                stream.write(line)
                if self._queue.empty():
                    stream.flush()
            except (OSError, ValueError):
                pass
            finally:
                self._queue.task_done()


_stderr_writer: _BackgroundWriter | None = None
_stderr_lock = threading.Lock()


def _stderr() -> _BackgroundWriter:
    """The one background writer of the process's stderr."""
    global _stderr_writer
    with _stderr_lock:
        if _stderr_writer is None:
            _stderr_writer = _BackgroundWriter(None, LOG_QUEUE_SIZE)
        return _stderr_writer


def _text_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        # Bare when it cannot be misread; quoted (one line, escaped) otherwise.
        if value and not any(c in value for c in ' ="\\') and value.isprintable():
            return value
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def text_line(ts: float, level: str, msg: str, fields: dict[str, object]) -> str:
    """One human-readable line: ``2026-12-06T15:45:00Z INFO  msg key=value …``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    words = " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
    head = f"{stamp} {level.upper():<5} {msg}"
    return f"{head} {words}\n" if words else f"{head}\n"


class Logger:
    """Writes ``{"ts": …, "level": …, "msg": …, **fields}`` lines (or, in the
    ``text`` format, ``<UTC time> <LEVEL> <msg> key=value …``).

    Args:
        level: The lowest level written (``debug``, ``info``, ``warning``, ``error``).
        stream: Where to write (stderr by default).
        background: Write through the bounded queue and its writer thread, so a
            stalled reader never blocks the caller. Default: True for stderr,
            False for a stream given here.
        log_format: ``json`` (default) or ``text``.
    """

    def __init__(self, level: str = "info", stream: TextIO | None = None, *,
                 background: bool | None = None, log_format: LogFormat = "json") -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown log level {level!r}")
        if log_format not in LOG_FORMATS:
            raise ValueError(f"unknown log format {log_format!r}")
        self.log_format = log_format
        self.threshold = LEVELS[level]
        self.stream = stream if stream is not None else sys.stderr
        if background is None:
            background = stream is None
        self._writer: _BackgroundWriter | None = None
        if background:
            self._writer = (_stderr() if stream is None
                            else _BackgroundWriter(self.stream, LOG_QUEUE_SIZE))

    @property
    def dropped(self) -> int:
        """Lines dropped because the writer's queue was full."""
        return 0 if self._writer is None else self._writer.dropped

    def drain(self, timeout: float = _EXIT_DRAIN_SECONDS) -> bool:
        """Wait up to *timeout* seconds for queued lines to be written.

        Returns:
            True when nothing is left in the queue.
        """
        return True if self._writer is None else self._writer.drain(timeout)

    def enabled(self, level: str) -> bool:
        """Whether lines of *level* are written: callers of frequent lines check it
        before they compute the lines' fields."""
        return LEVELS[level] >= self.threshold

    def log(self, level: str, msg: str, **fields: object) -> None:
        """Write one line if *level* passes the threshold.

        A line the stream cannot take (closed, full disk) is dropped: a log
        failure must not take down the connection or request that logged.
        """
        if LEVELS[level] < self.threshold:
            return
        ts = time.time()
        if self.log_format == "text":
            line = text_line(ts, level, msg, fields)
        else:
            record: dict[str, object] = {"ts": round(ts, 3), "level": level, "msg": msg}
            record.update(fields)
            line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        if self._writer is not None:
            self._writer.put(line)
            return
        try:
            self.stream.write(line)
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
