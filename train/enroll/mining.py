"""Hard negatives mined from the training split of the running speech: the windows that the
model, as trained so far, takes for an enrolled word, learnt again as ``_unknown_``.

Random windows of running speech (``negatives.training_examples``) seldom land on the few
syllables that sound like the word; thresholds then climb to near 1 to keep speech quiet, and
people saying the word fall below them. Mining finds those syllables, as the second round of
``rounds.sh`` does for the shipped model (it cut false alarms on running speech 9-24x there).
Only the training split is mined: the held-apart readers still judge the thresholds.
"""

from __future__ import annotations

import numpy as np

from kws.labels import UNKNOWN
from kws_train.enroll.audio import fit
from kws_train.enroll.job import Job
from kws_train.enroll.model import Base, Features, class_weights, embed, fine_tune, train_head
from kws_train.enroll.negatives import Examples

HOP_SECONDS = 0.25   # between the windows scored (a word lasts 0.3-0.7 s: each is seen whole)
LEVEL = 0.2          # a window is hard when an enrolled word scores above this


def learn_hard_windows(job: Job, base: Base, train: Features, val: Features, speech: list[np.ndarray],
                       augmenter, rng: np.random.Generator, tuned: bool, bar) -> tuple[Features, list[float], int]:
    """Mine ``speech``, then train ``job.plan.mine_epochs`` more epochs with what was found (the
    last blocks too where ``tuned``): the training features with the mined ones, the epochs'
    losses, and how many windows were mined."""
    hard = hard_windows(job, base, speech)
    if not hard:
        return train, [], 0
    train = with_mined(train, embed(base, mined_examples(job, hard, augmenter, rng), augmenter, rng))
    weights = class_weights(train.labels, len(job.labels))
    epochs = job.plan.mine_epochs
    losses = fine_tune(base.model, train, val, weights, epochs, job.plan.tune_rate, bar) if tuned else \
        train_head(base.model, train, val, weights, epochs, bar)
    return train, losses, len(hard)


def hard_windows(job: Job, base: Base, speech: list[np.ndarray]) -> list[np.ndarray]:
    """The ``job.plan.mined_windows`` windows of ``speech`` where an enrolled word scores
    highest, of those above ``LEVEL``."""
    length, hop = job.length, round(HOP_SECONDS * job.sr)
    windows = [fit(f[at:at + length], length) for f in speech
               for at in range(0, max(1, len(f) - length + 1), hop)]
    if not windows:
        return []
    scored = embed(base, Examples(windows, [0] * len(windows)))
    posteriors = base.model.head.predict(scored.embeddings, batch_size=512, verbose=0)
    word_score = posteriors[:, [job.index[w] for w in job.words]].max(axis=1)
    order = np.argsort(-word_score)[:job.plan.mined_windows]
    return [windows[i] for i in order if word_score[i] > LEVEL]


def mined_examples(job: Job, windows: list[np.ndarray], augmenter, rng: np.random.Generator) -> Examples:
    """Each hard window, augmented ``job.plan.mined_copies`` times, as ``_unknown_``."""
    examples = Examples()
    for wave in windows:
        for _ in range(job.plan.mined_copies):
            examples.add(augmenter.waveform(wave, rng), job.index[UNKNOWN])
    return examples


def with_mined(train: Features, mined: Features) -> Features:
    """The training features and the mined ones together."""
    return Features([np.concatenate([a, b]) for a, b in zip(train.acts, mined.acts)],
                    np.concatenate([train.labels, mined.labels]),
                    np.concatenate([train.embeddings, mined.embeddings]))
