"""What a synthetic enrolment is worth on real people (issue 21): enrol Speech Commands words
that are not commands, replay the real clips of those words, and count false alarms on real
negatives. Their real clips never train an enrolment nor set its thresholds (``kws enroll``
leaves an enrolled word's folder out of its negatives).

A research harness, not part of kws: it is not installed, and runs as a script from the
repository root with the training extras (``pip install -e '.[train]'``). ``--data`` is a
Speech Commands root and ``--negatives`` a folder of running speech (``docs/enrolment.md``).

Three studies, each resumable (a bundle already written is reused, so a stopped run goes on):

``levers``  one bundle per augmentation lever (``LEVERS``: speaker and channel perturbations of
            ``train.augment``, and the engines) enrolling ``WORDS`` together;
``takes``   the user's own takes: for speakers who said a word at least ``TAKES_NEEDED`` times,
            enrolments with 0, 3 and 5 of their takes, scored on their other takes and on
            other people;
``report``  replays every bundle written (int8, as ``kws listen`` runs it) and writes
            ``report.json`` and ``report.md`` beside them.

Each bundle is scored at its own thresholds on three streams (``kws.eval.testaudio`` at the
configured SNR): ``people`` (every real clip of the enrolled words), ``speech`` (the held-apart
readers of ``--negatives``: validation and testing splits, minutes only) and ``other words``
(Speech Commands clips of every other word in the validation and testing splits, said by
people: the "other phrases" a user says). Hits per word; false alarms per hour of speech and
per 124 other words, with the Poisson 95% upper bound that the audio's length allows.

    python studies/enroll_study.py levers --data DIR --negatives DIR [--out runs/enroll-study] [--only none,rooms]
    python studies/enroll_study.py takes --data DIR --negatives DIR
    python studies/enroll_study.py report --data DIR --negatives DIR
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np

from kws.audio.files import read_audio, write_wav
from kws.bundle import load_bundle
from kws.config import load_config, with_overrides
from kws.data.negatives import audio_files, negative_files
from kws.data.speech_commands import load_noise
from kws.eval.scoring import rate_upper_95, record_stream, rescore, sweep
from kws.eval.testaudio import build_stream
from kws.writes import to_json, write_text
from kws_train.thresholds import LEVELS

WORDS = ["marvin", "sheila", "house", "happy", "bird", "wow"]
ALL_ENGINES = ["pico", "festival", "flite", "espeak"]
SLOW_RATES = (0.7, 0.85, 1.0)  # synthetic speaking rates (1: the engine's), against (0.85, 1, 1.15)
LEVER_KEYS = {"speed": ["speed_probability"], "vtlp": ["vtlp_probability"], "rooms": ["room_probability"],
               "channel": ["colour_probability", "narrowband_probability"]}


def _levers() -> dict[str, tuple[dict, list[str], dict]]:
    """name -> (config overrides, engines, Budget changes): no lever, each lever alone at the
    value ``enroll.augment`` gives it, all of them, slower synthetic speech (people say a word
    alone more slowly than the engines do), all of them with mined running speech (the
    default ``Budget``), and fewer engines."""
    default = load_config(None).enroll.augment
    alone = {name: {k: default[k] for k in keys} for name, keys in LEVER_KEYS.items()}
    unmined = {"mined_windows": 0}
    out = {"none": ({"enroll.augment": {}}, ALL_ENGINES, unmined)}
    out.update({name: ({"enroll.augment": a}, ALL_ENGINES, unmined) for name, a in alone.items()})
    out["all"] = ({"enroll.augment": dict(default)}, ALL_ENGINES, unmined)
    out["slow"] = ({"enroll.augment": {}}, ALL_ENGINES, {"rates": SLOW_RATES, **unmined})
    out["slow+all"] = ({"enroll.augment": dict(default)}, ALL_ENGINES, {"rates": SLOW_RATES, **unmined})
    out["mined"] = ({"enroll.augment": dict(default)}, ALL_ENGINES, {})
    # and over that, more of what the budget spends
    for name, change in (("tune10", {"tune_epochs": 10}), ("copies24", {"copies": 24}),
                         ("mined3000", {"mined_windows": 3000})):
        out[f"mined+{name}"] = ({"enroll.augment": dict(default)}, ALL_ENGINES, change)
    out["espeak-flite"] = ({"enroll.augment": {}}, ["flite", "espeak"], unmined)
    out["default"] = ({}, ALL_ENGINES, {})  # what kws enroll does: "mined", thresholds at 500 ms
    # near-words teach that a sound away is not the word; people are more than a sound away from TTS
    out["default-no-near"] = ({}, ALL_ENGINES, {"near_voices": 0})
    # every Speech Commands training clip of another word (about 11,000) instead of 3,000
    out["default+all-other-words"] = ({}, ALL_ENGINES, {"speech_commands": 12000})
    return out


LEVERS = _levers()
TAKES = (3, 5)
TAKES_NEEDED = 6           # at least one take left to test after the fifth
TAKE_WORDS = ["yes", "on"]  # commands as stand-ins: no other word has a speaker with 6 takes here
TAKE_SPEAKERS = 2
OTHER_PHRASES = 124        # the held-out battery's count of other phrases
EQUAL_FA = (3, 10, 30)     # false alarms on all negatives at which hits are compared


def _enroll(out: Path, words: list[str], overrides: dict, engines: list[str], args,
            recordings: Path | None = None, budget: dict | None = None) -> None:
    from dataclasses import replace

    from kws_train.enroll import BUDGETS, enroll

    if (out / "enroll_report.json").is_file():
        return
    config = with_overrides(load_config(args.config), overrides)
    report = enroll(config, words, out, recordings=recordings, data=args.data, negatives=args.negatives,
                    engines=engines, budget=replace(BUDGETS["normal"], **(budget or {})),
                    seed=args.seed, cache=args.cache, progress=False, threads=args.threads)
    print(f"{out}: {report['seconds']:.0f} s", flush=True)


def run_levers(args) -> None:
    for name in args.only or list(LEVERS):
        overrides, engines, budget = LEVERS[name]
        _enroll(args.out / "levers" / name, WORDS, overrides, engines, args, budget=budget)


def take_speakers(data: Path, word: str) -> dict[str, list[Path]]:
    """Speakers with ``TAKES_NEEDED`` takes of ``word`` or more, the first ``TAKE_SPEAKERS``."""
    by: dict[str, list[Path]] = {}
    for p in sorted(audio_files(data / word)):
        by.setdefault(p.name.split("_nohash_")[0], []).append(p)
    many = sorted(s for s, ps in by.items() if len(ps) >= TAKES_NEEDED)
    return {s: by[s] for s in many[:TAKE_SPEAKERS]}


def run_takes(args) -> None:
    for word in TAKE_WORDS:
        _enroll(args.out / "takes" / word / "0", [word], {}, ALL_ENGINES, args)
        for speaker, paths in take_speakers(args.data, word).items():
            for k in TAKES:
                with tempfile.TemporaryDirectory(prefix="kws-takes-") as tmp:
                    for p in paths[:k]:
                        write_wav(Path(tmp) / f"{word}_{p.stem}.wav", read_audio(p, 16000), 16000)
                    _enroll(args.out / "takes" / word / f"{speaker}-{k}", [word], {}, ALL_ENGINES, args,
                            recordings=Path(tmp))


# --------------------------------------------------------------------------- scoring

def other_word_clips(data: Path, words: set[str]) -> list[tuple[str, Path]]:
    """``(word, path)`` of every clip in the validation and testing splits whose word is not in
    ``words`` (silence is no word), in the order of the lists."""
    from kws.data.speech_commands import list_clips

    paths = [p for split in ("validation", "testing") for p in list_clips(data, [], split, unknown_fraction=1.0).paths
             if not p.parent.name.startswith("_") and p.parent.name not in words]
    return [(p.parent.name, p) for p in sorted(paths, key=lambda p: f"{p.parent.name}/{p.name}")]


class Streams:
    """The labelled test streams of one bundle's words, made once, replayed per bundle."""

    def __init__(self, args, config, folder: Path):
        self.args, self.config, self.folder, self.sr = args, config, folder, config.audio.sample_rate
        self.noises = load_noise(args.data, self.sr)[0]
        self.made: dict[str, tuple[Path, list]] = {}

    def stream(self, name: str, clips: list[tuple[str, str, np.ndarray]], seed: int):
        if name not in self.made:
            audio, labels = build_stream(clips, self.noises, self.config.stream, self.sr,
                                         np.random.default_rng(seed))
            wav = self.folder / f"{name}.wav"
            write_wav(wav, audio, self.sr)
            self.made[name] = (wav, labels)
        return self.made[name]

    def negatives(self, words: list[str], limit: int):
        sr = self.sr
        others = other_word_clips(self.args.data, set(words))
        pick = np.random.default_rng(1).permutation(len(others))[:limit]
        other = [(w, f"speech_commands:{w}", read_audio(p, sr)) for w, p in (others[i] for i in sorted(pick))]
        speech = [(f"_speech:{p.stem}", str(p), read_audio(p, sr))
                  for s in ("validation", "testing")
                  for p in negative_files(self.args.negatives, s, self.config.train.negatives.holdout)]
        return {"other words": self.stream("other-" + "-".join(words), other, 2),
                "speech": self.stream("speech", speech, 3)}


