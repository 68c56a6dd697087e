"""The synthetic task set: balanced, valid in both formats, and each answer really in the audio."""

import json
from collections import Counter

import numpy as np
import pytest

from r1_aqa import data, synthetic
from r1_aqa.audio import SAMPLING_RATE, load_audio


@pytest.fixture(scope="module")
def task_set(tmp_path_factory):
    return synthetic.build(tmp_path_factory.mktemp("synthetic"), train_per_task=16, eval_per_task=8, seed=3)


def test_training_file_is_valid_and_labels_and_positions_are_balanced(task_set):
    assert data.check(task_set / "train.jsonl") == []
    rows = data.load_rows(task_set / "train.jsonl")
    for task, (_, labels, _) in synthetic.TASKS.items():
        mine = [row for row in rows if row["question_type"] == task]
        answers = Counter(row["multi_choice"][row["answer"]] for row in mine)
        positions = Counter(row["answer"] for row in mine)
        assert set(answers.values()) == {16 // len(labels)} and set(answers) == set(labels), (task, answers)
        assert set(positions.values()) == {16 // len(labels)}, (task, positions)


def test_evaluation_file_is_mmau_format(task_set):
    items = json.loads((task_set / "mmau-test-mini.json").read_text())
    assert len(items) == 8 * len(synthetic.TASKS)
    for item in items:
        assert {"id", "audio_id", "question", "choices", "answer", "task", "difficulty", "sub-category"} <= set(item)
        assert item["answer"] in item["choices"] and (task_set / item["audio_id"]).is_file()


def dominant_frequency(clip: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(clip))
    return float(np.argmax(spectrum) * SAMPLING_RATE / (2 * (len(spectrum) - 1)))


def beeps(clip: np.ndarray) -> int:
    frame = SAMPLING_RATE // 100
    energy = np.array([np.abs(clip[i : i + frame]).max() for i in range(0, len(clip) - frame, frame)])
    loud = energy > 0.2
    return int(np.sum(loud[1:] & ~loud[:-1]) + loud[0])


def half_rms(clip: np.ndarray) -> tuple[float, float]:
    half = len(clip) // 2
    return float(np.sqrt(np.mean(clip[:half] ** 2))), float(np.sqrt(np.mean(clip[half:] ** 2)))


def test_every_answer_can_be_read_off_the_audio(task_set):
    items = json.loads((task_set / "mmau-test-mini.json").read_text())
    for item in items:
        clip = load_audio(str(task_set / item["audio_id"]))
        assert 1.0 <= len(clip) / SAMPLING_RATE <= 3.0
        answer, task = item["answer"], item["task"]
        if task == "pitch":
            assert (dominant_frequency(clip) < 500) == (answer == "low"), item["id"]
        elif task == "count":
            assert beeps(clip) == ["one", "two", "three", "four"].index(answer) + 1, item["id"]
        elif task == "louder":
            first, second = half_rms(clip)
            assert (first > second) == (answer == "first half"), item["id"]
        elif answer == "silence":
            assert np.sqrt(np.mean(clip**2)) < 0.01, item["id"]
        else:
            assert np.sqrt(np.mean(clip**2)) > 0.1, item["id"]
