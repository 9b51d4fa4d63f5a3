"""`kws eval` on the committed tiny bundle: LiteRT only, no TensorFlow."""

import json

from conftest import TINY_WORDS, run_kws

from kws.labels import labels_for

LABELS = labels_for(TINY_WORDS)


def test_eval_json_on_dataset_and_archive(tiny_bundle, tiny_dataset, tmp_path):
    result = run_kws("eval", "--data", str(tiny_dataset), "--model", str(tiny_bundle),
                     "--report", str(tmp_path / "report"), "--json")
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["accuracy"] > 0.8 and set(metrics["per_class"]) == set(LABELS)
    # By default the model the runtime runs: int8 (detector.int8, and the bundle has it).
    assert metrics["model"] == {"path": str(tiny_bundle), "int8": True}
    assert f"model: {tiny_bundle} (int8)" in result.stdout.splitlines()
    assert len(metrics["confusion"]) == len(LABELS) and "balanced accuracy" in result.stdout
    assert (tmp_path / "report" / "confusion.png").stat().st_size > 0
    # The same test clips, laid out as the official test-set archive.
    archive = tmp_path / "archive"
    for rel in (tiny_dataset / "testing_list.txt").read_text().split():
        word, name = rel.split("/")
        folder = word if word in TINY_WORDS else "_unknown_"
        (archive / folder).mkdir(parents=True, exist_ok=True)
        target = f"{word}_{name}.wav" if folder == "_unknown_" else name
        (archive / folder / target).write_bytes((tiny_dataset / rel).read_bytes())
    result = run_kws("eval", "--data", str(archive), "--model", str(tiny_bundle),
                     "--report", str(tmp_path / "report2"), "--json")
    archived = json.loads(result.stdout.strip().splitlines()[-1])
    assert archived["per_class"]["_unknown_"]["support"] == 2 * 4  # every clip, no 10% cut
    # A folder per label says nothing of who spoke: no "official test speakers" part.
    assert "official_test_speakers" not in archived and "official" not in result.stdout
    assert archived["per_class"]["yes"]["support"] == metrics["per_class"]["yes"]["support"]


def test_bad_input_is_one_line_error(tmp_path):
    result = run_kws("train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b"),
                     check=False)
    assert result.returncode == 2 and "no such dataset directory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_eval_float_and_int8_flags(tiny_bundle, tiny_dataset, tmp_path):
    def scored(*flags: str) -> tuple[dict, str]:
        result = run_kws("eval", "--data", str(tiny_dataset), "--model", str(tiny_bundle),
                         "--report", str(tmp_path / "r"), "--json", *flags)
        return json.loads(result.stdout.strip().splitlines()[-1]), result.stdout

    floating, out = scored("--float")
    assert floating["model"] == {"path": str(tiny_bundle), "int8": False}
    assert f"model: {tiny_bundle} (float)" in out
    assert scored("--int8")[0]["model"]["int8"] is True
    both = run_kws("eval", "--data", str(tiny_dataset), "--float", "--int8", check=False)
    assert both.returncode == 2 and "not allowed with" in both.stderr
    # A config that runs the float model: eval scores the float model too.
    config = tmp_path / "float.yaml"
    config.write_text("detector:\n  int8: false\n")
    result = run_kws("eval", "--data", str(tiny_dataset), "--model", str(tiny_bundle), "--config",
                     str(config), "--report", str(tmp_path / "r"), "--json")
    assert json.loads(result.stdout.strip().splitlines()[-1])["model"]["int8"] is False
