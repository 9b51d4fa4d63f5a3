"""The Python API (``kws.Spotter``): the README's example, run as written, and what it promises."""

from __future__ import annotations

import functools
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import kws
from kws.api import NearMisses, Spotter, as_float32
from kws.audio.files import read_audio, write_wav
from kws.errors import KwsError
import reference
from pulse import virtual_mic  # noqa: F401 (a fixture)

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    """The first ```python block of the README's "Python API" section."""
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def run_example(tmp_path: Path, wav: Path, monkeypatch, capsys, spotter=None) -> str:
    shutil.copyfile(wav, tmp_path / "words.wav")
    monkeypatch.chdir(tmp_path)
    if spotter is not None:
        monkeypatch.setattr(kws, "Spotter", spotter, raising=False)
    exec(compile(readme_example(), str(README), "exec"), {"__name__": "readme"})
    return capsys.readouterr().out


def tiny_spotter(tiny_bundle: Path, **kwargs) -> Spotter:
    return Spotter(model=tiny_bundle, config=tiny_bundle.parent / "tiny.yaml", **kwargs)


def test_readme_example_runs_as_written_on_the_shipped_model(tmp_path, monkeypatch, capsys):
    # Real speech with known answers: the shipped model's detections as recorded for it.
    wav = tmp_path / "reference.wav"
    write_wav(wav, read_audio(reference.AUDIO, 16000), 16000)
    out = run_example(tmp_path, wav, monkeypatch, capsys)
    lines = out.splitlines()
    scores = [line for line in lines if line.startswith("{")]
    assert len(scores) == 1 and "'yes':" in scores[0]
    for line in lines:
        assert line.startswith(("{", "near miss: ")) or re.fullmatch(r" *\d+\.\d\d s  \w+  [01]\.\d\d", line), line
    found = [line.split() for line in lines if re.match(r" *\d+\.\d\d s ", line)]
    before = reference.expected("default").detections
    assert [f[2] for f in found] == [d["word"] for d in before], reference.REGENERATE
    assert all(abs(float(f[0]) - d["time"]) <= 0.01 for f, d in zip(found, before))


def test_a_spotter_at_another_rate_resamples_to_the_same_detections():
    # Spotter(sample_rate=44100) is given 44.1-kHz samples (resampled here by scipy, not by
    # kws's soxr): it hears on the reference audio what the shipped model heard at 16 kHz.
    from scipy.signal import resample_poly

    at_44k = resample_poly(read_audio(reference.AUDIO, 16000), 441, 160).astype(np.float32)
    spotter = Spotter(sample_rate=44100)
    found = [{"time": d.time, "word": d.word, "score": d.score} for d in spotter.process(at_44k)]
    assert spotter.sample_rate == 44100 and spotter.time == pytest.approx(len(at_44k) / 44100)
    assert reference.changes(found, reference.expected("default").detections, reference.labels()) == []


def test_readme_example_finds_the_spoken_words(spoken, tiny_bundle, tmp_path, monkeypatch, capsys):
    # The same code with the committed test model (the shipped model is not trained on espeak).
    spotter = functools.partial(tiny_spotter, tiny_bundle, thresholds=0.6)
    out = run_example(tmp_path, spoken[2], monkeypatch, capsys, spotter)
    found = [line.split()[2] for line in out.splitlines() if re.match(r" *\d+\.\d\d s ", line)]
    assert found == [word for word, _, _ in spoken[1]]


def test_any_chunking_and_int16_give_the_same_detections(spoken, tiny_bundle):
    audio = spoken[0]
    whole = tiny_spotter(tiny_bundle, thresholds=0.6).process(audio)
    assert [d.word for d in whole] == [w for w, _, _ in spoken[1]]
    for start, end in zip(whole, spoken[1][:len(whole)]):
        assert end[1] < start.time <= end[2] + 1.0
    spotter = tiny_spotter(tiny_bundle, thresholds=0.6)
    rng = np.random.default_rng(0)
    pieces, at = [], 0
    while at < len(audio):
        n = int(rng.integers(1, 40000))
        pieces += spotter.process(audio[at:at + n])
        at += n
    assert pieces == whole
    assert spotter.time == pytest.approx(len(audio) / spotter.sample_rate)
    as_int16 = tiny_spotter(tiny_bundle, thresholds=0.6).process((audio * 32767).astype(np.int16))
    assert [d.word for d in as_int16] == [d.word for d in whole]
    spotter.reset()
    assert spotter.time == 0 and spotter.process(audio) == whole


