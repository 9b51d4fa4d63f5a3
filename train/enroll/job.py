"""What one enrollment is asked to do (``Job``) and how much data and training it may spend
(``Budget``).

``kws_train.enroll.enroll`` checks the arguments once and builds the ``Job``; every stage reads
it instead of a long list of positional arguments, so a stage's signature shows what it makes
(the results of earlier stages), not everything it might read.

Each stage draws from its own generator, ``stage_rng(seed, stage)``: what one stage draws does
not depend on which stages ran before it, so adding, removing or reordering a stage changes
only that stage's examples, not every bundle.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.config import Config
from kws.labels import labels_for
from kws_train import synth
from kws_train.enroll.words import COMMANDS, bundle_words


@dataclass(frozen=True)
class Budget:
    """How much data and training an enrollment spends."""

    pitches: tuple = synth.PITCHES        # personas per base voice: pitch x rate
    rates: tuple = synth.RATES
    copies: int = 12                      # augmented copies of each training positive clip
    recording_copies: int = 40            # ... of each training recording
    other_voices: int = 3                 # voices per other word / near-word (training)
    near_voices: int = 10                 # (0: near-words never train)
    speech_commands: int = 3000           # Speech Commands clips of other words
    command_clips: int = 400              # per command with --with-commands
    speech_windows: int = 3000            # one-second windows of negative running speech
    bank_speech: int = 3000               # the bank's windows of running speech (all mined)
    bank_words: int = 3000                # the bank's clips of other people's words (all mined)
    partial_fraction: float = 0.5         # head/tail-of-word clips per positive example
    silence_fraction: float = 0.1         # of all examples
    epochs: int = 40                      # of the head alone, on fixed embeddings
    tune_epochs: int = 5                  # then of the last block of each member and the head
    tune_rate: float = 1e-4
    mined_windows: int = 1000             # hardest windows of the training speech (0: no mining)
    mined_copies: int = 2                 # augmented copies of each
    mine_epochs: int = 3                  # of training again with them
    stream_other_words: int = 120         # synthetic other-word clips in each validation/testing stream
    stream_people_words: int = 300        # Speech Commands clips of other words (people) in each
    stream_repeats: int = 2               # each held-apart positive clip said this often


BUDGETS = {
    "normal": Budget(),
    # Seconds, not minutes: for tests and a first look.
    "tiny": Budget(pitches=(0.88, 1.12), rates=(0.85, 1.15), copies=6, recording_copies=10,
                   other_voices=1, near_voices=3, speech_commands=300, command_clips=60,
                   speech_windows=300, bank_speech=600, bank_words=600, epochs=15, tune_epochs=3,
                   mined_windows=100, mine_epochs=1,
                   stream_other_words=20, stream_people_words=30,
                   stream_repeats=1),
}


@dataclass(frozen=True)
class Job:
    """One enrollment's checked inputs."""

    config: Config
    words: list[str]                      # cleaned (words.clean_word)
    with_commands: bool
    data: Path | None                     # Speech Commands, where it exists
    negatives: Path | None                # running speech without the words, where it exists
    engines: list[str]                    # the engines that have voices here
    plan: Budget
    budget: str                           # the plan's name, for the report
    seed: int
    cache: Path                           # synthetic clips, kept between enrollments
    base: str | Path | None               # the bundle whose layers are reused (None: config's model)
    voices: list[synth.Voice]             # every persona of every engine used
    missing: dict[str, str]               # "engine voice" -> how to install it, for those not here
    held: dict[str, str]                  # held-apart base voices (voices.held_apart)
    recordings: dict[str, list[tuple[str, np.ndarray]]]  # word -> the user's takes (path, wave)
    recording_notes: list[str]            # takes skipped (why) or doubtful (voices.read_recordings)
    bank: Path | None                     # the enrolment bank to use (bank.BANK), None for none
    threads: int                          # TensorFlow's (0: all cores)

    def rng(self, stage: str) -> np.random.Generator:
        return stage_rng(self.seed, stage)

    @property
    def sr(self) -> int:
        return self.config.audio.sample_rate

    @property
    def length(self) -> int:
        return self.config.audio.clip_samples

    @property
    def labels(self) -> list[str]:
        return labels_for(self.words + (COMMANDS if self.with_commands else []))

    @property
    def index(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def taken(self) -> set[str]:
        return bundle_words(self.words, self.with_commands)


def stage_rng(seed: int, stage: str) -> np.random.Generator:
    """The generator of one stage of an enrollment: seeded by the seed and the stage's name."""
    return np.random.default_rng([seed, zlib.crc32(stage.encode())])
