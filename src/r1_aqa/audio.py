"""The one audio loader: any file soundfile reads -> mono float32 at 16 kHz, cut to what the model hears."""

import logging

import numpy as np
import soundfile
import soxr

SAMPLING_RATE = 16_000
logger = logging.getLogger(__name__)


class AudioError(ValueError):
    """An audio file that cannot be used, with the reason in the message."""


def header_samples(path: str) -> int:
    """How many samples `path` gives at 16 kHz, from its header alone (~0.2 ms; decoding is ~3 ms a clip)."""
    try:
        info = soundfile.info(path)
    except Exception as error:  # as in load_audio: soundfile raises several types
        raise AudioError(f"{path}: audio does not decode ({error})") from error
    if info.frames <= 0:
        raise AudioError(f"{path}: audio has no samples")
    return round(info.frames * SAMPLING_RATE / info.samplerate)  # the length soxr resamples to


def load_audio(path: str, max_seconds: float | None = None) -> np.ndarray:
    """Decode `path` (wav/flac/mp3/ogg, any rate), mix down to mono, resample to 16 kHz, cut to `max_seconds` (the
    model family's limit, `Family.max_seconds`; None: whole)."""
    try:
        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises several types (LibsndfileError, RuntimeError, TypeError)
        raise AudioError(f"{path}: audio does not decode ({error})") from error
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: audio has no samples")
    samples = samples.mean(axis=1)
    if rate != SAMPLING_RATE:
        samples = soxr.resample(samples, rate, SAMPLING_RATE).astype(np.float32)
    limit = None if max_seconds is None else int(max_seconds * SAMPLING_RATE)
    if limit is not None and samples.shape[0] > limit:
        logger.warning("%s: %.1f s long, cut to the first %.0f s", path, samples.shape[0] / SAMPLING_RATE, max_seconds)
        samples = samples[:limit]
    return np.ascontiguousarray(samples, dtype=np.float32)