def score_bundle(bundle_dir: Path, positives: dict[str, list[tuple[str, str, np.ndarray]]],
                 negatives: dict, streams: Streams) -> dict:
    """Hits per positive stream and false alarms per negative stream at the bundle's own
    thresholds, and hits at the one level every word shares that keeps the negatives' false
    alarms (speech and other words together) at each of ``EQUAL_FA`` or fewer: a comparison
    at equal false alarms, whatever rule set the thresholds."""
    config = streams.config
    bundle = load_bundle(bundle_dir, config)
    config = with_overrides(config, {"words": bundle.words})
    refractory, tolerance = config.posterior.refractory_ms / 1000, config.stream.tolerance_ms / 1000
    rec = {}
    for name, clips in positives.items():
        wav, labels = streams.stream(name, clips, 4)
        rec[name] = record_stream(bundle, config, wav, labels)
    for name, (wav, labels) in negatives.items():
        rec[name] = record_stream(bundle, config, wav, labels)
    own = np.array([bundle.thresholds.get(lab, math.inf) for lab in bundle.labels])
    out = {"thresholds": bundle.thresholds}
    for name, r in rec.items():
        s = rescore([r], bundle.labels, bundle.words, own, refractory, tolerance)
        row = s.summary()
        if name in negatives:  # per hour of speech (the summary's bound), per 124 other words
            row["said"] = len(r.labels)
            row["fa_upper_95"] = row["fa_per_hour_upper_95"] if name == "speech" else \
                rate_upper_95(s.false_alarms, len(r.labels) / OTHER_PHRASES)
        out[name] = row
    quiet = sweep([rec[n] for n in negatives], bundle.labels, bundle.words, list(LEVELS), refractory, tolerance)
    out["equal_fa"] = {}
    for budget in EQUAL_FA:
        level = next((float(lv) for lv, s in quiet if s.false_alarms <= budget), float(LEVELS[-1]))
        out["equal_fa"][budget] = {"level": level, **{n: sweep([rec[n]], bundle.labels, bundle.words, [level],
                                                               refractory, tolerance)[0][1].hit_rate
                                                      for n in positives}}
    return out


