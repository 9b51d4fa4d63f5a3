"""Audio files: every common encoding, rate and channel count in; one-line errors for bad files."""

import numpy as np
import pytest
import soundfile as sf

from kws.audio.files import AudioFileError, read_audio
from reference import AUDIO

RATE = 16000


def tone(rate, seconds=1.0, freq=1000.0):
    t = np.arange(int(rate * seconds)) / rate
    return 0.5 * np.sin(2 * np.pi * freq * t)


@pytest.mark.parametrize("subtype, ext", [("PCM_U8", "wav"), ("PCM_16", "wav"), ("PCM_24", "wav"),
                                          ("PCM_32", "wav"), ("FLOAT", "wav"), ("DOUBLE", "wav"),
                                          ("PCM_16", "flac"), ("VORBIS", "ogg")])
def test_reads_common_encodings(tmp_path, subtype, ext):
    path = tmp_path / f"tone.{ext}"
    sf.write(path, tone(RATE), RATE, subtype=subtype)
    audio = read_audio(path, RATE)
    assert audio.dtype == np.float32 and audio.shape == (RATE,)
    tolerance = {"PCM_U8": 0.02, "VORBIS": 0.1}.get(subtype, 1e-4)  # lossy or 8-bit
    assert np.abs(audio - tone(RATE)).max() < tolerance


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resamples_with_a_proper_filter(tmp_path, rate):
    path = tmp_path / "tone.wav"
    sf.write(path, tone(rate), rate, subtype="FLOAT")
    audio = read_audio(path, RATE)
    assert abs(len(audio) - RATE) <= 1
    spectrum = np.abs(np.fft.rfft(audio[1000:-1000]))
    peak_hz = np.argmax(spectrum) * RATE / (len(audio) - 2000)
    assert abs(peak_hz - 1000) < 5
    # Energy outside the tone stays ~60 dB down: no aliasing or imaging.
    near = spectrum[int(len(spectrum) * 950 / 8000):int(len(spectrum) * 1050 / 8000)].sum()
    assert spectrum.sum() - near < 0.01 * spectrum.sum()


def test_high_frequencies_are_filtered_not_aliased(tmp_path):
    # 7 kHz at 48 kHz would alias to 9 kHz -> 7 kHz... use 12 kHz: above 8 kHz Nyquist of 16 kHz.
    path = tmp_path / "high.wav"
    sf.write(path, tone(48000, freq=12000.0), 48000, subtype="FLOAT")
    assert np.sqrt(np.mean(read_audio(path, RATE)[1000:-1000] ** 2)) < 1e-3


def test_multichannel_is_averaged(tmp_path):
    left, right = tone(RATE), np.zeros(RATE)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), RATE, subtype="FLOAT")
    assert np.allclose(read_audio(path, RATE), left / 2, atol=1e-6)


def test_reads_real_speech():
    # The committed reference: 16-bit FLAC of real speech, its length as libsndfile reports it.
    audio = read_audio(AUDIO, RATE)
    assert len(audio) == sf.info(AUDIO).frames and audio.dtype == np.float32
    assert 0.1 < np.abs(audio).max() <= 1 and np.sqrt(np.mean(audio ** 2)) > 0.005


def bad_files(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("this is not audio\n")
    sf.write(tmp_path / "good.wav", tone(RATE), RATE, subtype="PCM_16")
    raw = (tmp_path / "good.wav").read_bytes()
    (tmp_path / "header_only.wav").write_bytes(raw[:44])
    (tmp_path / "cut_header.wav").write_bytes(raw[:20])
    nan = tone(RATE)
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, RATE, subtype="FLOAT")
    sf.write(tmp_path / "zero_frames.wav", np.zeros(0), RATE, subtype="PCM_16")
    return {"missing.wav": "no such file", "empty.wav": "not a readable audio file",
            "text.wav": "not a readable audio file", "header_only.wav": "no audio",
            "cut_header.wav": "not a readable audio file", "nan.wav": "NaN",
            "zero_frames.wav": "no audio"}


def test_bad_files_raise_one_line_naming_the_file(tmp_path):
    for name, reason in bad_files(tmp_path).items():
        with pytest.raises(AudioFileError) as err:
            read_audio(tmp_path / name, RATE)
        message = str(err.value)
        assert name in message and reason in message and "\n" not in message, message


def test_truncated_data_reads_what_is_there(tmp_path):
    sf.write(tmp_path / "good.wav", tone(RATE), RATE, subtype="PCM_16")
    raw = (tmp_path / "good.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(raw[:44 + 2 * 8000])
    audio = read_audio(tmp_path / "cut.wav", RATE)
    assert len(audio) == 8000 and np.abs(audio - tone(RATE)[:8000]).max() < 1e-4
