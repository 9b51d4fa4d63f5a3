"""Your own word from the page: takes recorded in the browser, and ``kws enroll`` as a job.

Takes: each arrives as an audio file (the page sends WAV), at most ``MAX_TAKE_SECONDS``;
it is read as ``kws enroll --recordings`` reads one (``kws.audio.files.read_audio``: anything
unreadable or empty is refused with its one line) and kept as 16-bit WAV at the model's rate
in ``<folder>/<word>.takes/``, each written in one step (``kws.writes.staged``).

The job is the command itself, ``kws enroll WORD --out <folder>/<word> --recordings
<takes> --json-progress``, in a child process: the same pipeline and the same lazy door to
the training package as from a terminal, TensorFlow never loaded into the server (its
gigabyte, its threads), and an enrolment that fails or is cancelled leaves the server and the
previous bundle as they were (``kws enroll`` writes its bundle in one step). Its progress is
the job's own: ``--json-progress`` prints what the terminal's bar would show, one JSON line
per step. One job at a time: an enrolment takes the machine's cores for minutes.

Without the training extras (TensorFlow, the training package) ``blocker`` says so in one
line, found without importing them, and the page shows that line instead of the button.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from kws.audio.files import read_audio, write_wav
from kws.bundle import check_bundle_target
from kws.cli import require_extras
from kws.config import Config
from kws.errors import KwsError
from kws.resources import install_hint
from kws.web.models import Folder, PageError
from kws.writes import staged

log = logging.getLogger("kws.web")

MAX_TAKE_BYTES = 2 << 20  # a take as the page sends it: 10 s of 48-kHz 16-bit mono is 960 kB
MAX_TAKE_SECONDS = 10.0
MAX_TAKES = 50  # per word
BUDGETS = ("normal", "tiny")  # kws enroll --budget: tiny is a first look in seconds


def blocker() -> str | None:
    """Why enrolment cannot run here (one line), or None."""
    try:
        require_extras("kws_train", "keras", "tensorflow")
    except ModuleNotFoundError as err:
        return f"Enrolling a word needs the training extras ({err.name} is not installed): {install_hint('train')}"
    return None


class Takes:
    """The takes of each word, in ``<folder>/<word>.takes/``."""

    def __init__(self, folder: Folder, rate: int):
        self.folder = folder
        self.rate = rate

    def list(self, word: str) -> list[dict]:
        folder = self.folder.takes(word)
        if not folder.is_dir():
            return []
        return [{"name": p.name, "bytes": p.stat().st_size} for p in sorted(folder.glob("*.wav"))]

    def add(self, word: str, data: bytes) -> dict:
        """Keep one take (``PageError`` for one that is not audio, too long, or one too many)."""
        folder = self.folder.takes(word)
        taken = {p.name for p in folder.glob("*.wav")} if folder.is_dir() else set()
        if len(taken) >= MAX_TAKES:
            raise PageError(f"{word}: {MAX_TAKES} takes already; delete some first")
        number = next(n for n in range(1, MAX_TAKES + 2) if f"{folder.stem}-{n:02d}.wav" not in taken)
        path = folder / f"{folder.stem}-{number:02d}.wav"
        with staged(path) as staging:
            staging.write_bytes(data)
            try:
                audio = read_audio(staging, self.rate)
            except KwsError as err:
                raise PageError(f"the take is not audio kws can read ({str(err).split(': ', 1)[-1]})") from None
            if len(audio) > MAX_TAKE_SECONDS * self.rate:
                raise PageError(f"a take of {len(audio) / self.rate:.1f} s: at most {MAX_TAKE_SECONDS:g} s, "
                                "the word alone")
            write_wav(staging, audio, self.rate)
        return {"name": path.name, "seconds": round(len(audio) / self.rate, 2)}

    def remove(self, word: str, name) -> None:
        names = {t["name"] for t in self.list(word)}
        if name not in names:  # only a take the list names: no path from a request is opened
            raise PageError(f"{word}: no take {str(name)[:40]!r}")
        (self.folder.takes(word) / name).unlink()


@dataclass
class Job:
    """One enrolment: what the page's progress bar shows."""

    word: str
    out: Path
    state: str = "running"  # running, done, failed, cancelled
    stage: str = "starting"
    done: float = 0.0
    error: str = ""
    stages: list = field(default_factory=list)  # every stage the job reported, in order
    lines: collections.deque = field(default_factory=lambda: collections.deque(maxlen=40))
    process: asyncio.subprocess.Process | None = None
    task: asyncio.Task | None = None  # follows the process's output

    def status(self) -> dict:
        return {"word": self.word, "model": self.out.name, "state": self.state, "stage": self.stage,
                "done": round(self.done, 3), "error": self.error, "stages": list(self.stages)}


