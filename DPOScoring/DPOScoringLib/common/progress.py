"""Progress reporting and cancellation for long work, without any GUI.

Long functions take ``progress: Progress | None``. ``Progress.step(fraction, message)`` calls
the caller's callback (a progress bar, a log line, a worker-process queue) and raises
``DPOCancelled`` as soon as the caller has asked to stop, so work ends at the next step.

A part of the work can be given a stage name (``progress.sub(0.5, 0.8, stage="detection")``):
its messages then read ``detection: thresholding inside the lungs``, so a log line says which
stage it belongs to. ``line_printer`` is the command line's callback (``[ 80%] detection: ...``).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TextIO

from .errors import DPOCancelled


class Progress:
    def __init__(self, callback: Callable[[float, str], None] | None = None,
                 cancel_event: threading.Event | None = None, start: float = 0.0, end: float = 1.0,
                 stage: str | None = None):
        self.callback = callback
        self.cancel_event = cancel_event or threading.Event()
        self.start = start
        self.end = end
        self.stage = stage

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check(self) -> None:
        if self.cancel_event.is_set():
            raise DPOCancelled("cancelled by the user")

    def step(self, fraction: float, message: str) -> None:
        self.check()
        if self.callback is not None:
            if self.stage and not message.startswith(f"{self.stage}: "):
                message = f"{self.stage}: {message}"
            self.callback(self.start + (self.end - self.start) * min(max(fraction, 0.0), 1.0), message)

    def sub(self, start: float, end: float, stage: str | None = None) -> Progress:
        """A child reporter for a part of the work, mapping its 0-1 onto start-end of this one;
        ``stage`` names that part in every message (default: this reporter's stage)."""
        span = self.end - self.start
        return Progress(self.callback, self.cancel_event, self.start + span * start, self.start + span * end,
                        stage or self.stage)


def ensure_progress(progress: Progress | None) -> Progress:
    return progress if progress is not None else Progress()


def _stage_of(message: str) -> str:
    head, separator, _ = message.partition(": ")
    return head if separator else ""


def line_printer(quiet: bool = False, stream: TextIO | None = None, every_percent: int = 10):
    """A progress callback printing ``[ 42%] stage: message`` lines (standard error by default):
    the first message of every stage, then one line per ``every_percent`` and the last one.
    None when ``quiet``."""
    if quiet:
        return None
    last = {"percent": -every_percent, "stage": None, "held": None}

    def show(percent: int, message: str) -> None:
        print(f"[{percent:3d}%] {message}", file=stream or sys.stderr, flush=True)

    def report(fraction: float, message: str) -> None:
        percent = int(fraction * 100)
        stage = _stage_of(message)
        if stage != last["stage"] and last["held"] is not None:
            show(*last["held"])  # a stage's last word (e.g. how many candidates) is always shown
        if stage != last["stage"] or percent >= last["percent"] + every_percent or percent == 100:
            last.update(percent=percent, stage=stage, held=None)
            show(percent, message)
        else:
            last["held"] = (percent, message)
    return report
