"""Config: defaults load, files lay over them, bad values give one line naming the key; the
file kws reads is the repository's one ``config.yaml``."""

from pathlib import Path

import pytest

from kws.config import DEFAULT_CONFIG, ConfigError, load_config, with_overrides
from conftest import in_process, run_kws

ROOT = Path(__file__).resolve().parent.parent


def test_kws_reads_the_config_yaml_a_user_edits():
    # The package's config.yaml is a link to the top-level one, not a copy that can drift
    # (the wheel carries it as a file: tests/test_wheel.py).
    assert (ROOT / "kws" / "config.yaml").is_symlink()
    assert DEFAULT_CONFIG == (ROOT / "config.yaml").resolve()


@pytest.mark.parametrize("text, line, first", [
    ("enroll:\n  augment: {}\nstream:\n  snr_db: 3\nenroll:\n  augment: {}\n", 5, 1),
    ("audio:\n  block_ms: 10\n  ring_seconds: 2\n  block_ms: 20\n", 4, 2),
    ("posterior: {thresholds: {up: 0.9, up: 0.8}}\n", 1, 1),
])
def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path, text, line, first):
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: line {line}: ") and f"first on line {first}" in message
    assert "\n" not in message


def test_a_merge_key_is_no_repetition(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("enroll:\n  augment: &mine {room_probability: 0.1, vtlp_probability: 0.2}\n"
                    "train:\n  augment:\n    <<: *mine\n    room_probability: 0.3\n")
    augment = load_config(path).train.augment
    assert (augment.room_probability, augment.vtlp_probability) == (0.3, 0.2)


def test_defaults_are_the_documented_ones():
    config = load_config()
    assert config.audio.sample_rate == 16000
    assert (config.features.window_ms, config.features.stride_ms) == (30, 10)
    assert config.audio.clip_seconds == 1.0
    assert config.words == ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
    assert config.model_path.name == "default"


def test_file_overrides_only_its_keys(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("features:\n  kind: mfcc\ndetector:\n  hop_ms: 30\n")
    config = load_config(path)
    assert config.features.kind == "mfcc" and config.features.n_mels == 40
    assert config.detector.hop_ms == 30
    # A relative path follows the file that sets it; one the file leaves out keeps the default's.
    assert config.model_path == load_config().model_path
    path.write_text("detector:\n  model: elsewhere/m\ntrain:\n  data: sc\n")
    config = load_config(path)
    assert config.model_path == (tmp_path / "elsewhere/m").resolve()
    assert config.train.data == str((tmp_path / "sc").resolve())


@pytest.mark.parametrize("override, key", [
    ({"features.window_ms": -3}, "features.window_ms"),
    ({"features.kind": "fft"}, "features.kind"),
    ({"features.fmin": 9000.0}, "fmin"),
    ({"detector.hop_ms": 15}, "stride_ms"),
    ({"posterior.threshold": 1.5}, "posterior.threshold"),
    ({"posterior.thresholds": {"on": 2}}, "thresholds.on"),
    ({"enroll.augment": {"room_probability": 2}}, "enroll.augment.room_probability"),
    ({"enroll.augment": {"rooms_probability": 0.5}}, "'rooms_probability' is not a train.augment key"),
])
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        with_overrides(load_config(), override)
    message = str(err.value)
    assert key in message and "\n" not in message


def test_enroll_perturbs_with_its_own_values_of_train_augment(tmp_path):
    config = load_config()
    assert config.train.augment.room_probability == 0 < config.enroll_augment.room_probability
    assert config.enroll_augment.noise_snr_db == config.train.augment.noise_snr_db
    path = tmp_path / "mine.yaml"
    path.write_text("enroll:\n  augment:\n    room_probability: 0.0\n")
    mine = load_config(path)
    assert mine.enroll_augment.room_probability == 0  # the key a file sets; the others kept
    assert mine.enroll_augment.vtlp_probability == config.enroll_augment.vtlp_probability > 0


def test_unknown_key_and_unquoted_yes(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("audio:\n  sample_rte: 8000\n")
    with pytest.raises(ConfigError, match=r"audio\.sample_rte: unknown key"):
        load_config(path)
    path.write_text("words: [yes, no]\n")
    with pytest.raises(ConfigError, match="quote"):
        load_config(path)


def test_cli_reports_config_errors_in_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("features:\n  n_mels: zero\n")
    result = run_kws("--config", str(path), "replay", "x.wav", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "features.n_mels" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("hop", ["inf", "1e-9", "1e-300", "nan", "2000"])
def test_absurd_hop_is_one_line(tiny_bundle, capsys, hop, spoken):
    code, err = in_process(capsys, "replay", str(spoken[2]), "--model", str(tiny_bundle),
                           "--hop-ms", hop)
    assert code == 2 and err.startswith("kws: error: ") and err.count("\n") == 1, err
    assert "hop_ms" in err


@pytest.mark.parametrize("text, key", [
    ("detector:\n  hop_ms: .inf\n", "detector.hop_ms"),
    ("audio:\n  ring_seconds: 1e9\n", "audio.ring_seconds"),
    ("posterior:\n  smoothing_ms: 1e12\n", "posterior.smoothing_ms"),
    ("detector:\n  num_threads: 100000\n", "detector.num_threads"),
    ("posterior:\n  refractory_ms: .nan\n", "posterior.refractory_ms"),
])
def test_absurd_config_values_are_one_line(tmp_path, text, key):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(path)


def test_non_utf8_config_is_one_line(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"words: [\xff\xfe]\n")
    code, err = in_process(capsys, "--config", str(path), "devices")
    assert code == 2 and "not a text (UTF-8) file" in err and err.count("\n") == 1


def test_hop_longer_than_the_window_is_refused():
    with pytest.raises(ConfigError, match="must not exceed the classifier's window"):
        with_overrides(load_config(), {"detector.hop_ms": 1500})


def test_config_words_and_threshold_keys_must_be_model_words(tmp_path, tiny_bundle, spoken, capsys):
    typo = tmp_path / "typo.yaml"
    typo.write_text('posterior:\n  thresholds: {"of": 0.8}\n')
    code, err = in_process(capsys, "--config", str(typo), "replay", str(spoken[2]),
                           "--model", str(tiny_bundle))
    assert code == 2 and "posterior.thresholds: 'of' is not a word of the model" in err
    words = tmp_path / "words.yaml"
    words.write_text('words: ["yes", "left"]\n')
    code, err = in_process(capsys, "--config", str(words), "replay", str(spoken[2]),
                           "--model", str(tiny_bundle))
    assert code == 2 and "words: 'left' is not a word of the model" in err