def test_thresholds_per_word_and_their_errors(tiny_bundle):
    spotter = tiny_spotter(tiny_bundle, thresholds={"up": 0.9})
    assert spotter.thresholds["up"] == 0.9 and spotter.thresholds["yes"] != 0.9
    assert set(spotter.scores) == set(spotter.words) == {"yes", "no", "up", "stop"}
    assert set(tiny_spotter(tiny_bundle, thresholds=0.8).thresholds.values()) == {0.8}
    with pytest.raises(KwsError, match=r"left not among the model's words \(yes, no, up, stop\)"):
        tiny_spotter(tiny_bundle, thresholds={"left": 0.5})
    with pytest.raises(KwsError, match="up: 1.5 is not between 0 and 1"):  # as --threshold
        tiny_spotter(tiny_bundle, thresholds={"up": 1.5})


def test_replay_with_pad_hears_a_word_at_the_very_end(spoken, tiny_bundle):
    audio, labels, _ = spoken
    word, start, end = labels[0]
    # Under a second, ending as the word does: it crosses its threshold a hop after the end.
    clip = audio[round((start - 0.05) * 16000):round(end * 16000)]
    spotter = tiny_spotter(tiny_bundle, thresholds=0.6)
    assert [d.word for u in spotter.replay([clip], 16000, pad=True) for d in u.detections] == [word]
    updates = list(spotter.replay([clip], 16000))
    assert not [d for u in updates for d in u.detections]


def test_a_word_that_stays_below_its_threshold_is_a_near_miss(spoken, tiny_bundle):
    seen = []
    spotter = tiny_spotter(tiny_bundle, thresholds=0.9999, on_near_miss=seen.append)
    update = spotter.feed(spoken[0])
    assert update.detections == []
    assert seen == update.near_misses == list(spotter.near_misses)
    words = {w for w, _, _ in spoken[1]}
    assert words <= {m.word for m in seen}
    for miss in seen:
        assert 0.5 * miss.threshold <= miss.score < miss.threshold == 0.9999


def test_near_misses_rule():
    misses = NearMisses(["_silence_", "a", "b"], {"a": 0.8, "b": 0.6}, ratio=0.5)
    steps = [(0.0, [1, 0.1, 0.1]), (0.1, [0, 0.5, 0.7]), (0.2, [0, 0.7, 0.2]), (0.3, [0, 0.3, 0.1])]
    out = [m for t, s in steps for m in misses.update(t, np.array(s))]
    # a rose to 0.7 < 0.8 and fell back: a near miss at its peak; b reached its threshold: none.
    assert [(m.word, m.score, m.time) for m in out] == [("a", pytest.approx(0.7), 0.2)]


def test_a_missing_model_is_one_line_naming_the_fix(tmp_path):
    with pytest.raises(KwsError, match=r"no model bundle at .*nothing: pass --model DIR") as err:
        Spotter(model=tmp_path / "nothing")
    assert "\n" not in str(err.value)


def test_replay_updates_a_file_in_steps(spoken, tiny_bundle):
    spotter = tiny_spotter(tiny_bundle, thresholds=0.6)
    blocks = [spoken[0][i:i + 160] for i in range(0, len(spoken[0]), 160)]
    updates = list(spotter.replay(blocks, rate=16000, every=0.1))
    assert len(updates) == pytest.approx(len(spoken[0]) / 1600, abs=1)
    assert [d.word for u in updates for d in u.detections] == [w for w, _, _ in spoken[1]]
    assert max(u.level_db for u in updates) > -40 > min(u.level_db for u in updates)


def test_input_checks():
    assert as_float32(np.array([[16384], [-32768]], dtype=np.int16)).tolist() == [0.5, -1.0]
    with pytest.raises(ValueError, match="mono"):
        as_float32(np.zeros((10, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="float32 or int16"):
        as_float32(np.zeros(10, dtype=np.int32))


LISTEN_DRIVER = """
import sys, threading, kws
spotter = kws.Spotter(model=sys.argv[1], config=sys.argv[2], thresholds=0.6)
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()  # stdin closed: stop
for i, update in enumerate(spotter.listen_updates(stop=stop)):
    if i == 0:
        print("listening", flush=True)  # the first poll: the stream is open
    for d in update.detections:
        print(d.word, flush=True)
"""


@pytest.mark.slow
def test_listen_yields_words_played_into_the_microphone(virtual_mic, tiny_bundle, spoken, tmp_path):
    import subprocess
    import sys

    from kws.audio.files import write_wav

    audio, labels, _ = spoken
    labels = labels[:3]
    wav = tmp_path / "three.wav"
    write_wav(wav, audio[:round((labels[-1][2] + 1.2) * 16000)], 16000)
    config = tiny_bundle.parent / "tiny.yaml"
    proc = subprocess.Popen([sys.executable, "-c", LISTEN_DRIVER, str(tiny_bundle), str(config)],
                            env=virtual_mic.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "listening"
        virtual_mic.play(wav)  # returns once played; what is still in the ring is processed at the stop
        out, err = proc.communicate(timeout=60)  # closes stdin: the driver stops listening
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.split() == [word for word, _, _ in labels], err
