"""Issue #20's defects outside writing: numbers out of range refused in one line, the end of a
stream heard through the API, outputs a program parses (the same JSON keys every time),
``kws eval`` of a bundle whose words the data lacks, and what the commands say.
(The write rule: ``tests/test_writes.py``; ``kws enroll`` runs: ``tests/test_enroll_runs.py``.)
"""

from __future__ import annotations

import json
import re
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import kws
from conftest import one_error_line, run_kws
from kws.api import Update
from kws.detector import Detection
from kws.errors import KwsError

RATE = 16000
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tiny(tiny_bundle):
    """``--model`` and ``--config`` of the committed test bundle."""
    return ["--model", str(tiny_bundle), "--config", str(tiny_bundle.parent / "tiny.yaml")]


def _spotter(tiny_bundle, **kwargs) -> kws.Spotter:
    return kws.Spotter(model=tiny_bundle, config=tiny_bundle.parent / "tiny.yaml", **kwargs)


# --- 4, 9: thresholds ----------------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "up=0", "up=2", "up=", "0.5,up=0.1", "up=0.9,", "nan"])
def test_a_bad_threshold_is_one_line(value, tmp_path, tiny):
    wav = tmp_path / "quiet.wav"
    sf.write(wav, np.zeros(RATE, np.float32), RATE)
    message = one_error_line(run_kws("replay", str(wav), "--threshold", value, *tiny, check=False))
    assert "--threshold" in message


def test_a_threshold_of_zero_is_refused_by_the_api(tiny_bundle):
    # At 0 the first word to fire never re-arms: one detection, then nothing, whatever is said.
    for thresholds in (0, {"up": 0.0}, True, {"up": True}):
        with pytest.raises(KwsError, match="not between 0 and 1|a number or a dict"):
            _spotter(tiny_bundle, thresholds=thresholds)


# --- 5: the end of a stream -----------------------------------------------------------------

def test_flush_hears_the_last_word_and_replay_uses_it(spoken, tiny_bundle):
    audio, labels, _ = spoken
    samples = (audio[:int(labels[-1][2] * RATE)] * 32767).astype(np.int16)  # ends with the last word
    spotter = _spotter(tiny_bundle, thresholds=0.6)
    heard = [d.word for d in spotter.process(samples)]
    assert heard == [word for word, _, _ in labels[:-1]]  # the window has not heard all of it yet
    last = [d.word for d in spotter.flush()]
    assert last == [labels[-1][0]]
    replayed = [d.word for u in _spotter(tiny_bundle, thresholds=0.6).replay([samples], RATE, pad=True)
                for d in u.detections]
    assert replayed == heard + last  # kws replay ends each file with the same flush


# --- 7, 8: the API's numbers -----------------------------------------------------------------

def test_float_samples_at_int16_scale_are_refused(tiny_bundle):
    spotter = _spotter(tiny_bundle)
    loud = (np.sin(np.arange(RATE) / 10) * 20000).astype(np.int16)
    spotter.process(loud)  # int16 is fine
    with pytest.raises(ValueError, match="int16 values passed as float"):
        spotter.process(loud.astype(np.float32))
    spotter.process(np.full(100, 4.3, np.float32))  # overs of a float file or a damaged MP3 pass


@pytest.mark.parametrize("kwargs, message", [
    ({"sample_rate": 0}, "sample_rate"), ({"sample_rate": 100}, "sample_rate"),
    ({"sample_rate": 16000.5}, "sample_rate"), ({"sample_rate": True}, "sample_rate"),
    ({"near_miss": 5}, "near_miss"), ({"near_miss": 0}, "near_miss"), ({"near_miss": float("nan")}, "near_miss")])
def test_out_of_range_spotter_arguments_are_a_value_error(tiny_bundle, kwargs, message):
    with pytest.raises(ValueError, match=message) as raised:
        _spotter(tiny_bundle, **kwargs)
    assert "\n" not in str(raised.value)


def test_a_resampled_spotter_keeps_its_rate(tiny_bundle):
    assert _spotter(tiny_bundle, sample_rate=8000).sample_rate == 8000


# --- 10: JSON keys -----------------------------------------------------------------------------

def test_replay_json_has_the_same_keys_for_one_file_or_several(spoken, tiny):
    _, _, wav = spoken
    one = [json.loads(line) for line in run_kws("replay", str(wav), "--json", *tiny).stdout.splitlines()]
    two = [json.loads(line) for line in run_kws("replay", str(wav), str(wav), "--json", *tiny).stdout.splitlines()]
    assert one and len(two) == 2 * len(one)
    assert {frozenset(d) for d in one} == {frozenset(d) for d in two} == {frozenset({"file", "time", "word", "score"})}


def test_listen_json_keys_are_documented():
    from kws.live import Report

    line = json.loads(Report(json_lines=True).line(Detection(1.25, "yes", 0.97)))
    assert set(line) == {"time", "word", "score", "clock"}
    readme = (ROOT / "README.md").read_text()
    assert '"clock"' in readme and '"file"' in readme


