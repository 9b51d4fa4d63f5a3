"""The progress bar of an enrollment, and the time each stage took (the report's ``time``)."""

from __future__ import annotations

import sys
import time


class Progress:
    """One bar over the whole enrollment, in estimated seconds of work, with the time left.

    Drawn on a terminal only (tqdm's ``disable=None``), and cleared when done, so an error
    after it is still the one line on stderr."""

    def __init__(self, stages: dict[str, float], enabled: bool = True):
        from tqdm import tqdm

        self.stages = stages
        self.bar = tqdm(total=sum(stages.values()), unit="s", file=sys.stderr,
                        disable=None if enabled else True, leave=False, dynamic_ncols=True,
                        bar_format="{desc:<28}{percentage:3.0f}%|{bar}| {elapsed} elapsed, "
                                   "about {remaining} left")
        self.current, self.done_in_stage = None, 0.0
        self.seconds: dict[str, float] = {}  # measured time of each stage
        self._started = time.monotonic()

    def stage(self, name: str) -> None:
        self.finish_stage()
        self.current, self.done_in_stage = name, 0.0
        self._started = time.monotonic()
        self.bar.set_description_str(name)

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

    def finish_stage(self) -> None:
        if self.current is not None:
            self.advance(1.0)
            self.seconds[self.current] = round(time.monotonic() - self._started, 1)

    def close(self) -> None:
        self.finish_stage()
        self.bar.close()
