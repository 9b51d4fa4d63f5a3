"""Hard negatives mined from the training split of the running speech and of the bank: the
windows (and other people's words) that the model, as trained so far, takes for an enrolled
word, learnt again as ``_unknown_``.

Random windows of running speech (``negatives.training_examples``) seldom land on the few
syllables that sound like the word; thresholds then climb to near 1 to keep speech quiet, and
people saying the word fall below them. Mining finds those syllables, as the second round of
``rounds.sh`` does for the shipped model (it cut false alarms on running speech 9-24x there).
Only the training split is mined: the held-apart readers still judge the thresholds. The
bank's rows (``kws_train.enroll.bank``) are activations, not audio, so they come back as
copies, not augmented; its words are labelled, so what was mined names the near words people
say ("nine" for "marvin").
"""

from __future__ import annotations

import numpy as np

from kws.eval.testaudio import NEGATIVE
from kws.labels import UNKNOWN
from kws_train.enroll.audio import fit
from kws_train.enroll.bank import Bank
from kws_train.enroll.job import Job
from kws_train.enroll.model import (Base, Features, activations, class_weights, embed, features, fine_tune,
                                    train_head)
from kws_train.enroll.negatives import Examples

HOP_SECONDS = 0.25   # between the windows scored (a word lasts 0.3-0.7 s: each is seen whole)
LEVEL = 0.2          # a window is hard when an enrolled word scores above this


def learn_hard_windows(job: Job, base: Base, train: Features, val: Features, speech: list[np.ndarray],
                       bank: Bank | None, augmenter, tuned: bool, bar) -> tuple[Features, list[float], dict]:
    """Mine ``speech`` and the ``bank``'s training rows, then train ``job.plan.mine_epochs`` more
    epochs with what was found (the last blocks too where ``tuned``): the training features
    with the mined ones, the epochs' losses, and what was mined (counts, and the bank's words)."""
    rng = job.rng("mining")
    hard = hard_windows(job, base, speech) if speech else []
    rows = hard_rows(job, base, bank) if bank is not None else np.zeros(0, int)
    mined = {"speech_windows": len(hard), "bank_speech_windows": 0, "bank_words": {}}
    if bank is not None:
        words = bank.words(rows)
        mined["bank_speech_windows"] = words.count(NEGATIVE)
        for w in sorted(set(words) - {NEGATIVE}, key=lambda w: (-words.count(w), w)):  # ties: by name, not hash
            mined["bank_words"][w] = words.count(w)
    if not hard and not len(rows):
        return train, [], mined
    if hard:
        train = train.join(embed(base, mined_examples(job, hard, augmenter, rng), augmenter, rng))
    if len(rows):
        copies = np.repeat(rows, job.plan.mined_copies)
        train = train.join(features(base, bank.activations(copies), np.full(len(copies), job.index[UNKNOWN])))
    weights = class_weights(train.labels, len(job.labels))
    epochs = job.plan.mine_epochs
    losses = fine_tune(base.model, train, val, weights, epochs, job.plan.tune_rate, bar) if tuned else \
        train_head(base.model, train, val, weights, epochs, bar)
    return train, losses, mined


def hard_rows(job: Job, base: Base, bank: Bank) -> np.ndarray:
    """The ``job.plan.mined_windows`` training rows of ``bank`` (running speech, other words) where
    an enrolled word scores highest, of those above ``LEVEL``."""
    rows = np.concatenate([bank.rows("training", "speech"), bank.rows("training", "word", job.taken)])
    word_score = _word_scores(job, base, bank.activations(rows))
    order = np.argsort(-word_score)[:job.plan.mined_windows]
    return rows[order[word_score[order] > LEVEL]]


def _word_scores(job: Job, base: Base, acts: list[np.ndarray]) -> np.ndarray:
    """The highest posterior of an enrolled word for each example's activations, through the
    last blocks and the head as trained so far."""
    posteriors = base.model.tune.predict(acts, batch_size=512, verbose=0)
    return posteriors[:, [job.index[w] for w in job.words]].max(axis=1)


def hard_windows(job: Job, base: Base, speech: list[np.ndarray]) -> list[np.ndarray]:
    """The ``job.plan.mined_windows`` windows of ``speech`` where an enrolled word scores
    highest, of those above ``LEVEL``."""
    length, hop = job.length, round(HOP_SECONDS * job.sr)
    windows = [fit(f[at:at + length], length) for f in speech
               for at in range(0, max(1, len(f) - length + 1), hop)]
    if not windows:
        return []
    word_score = _word_scores(job, base, activations(windows, base.frontend, base.model.prefix))
    order = np.argsort(-word_score)[:job.plan.mined_windows]
    return [windows[i] for i in order if word_score[i] > LEVEL]


def mined_examples(job: Job, windows: list[np.ndarray], augmenter, rng: np.random.Generator) -> Examples:
    """Each hard window, augmented ``job.plan.mined_copies`` times, as ``_unknown_``."""
    examples = Examples()
    for wave in windows:
        for _ in range(job.plan.mined_copies):
            examples.add(augmenter.waveform(wave, rng), job.index[UNKNOWN])
    return examples
