"""Shared fixtures: a tiny random Qwen2-Audio built from configs, and real audio files written by the tests."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from r1_aqa import tiny

SAMPLING_RATE = 16_000


def write_clip(
    path: Path,
    seconds: float,
    kind: str = "tone",
    frequency: float = 440.0,
    rate: int = SAMPLING_RATE,
    channels: int = 1,
    seed: int = 0,
) -> Path:
    """A real audio file: a sine tone or white noise."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    if kind == "tone":
        samples = 0.5 * np.sin(2 * np.pi * frequency * t)
    else:
        samples = 0.3 * np.random.default_rng(seed).standard_normal(n)
    samples = np.repeat(samples[:, None], channels, axis=1).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), samples, rate)
    return path


def training_row(index: int, audio_path: str, answer: int = 0) -> dict:
    return {
        "id": index,
        "video_name": f"clip{index}_000000",
        "video_id": index,
        "question_text": "What sound is in the video?",
        "multi_choice": ["tone", "noise", "silence", "chirp"],
        "answer": answer,
        "question_relation": "View",
        "question_type": "Which",
        "dataset_name": "AVQA",
        "audio_path": audio_path,
    }


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def write_training_set(root: Path, seconds: float) -> Path:
    """Eight clips (noise and tones of distinct pitches), answers spread over the four choices, and their training
    file: what the resume tests train on."""
    rows = []
    for index in range(8):
        kind = "tone" if index % 2 else "noise"
        write_clip(root / f"clip{index}.wav", seconds, kind, 300.0 + 50 * index, seed=index)
        rows.append(training_row(index, f"clip{index}.wav", answer=index % 4))
    return write_jsonl(root / "train.jsonl", rows)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    return tiny.build(str(tmp_path_factory.mktemp("tiny-qwen2-audio")))


@pytest.fixture
def train_file(tmp_path) -> Path:
    """Eight 1-s clips (tones and noise) and a valid training file that refers to them by relative path."""
    rows = []
    for index in range(8):
        kind = "tone" if index % 2 == 0 else "noise"
        write_clip(tmp_path / "audio" / f"clip{index}.wav", 1.0, kind, 300.0 + 100 * index, seed=index)
        rows.append(training_row(index, f"audio/clip{index}.wav", answer=index % 2))
    return write_jsonl(tmp_path / "train.jsonl", rows)
