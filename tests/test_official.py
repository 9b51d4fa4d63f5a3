"""The official test speakers' yardstick: clips named in ``official_test_<split>_list.txt`` are
marked, their unknown words are never cut, and ``kws eval`` scores them beside the whole split."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from kws.audio.files import write_wav
from kws.config import load_config, with_overrides
from kws.data.speech_commands import SILENCE, list_clips
from kws.eval.clips import evaluation_audio, scores

WORDS = ["yes", "no"]


def fake_root(tmp_path):
    """Testing clips of 4 speakers per word plus 6 unknown ones; speakers a and b are official."""
    root = tmp_path / "sc"
    testing, official = [], []
    for word in [*WORDS, "bird"]:
        (root / word).mkdir(parents=True)
        for speaker in ("a", "b", "c", "d", *(["e", "f", "g", "h", "i", "j"] if word == "bird" else [])):
            rel = f"{word}/{speaker}0000_nohash_0.wav"
            write_wav(root / rel, 0.1 * np.random.default_rng(len(testing)).standard_normal(16000), 16000)
            testing.append(rel)
            if speaker in "ab":
                official.append(rel)
    (root / "validation_list.txt").write_text("")
    (root / "testing_list.txt").write_text("\n".join(testing) + "\n")
    (root / "official_test_testing_list.txt").write_text("\n".join(official) + "\n")
    return root


def test_official_clips_are_marked_and_their_unknown_words_kept(tmp_path):
    root = fake_root(tmp_path)
    clips = list_clips(root, WORDS, "testing", unknown_fraction=0.0)  # no unknown words, but...
    marked = {f"{p.parent.name}/{p.name[0]}" for p, o in zip(clips.paths, clips.official) if o}
    assert marked == {"yes/a", "yes/b", "no/a", "no/b", "bird/a", "bird/b"}  # ...the official ones
    assert len(clips.paths) == 8 + 2
    assert list_clips(root, WORDS, "validation").official is None  # no list for this split


def test_evaluation_scores_official_speakers_with_silence(tmp_path):
    root = fake_root(tmp_path)
    config = with_overrides(load_config(), {"words": WORDS})
    data = evaluation_audio(root, "testing", config)
    silence = data.targets == data.labels.index(SILENCE)
    assert silence.any() and data.official[silence].all()  # silence has no speaker: always in
    assert data.summary["official_clips"] == 6 + int(silence.sum())
    right = np.eye(len(data.labels))[data.targets]
    wrong_outside = right.copy()
    wrong_outside[~data.official] = np.roll(right[~data.official], 1, axis=1)
    result = scores(data, wrong_outside)
    assert result["official_test_speakers"]["accuracy"] == 1.0
    assert result["accuracy"] == data.official.mean()


def test_kws_eval_prints_and_writes_the_official_scores(tmp_path, tiny_bundle):
    root = fake_root(tmp_path)
    out = subprocess.run([sys.executable, "-m", "kws", "eval", "--data", str(root), "--model", str(tiny_bundle),
                          "--report", str(tmp_path / "rep"), "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "official test speakers only" in out.stdout
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    assert metrics["official_test_speakers"]["n"] == metrics["data"]["official_clips"]


def test_make_stream_official_takes_only_official_speakers(tmp_path):
    root = fake_root(tmp_path)
    out = tmp_path / "official.wav"
    result = subprocess.run([sys.executable, "-m", "kws", "make-stream", "--data", str(root), "--official",
                             "--minutes", "1", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    sources = {row.split(",")[3].strip() for row in (tmp_path / "official.csv").read_text().splitlines()[1:]}
    assert sources and all(s.split("/")[-1][0] in "ab" for s in sources)
    (root / "official_test_testing_list.txt").unlink()
    refused = subprocess.run([sys.executable, "-m", "kws", "make-stream", "--data", str(root), "--official",
                              "--out", str(tmp_path / "x.wav")], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "official_test_testing_list.txt" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.wav").exists()
