"""Progress of a long training step, reported as it goes: at most one line every `every_s`
seconds, and always the last, so minutes of training are neither minutes of silence nor a flood."""

import time
from collections.abc import Callable

Report = Callable[[str], None]


class Progress:
    def __init__(self, report: Report | None, what: str, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.report, self.what, self.every_s, self.clock = report, what, every_s, clock
        self.began, self.last = clock(), None

    def step(self, line: str, final: bool = False) -> None:
        """Report `line` (with the time elapsed) unless the previous report is under `every_s` old."""
        if self.report is None:
            return
        now = self.clock()
        if final or self.last is None or now - self.last >= self.every_s:
            self.last = now
            self.report(f"{self.what}: {line}, {now - self.began:.0f} s elapsed")
