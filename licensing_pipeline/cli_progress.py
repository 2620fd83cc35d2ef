"""Compact, live progress lines for `licensing-pipeline run` (one line per finished step)."""

import logging
import sys
import time
from typing import Any

import dagster as dg
from dagster._core.log_manager import get_log_record_metadata, has_log_record_metadata

_SHOWN = {
    "STEP_SUCCESS": "done",
    "STEP_FAILURE": "FAILED",
    "ASSET_CHECK_EVALUATION": "check",
}


class _ProgressHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        if not has_log_record_metadata(record):
            return
        event = get_log_record_metadata(record)["dagster_event"]
        if event is None or event.event_type_value not in _SHOWN:
            return
        elapsed = time.monotonic() - self.started
        label = _SHOWN[event.event_type_value]
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data: Any = event.event_specific_data
            passed = getattr(data, "passed", True)
            if passed:
                return
            name = f"{data.asset_key.to_user_string()}:{data.check_name}"
            severity = getattr(getattr(data, "severity", None), "value", "ERROR")
            label = "check failed" if severity == "ERROR" else "check warned"
            if severity == "ERROR" and getattr(data, "blocking", False):
                label = "BLOCKING"  # the assets downstream of it will not run
        else:
            name = event.step_key or ""
        if event.event_type_value == "STEP_FAILURE":
            error = getattr(event.event_specific_data, "error", None)
            message = error_summary(error).splitlines()[-1]
            print(f"  [{elapsed:6.1f}s] {label:<12} {name}: {message}", file=sys.stderr, flush=True)
            return
        print(f"  [{elapsed:6.1f}s] {label:<12} {name}", file=sys.stderr, flush=True)


def error_summary(error: Any) -> str:
    """A failed step's error: the innermost cause (what the user can act on), not Dagster's
    "Error occurred while executing op" wrapper around it."""
    if error is None:
        return "unknown error"
    while getattr(error, "cause", None) is not None:
        error = error.cause
    message = (error.message or "").strip()
    if error.cls_name == "Failure":  # raised for the user: the description is the message
        message = message.split(": ", 1)[-1]
    return message or error.cls_name


@dg.logger(config_schema={}, description="One line per finished step, for the command line.")
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = logging.getLogger("licensing_pipeline.progress")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.handlers = [_ProgressHandler()]
    return log
