"""`kws bench` runs end to end on a real model and reports every figure it promises.

Timing is shown by the benchmark itself, never asserted here: these checks are about shape
and sanity (ordering of percentiles, words detected in a spoken stream), not speed.
"""

import json

import pytest

from kws.eval.testaudio import Label, write_labels
from conftest import run_kws


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
    return json.loads(result.stdout.strip().splitlines()[-1]), labels


def test_bench_reports_every_figure(tiny_bundle, spoken, tmp_path):
    report, labels = bench(tiny_bundle, spoken, tmp_path, "--no-baseline")
    assert [h["hop_ms"] for h in report["hops"]] == [20, 50]
    for hop in report["hops"]:
        total = hop["total"]
        assert 0 < total["p50"] <= total["p95"] <= total["p99"] <= total["max"]
        assert hop["classifier"]["n"] == total["n"] > 0
    assert abs(report["rtf"]["audio_s"] - 12) < 0.1 and report["rtf"]["rtf"] > 0
    assert 0 < report["live"]["cpu_share"] < 1 and report["live"]["lost_samples"] == 0
    assert report["detection"]["commands"] == len(labels) and report["detection"]["hits"] > 0
    assert report["startup"]["seconds"] > 0 and report["startup"]["peak_rss_mb"] > 10
    assert "naive" not in report and report["ratios"] == {}


@pytest.mark.train
def test_bench_against_the_naive_baseline(tiny_bundle, spoken, tmp_path):
    report, _ = bench(tiny_bundle, spoken, tmp_path, "--naive-hops", "5")
    assert report["naive"]["total"]["n"] == 5
    assert set(report["ratios"]) == {"per_hop_p50", "per_hop_p99", "real_time_factor", "startup",
                                     "peak_rss"}


def test_bench_rejects_half_a_stream(tiny_bundle, tmp_path):
    result = run_kws("bench", "--model", str(tiny_bundle), "--wav", "x.wav", check=False)
    assert result.returncode == 2 and "go together" in result.stderr
