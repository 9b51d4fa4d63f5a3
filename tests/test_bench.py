"""`kws bench` runs end to end on a real model and reports every figure it promises.

Timing is shown by the benchmark itself, never asserted here: these checks are about shape
and sanity (ordering of percentiles, words detected in a spoken stream), not speed.
"""

import json

from kws.eval.testaudio import Label, write_labels
from conftest import run_kws
from spoken import spoken_stream


def test_bench_reports_every_figure(tiny_bundle, tmp_path):
    _, labels, wav = spoken_stream(tmp_path)
    csv = tmp_path / "labels.csv"
    write_labels(csv, [Label(w, s, e) for w, s, e in labels])
    plot = tmp_path / "hist.png"
    result = run_kws("bench", "--config", str(tiny_bundle.parent / "tiny.yaml"),
                     "--model", str(tiny_bundle), "--json", "--hops", "20,50", "--minutes", "0.5",
                     "--live-seconds", "2", "--naive-hops", "5", "--startup-runs", "1", "--wav", str(wav),
                     "--labels", str(csv), "--plot", str(plot), timeout=600)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert [h["hop_ms"] for h in report["hops"]] == [20, 50]
    for hop in report["hops"]:
        total = hop["total"]
        assert 0 < total["p50"] <= total["p95"] <= total["p99"] <= total["max"]
        assert hop["classifier"]["n"] == total["n"] > 0
    assert abs(report["rtf"]["audio_s"] - 30) < 0.1 and report["rtf"]["rtf"] > 0
    assert 0 < report["live"]["cpu_share"] < 1 and report["live"]["lost_samples"] == 0
    assert report["detection"]["commands"] == len(labels) and report["detection"]["hits"] > 0
    assert report["startup"]["seconds"] > 0 and report["startup"]["peak_rss_mb"] > 10
    assert report["naive"]["total"]["n"] == 5
    assert set(report["ratios"]) == {"per_hop_p50", "per_hop_p99", "real_time_factor", "startup",
                                     "peak_rss"}
    assert plot.stat().st_size > 10_000


def test_bench_rejects_half_a_stream(tiny_bundle, tmp_path):
    result = run_kws("bench", "--model", str(tiny_bundle), "--wav", "x.wav", check=False)
    assert result.returncode == 2 and "go together" in result.stderr
