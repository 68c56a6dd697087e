"""A synthetic audio-QA task set whose answers depend only on the audio, for the CPU demo and tests.

    python -m r1_aqa.synthetic OUTPUT_DIR [--train-per-task 1000] [--eval-per-task 50] [--seed 0]

Four tasks: the kind of sound (pure tone / noise / silence / chirp), its pitch (low / high), the number of beeps
(1-4) and which half is louder (first / second). Clips last 1-3 s. Writes real wav files, the training file
`train.jsonl` (the project's format) and `mmau-test-mini.json` (MMAU's format, with `task`, `difficulty` and
`sub-category`), so `test_mmau.sh` scores it unchanged. Per task, every answer label and every answer position
occurs equally often.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile

from r1_aqa.audio import SAMPLING_RATE

TASKS = {
    # task: (question, answer labels, difficulty)
    "kind": ("What kind of sound is this?", ["pure tone", "noise", "silence", "chirp"], "easy"),
    "pitch": ("Is the pitch of this tone low or high?", ["low", "high"], "easy"),
    "count": ("How many beeps are there?", ["one", "two", "three", "four"], "hard"),
    "louder": ("Which half of the clip is louder?", ["first half", "second half"], "medium"),
}


def _tone(frequency: float, seconds: float) -> np.ndarray:
    return np.sin(2 * np.pi * frequency * np.arange(int(seconds * SAMPLING_RATE)) / SAMPLING_RATE)


def synthesize(task: str, label: str, rng: np.random.Generator) -> np.ndarray:
    """One clip of 1-3 s whose answer to `task` is `label`."""
    seconds = rng.uniform(1.0, 3.0)
    n = int(seconds * SAMPLING_RATE)
    if task == "kind":
        if label == "pure tone":
            clip = 0.5 * _tone(rng.uniform(300, 2000), seconds)
        elif label == "noise":
            clip = 0.3 * rng.standard_normal(n)
        elif label == "silence":
            clip = 0.001 * rng.standard_normal(n)  # room-tone, not digital zero
        else:
            start, end = rng.uniform(200, 600), rng.uniform(2000, 4000)
            t = np.arange(n) / SAMPLING_RATE
            clip = 0.5 * np.sin(2 * np.pi * (start * t + (end - start) * t**2 / (2 * seconds)))
    elif task == "pitch":
        frequency = rng.uniform(150, 400) if label == "low" else rng.uniform(1500, 3500)
        clip = 0.5 * _tone(frequency, seconds)
    elif task == "count":
        beeps = TASKS["count"][1].index(label) + 1
        clip = 0.002 * rng.standard_normal(n)
        beep = 0.5 * _tone(rng.uniform(600, 1200), 0.12)
        room = int((seconds - 0.17) / 0.25) + 1  # beep starts 0.25 s apart that end inside the clip (>= 4 in 1 s)
        slots = np.sort(rng.choice(room, size=beeps, replace=False))
        for slot in slots:
            start = int((0.05 + slot * 0.25) * SAMPLING_RATE)
            clip[start : start + beep.size] += beep
    else:
        source = 0.3 * rng.standard_normal(n) if rng.random() < 0.5 else 0.5 * _tone(rng.uniform(300, 1500), seconds)
        gains = np.where(np.arange(n) < n // 2, 1.0, 0.2)
        clip = source * (gains if label == "first half" else gains[::-1])
    return clip.astype(np.float32)


def questions(task: str, count: int, rng: np.random.Generator):
    """Balanced: the i-th question's answer is label i mod n, placed at position (i div n) mod n."""
    question, labels, difficulty = TASKS[task]
    n = len(labels)
    for index in range(count):
        answer = labels[index % n]
        others = [label for label in labels if label != answer]
        rng.shuffle(others)
        position = (index // n) % n
        choices = others[:position] + [answer] + others[position:]
        yield index, question, choices, answer, difficulty


def build(output_dir: str | Path, train_per_task: int = 1000, eval_per_task: int = 50, seed: int = 0) -> Path:
    output_dir = Path(output_dir)
    rng = np.random.default_rng(seed)
    train_rows, eval_items = [], []
    for split, per_task in (("train", train_per_task), ("eval", eval_per_task)):
        (output_dir / split).mkdir(parents=True, exist_ok=True)
        for task in TASKS:
            for index, question, choices, answer, difficulty in questions(task, per_task, rng):
                name = f"{task}-{index:05d}"
                soundfile.write(
                    str(output_dir / split / f"{name}.wav"), synthesize(task, answer, rng), SAMPLING_RATE, "PCM_16"
                )
                if split == "train":
                    train_rows.append({
                        "id": name, "video_name": name, "video_id": len(train_rows), "question_text": question,
                        "multi_choice": choices, "answer": choices.index(answer), "question_relation": "synthetic",
                        "question_type": task, "dataset_name": "synthetic", "audio_path": f"train/{name}.wav",
                    })  # fmt: skip
                else:
                    eval_items.append({
                        "id": name, "audio_id": f"./eval/{name}.wav", "question": question, "choices": choices,
                        "answer": answer, "dataset": "synthetic", "task": task, "split": "test-mini",
                        "category": "Perception", "sub-category": task, "difficulty": difficulty,
                    })  # fmt: skip
    rng.shuffle(train_rows)
    with open(output_dir / "train.jsonl", "w") as out:
        out.writelines(json.dumps(row) + "\n" for row in train_rows)
    (output_dir / "mmau-test-mini.json").write_text(json.dumps(eval_items, indent=1))
    return output_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir")
    parser.add_argument("--train-per-task", type=int, default=1000)
    parser.add_argument("--eval-per-task", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(build(args.output_dir, args.train_per_task, args.eval_per_task, args.seed))


if __name__ == "__main__":
    main()
