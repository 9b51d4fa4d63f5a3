"""``kws enroll``: a spotter for the user's own words, trained on this machine in minutes.

Transfer learning on the shipped model: its trained layers up to the pooled embedding (each
TC-ResNet member's input to its ``posteriors`` layer, concatenated) are a frozen backbone;
embeddings of augmented clips are computed once, and only a small head is trained over
``[_silence_, _unknown_, *words]`` (plus the ten Speech Commands words with
``--with-commands``). Backbone and head are exported as one Keras model through
``kws_train.export`` (LiteRT float and int8, logits), so the bundle is like any other.

Real people come with kws: the enrolment bank (``bank``, package data) holds what the frozen
layers make of running speech by hundreds of readers and of thousands of people saying other
words, so an enrolment in a user's clone or an installed wheel trains, fine-tunes, mines and
sets thresholds on real audio of other people as it would beside the developers' data;
``--data`` and ``--negatives`` add to it. A bank computed with another backbone is left out,
said in one line.

Data
----
* positives: the word in every installed synthetic voice (``kws_train.synth``; Piper only when
  asked for with ``--engines``), base voices held apart for validation (thresholds) and
  testing (the report); the user's recordings when given, some held apart for the report;
  all augmented (placement in the window, speed, noise, gain, SpecAugment, and the speaker
  and channel levers of ``kws_train.augment`` at ``enroll.augment``'s levels: vocal-tract
  length, rooms, microphones, narrowband links);
* negatives (``_unknown_``): other words and near-words of the new word, synthesized; the
  bank's running speech and other people's words (its training rows); Speech Commands clips of
  other words (``--data``, optional); windows of running speech (``--negatives``, training
  split only); then those of all these the trained model takes for a word (mined, and trained
  on again: the bank's words mined name the near words people say); the head or tail of the
  word alone;
* ``_silence_``: background noise at the training loudness range (the bank's too).

Thresholds: each word's lowest level that keeps, on the validation streams, no false alarm on
running speech (the bank's validation readers; ``--negatives``' validation readers, and its
training readers too) and at most one per hundred other words (held-apart voices, people in
the bank and in Speech Commands; ``thresholds``), with the base model's smoothing. The report
(``enroll_report.json`` and ``enroll_report.txt`` in the bundle) scores testing streams no
choice has seen, each with the minutes and people that checked it and each false-alarm figure
with the Poisson 95% bound that is all it can vouch for; it warns where real audio of other
people was missing or thin, and names the takes skipped or doubtful.

Modules, one stage each
-----------------------
* ``words``: the words checked and cleaned, near-words, the texts negatives must avoid;
* ``job``: the checked inputs of one enrollment (``Job``) and its ``Budget``;
* ``voices``: synthetic voices and recordings, which are held apart; synthesis of the words,
  other words and near-words;
* ``audio``: one clip made into one window (placed, cut to a piece);
* ``bank``: the enrolment bank, its rows and how it is built (``make_bank``: its command line);
* ``negatives``: real negatives loaded; training, validation and calibration examples made;
* ``model``: backbone and head built, embeddings, training, fine-tuning, export;
* ``mining``: the windows of running speech, and the bank's rows, the trained model takes for a
  word, learnt again;
* ``thresholds``: validation and testing streams, thresholds chosen, streams scored;
* ``report``: the bundle's metadata and the report; ``progress``: the progress bar.

``enroll`` below runs the stages in order. The same seed gives the same bundle: each stage
draws from its own generator, seeded by the seed and the stage's name (``job.stage_rng``), so
reordering stages changes none of them; streams have their own seeded ones; TensorFlow is
seeded and deterministic (``model.open_base``). Keras and TensorFlow are imported
inside functions only: importing this package checks inputs without loading them.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from kws.bundle import bundle_writer
from kws.config import Config
from kws.errors import KwsError
from kws_train import synth
from kws_train.enroll.bank import BANK, usable_bank
from kws_train.enroll.job import BUDGETS, Budget, Job
from kws_train.enroll.model import (Enrolled, backbone, build_model, class_weights, embed, export_bundle,
                                    features, fine_tune, fingerprint, load_base, train_head, validation_recall)
from kws_train.enroll.mining import learn_hard_windows
from kws_train.enroll.negatives import (Examples, bank_training, calibration_clips, load_negatives,
                                        training_examples, validation_clips)
from kws_train.enroll.progress import Progress
from kws_train.enroll.report import (coverage_warnings, enroll_metadata, format_report, per_voice, summary_line,
                                     training_metadata, write_report)
from kws_train.enroll.thresholds import choose_and_test, hardest_negatives
from kws_train.enroll.voices import (DEFAULT_ENGINES, engines_used, held_apart, long_takes, read_recordings,
                                     split_of, synthesize_others, synthesize_words, user_recordings)
from kws_train.enroll.words import COMMANDS, ONSETS, VOWELS, check_inputs, clean_word, near_words, sounds

__all__ = ["BANK", "BUDGETS", "COMMANDS", "DEFAULT_ENGINES", "ONSETS", "VOWELS", "Budget", "Enrolled", "Examples",
           "Progress", "backbone", "build_model", "check_inputs", "clean_word", "enroll", "format_report",
           "hardest_negatives", "held_apart", "near_words", "per_voice", "read_recordings", "sounds",
           "split_of", "summary_line"]


def enroll(config: Config, words: list[str], out: str | Path, *, recordings: str | Path | None = None,
           with_commands: bool = False, data: str | Path | None = None,
           negatives: str | Path | None = None, engines: list[str] | None = None,
           budget: str | Budget = "normal", seed: int = 0, cache: str | Path | None = None,
           base: str | Path | None = None, progress=True, threads: int = 0,
           tune_epochs: int | None = None, bank: str | Path | None = BANK) -> dict:
    """Enroll ``words`` and write the bundle ``out``; returns the report. ``budget``: a name
    from ``BUDGETS``, or a ``Budget`` of one's own (``studies/enroll_study.py``'s levers).
    ``progress``: a bar on a terminal (True), none (False), or ``report(stage, done)`` told
    each step (``Progress``). ``bank``: the enrolment bank (``kws_train.enroll.bank``; None: none),
    used where it belongs to the base model."""
    started = time.monotonic()
    words = check_inputs(words, out, recordings, with_commands, data)
    if Path(base or config.model_path).resolve() == Path(out).resolve():
        raise KwsError(f"{out}: that is the base model; write the enrolled bundle elsewhere")
    plan = _plan(budget, tune_epochs)
    engines = list(engines) if engines else DEFAULT_ENGINES
    all_voices = synth.voices(engines, plan.pitches, plan.rates)
    if not all_voices:
        raise KwsError(f"no speech engine installed for {', '.join(engines)} ({synth.engine_summary(engines)})")
    engines, missing = engines_used(engines, all_voices)
    # Recordings before any long work: a folder without usable audio is an input error.
    user, notes = ({}, []) if recordings is None else user_recordings(recordings, words, config.audio.sample_rate)
    job = Job(config=config, words=words, with_commands=with_commands, data=_folder(data),
              negatives=_folder(negatives), engines=engines, plan=plan,
              budget=budget if isinstance(budget, str) else "custom", seed=seed,
              cache=Path(cache) if cache else Path(tempfile.gettempdir()) / "kws-enroll-cache",
              base=base, voices=all_voices, missing=missing, held=held_apart(all_voices), recordings=user,
              recording_notes=notes, bank=Path(bank) if bank is not None else None, threads=threads)
    bar = Progress(_estimates(job), progress is True, progress if callable(progress) else None)
    # The whole bundle, thresholds and report included, is built in one staging folder: the
    # previous bundle at ``out`` stays usable until this one is complete (kws.writes).
    with bundle_writer(out) as staging:
        try:
            report = _enroll(job, Path(out), staging, bar)
        finally:
            bar.close()
        report["seconds"] = round(time.monotonic() - started, 1)
        report["stage_seconds"] = bar.seconds
        write_report(staging, report)
    return report


def _plan(budget: str | Budget, tune_epochs: int | None) -> Budget:
    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise KwsError(f"unknown budget {budget!r} (choose {', '.join(BUDGETS)})")
        budget = BUDGETS[budget]
    if tune_epochs is None:
        return budget
    if not 0 <= tune_epochs <= 100:
        raise KwsError("--tune-epochs must be between 0 and 100")
    return replace(budget, tune_epochs=tune_epochs)


def _folder(path: str | Path | None) -> Path | None:
    """An optional data folder: used where it exists."""
    return Path(path) if path is not None and Path(path).is_dir() else None


def _estimates(job: Job) -> dict[str, float]:
    """Rough seconds of work per stage, the bar's weights; the embeddings and fine-tuning are
    estimated once the examples are counted."""
    return {"loading the base model": 12.0, "synthesizing the words": 0.15 * len(job.words) * len(job.voices),
            "synthesizing other words": 40.0, "loading negatives": 10.0, "computing embeddings": 0.0,
            "training the head": 15.0, "fine-tuning the last block": 0.0, "mining running speech": 20.0,
            "exporting": 60.0, "choosing thresholds": 40.0, "testing": 25.0}


def _enroll(job: Job, out: Path, staging: Path, bar: Progress) -> dict:
    """The stages, in order; the report without its times. Each stage draws from its own
    generator (``Job.rng``): reordering them changes no stage's examples."""
    from kws_train.augment import Augmenter, mel_centres

    bar.stage("loading the base model")  # first: a bank that does not fit is said at once
    base = load_base(job)
    bank, bank_warning = usable_bank(job.bank, fingerprint(base, job.sr))
    if bank_warning:
        print(f"kws: warning: {bank_warning}", file=sys.stderr, flush=True)
    bar.stage("synthesizing the words")
    positives = synthesize_words(job, bar)
    notes = job.recording_notes + long_takes(job, positives)
    bar.stage("synthesizing other words")
    others = synthesize_others(job, bar)
    bar.stage("loading negatives")
    neg = load_negatives(job, bank, bar)
    # Few clean synthetic voices must stand for every speaker, room and microphone: enrolment
    # perturbs with its own levels (config enroll.augment; studies/enroll_study.py measures them).
    augmenter = Augmenter(job.config.enroll_augment, neg.noises, job.sr, mel_centres(job.config.features),
                          job.seed)
    examples = training_examples(job, positives, others, neg, augmenter)

    bar.stage("computing embeddings")
    n = len(examples.labels)
    bar.estimate({"computing embeddings": 0.0012 * n, "fine-tuning the last block": 0.002 * n * job.plan.tune_epochs})
    train = embed(base, examples, augmenter, job.rng("computing embeddings"), bar)
    del examples  # every example's wave: the most memory an enrollment holds
    if bank is not None:
        rows, labels = bank_training(job, bank)
        train = train.join(features(base, bank.activations(rows), labels))
    val_clips = validation_clips(job, positives, others, augmenter)
    val = embed(base, val_clips)

    bar.stage("training the head")
    weights = class_weights(train.labels, len(job.labels))
    losses = train_head(base.model, train, val, weights, job.plan.epochs, bar)
    tuned = job.plan.tune_epochs if base.model.tunable else 0
    if tuned:
        bar.stage("fine-tuning the last block")
        losses += fine_tune(base.model, train, val, weights, tuned, job.plan.tune_rate, bar)
    mined = {}
    if job.plan.mined_windows and (neg.speech_train or bank is not None):
        bar.stage("mining running speech")
        train, more, mined = learn_hard_windows(job, base, train, val, neg.speech_train, bank, augmenter, tuned, bar)
        losses += more
    recall = validation_recall(base.model, val, job.labels)

    bar.stage("exporting")
    training = training_metadata(job, base, train.labels, losses, tuned, mined, recall)
    enroll_meta = enroll_metadata(job, positives, others, bank, bank_warning, notes)
    export_bundle(staging, job, base, calibration_clips(job, positives, others, augmenter),
                  val_clips.waves[:64], training, enroll_meta, bar)
    bar.stage("choosing thresholds")
    bank_posteriors = None if bank is None else \
        base.model.tune.predict(bank.activations(np.arange(len(bank.label))), batch_size=1024, verbose=0)
    verdict = choose_and_test(job, staging, positives, others, neg, bank_posteriors, bar)
    report = {"bundle": str(out), "words": job.words, "labels": job.labels, "thresholds": verdict.thresholds,
              "hardest_negatives": verdict.hardest, "budget": job.budget, "engines": job.engines,
              "training": training, "enroll": enroll_meta, "testing": verdict.testing,
              "testing_total": verdict.total, "validation": verdict.validation}
    report["warnings"] = coverage_warnings(report)
    return report
