"""The progress bar of an enrollment, and the time each stage took (the report's ``time``)."""

from __future__ import annotations

import sys
import time


class Progress:
    """One bar over the whole enrollment, in estimated seconds of work, with the time left.

    Drawn on a terminal only (tqdm's ``disable=None``), and cleared when done, so an error
    after it is still the one line on stderr. ``report(stage, done)``, if given, is told the
    same progress (``done``: the fraction of the estimated work, 0 to 1) at each stage and
    each step of one: how a program follows an enrolment (``kws enroll --json-progress``)."""

    def __init__(self, stages: dict[str, float], enabled: bool = True, report=None):
        from tqdm import tqdm

        self.stages = stages
        self.bar = tqdm(total=sum(stages.values()), unit="s", file=sys.stderr,
                        disable=None if enabled else True, leave=False, dynamic_ncols=True,
                        bar_format="{desc:<28}{percentage:3.0f}%|{bar}| {elapsed} elapsed, "
                                   "about {remaining} left")
        self.current, self.done_in_stage = None, 0.0
        self.seconds: dict[str, float] = {}  # measured time of each stage
        self._started = time.monotonic()
        self.report = report
        self._finished = 0.0  # estimated work of the stages done (a disabled tqdm counts none)

    def stage(self, name: str) -> None:
        self.finish_stage()
        self._finished += self.done_in_stage
        self.current, self.done_in_stage = name, 0.0
        self._started = time.monotonic()
        self.bar.set_description_str(name)
        self._tell()

    def estimate(self, stages: dict[str, float]) -> None:
        """New estimates of some stages, once the work they do is known."""
        self.stages.update(stages)
        self.bar.total = sum(self.stages.values())

    def advance(self, fraction: float) -> None:
        """The current stage is ``fraction`` done."""
        target = self.stages[self.current] * min(1.0, fraction)
        if target > self.done_in_stage:
            self.bar.update(target - self.done_in_stage)
            self.done_in_stage = target
            self._tell()

    def finish_stage(self) -> None:
        if self.current is not None:
            self.advance(1.0)
            self.seconds[self.current] = round(time.monotonic() - self._started, 1)

    def _tell(self) -> None:
        if self.report is not None:
            total = sum(self.stages.values())
            self.report(self.current, min(1.0, (self._finished + self.done_in_stage) / total) if total else 0.0)

    def close(self) -> None:
        self.finish_stage()
        self.bar.close()