def run_report(args) -> None:
    config = with_overrides(load_config(args.config), {"posterior.smoothing_ms": args.smoothing_ms})
    sr = config.audio.sample_rate
    report = args.out / ("report" if args.smoothing_ms is None else f"report-{args.smoothing_ms:g}ms")
    # --only re-scores some bundles and keeps the rest of an earlier report
    earlier = report.with_suffix(".json")
    results = json.loads(earlier.read_text()) if args.only and earlier.is_file() else {"levers": {}, "takes": {}}
    with tempfile.TemporaryDirectory(prefix="kws-study-") as tmp:
        streams = Streams(args, config, Path(tmp))
        people = {"people": [(w, f"speech_commands:{p.stem}", read_audio(p, sr))
                             for w in WORDS for p in sorted(audio_files(args.data / w))]}
        neg = streams.negatives(WORDS, args.other_words)
        for name in [n for n in args.only or LEVERS if n in LEVERS]:
            folder = args.out / "levers" / name
            if (folder / "enroll_report.json").is_file():
                results["levers"][name] = score_bundle(folder, people, neg, streams)
                print(name, _lever_line(results["levers"][name]), flush=True)
        for word in TAKE_WORDS if args.only is None or "takes" in args.only else []:
            if not (args.out / "takes" / word / "0" / "enroll_report.json").is_file():
                continue
            neg = streams.negatives([word], args.other_words)
            for speaker, paths in take_speakers(args.data, word).items():
                own = [(word, f"speech_commands:{p.stem}", read_audio(p, sr)) for p in paths[max(TAKES):]]
                others = [(word, f"speech_commands:{p.stem}", read_audio(p, sr))
                          for p in sorted(audio_files(args.data / word))
                          if not p.name.startswith(speaker)][:args.other_people]
                # stream names are cache keys: a speaker may lend takes of several words
                positives = {f"takes-{word}-{speaker}": own, f"people-{word}": others}
                for k in (0, *TAKES):
                    folder = args.out / "takes" / word / ("0" if k == 0 else f"{speaker}-{k}")
                    if (folder / "enroll_report.json").is_file():
                        results["takes"][f"{word}/{speaker}/{k}"] = score_bundle(folder, positives, neg, streams)
                        print(word, speaker, k, flush=True)
    results["levers"] = {k: results["levers"][k] for k in LEVERS if k in results["levers"]}
    write_text(report.with_suffix(".json"), to_json(results, indent=1) + "\n")
    write_text(report.with_suffix(".md"), format_report(results, args.smoothing_ms))


