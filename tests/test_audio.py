import logging

import numpy as np
import pytest
import soundfile
from conftest import write_clip

from r1_aqa.audio import SAMPLING_RATE, AudioError, header_samples, load_audio

FORMATS = pytest.mark.parametrize(
    ("name", "rate", "channels", "seconds"),
    [
        ("clip.wav", 16_000, 1, 1.0),  # why: the common case passes through unchanged in length
        ("clip.wav", 44_100, 2, 1.0),  # why: CD-rate stereo must be mixed down and resampled
        ("clip.flac", 22_050, 1, 0.5),  # why: FLAC at another rate
        ("clip.ogg", 48_000, 2, 0.5),  # why: Ogg Vorbis, as some AVQA extractions are
        ("clip.mp3", 44_100, 1, 1.0),  # why: MP3, lossy and padded by the codec
        ("clip.wav", 44_100, 1, 0.0601),  # why: near the shortest usable clip, where a rounding error would matter
    ],
)


@FORMATS
def test_any_format_becomes_mono_16k_float32(tmp_path, name, rate, channels, seconds):
    path = write_clip(tmp_path / name, seconds, rate=rate, channels=channels)
    samples = load_audio(str(path))
    assert samples.dtype == np.float32 and samples.ndim == 1
    # MP3 encoders add up to a frame of padding; everything else keeps the length exactly.
    assert abs(len(samples) - seconds * SAMPLING_RATE) <= (1200 if name.endswith(".mp3") else 1)


@FORMATS
def test_header_gives_the_length_decoding_gives(tmp_path, name, rate, channels, seconds):
    path = write_clip(tmp_path / name, seconds, rate=rate, channels=channels)
    assert header_samples(str(path)) == len(load_audio(str(path)))  # so training's header check judges length right


@pytest.mark.parametrize("reader", [header_samples, load_audio])
def test_broken_or_empty_file_is_an_error_for_both_readers(tmp_path, reader):
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wave file")
    soundfile.write(str(tmp_path / "empty.wav"), np.zeros((0, 1), dtype=np.float32), SAMPLING_RATE)
    with pytest.raises(AudioError, match="broken.wav: audio does not decode"):
        reader(str(tmp_path / "broken.wav"))
    with pytest.raises(AudioError, match="empty.wav: audio has no samples"):
        reader(str(tmp_path / "empty.wav"))


def test_resampled_tone_keeps_its_pitch(tmp_path):
    path = write_clip(tmp_path / "tone.wav", 1.0, frequency=1000.0, rate=44_100)
    spectrum = np.abs(np.fft.rfft(load_audio(str(path))))
    assert abs(np.argmax(spectrum) * SAMPLING_RATE / len(spectrum) / 2 - 1000.0) < 5


def test_long_clip_is_cut_to_the_limit_with_a_warning_naming_the_file(tmp_path, caplog):
    path = write_clip(tmp_path / "long.wav", 31.0)
    with caplog.at_level(logging.WARNING, logger="r1_aqa.audio"):
        samples = load_audio(str(path), max_seconds=30.0)
    assert len(samples) == 30 * SAMPLING_RATE
    assert str(path) in caplog.text
    assert len(load_audio(str(path))) == 31 * SAMPLING_RATE  # why: no limit given, nothing cut
