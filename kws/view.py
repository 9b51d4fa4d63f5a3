"""A live view for people who would rather look than read (``rich``).

``view(updates)`` draws, a few times a second, from ``kws.api.Update``s (``Spotter.feed``,
``Spotter.replay``, ``Spotter.listen_updates``): the input level, each word's smoothed score
as a bar against its threshold (the ``|`` in the bar), and the last detections and near
misses. When the output is not a terminal it prints plain lines instead, one per detection
and per near miss, so a pipe or a log gets text, not escape codes::

    spotter = kws.Spotter()
    view(spotter.listen_updates())                     # the microphone
    rate, _, blocks = read_blocks("words.wav", 10)
    view(spotter.replay(blocks, rate, realtime=True))  # a file, at the pace it was spoken
"""

from __future__ import annotations

import collections
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Callable, Iterable

from kws.api import LEVEL_FLOOR_DB, NearMiss, Update
from kws.detector import Detection

BAR = 32  # characters of a score bar
LEVEL_FLOOR = -60.0  # dBFS at the left end of the level bar
HIGHLIGHT_SECONDS = 1.0  # a word that fired stays highlighted this long (stream time)


@dataclass
class ViewState:
    """What the view shows: the latest update, and the last few events."""

    history: int = 6
    latest: Update | None = None
    detections: collections.deque = field(default_factory=collections.deque)
    near_misses: collections.deque = field(default_factory=collections.deque)
    count: int = 0

    def add(self, update: Update) -> None:
        self.latest = update
        self.count += len(update.detections)
        self.detections.extend(update.detections)
        self.near_misses.extend(update.near_misses)
        while len(self.detections) > self.history:
            self.detections.popleft()
        while len(self.near_misses) > self.history:
            self.near_misses.popleft()


def bar(value: float, threshold: float | None = None, width: int = BAR) -> str:
    """``value`` in [0, 1] as a bar of ``width`` characters, ``|`` marking ``threshold``."""
    filled = max(0, min(width, round(value * width)))
    cells = ["█"] * filled + ["·"] * (width - filled)
    if threshold is not None:
        cells[max(0, min(width - 1, round(threshold * width) - 1))] = "|"
    return "".join(cells)


def render(state: ViewState, title: str = "kws"):
    """The view of ``state`` as a ``rich`` renderable."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    update = state.latest
    if update is None:
        return Text(f"{title}: waiting for audio ...")
    level = max(LEVEL_FLOOR, update.level_db)
    header = Text.assemble((f"{title}  ", "bold"), f"{update.time:7.1f} s   level ",
                           (bar((level - LEVEL_FLOOR) / -LEVEL_FLOOR, width=20), "cyan"),
                           " silence" if update.level_db <= LEVEL_FLOOR_DB else f" {update.level_db:6.1f} dBFS")
    fired = {d.word for d in state.detections if update.time - d.time <= HIGHLIGHT_SECONDS}
    table = Table(box=None, padding=(0, 1), show_header=True, header_style="bold")
    table.add_column("word")
    table.add_column("score (| = threshold)", no_wrap=True)
    table.add_column("score", justify="right")
    table.add_column("threshold", justify="right")
    for word, score in update.scores.items():
        threshold = update.thresholds.get(word)
        style = "bold green" if word in fired else ("yellow" if threshold and score >= 0.5 * threshold else "")
        table.add_row(Text(word, style=style), Text(bar(score, threshold), style=style or "dim"),
                      f"{score:.2f}", "-" if threshold is None else f"{threshold:.2f}")
    events = Text("last detections: ", style="bold")
    events.append(", ".join(f"{d.word} {d.score:.2f} at {d.time:.1f} s" for d in reversed(state.detections))
                  or "none yet")
    misses = Text("near misses: ", style="bold")
    misses.append(", ".join(f"{m.word} {m.score:.2f}<{m.threshold:.2f} at {m.time:.1f} s"
                            for m in reversed(state.near_misses)) or "none")
    return Group(header, table, events, misses)


def detection_line(d: Detection) -> str:
    return f"{d.time:9.3f}  {d.word:<8} {d.score:.3f}"


def near_miss_line(m: NearMiss) -> str:
    return f"{m.time:9.3f}  {m.word:<8} {m.score:.3f}  near miss (threshold {m.threshold:.3f})"


def replay_lines(update: Update) -> list[str]:
    """An update's detections and near misses as ``kws replay`` prints them."""
    return [*map(detection_line, update.detections), *map(near_miss_line, update.near_misses)]


def view(updates: Iterable[Update], out: IO[str] | None = None, refresh_per_second: float = 8,
         history: int = 6, title: str = "kws", force_terminal: bool | None = None,
         lines: Callable[[Update], list[str]] = replay_lines) -> ViewState:
    """Draw ``updates`` until they end (or Ctrl-C, which propagates); return the final state.

    On a terminal the view is redrawn at most ``refresh_per_second`` times a second (and once
    at the end, left on screen); elsewhere each update is printed as ``lines`` (the calling
    command's own lines: ``kws replay``'s by default, ``kws listen`` passes its own).
    """
    from rich.console import Console
    from rich.live import Live

    out = sys.stdout if out is None else out
    console = Console(file=out, force_terminal=force_terminal)
    state = ViewState(history=history)
    if not console.is_terminal:
        for update in updates:
            state.add(update)
            for line in lines(update):
                print(line, file=out, flush=True)
        return state
    every = 1.0 / refresh_per_second
    drawn = 0.0
    with Live(render(state, title), console=console, auto_refresh=False, transient=False) as live:
        for update in updates:
            state.add(update)
            now = time.monotonic()
            if now - drawn >= every:
                live.update(render(state, title), refresh=True)
                drawn = now
        live.update(render(state, title), refresh=True)
    return state
