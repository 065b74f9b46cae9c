"""`modeldeploy run --log-format json` writes one JSON object per line, quotes and tracebacks included."""

from __future__ import annotations

import json
import logging

from modeldeploy.cli.main import JsonFormatter


def record(msg: str, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord("modeldeploy.reconcile", logging.WARNING, __file__, 1, msg, (), exc_info)


def test_a_message_with_quotes_is_one_json_line() -> None:
    line = JsonFormatter().format(record("ns/fraud Promoted: revision 2 'model \"8\"'"))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "ns/fraud Promoted: revision 2 'model \"8\"'"
    assert entry["level"] == "WARNING" and entry["logger"] == "modeldeploy.reconcile"


def test_a_traceback_stays_inside_the_json_line() -> None:
    line = JsonFormatter().format(record("failed", exc=True))
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]