def _lever_line(row: dict) -> str:
    p, o = row["people"], row["other words"]
    return (f"people {p['hits']}/{p['commands']} ({p['hit_rate']:.1%}); speech {row['speech']['false_alarms']} FA; "
            f"other words {o['false_alarms']}/{o['said']}; at equal FA "
            + ", ".join(f"{v['people']:.1%}" for v in row["equal_fa"].values()))


def format_report(results: dict, smoothing_ms: float | None = None) -> str:
    smoothing = "each bundle's own smoothing" if smoothing_ms is None else f"smoothing {smoothing_ms:g} ms"
    command = "python studies/enroll_study.py report" + ("" if smoothing_ms is None else
                                                         f" --smoothing-ms {smoothing_ms:g}")
    lines = [f"# Enrolment on real people (`{command}`; {smoothing})", "",
             "## Levers: " + ", ".join(WORDS) + " enrolled together, every real clip of them replayed", "",
             "At the bundle's own thresholds: hits of people, per word, false alarms; then hits at one "
             "level for every word with at most " + ", ".join(map(str, EQUAL_FA)) + " false alarms on "
             "the negatives together.", "",
             "| lever | people | " + " | ".join(WORDS) + " | FA speech (95% bound /h) | FA other words "
             "(per 124) | " + " | ".join(f"hits at <= {b} FA" for b in EQUAL_FA) + " |",
             "|" + "---|" * (len(WORDS) + 4 + len(EQUAL_FA))]
    for name, r in results["levers"].items():
        p, s, o = r["people"], r["speech"], r["other words"]
        per = [f"{p['per_word'][w]['hits']}/{p['per_word'][w]['commands']}" if w in p["per_word"] else "-"
               for w in WORDS]
        speech = f"{s['false_alarms']} in {s['non_command_hours'] * 60:.1f} min (< {s['fa_upper_95']:.0f})"
        other = f"{o['false_alarms']} of {o['said']} ({o['false_alarms'] * OTHER_PHRASES / max(1, o['said']):.1f})"
        equal = " | ".join(f"{v['people']:.1%}" for v in r["equal_fa"].values())
        lines.append(f"| {name} | {p['hit_rate']:.1%} | " + " | ".join(per) + f" | {speech} | {other} | {equal} |")
    if results["takes"]:
        lines += ["", "## The user's takes: enrolled with 0, 3 or 5 takes of one speaker", "",
                  "| word / speaker / takes | their other takes | other people | FA speech | FA other words | "
                  + " | ".join(f"other people at <= {b} FA" for b in EQUAL_FA) + " |",
                  "|" + "---|" * (5 + len(EQUAL_FA))]
        for key, r in results["takes"].items():
            own = next(v for k, v in r.items() if k.startswith("takes-"))
            ppl = next(v for k, v in r.items() if k.startswith("people-"))
            o = r["other words"]
            equal = " | ".join(f"{next(x for k, x in v.items() if k.startswith('people-')):.1%}"
                               for v in r["equal_fa"].values())
            lines.append(f"| {key} | {own['hits']}/{own['commands']} | {ppl['hit_rate']:.1%} | "
                         f"{r['speech']['false_alarms']} | {o['false_alarms']} of {o['said']} | {equal} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python studies/enroll_study.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("study", choices=["levers", "takes", "report"])
    ap.add_argument("--out", type=Path, default=Path("runs/enroll-study"))
    ap.add_argument("--only", type=lambda s: s.split(","),
                    help=f"levers to run or report, from {','.join(LEVERS)}; report: 'takes' for the takes")
    ap.add_argument("--smoothing-ms", type=float, help="report: every bundle at this smoothing "
                    "(default: each bundle's own)")
    ap.add_argument("--data", type=Path, required=True, metavar="DIR", help="a Speech Commands root")
    ap.add_argument("--negatives", type=Path, required=True, metavar="DIR",
                    help="a folder of running speech without the words (its held-apart readers are scored)")
    ap.add_argument("--config", default=None)
    ap.add_argument("--cache", type=Path, default=Path("runs/enroll-study/cache"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--other-words", type=int, default=600, help="other-word clips in the negative stream")
    ap.add_argument("--other-people", type=int, default=150)
    args = ap.parse_args(argv)
    {"levers": run_levers, "takes": run_takes, "report": run_report}[args.study](args)


if __name__ == "__main__":
    main()
