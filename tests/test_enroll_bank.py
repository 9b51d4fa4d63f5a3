"""The enrolment bank (``kws_train.enroll.bank``) and what an enrolment says it could not check
(issue 30): the bank's rows replayed as streams count a run of windows as one false alarm;
the bundle's own words never train; a bank of another backbone is left out with one line;
skipped and doubtful takes are named; missing or thin real audio is a warning naming what to
pass. Banks here are made up, or built from generated audio on the test bundle: nothing needs
``../shared``."""

import numpy as np
import pytest
import soundfile as sf

from kws.config import load_config
from kws.eval.scoring import replay_trigger, score
from kws.eval.testaudio import NEGATIVE
from kws.labels import SILENCE
from kws_train.enroll import bank as banks
from kws_train.enroll.job import stage_rng
from kws_train.enroll.report import coverage_warnings
from kws_train.enroll.thresholds import bank_recording
from kws_train.enroll.voices import bursts, read_recordings

SR = 16000
CLASSES = ["_silence_", "_unknown_", "marvin"]


def _bank(tmp_path, fingerprint="abc"):
    """Two recordings of speech (validation), three word clips, two silence rows (training)."""
    rows = [(NEGATIVE, "validation", "so/1", "so/1/a", o) for o in (0.0, 0.5, 1.0, 1.5)] + \
           [(NEGATIVE, "validation", "so/2", "so/2/b", o) for o in (0.0, 0.5)] + \
           [("nine", "validation", "sc/x", "", 0.0), ("marvin", "testing", "sc/y", "", 0.0),
            ("nine", "training", "sc/z", "", 0.0), (SILENCE, "training", "noise", "", 0.0),
            (SILENCE, "training", "noise", "", 0.0)]
    path = tmp_path / "bank.npz"
    banks.write_bank(path, [_acts(len(rows))], rows, {"fingerprint": fingerprint, "base": "models/x",
                                                      "clip_seconds": 1.0})
    return banks.load_bank(path), path


def _acts(rows):
    """Activations of one member as a prefix gives them: (rows, frames, channels)."""
    return np.random.default_rng(0).uniform(-1, 2, (rows, 3, 4)).astype(np.float32)


def _posteriors(word_scores):
    word = np.asarray(word_scores, float)
    return np.stack([np.zeros_like(word), 1 - word, word], 1)


def test_activations_come_back_within_half_a_level(tmp_path):
    bank, _ = _bank(tmp_path)
    rows = np.arange(len(bank.label))
    acts, back = _acts(len(rows)), bank.activations(rows)[0]
    step = (acts.max(axis=(1, 2)) - acts.min(axis=(1, 2))) / banks.LEVELS
    assert (np.abs(back - acts) <= step[:, None, None] / 2 + 1e-6).all()


def test_a_run_of_windows_over_one_recording_is_one_false_alarm(tmp_path):
    bank, _ = _bank(tmp_path)
    speech = bank.rows("validation", "speech")
    assert len(speech) == 6
    # Recording a: two windows take it for the word, recording b none.
    post = np.zeros((len(bank.label), 3))
    post[speech] = _posteriors([0.1, 0.9, 0.9, 0.1, 0.1, 0.1])
    rec = bank_recording(bank, post, speech, hop=0.02, smoothing=0.5)
    assert rec.duration == pytest.approx(2.5 + 1.5)  # the audio the windows cover
    detections = replay_trigger(rec.times, rec.scores, CLASSES, np.array([np.inf, np.inf, 0.6]), 1.0)
    assert len(detections) == 1
    # Smoothed over half a second: a single window at 0.9 between quiet ones peaks lower.
    post[speech] = _posteriors([0.1, 0.9, 0.1, 0.1, 0.1, 0.1])
    rec = bank_recording(bank, post, speech, hop=0.02, smoothing=0.5)
    assert 0.5 < rec.scores[:, 2].max() < 0.9


