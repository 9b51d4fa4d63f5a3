"""Speech Commands reading: both layouts, the hash split, bad clips, augmentation, evaluation data."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import TINY_WORDS, in_process
from speech import make_dataset

from kws.audio.files import write_wav
from kws.config import load_config, with_overrides
from kws.errors import KwsError
from kws.data.speech_commands import (SILENCE, UNKNOWN, labels_for, list_clips, load_audio, load_noise,
                                      which_set)
from kws.eval.clips import evaluation_audio
from kws.data.noise import silence_clips
from kws_train.augment import Augmenter

LABELS = labels_for(TINY_WORDS)

RATE = 16000


@pytest.fixture(scope="module")
def config():
    return with_overrides(load_config(), {"words": TINY_WORDS})


def test_lists_decide_the_split(tiny_dataset):
    listed = {s: set((tiny_dataset / f"{s}_list.txt").read_text().split()) for s in ("validation", "testing")}
    seen = {}
    for split in ("training", "validation", "testing"):
        clips = list_clips(tiny_dataset, TINY_WORDS, split)
        assert clips.labels == LABELS == ["_silence_", "_unknown_", *TINY_WORDS]
        rel = {f"{p.parent.name}/{p.name}" for p in clips.paths}
        seen[split] = rel
        if split != "training":
            words = {r for r in rel if r.split("/")[0] in TINY_WORDS}
            assert words == {r for r in listed[split] if r.split("/")[0] in TINY_WORDS}
            # Unknown clips are cut to ~10% of the word clips, as the official test has them.
            assert clips.counts()[UNKNOWN] == round(0.1 * len(words))
    assert not seen["training"] & (listed["validation"] | listed["testing"])
    assert list_clips(tiny_dataset, TINY_WORDS, "training").counts()[UNKNOWN] == 2 * 16


def test_hash_split_without_lists(tiny_dataset, tmp_path):
    root = tmp_path / "sc"
    shutil.copytree(tiny_dataset, root, ignore=shutil.ignore_patterns("*_list.txt"))
    splits = {s: list_clips(root, TINY_WORDS, s, unknown_fraction=1.0) for s in
              ("training", "validation", "testing")}
    assert "speaker hash" in splits["training"].notes[0]
    assert sum(len(c.paths) for c in splits.values()) == 24 * 6
    # Each speaker in one split only, and every split has some.
    speakers = {s: {p.name.split("_")[0] for p in clips.paths} for s, clips in splits.items()}
    assert all(len(v) for v in speakers.values()) and not (speakers["training"] & speakers["validation"])
    assert not speakers["testing"] & (speakers["training"] | speakers["validation"])
    # One speaker, one split, whatever the clip number; the hash is the official SHA-1 one:
    # clips named in the official v0.02 validation_list.txt and testing_list.txt.
    official = {"cat/8b775397_nohash_0.wav": "validation", "go/6a27a9bf_nohash_0.wav": "validation",
                "four/605ed0ff_nohash_0.wav": "validation", "cat/2aa787cf_nohash_0.wav": "testing",
                "go/0ea0e2f4_nohash_1.wav": "testing", "four/27c30960_nohash_0.wav": "testing"}
    assert {name: which_set(name) for name in official} == official
    assert which_set("abc_nohash_0.wav") == which_set("abc_nohash_7.wav")
    hashes = [which_set(f"{i:08x}_nohash_0.wav") for i in range(3000)]
    assert 0.07 < hashes.count("validation") / 3000 < 0.13
    assert 0.07 < hashes.count("testing") / 3000 < 0.13


def test_archive_layout_uses_every_clip(tmp_path):
    root = tmp_path / "archive"
    rng = np.random.default_rng(0)
    for folder, name in [("yes", "0a_nohash_0.wav"), ("_unknown_", "bed_0b_nohash_0.wav.wav"),
                         ("_silence_", "1024.wav"), ("left", "0c_nohash_1.wav")]:
        (root / folder).mkdir(parents=True, exist_ok=True)
        write_wav(root / folder / name, 0.1 * rng.standard_normal(16000), 16000)
    clips = list_clips(root, TINY_WORDS, "testing")
    counts = clips.counts()
    assert counts["yes"] == 1 and counts[SILENCE] == 1
    assert counts[UNKNOWN] == 2  # _unknown_ plus a word the model does not know
    assert clips.counts() == list_clips(root, TINY_WORDS, "validation").counts()


@pytest.mark.espeak
def test_flac_clips(tmp_path):
    root = make_dataset(tmp_path / "sc", ["yes"], ["bird"], n_voices=6, ext="flac")
    clips = list_clips(root, ["yes"], "training")
    assert clips.paths and all(p.suffix == ".flac" for p in clips.paths)
    audio = load_audio(clips, 16000, 16000)
    assert audio.waves.shape == (len(clips.paths), 16000) and not audio.skipped


def test_bad_clips_are_skipped_and_odd_rates_resampled(tmp_path):
    root = tmp_path / "sc"
    (root / "yes").mkdir(parents=True)
    (root / "yes" / "aa_nohash_0.wav").write_bytes(b"RIFF not really a wav")
    (root / "yes" / "bb_nohash_0.wav").write_bytes(b"")
    t = np.arange(4000) / 8000  # half a second at 8 kHz
    sf.write(root / "yes" / "cc_nohash_0.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 8000)
    stereo = np.stack([np.sin(2 * np.pi * 440 * np.arange(44100) / 44100)] * 2, axis=1) * 0.3
    sf.write(root / "yes" / "dd_nohash_0.wav", stereo, 44100)
    for name in ("validation_list.txt", "testing_list.txt"):
        (root / name).write_text("")  # every clip is a training clip
    clips = list_clips(root, ["yes", "no"], "training")
    assert clips.notes == ["no training clips for: no"]
    audio = load_audio(clips, 16000, 16000)
    assert len(audio.skipped) == 2 and all("aa_nohash" in s or "bb_nohash" in s for s in audio.skipped)
    assert audio.waves.shape == (2, 16000) and list(audio.targets) == [2, 2]
    assert np.abs(audio.waves[0, 8000:]).max() == 0  # half a second, padded


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(KwsError, match="no such dataset directory"):
        list_clips(tmp_path / "nowhere", TINY_WORDS, "training")
    assert load_noise(tmp_path, 16000) == ([], [])


def test_augmentation(config):
    params = config.train.augment
    rng = np.random.default_rng(0)
    aug = Augmenter(params, [], 16000)  # no noise recordings: falls back to white noise
    levels = [np.sqrt(np.mean(aug.silence(16000, rng) ** 2)) for _ in range(300)]
    low, high = params.silence_rms
    assert low * 0.9 < min(levels) and max(levels) < high * 1.1 and np.median(levels) > 0.005
    click = np.zeros(16000, np.float32)
    click[8000] = 0.5
    quiet = Augmenter(params.model_copy(update={"noise_probability": 0.0, "gain_db": (0.0, 0.0)}), [], 16000)
    moved = [int(np.argmax(quiet.waveform(click, rng))) - 8000 for _ in range(200)]
    assert max(np.abs(moved)) <= 1600 and len(set(moved)) > 50
    word = np.zeros(16000, np.float32)
    word[4000:12000] = 0.5  # an 0.5-s "word"
    for _ in range(20):
        cut = quiet.partial(word, (4000, 12000), rng)
        inside = np.flatnonzero(cut)
        assert 0.1 * 8000 <= len(inside) <= 0.5 * 8000 + 1
        assert inside[0] == 0 or inside[-1] == 15999  # at the window's edge
    feats = np.zeros((98, 40), np.float32)
    feats[:, :] = np.arange(40)
    masked = aug.spectrogram(feats, rng)
    assert masked.shape == feats.shape and not np.array_equal(masked, feats)


def test_evaluation_audio_adds_silence(tiny_dataset, config):
    val = evaluation_audio(tiny_dataset, "validation", config)
    words = sum(val.summary["per_class"][w] for w in TINY_WORDS)
    assert val.summary["generated_silence"] == round(0.1 * words) == val.summary["per_class"][SILENCE]
    again = evaluation_audio(tiny_dataset, "validation", config)
    assert np.array_equal(val.waves, again.waves)  # a fixed seed: the same clips every time
    noises, _ = load_noise(tiny_dataset, 16000)
    assert len(noises) == 2
    assert silence_clips(Augmenter(config.train.augment, noises, 16000), 0, 16000, 0).shape == (0, 16000)


def _clip(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = 0.1 * np.random.default_rng(seed).standard_normal(RATE // 2)
    sf.write(path, noise.astype(np.float32), RATE, subtype="PCM_16")


def test_train_refuses_corrupt_words_and_one_class(tmp_path, capsys):
    data = tmp_path / "sc"
    for i in range(3):
        (data / "yes").mkdir(parents=True, exist_ok=True)
        (data / "yes" / f"a{i}_nohash_0.wav").write_bytes(b"RIFF\x00\x00garbage")
        _clip(data / "bird" / f"b{i}_nohash_0.wav", i)
    code, err = in_process(capsys, "train", "--data", str(data), "--out", str(tmp_path / "m"))
    assert code == 2 and "no readable training clips of any word" in err
    assert "every clip of yes" in err and len(err.splitlines()) == 1
    one = tmp_path / "one"
    for i in range(3):
        _clip(one / "yes" / f"a{i}_nohash_0.wav", i)
    code, err = in_process(capsys, "train", "--data", str(one), "--out", str(tmp_path / "m"))
    assert code == 2 and "at least two classes, found only yes" in err
