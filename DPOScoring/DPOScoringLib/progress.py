"""Progress reporting and cancellation for long work, without any GUI.

Long functions take ``progress: Progress | None``. ``Progress.step(fraction, message)`` calls
the caller's callback (a progress bar, a log line, a worker-process queue) and raises
``DPOCancelled`` as soon as the caller has asked to stop, so work ends at the next step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .errors import DPOCancelled


class Progress:
    def __init__(self, callback: Callable[[float, str], None] | None = None,
                 cancel_event: threading.Event | None = None, start: float = 0.0, end: float = 1.0):
        self.callback = callback
        self.cancel_event = cancel_event or threading.Event()
        self.start = start
        self.end = end

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
            self.callback(self.start + (self.end - self.start) * min(max(fraction, 0.0), 1.0), message)

    def sub(self, start: float, end: float) -> Progress:
        """A child reporter for a part of the work, mapping its 0-1 onto start-end of this one."""
        span = self.end - self.start
        return Progress(self.callback, self.cancel_event, self.start + span * start, self.start + span * end)


def ensure_progress(progress: Progress | None) -> Progress:
    return progress if progress is not None else Progress()
