"""The enrolment study's bookkeeping (``studies/enroll_study.py``, a script outside the
packages): which takes train and which test, which clips are negatives, and the levers it
compares. The enrolments themselves are minutes each: the study's report in
``docs/enrolment.md`` is their result, not a test."""

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "studies"))

import enroll_study as study  # noqa: E402


def _clip(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(1600, np.float32), 16000)


def test_only_speakers_with_six_takes_lend_them(tmp_path):
    for i in range(7):
        _clip(tmp_path / "yes" / f"aaaa_nohash_{i}.wav")
    for i in range(5):
        _clip(tmp_path / "yes" / f"bbbb_nohash_{i}.wav")
    takes = study.take_speakers(tmp_path, "yes")
    assert list(takes) == ["aaaa"] and len(takes["aaaa"]) == 7
    # the first five may train, the rest test the same speaker whatever the number trained
    assert [p.name for p in takes["aaaa"][max(study.TAKES):]] == ["aaaa_nohash_5.wav", "aaaa_nohash_6.wav"]


def test_negatives_are_the_held_apart_lists_without_the_enrolled_words(tmp_path):
    for rel in ("marvin/a_nohash_0.wav", "yes/b_nohash_0.wav", "house/c_nohash_0.wav", "house/d_nohash_0.wav"):
        _clip(tmp_path / rel)  # d: a training clip, in neither list
    (tmp_path / "validation_list.txt").write_text("marvin/a_nohash_0.wav\nyes/b_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("house/c_nohash_0.wav\n")
    got = study.other_word_clips(tmp_path, {"marvin"})
    assert [w for w, _ in got] == ["house", "yes"]


def test_each_lever_is_compared_with_none_and_all_combine_them():
    none, _, _ = study.LEVERS["none"]
    assert none == {"enroll.augment": {}}
    combined = study.LEVERS["all"][0]["enroll.augment"]
    for name in study.LEVER_KEYS:
        alone = study.LEVERS[name][0]["enroll.augment"]
        assert alone and alone.items() <= combined.items()
    assert study.LEVERS["espeak-flite"][1] == ["flite", "espeak"]
