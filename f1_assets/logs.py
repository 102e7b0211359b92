"""JSON log lines for every run: Dagster's `JsonLogFormatter`, made safe for any library's records.

`dagster.yaml` (`python_logs.dagster_handler_config`) uses this formatter for the JSON handler on
stdout. Dagster's own formatter dumps `record.__dict__` as it is, so a record that carries an
exception (`exc_info`, as FastF1's "Traceback for failure in …" lines do) or an object in its args
fails to serialize and Python prints a "--- Logging error ---" traceback instead of the line. Here the
exception becomes text, anything else that JSON cannot hold becomes its `str`, and URL passwords are
masked (`settings.redact`) in the finished line.
"""

from __future__ import annotations

import json
import logging

import dagster as dg

from f1_assets import settings

_DAGSTER_ATTRS = ("dagster_meta", "dagster_event")


class JsonLogFormatter(dg.JsonLogFormatter):
    def format(self, record: logging.LogRecord) -> str:
        safe = logging.makeLogRecord(record.__dict__)  # a copy: other handlers see the record unchanged
        if safe.exc_info:
            safe.exc_text = safe.exc_text or self.formatException(safe.exc_info)
            safe.exc_info = None
        if safe.args:
            safe.msg, safe.args = safe.getMessage(), None
        for key, value in list(safe.__dict__.items()):
            if key in _DAGSTER_ATTRS:  # Dagster's formatter packs these itself
                continue
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                setattr(safe, key, str(value))
        return settings.redact(super().format(safe))
