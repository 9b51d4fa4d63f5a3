"""``kws enroll``: a word from espeak-ng voices, a small budget; replay finds it said by voices
held out from enrollment and stays quiet on other words. Bad input is one line and exit 2.

``--data`` and ``--negatives`` have no default: without them enrollment must work from
synthetic speech alone, and only the runs that test them pass them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import run_kws

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "models" / "default"
RATE = 16000

WORD = "lights"
# Voices no enrollment persona uses: held-apart espeak bases (testing split) and variants
# outside ESPEAK_VARIANTS, at a pitch and speed of their own.
HELD_OUT = [("en-us+f3", 40, 150), ("en-us-nyc+m5", 60, 170), ("en-us+f4", 45, 140),
            ("en-us+m2", 55, 150)]
OTHER = ["window", "nights", "table", "music", "light", "seven"]
NEAR = {"nights", "light"}


def _say(text: str, voice: str, pitch: int, speed: int, tmp: Path) -> np.ndarray:
    path = tmp / "say.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(path), text],
                   check=True, capture_output=True)
    audio, rate = sf.read(path, dtype="float32")
    if rate != RATE:
        import soxr
        audio = soxr.resample(audio, rate, RATE)
    return audio / np.max(np.abs(audio)) * 0.3


# Running speech by six readers, files named <reader>-<n> (kws.data.negatives splits them by
# reader: ann, cat, fay train; bob validates; dan tests). The word inside a sentence is not the
# word: the training readers' sentences are where mining finds what to learn again.
READERS = {"ann": "en-us+m1", "cat": "en-us+f2", "fay": "en-gb-scotland+m2", "bob": "en-us+m3",
           "dan": "en+f3"}
SENTENCES = ["turn the lights off before you leave the house tonight",
             "the kitchen table was covered with papers and old nights of music",
             "she said the bright lights of the city kept her awake"]


def _negatives(tmp: Path) -> Path:
    folder = tmp / "negatives"
    folder.mkdir()
    for reader, voice in READERS.items():
        for i, text in enumerate(SENTENCES):
            sf.write(folder / f"{reader}-{i}.wav", _say(text, voice, 50, 160, tmp), RATE)
    return folder


def _stream(items, tmp: Path) -> tuple[Path, list[tuple[str, float, float]]]:
    """Each ``(text, voice, pitch, speed)`` with 2 s of quiet noise between."""
    rng = np.random.default_rng(0)
    parts, labels, t = [np.zeros(RATE * 2, np.float32)], [], 2.0
    for text, voice, pitch, speed in items:
        audio = _say(text, voice, pitch, speed, tmp)
        parts += [audio, np.zeros(RATE * 2, np.float32)]
        labels.append((text, t, t + len(audio) / RATE))
        t += len(audio) / RATE + 2.0
    audio = np.concatenate(parts)
    audio += rng.normal(0, 0.002, len(audio)).astype(np.float32)
    path = tmp / "stream.wav"
    sf.write(path, audio, RATE, subtype="PCM_16")
    return path, labels


def _error(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kws: error: "), result.stderr
    return lines[0]


@pytest.mark.train
@pytest.mark.espeak
def test_enroll_then_replay_finds_the_word_in_held_out_voices(tmp_path):
    out = tmp_path / "lights_model"
    takes = tmp_path / "takes"  # "the user": a voice of its own, five takes (one held apart)
    takes.mkdir()
    for i, speed in enumerate((130, 145, 160, 175, 190)):
        sf.write(takes / f"lights-{i + 1:02d}.wav", _say(WORD, "en-us+m4", 45, speed, tmp_path), RATE)
    result = run_kws("enroll", WORD, "--out", str(out), "--recordings", str(takes),
                     "--negatives", str(_negatives(tmp_path)), "--engines", "espeak", "--budget", "tiny",
                     "--base", str(BASE), "--cache", str(tmp_path / "cache"), "--no-progress",
                     "--threads", "2", cwd=tmp_path, timeout=900)
    print(result.stdout)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["labels"] == ["_silence_", "_unknown_", WORD] and meta["outputs"] == "logits"
    assert 0.5 <= meta["thresholds"][WORD] <= 1.0
    # thresholds hold for the smoothing they were chosen with: the base model's
    assert meta["smoothing_ms"] == json.loads((BASE / "metadata.json").read_text())["smoothing_ms"] == 500
    report = json.loads((out / "enroll_report.json").read_text())
    assert report["testing"]["voices"]["commands"] > 0 and report["testing"]["speech"]["minutes"] > 0
    # mined from the training readers; thresholds held with no false alarm on any speech
    assert report["training"]["mined"]["speech_windows"] > 0
    allowed = meta["threshold_selection"]["allowed_false_alarms"]
    assert allowed["speech"] == allowed["seen speech"] == allowed["speech (bank)"] == 0
    assert report["enroll"]["recordings"] == {WORD: {"trained": 4, "held_apart": 1}}
    assert report["testing"]["recordings"]["commands"] == 1
    # the shipped bank fits the shipped model: real people trained and checked it, no data folder
    assert report["enroll"]["bank"]["fingerprint"] and report["training"]["mined"]["bank_speech_windows"] > 0
    testing = report["testing"]
    assert testing["speech (bank)"]["people"] > 20 and testing["other people (bank)"]["people"] > 100
    assert report["warnings"] == [] and "warning: no " not in result.stderr
    assert (out / "enroll_report.txt").is_file() and (out / "model_int8.tflite").is_file()

    items = [(WORD, *voice) for voice in HELD_OUT] + \
            [(word, *HELD_OUT[i % len(HELD_OUT)]) for i, word in enumerate(OTHER)]
    order = np.random.default_rng(1).permutation(len(items))
    wav, labels = _stream([items[i] for i in order], tmp_path)
    replay = run_kws("replay", str(wav), "--model", str(out), "--json")
    detections = [json.loads(line) for line in replay.stdout.splitlines()]
    print(detections, labels)
    hits, false_alarms = 0, 0
    for d in detections:
        near = [text for text, start, end in labels if start < d["time"] <= end + 1.0]
        if near == [WORD]:
            hits += 1
        elif not set(near) <= NEAR:  # near-words train but set no threshold: not counted
            false_alarms += 1
    assert hits >= 3, (detections, labels)      # of 4 held-out voices
    assert false_alarms <= 1, (detections, labels)  # on 4 other words and the gaps


def test_empty_word_is_one_line(tmp_path):
    assert "empty word" in _error(run_kws("enroll", " ", "--out", str(tmp_path / "m"), check=False))


def test_word_that_is_not_letters_is_one_line(tmp_path):
    assert "letters" in _error(run_kws("enroll", "l1ghts!", "--out", str(tmp_path / "m"), check=False))


def test_out_that_is_not_a_bundle_is_one_line(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "notes.txt").write_text("mine")
    message = _error(run_kws("enroll", WORD, "--out", str(tmp_path / "m"), check=False))
    assert "not a kws model bundle" in message
    assert (tmp_path / "m" / "notes.txt").read_text() == "mine"


@pytest.mark.espeak
@pytest.mark.train  # kws enroll loads TensorFlow before it reads the recordings
def test_recordings_without_audio_is_one_line(tmp_path):
    folder = tmp_path / "takes"
    folder.mkdir()
    (folder / "a.wav").write_bytes(b"not audio")
    sf.write(folder / "silent.wav", np.zeros(RATE, np.float32), RATE)
    message = _error(run_kws("enroll", WORD, "--out", str(tmp_path / "m"), "--recordings", str(folder),
                             "--engines", "espeak", check=False, cwd=tmp_path))
    assert "no usable recordings" in message


@pytest.mark.espeak
@pytest.mark.train  # kws enroll loads TensorFlow before it speaks the word
def test_word_the_engines_cannot_say_is_one_line(tmp_path):
    # Spelt out letter by letter, it lasts far over a second in every voice.
    message = _error(run_kws("enroll", "qxqxqxqxqxqxqxqxqxqxq", "--out", str(tmp_path / "m"),
                             "--engines", "espeak", "--budget", "tiny", "--cache", str(tmp_path / "c"),
                             check=False, cwd=tmp_path, timeout=300))
    assert "could not say it" in message


def test_near_words_are_near_but_not_the_word():
    enroll = pytest.importorskip("kws_train.enroll")  # no TensorFlow at import
    near_words, sounds = enroll.near_words, enroll.sounds

    near = near_words("computer")
    assert "computer" not in near and all(sounds(w) != sounds("computer") for w in near)
    assert "komputer" not in near and len(near) >= 8
    assert {"hey", "kws"} <= set(near_words("hey kws"))


@pytest.mark.train
@pytest.mark.espeak
def test_with_commands_keeps_the_ten_commands_in_the_bundle(tmp_path):
    # A dataset of the ten commands spoken by espeak-ng voices stands in for Speech Commands.
    from kws.labels import SILENCE, UNKNOWN
    from speech import make_dataset

    commands = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
    data = make_dataset(tmp_path / "sc", commands, ["bird", "house"], n_voices=12)
    out = tmp_path / "m"
    result = run_kws("enroll", WORD, "--with-commands", "--data", str(data), "--out", str(out), "--engines",
                     "espeak", "--budget", "tiny", "--base", str(BASE), "--cache", str(tmp_path / "cache"),
                     "--no-progress", "--threads", "2", "--bank", "none", cwd=tmp_path, timeout=900)
    # No bank and no --negatives: no running speech checked it; the dataset's few other words
    # (four in its testing split) are thin. Each is one line naming what to pass.
    warnings = [line for line in result.stderr.splitlines() if "speech engine" not in line]
    assert len(warnings) == 2, result.stderr
    assert warnings[0].startswith("kws: warning: no running speech") and "--negatives DIR" in warnings[0]
    assert warnings[1].startswith("kws: warning: only 4 clips") and "--data DIR" in warnings[1]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["labels"] == [SILENCE, UNKNOWN, WORD, *commands]
    assert set(meta["thresholds"]) == {WORD, *commands}
    # Said by voices it never trained on, the new word and the commands are both heard.
    items = [(WORD, *voice) for voice in HELD_OUT] + [(word, *HELD_OUT[i]) for i, word in
                                                       enumerate(["stop", "go", "yes", "down"])]
    wav, labels = _stream(items, tmp_path)
    replayed = run_kws("replay", str(wav), "--model", str(out), "--json").stdout
    found = [json.loads(line) for line in replayed.splitlines()]
    heard = {text for d in found for text, start, end in labels if start < d["time"] <= end + 1.0 and d["word"] == text}
    assert WORD in heard and heard & {"stop", "go", "yes", "down"}, (found, labels)


def test_a_missing_bank_is_one_line(tmp_path):
    message = _error(run_kws("enroll", WORD, "--out", str(tmp_path / "m"), "--bank", str(tmp_path / "b.npz"),
                             check=False))
    assert message == f"kws: error: {tmp_path / 'b.npz'}: no such enrolment bank"


def test_with_commands_refuses_a_command_and_a_missing_folder(tmp_path):
    assert "already one of the ten commands" in _error(run_kws(
        "enroll", "stop", "--with-commands", "--data", str(tmp_path), "--out", str(tmp_path / "m"), check=False))
    assert _error(run_kws("enroll", WORD, "--with-commands", "--data", str(tmp_path / "none"), "--out",
                          str(tmp_path / "m"), check=False)) == f"kws: error: {tmp_path / 'none'}: no such folder"