# --- 15: what listen says -------------------------------------------------------------------

def test_listen_header_shows_thresholds_to_three_decimals(tiny_bundle, monkeypatch, capsys):
    from kws.commands import listen

    notes = []
    monkeypatch.setattr(listen, "note", notes.append)
    monkeypatch.setattr(listen, "find_input_device", lambda query: types.SimpleNamespace(index=0, name="fake"))
    monkeypatch.setattr(listen, "capture_rate", lambda device, rate: rate)
    monkeypatch.setattr(listen, "_view", lambda spotter, device, duration: 0)
    args = types.SimpleNamespace(device=None, view=True, json=False, exec_command=None, meter=False,
                                 model=str(tiny_bundle), hop_ms=None, block_ms=None, near_misses=False,
                                 threshold={"yes": 0.999}, duration=None)
    from kws.config import load_config

    listen.run(args, load_config(tiny_bundle.parent / "tiny.yaml"))
    assert "yes (0.999)" in next(n for n in notes if n.startswith("words: "))


def test_listen_view_off_a_terminal_prints_listens_own_lines(monkeypatch):
    from kws.commands import listen
    import kws.view

    seen = {}

    def fake_view(updates, title, lines):
        seen["lines"] = lines(Update(2.0, -20.0, {}, {}, [Detection(1.25, "yes", 0.97)], []))
        return types.SimpleNamespace(count=1)

    monkeypatch.setattr(kws.view, "view", fake_view)
    monkeypatch.setattr(listen, "summary", lambda *a: "")
    monkeypatch.setattr(listen, "note", lambda text: None)
    spotter = types.SimpleNamespace(listen_updates=lambda *a, **k: iter(()), detector=None, microphone=None)
    listen._view(spotter, types.SimpleNamespace(index=0, name="fake"), None)
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}  yes  0\.97", seen["lines"][0]), seen


# --- 3: eval of a bundle whose words the data lacks ------------------------------------------

def test_eval_scores_other_words_as_unknown_when_the_data_lacks_the_models_words(tmp_path, tiny):
    data = tmp_path / "sc"
    rng = np.random.default_rng(0)
    listed = []
    for word in ("bird", "house"):
        (data / word).mkdir(parents=True)
        for i in range(3):
            sf.write(data / word / f"s{i}_nohash_0.wav", (0.05 * rng.standard_normal(RATE)).astype(np.float32), RATE)
            listed.append(f"{word}/s{i}_nohash_0.wav")
    (data / "testing_list.txt").write_text("\n".join(listed) + "\n")
    (data / "validation_list.txt").write_text("")
    (data / "_background_noise_").mkdir()
    sf.write(data / "_background_noise_" / "noise.wav", (0.05 * rng.standard_normal(3 * RATE)).astype(np.float32), RATE)
    result = run_kws("eval", "--data", str(data), *tiny, "--report", str(tmp_path / "report"), "--json", cwd=tmp_path)
    metrics = json.loads(result.stdout.splitlines()[-1])
    assert metrics["per_class"]["_unknown_"]["support"] == 6  # not dropped: only silence was scored
    assert json.loads((tmp_path / "report" / "metrics.json").read_text()) == metrics


# --- 11, 13: what the commands say -----------------------------------------------------------

def test_the_extras_hint_fits_the_install(monkeypatch, tmp_path):
    from kws import resources

    assert resources.install_hint("train") == "pip install -e '.[train]'"  # this clone
    monkeypatch.setattr(resources, "SOURCE_TREE", tmp_path / "pyproject.toml")  # a wheel: no source tree
    assert resources.install_hint("train") == "pip install 'kws[train]'"
    assert resources.install_hint() == "pip install 'kws'"


def test_make_stream_without_noise_says_so_once(tmp_path):
    folder = tmp_path / "neg"
    folder.mkdir()
    sf.write(folder / "a-1.wav", (0.05 * np.random.default_rng(0).standard_normal(RATE)).astype(np.float32), RATE)
    result = run_kws("make-stream", "--negatives", str(folder), "--out", str(tmp_path / "n.wav"))
    assert "no background noise" in result.stderr and "SNR" not in result.stderr


@pytest.mark.parametrize("command", [["enroll", "lamp", "--out", "m", "--seed", "-1"],
                                     ["enroll", "lamp", "--out", "m", "--threads", "-1"],
                                     ["train", "--data", ".", "--out", "m", "--threads", "-1"],
                                     ["make-stream", "--negatives", ".", "--out", "n.wav", "--seed", "-1"]])
def test_a_negative_seed_or_thread_count_is_one_line_before_any_work(command, tmp_path):
    # Was a crash after the work began: numpy refuses negative seeds, TensorFlow negative threads.
    assert "must be 0 or more" in one_error_line(run_kws(*command, check=False, cwd=tmp_path))
    assert list(tmp_path.iterdir()) == []