def test_word_clips_are_one_window_each_and_counted_per_word(tmp_path):
    bank, _ = _bank(tmp_path)
    rows = np.concatenate([bank.rows(s, "word") for s in banks.SPLITS])
    level = {"sc/x": 0.95, "sc/y": 0.95, "sc/z": 0.2}  # nine fires, marvin is heard, nine not
    post = np.zeros((len(bank.label), 3))
    post[rows] = _posteriors([level[bank.speakers[bank.speaker[r]]] for r in rows])
    rec = bank_recording(bank, post, rows, hop=0.02, smoothing=0.5)
    detections = replay_trigger(rec.times, rec.scores, CLASSES, np.array([np.inf, np.inf, 0.6]), 1.0)
    got = score(detections, rec.labels, ["marvin"], rec.duration, 1.0)
    assert (got.hits, got.commands, got.false_alarms) == (1, 1, 1)
    assert {lab.source for lab in rec.labels} == {"bank:sc/x", "bank:sc/y", "bank:sc/z"}


def test_the_bundles_words_never_train(tmp_path):
    bank, _ = _bank(tmp_path)
    rows = banks.training_rows(bank, {"nine"}, speech=10, words=10, rng=np.random.default_rng(0))
    assert bank.words(rows) == [SILENCE, SILENCE]
    rows = banks.training_rows(bank, {"marvin"}, speech=10, words=10, rng=np.random.default_rng(0))
    assert sorted(bank.words(rows)) == sorted([SILENCE, SILENCE, "nine"])


def test_a_bank_of_another_backbone_is_left_out_with_one_line(tmp_path):
    bank, path = _bank(tmp_path, fingerprint="abc")
    assert banks.usable_bank(path, "abc")[1] is None
    got, why = banks.usable_bank(path, "def")
    assert got is None and "another base model" in why and "python -m kws_train.enroll.make_bank" in why
    assert "\n" not in why
    got, why = banks.usable_bank(tmp_path / "none.npz", "abc")
    assert got is None and "no enrolment bank" in why
    assert banks.usable_bank(None, "abc") == (None, None)  # asked for none: nothing to say


def test_each_stage_draws_from_its_own_generator():
    assert stage_rng(0, "mining").random() == stage_rng(0, "mining").random()
    assert stage_rng(0, "mining").random() != stage_rng(0, "bank").random()
    assert stage_rng(0, "mining").random() != stage_rng(1, "mining").random()


def _tone(seconds, at=0.0, total=None):
    wave = np.zeros(int((total or seconds + at) * SR), np.float32)
    t = np.arange(int(seconds * SR)) / SR
    wave[int(at * SR):int(at * SR) + len(t)] = 0.3 * np.sin(2 * np.pi * 300 * t)
    return wave