class Enrolments:
    """Starts, follows and cancels the ``kws enroll`` job (one at a time).

    ``config_file``: the server's ``--config``, passed on to the job; ``cwd``: where the job
    runs (``kws enroll``'s data defaults are relative to it); ``extra``: more arguments for
    ``kws enroll`` (tests: a fast engine, a cache)."""

    def __init__(self, folder: Folder, takes: Takes, config: Config, config_file: str | None = None,
                 cwd: str | Path | None = None, extra: list[str] | None = None):
        self.folder, self.takes, self.config = folder, takes, config
        self.config_file, self.cwd, self.extra = config_file, cwd, list(extra or [])
        self.job: Job | None = None

    def status(self) -> dict | None:
        return None if self.job is None else self.job.status()

    async def start(self, word: str, budget: str = "normal") -> Job:
        if (reason := blocker()) is not None:
            raise PageError(reason)
        if budget not in BUDGETS:
            raise PageError(f"budget {str(budget)[:20]!r}: {' or '.join(BUDGETS)}")
        if self.job is not None and self.job.state == "running":
            raise PageError(f"an enrolment of {self.job.word!r} is under way; wait for it or cancel it")
        out = self.folder.bundle(word)
        check_bundle_target(out)  # a folder that is not a bundle is refused now, not after minutes
        command = [sys.executable, "-m", "kws", *(["--config", self.config_file] if self.config_file else []),
                   "enroll", word, "--out", str(out), "--json-progress", "--budget", budget, *self.extra]
        if self.takes.list(word):
            command += ["--recordings", str(self.folder.takes(word))]
        job = Job(word, out)
        job.process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=self.cwd)
        self.job = job
        log.info("enrolment of %r started (pid %d)", word, job.process.pid)
        job.task = asyncio.create_task(self._follow(job))
        return job

    def cancel(self) -> None:
        job = self.job
        if job is None or job.state != "running":
            raise PageError("no enrolment under way")
        job.state = "cancelled"
        with contextlib.suppress(ProcessLookupError):
            job.process.terminate()

    async def close(self) -> None:
        """End a job under way (the server stops)."""
        if self.job is not None and self.job.state == "running":
            self.cancel()
            with contextlib.suppress(ProcessLookupError, asyncio.TimeoutError):
                await asyncio.wait_for(self.job.process.wait(), 10)

    async def _follow(self, job: Job) -> None:
        errors: collections.deque = collections.deque(maxlen=20)

        async def progress():
            async for raw in job.process.stdout:
                line = raw.decode(errors="replace").rstrip()
                step = _progress(line)
                if step is not None:
                    job.stage, job.done = step
                    if job.stage not in job.stages[-1:]:
                        job.stages.append(job.stage)
                elif line:
                    job.lines.append(line)

        async def stderr():
            async for raw in job.process.stderr:
                if line := raw.decode(errors="replace").rstrip():
                    errors.append(line)

        await asyncio.gather(progress(), stderr())
        code = await job.process.wait()
        if job.state == "cancelled":
            log.info("enrolment of %r cancelled", job.word)
            return
        if code == 0:
            job.state, job.done, job.stage = "done", 1.0, "done"
            log.info("enrolment of %r done: %s", job.word, job.out)
            return
        job.state = "failed"
        said = [e for e in errors if e.startswith("kws: error:")]
        job.error = (said or list(errors) or [f"kws enroll exited with {code}"])[-1].removeprefix("kws: error: ")
        log.warning("enrolment of %r failed: %s", job.word, job.error)


def _progress(line: str) -> tuple[str, float] | None:
    """``(stage, done)`` from one of ``--json-progress``'s lines, else None (the report's text)."""
    if not line.startswith("{"):
        return None
    try:
        step = json.loads(line)
    except ValueError:
        return None
    if not isinstance(step, dict) or not isinstance(step.get("stage"), str) or \
            not isinstance(step.get("done"), (int, float)):
        return None
    return step["stage"], float(step["done"])
