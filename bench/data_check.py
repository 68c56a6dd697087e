"""What checking the clips costs before training starts: `load_rows` with existence only, headers, full decode.

    .venv/bin/python bench/data_check.py                          # 40,000 rows (AVQA's train file: 40,425); ~1 min
    .venv/bin/python bench/data_check.py --rows 2000 --seconds 10  # AVQA's 10-s clips, for the decode cost

Writes one real 16-kHz wav per row (a tone, `--seconds` long) and a training file in a temporary folder, then
times each check on the whole file, best of `--repeats`. The files were just written, so they are in the page cache:
on a cold network disk every check pays at least one read per clip more.
"""

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from r1_aqa.data import AUDIO_CHECKS, load_rows
from r1_aqa.files import write_jsonl

SAMPLING_RATE = 16_000


def write_rows(folder: Path, rows: int, seconds: float) -> Path:
    t = np.arange(int(seconds * SAMPLING_RATE)) / SAMPLING_RATE
    tones = []  # eight encoded wavs, copied byte for byte: soundfile.write costs ~3 ms a file here
    for frequency in range(200, 1000, 100):
        encoded = io.BytesIO()
        soundfile.write(encoded, 0.5 * np.sin(2 * np.pi * frequency * t), SAMPLING_RATE, format="WAV")
        tones.append(encoded.getvalue())
    lines = []
    for index in range(rows):
        name = f"clips/{index // 1000}/{index}.wav"  # 1000 a folder, as large extractions are usually split
        if index % 1000 == 0:
            (folder / name).parent.mkdir(parents=True)
        (folder / name).write_bytes(tones[index % len(tones)])
        lines.append({
            "id": index, "video_name": f"clip{index}_000000", "video_id": index,
            "question_text": "What is making the sound?", "multi_choice": ["dog", "car", "bell", "man"],
            "answer": index % 4, "question_relation": "View", "question_type": "Which", "dataset_name": "AVQA",
            "audio_path": name,
        })  # fmt: skip
    path = folder / "train.jsonl"
    write_jsonl(path, lines)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--seconds", type=float, default=0.1, help="clip length; decoding time grows with it")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        path = write_rows(Path(folder), args.rows, args.seconds)
        print(f"{args.rows} rows, {args.seconds:g}-s wavs, written in {time.perf_counter() - start:.1f} s\n")
        seconds = {}
        for check in AUDIO_CHECKS:
            timings = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                assert len(load_rows(path, check)) == args.rows
                timings.append(time.perf_counter() - start)
            seconds[check] = min(timings)
    print("| load_rows check | seconds | per row (ms) | vs existence only |")
    print("|---|---|---|---|")
    for check, elapsed in seconds.items():
        print(f"| {check} | {elapsed:.2f} | {1000 * elapsed / args.rows:.3f} | {elapsed / seconds['exists']:.1f}x |")


if __name__ == "__main__":
    main()
