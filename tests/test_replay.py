"""`kws replay` and `kws eval-stream` through the real command line, on spoken words."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import one_error_line, run_kws
from kws.eval.testaudio import read_labels

RATE = 16000


@pytest.fixture(scope="module")
def stream(spoken):
    return spoken


def replay_json(wav, bundle, *extra) -> list[dict]:
    result = run_kws("replay", str(wav), "--model", str(bundle), "--json", *extra)
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_replay_finds_each_word_once_in_order_at_plausible_times(stream, tiny_bundle):
    _, labels, wav = stream
    found = replay_json(wav, tiny_bundle, "--threshold", "0.6")  # mid-range for the tiny model
    assert [d["word"] for d in found] == [word for word, _, _ in labels]
    for d, (word, start, end) in zip(found, labels):
        assert set(d) == {"file", "time", "word", "score"}  # the same keys for one file or many
        assert start < d["time"] <= end + 1.0, (d, word, start, end)
        assert 0 < d["score"] <= 1


def test_replay_chunk_size_does_not_change_detections(stream, tiny_bundle):
    reference = replay_json(stream[2], tiny_bundle)
    for block_ms in ("3", "64", "1000"):
        assert replay_json(stream[2], tiny_bundle, "--block-ms", block_ms) == reference


def test_plain_output_and_several_files(stream, tiny_bundle):
    wav = stream[2]
    plain = run_kws("replay", str(wav), "--model", str(tiny_bundle)).stdout.splitlines()
    found = replay_json(wav, tiny_bundle)
    assert len(plain) == len(found)
    time, word, score = plain[0].split()
    assert (float(time), word, float(score)) == (found[0]["time"], found[0]["word"],
                                                 pytest.approx(found[0]["score"], abs=1e-3))
    both = [json.loads(line) for line in run_kws("replay", str(wav), str(wav), "--model",
                                                 str(tiny_bundle), "--json").stdout.splitlines()]
    assert [d["file"] for d in both] == [str(wav)] * len(found) * 2


def test_a_high_threshold_silences_everything(stream, tiny_bundle):
    # Nothing heard is said, not silent: a JSON reader tells it from "not processed".
    assert replay_json(stream[2], tiny_bundle, "--threshold", "1.0") == [
        {"file": str(stream[2]), "detections": 0}]


def test_per_word_thresholds(stream, tiny_bundle):
    reference = replay_json(stream[2], tiny_bundle, "--threshold", "0.6")
    found = replay_json(stream[2], tiny_bundle, "--threshold", "yes=1.0,no=0.6,up=0.6,stop=0.6")
    assert "yes" in {d["word"] for d in reference}
    assert found == [d for d in reference if d["word"] != "yes"]  # the words are seconds apart


def test_near_misses(stream, tiny_bundle):
    _, labels, wav = stream
    lines = replay_json(wav, tiny_bundle, "--threshold", "0.9999", "--near-misses")
    misses = [d for d in lines if d.get("near_miss")]
    assert {d["word"] for d in misses} >= {word for word, _, _ in labels}
    for d in misses:
        assert set(d) == {"file", "time", "word", "score", "threshold", "near_miss"}
        assert 0.5 * 0.9999 <= d["score"] < d["threshold"] == 0.9999
    assert [d["time"] for d in misses] == sorted(d["time"] for d in misses)
    assert lines[-1] == {"file": str(wav), "detections": 0}  # near misses are no detections
    text = run_kws("replay", str(wav), "--model", str(tiny_bundle), "--threshold", "0.9999",
                   "--near-misses").stdout.splitlines()
    assert len(text) == len(misses) and all("near miss (threshold 1.000)" in line for line in text)
    assert not [d for d in replay_json(wav, tiny_bundle, "--threshold", "0.9999") if d.get("near_miss")]


def test_view_prints_plain_lines_when_not_a_terminal(stream, tiny_bundle):
    _, labels, wav = stream
    out = run_kws("replay", str(wav), "--model", str(tiny_bundle), "--threshold", "0.6",
                  "--view").stdout
    assert [line.split()[1] for line in out.splitlines() if "near miss" not in line] == \
        [word for word, _, _ in labels]
    assert "\x1b" not in out


@pytest.mark.parametrize("content", [None, b"RIFF\x00\x00garbage", b""])
def test_unreadable_files_exit_2_with_one_line(tmp_path, tiny_bundle, content):
    path = tmp_path / "clip.wav"
    if content is not None:
        path.write_bytes(content)
    result = run_kws("replay", str(path), "--model", str(tiny_bundle), check=False)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0], result.stderr


def test_missing_model_or_oversized_block_exits_2(stream, tiny_bundle, tmp_path):
    result = run_kws("replay", str(stream[2]), "--model", str(tmp_path), check=False)
    assert result.returncode == 2 and "not a model bundle" in result.stderr
    result = run_kws("replay", str(stream[2]), "--model", str(tiny_bundle), "--block-ms", "5000",
                     check=False)
    assert result.returncode == 2 and "ring_seconds" in result.stderr


def test_eval_stream_scores_a_made_stream(tiny_dataset, tiny_bundle, tmp_path):
    wav, labels_csv, plot = tmp_path / "long.wav", tmp_path / "long.csv", tmp_path / "curve.png"
    run_kws("make-stream", "--data", str(tiny_dataset), "--out", str(wav), "--labels",
            str(labels_csv), "--minutes", "1")
    result = run_kws("eval-stream", "--wav", str(wav), "--labels", str(labels_csv), "--model",
                     str(tiny_bundle), "--json", "--plot", str(plot))
    report = json.loads(result.stdout)
    commands = sum(lab.word in ("yes", "no", "up", "stop") for lab in read_labels(labels_csv))
    assert report["commands"] == commands > 0
    assert report["hits"] + report["misses"] + report["wrong"] == commands
    assert report["hit_rate"] >= 0.5
    assert [row["threshold"] for row in report["table"]] == sorted(r["threshold"] for r in report["table"])
    assert plot.stat().st_size > 0
    text = run_kws("eval-stream", "--wav", str(wav), "--labels", str(labels_csv), "--model",
                   str(tiny_bundle), "--plot", str(plot)).stdout
    assert "false alarms" in text and "threshold" in text


def test_eval_stream_without_labels_exits_2(stream, tiny_bundle, tmp_path):
    result = run_kws("eval-stream", "--wav", str(stream[2]), "--labels", str(tmp_path / "none.csv"),
                     "--model", str(tiny_bundle), check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "none.csv" in result.stderr


def test_an_unreadable_file_among_several_is_skipped_and_said(tmp_path, tiny_bundle, spoken):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really")
    wav = str(spoken[2])
    alone = run_kws("replay", wav, "--model", str(tiny_bundle), "--json", "--threshold", "0.6")
    result = run_kws("replay", str(bad), wav, "--model", str(tiny_bundle), "--json", "--threshold", "0.6",
                     check=False)
    assert result.returncode == 2 and result.stdout == alone.stdout  # the good file, replayed whole
    warning, error = result.stderr.splitlines()
    assert warning.startswith(f"kws: warning: {bad}") and warning.endswith("; skipped")
    assert error == f"kws: error: 1 of 2 files could not be read (said above): {bad}"


def test_bad_audio_inputs_are_one_line(tmp_path, tiny_bundle, spoken):
    raw = tmp_path / "clip.raw"
    raw.write_bytes(np.zeros(1600, np.int16).tobytes())
    one_error_line(run_kws("replay", str(raw), "--model", str(tiny_bundle), check=False),
                   "headerless raw audio", "sox")
    one_error_line(run_kws("replay", str(tmp_path), "--model", str(tiny_bundle), check=False),
                   "is a directory")
    # `-` reads a WAV from stdin, as a file would be read.
    stdin = subprocess.run([sys.executable, "-m", "kws", "replay", "-", "--model", str(tiny_bundle),
                            "--json", "--threshold", "0.6"], input=spoken[2].read_bytes(),
                           capture_output=True)
    direct = run_kws("replay", str(spoken[2]), "--model", str(tiny_bundle), "--json",
                     "--threshold", "0.6")
    assert stdin.returncode == 0, stdin.stderr
    records = lambda out: [json.loads(line) for line in out.splitlines()]  # noqa: E731
    assert {d["file"] for d in records(stdin.stdout.decode())} == {"-"}
    assert [{**d, "file": "-"} for d in records(direct.stdout)] == records(stdin.stdout.decode())
    garbage = subprocess.run([sys.executable, "-m", "kws", "replay", "-", "--model", str(tiny_bundle)],
                             input=b"not audio", capture_output=True, text=False)
    assert garbage.returncode == 2
    assert garbage.stderr.decode().splitlines() == [
        "kws: error: standard input: not a readable audio file (Format not recognised.)"]


def test_a_short_clip_is_heard_and_no_detection_is_said(spoken, tiny_bundle, tmp_path):
    audio, labels, _ = spoken
    word, start, end = labels[0]
    clip = tmp_path / "short.wav"
    sf.write(clip, audio[round((start - 0.05) * RATE):round((end + 0.05) * RATE)], RATE,
             subtype="PCM_16")
    assert sf.info(clip).duration < 1.0
    found = run_kws("replay", str(clip), "--model", str(tiny_bundle), "--json",
                    "--threshold", "0.6")
    assert [json.loads(line)["word"] for line in found.stdout.splitlines()] == [word]
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(RATE // 2, np.float32), RATE)
    nothing = run_kws("replay", str(quiet), "--model", str(tiny_bundle))
    assert nothing.stdout == "" and f"kws: {quiet}: no detection" in nothing.stderr


def test_litert_start_up_line_is_not_printed(spoken, tiny_bundle):
    result = run_kws("replay", str(spoken[2]), "--model", str(tiny_bundle))
    assert "XNNPACK" not in result.stderr and "INFO:" not in result.stderr


def test_mp3_decoder_warnings_stay_off_stderr(tmp_path, tiny_bundle):
    noise = (0.1 * np.random.default_rng(0).standard_normal(RATE * 3)).astype(np.float32)
    good = tmp_path / "good.mp3"
    sf.write(good, noise, RATE, format="MP3")
    data = bytearray(good.read_bytes())
    for i in np.random.default_rng(1).integers(1000, len(data) - 1000, 60):
        data[i:i + 4] = b"\xff\xfb\x00\x00"  # broken frame headers: mpg123 complains per frame
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(bytes(data))
    result = run_kws("replay", str(bad), "--model", str(tiny_bundle), check=False)
    assert "mpg123" not in result.stderr and "resync" not in result.stderr, result.stderr
    assert result.returncode == 0