def test_skipped_and_doubtful_takes_are_named(tmp_path):
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    sf.write(tmp_path / "silent.wav", np.zeros(SR, np.float32), SR)
    sf.write(tmp_path / "good.wav", _tone(0.5, 0.2, 1.0), SR)
    sf.write(tmp_path / "two.wav", np.concatenate([_tone(0.4), np.zeros(SR // 2, np.float32), _tone(0.4)]), SR)
    sf.write(tmp_path / "long.wav", _tone(1.5, 0.1, 2.0), SR)
    takes, notes = read_recordings(tmp_path, "lamp", True, SR)
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in takes) == ["good.wav", "long.wav", "two.wav"]
    said = "\n".join(notes)
    assert "broken.wav: skipped: " in said and "silent.wav: skipped: silent" in said
    assert "long.wav: 1.5 s of sound" in said and "two.wav: 2 bursts of speech" in said
    assert "good.wav" not in said


def test_bursts_bridge_the_gaps_inside_a_word():
    gap = np.zeros(int(0.1 * SR), np.float32)  # a stop consonant
    assert bursts(np.concatenate([_tone(0.2), gap, _tone(0.2)]), SR) == 1
    assert bursts(np.concatenate([_tone(0.2), np.zeros(SR // 2, np.float32), _tone(0.2)]), SR) == 2


def _report(testing, bank=True):
    return {"testing": testing, "enroll": {"bank": {"path": "b"} if bank else None, "bank_warning": None}}


def _stream(minutes, people, other_words=0, false_alarms=0):
    return {"minutes": minutes, "people": people, "other_words": other_words, "false_alarms": false_alarms}


def test_missing_or_thin_real_audio_is_one_line_naming_what_to_pass():
    enough = {"speech (bank)": _stream(45, 63), "other people (bank)": _stream(20, 189, 1236)}
    assert coverage_warnings(_report(enough)) == []
    missing = coverage_warnings(_report({"voices": _stream(9, 0, 120)}, bank=False))
    assert len(missing) == 2 and "--negatives DIR" in missing[0] and "--data DIR" in missing[1]
    assert all("--bank none" in line for line in missing)
    thin = coverage_warnings(_report({"speech": _stream(2.7, 3), "other people": _stream(3, 40, 60)}))
    assert "only 3 min of running speech by 3 people" in thin[0] and "67 false alarms an hour" in thin[0]
    assert "only 60 clips" in thin[1]


@pytest.mark.train
def test_the_recipe_builds_a_bank_its_base_accepts(tmp_path, tiny_bundle):
    """Running speech with a transcripts.tsv (its halves, one-word utterances left out) and a
    Speech Commands folder: every split's rows come from speakers of that split alone."""
    from kws_train.enroll.model import fingerprint, open_base

    rng = np.random.default_rng(0)
    speech = tmp_path / "corpus"
    lines = ["split\tspeaker\tutterance\tseconds\tage\tgender\ttext"]
    for half in ("train", "test"):
        for s in range(4):
            speaker = f"{half}{s}"
            (speech / half / speaker).mkdir(parents=True)
            for u in range(2):
                utt = f"{speaker}u{u}"
                sf.write(speech / half / speaker / f"{utt}.flac", rng.normal(0, 0.1, 3 * SR).astype(np.float32), SR)
                lines.append(f"{half}\t{speaker}\t{utt}\t3\t9\tm\t{'BYE' if u else 'WE CALL IT BEAR'}")
    (speech / "transcripts.tsv").write_text("\n".join(lines) + "\n")
    words = tmp_path / "sc"
    for word in ("nine", "marvin"):
        (words / word).mkdir(parents=True)
        for s in range(12):
            sf.write(words / word / f"sp{s:02d}_nohash_0.wav", rng.normal(0, 0.1, SR).astype(np.float32), SR)
    (words / "validation_list.txt").write_text("nine/sp00_nohash_0.wav\nmarvin/sp00_nohash_0.wav\n")
    (words / "testing_list.txt").write_text("nine/sp01_nohash_0.wav\nmarvin/sp01_nohash_0.wav\n")
    (words / "_background_noise_").mkdir()
    sf.write(words / "_background_noise_" / "hum.wav", rng.normal(0, 0.05, 5 * SR).astype(np.float32), SR)

    config = load_config(tiny_bundle.parent / "tiny.yaml")
    out = tmp_path / "bank.npz"
    meta = banks.build(config, tiny_bundle, [speech], words, out, megabytes=0.2)
    bank = banks.load_bank(out)
    assert bank.meta["fingerprint"] == meta["fingerprint"] == \
        fingerprint(open_base(tiny_bundle, config, 2), config.audio.sample_rate)
    assert np.prod(bank.levels[0].shape[1:]) == meta["activations"] and out.stat().st_size < 400_000
    split_of = {}
    for r in range(len(bank.label)):
        split_of.setdefault(bank.speakers[bank.speaker[r]], set()).add(int(bank.split[r]))
    assert all(len(s) == 1 for s in split_of.values())
    assert not [s for s in bank.sources if s.endswith("u1")]  # "BYE": one word, not running speech
    assert len(bank.rows("training", "speech")) and len(bank.rows("testing", "word"))
    assert len(bank.rows("training", "silence"))
    assert {"nine", "marvin"} == set(bank.words(bank.rows("training", "word")))
