"""Training data: the JSON-lines format, its checker, and the AVQA converter.

    python -m r1_aqa.data check FILE [FILE ...]
    python -m r1_aqa.data convert-avqa --qa train_qa.json --audio-dir WAVS --output data/avqa_train.jsonl

One JSON object a line with the keys of `FIELDS`; `answer` is an index into `multi_choice`; a relative
`audio_path` is read relative to the file's own folder. `check` prints `FILE:LINE: reason` per problem and exits 1
if there is any (it decodes every clip; `--no-decode` reads only their headers, as training does before it starts).
`convert-avqa` writes the rows it can use and, beside them, `*.rejects.jsonl` with a reason for each row it could
not, so no row is lost silently.
"""

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from r1_aqa.audio import SAMPLING_RATE, AudioError, header_samples, load_audio
from r1_aqa.families import FAMILIES
from r1_aqa.files import write_jsonl
from r1_aqa.prompts import messages
from r1_aqa.rewards import fold

FIELDS = (
    "id",
    "video_name",
    "video_id",
    "question_text",
    "multi_choice",
    "answer",
    "question_relation",
    "question_type",
    "dataset_name",
    "audio_path",
)
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
# How far a clip is checked, cheapest first. A header read catches what crashes a run (no such format, a broken or
# empty file, a clip too short) for ~0.2 ms a clip; only a full decode finds damage inside the audio data.
AUDIO_CHECKS = ("exists", "header", "decode")


def resolve_audio(row: dict, base_dir: Path) -> Path:
    path = Path(row["audio_path"])
    return path if path.is_absolute() else base_dir / path


class DataError(ValueError):
    """A data file that cannot be used; the message names the file and line of every problem."""


def strictest_min_samples() -> int:
    """The shortest clip every known model family takes: the checker's default when no family is named."""
    return max(family.min_samples for family in FAMILIES.values())


def row_problems(row, base_dir: Path, audio_check: str = "decode", min_samples: int | None = None) -> list[str]:
    """Everything wrong with one parsed row, as short reasons; [] for a usable row. The audio file must exist and,
    unless `audio_check` is "exists", give at least `min_samples` samples (default: `strictest_min_samples()`) by
    its header or by decoding it."""
    min_samples = strictest_min_samples() if min_samples is None else min_samples
    if audio_check not in AUDIO_CHECKS:
        raise ValueError(f"audio_check must be one of {AUDIO_CHECKS}, got {audio_check!r}")
    if not isinstance(row, dict):
        return [f"expected a JSON object, got {type(row).__name__}"]
    missing = [key for key in FIELDS if key not in row]
    if missing:
        return [f"missing key(s): {', '.join(missing)}"]
    problems = []
    choices = row["multi_choice"]
    if not isinstance(choices, list) or not choices:
        problems.append("empty choices: multi_choice must be a non-empty list")
    elif not all(isinstance(choice, str) and choice.strip() for choice in choices):
        problems.append("multi_choice holds an empty or non-string choice")
    else:
        folded = [fold(choice) for choice in choices]  # as the accuracy reward compares them
        repeated = [repr(choice) for choice, key in zip(choices, folded, strict=True) if folded.count(key) > 1]
        if repeated:
            reason = "case and spacing folded, as the accuracy reward compares them"
            problems.append(f"duplicate choices {', '.join(repeated)} ({reason})")
    answer = row["answer"]
    if isinstance(answer, bool) or not isinstance(answer, int):
        problems.append(f"answer must be an integer index, got {answer!r}")
    elif isinstance(choices, list) and choices and not 0 <= answer < len(choices):
        problems.append(f"answer index {answer} out of range for {len(choices)} choices")
    if not isinstance(row["question_text"], str) or not row["question_text"].strip():
        problems.append("question_text is empty")
    if not isinstance(row["audio_path"], str) or not row["audio_path"]:
        problems.append("audio_path is empty")
    else:
        path = resolve_audio(row, base_dir)
        if not path.is_file():
            problems.append(f"audio missing: {path}")
        elif audio_check != "exists":
            try:
                samples = header_samples(str(path)) if audio_check == "header" else len(load_audio(str(path)))
            except AudioError as error:
                problems.append(str(error))
            else:
                if samples < min_samples:
                    problems.append(
                        f"{path}: audio too short: {samples} samples at {SAMPLING_RATE // 1000} kHz, the model needs "
                        f"{min_samples} ({1000 * min_samples / SAMPLING_RATE:.0f} ms)"
                    )
    return problems


def read_rows(
    path: Path, audio_check: str = "decode", min_samples: int | None = None
) -> Iterator[tuple[int, dict | None, list[str]]]:
    """(line number, row or None, problems) for each non-blank line."""
    first_line = {}
    # utf-8-sig: a byte-order mark, as some Windows editors write, is no reason to refuse line 1.
    with open(path, encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                yield number, None, [f"not JSON ({error.msg} at column {error.colno})"]
                continue
            problems = row_problems(row, path.parent, audio_check, min_samples)
            if isinstance(row, dict) and "id" in row:
                key = str(row["id"])  # to_grpo_row keys rows by str(id), so 7 and "7" are one id
                if key in first_line:
                    problems.append(f"duplicate id {row['id']!r} (first on line {first_line[key]})")
                first_line.setdefault(key, number)
            yield number, row, problems


def check(path: Path, audio_check: str = "decode", min_samples: int | None = None) -> list[str]:
    """All problems of a file as `FILE:LINE: reason` lines."""
    if not path.is_file():
        return [f"{path}: no such file"]
    report = [
        f"{path}:{number}: {problem}"
        for number, _, problems in read_rows(path, audio_check, min_samples)
        for problem in problems
    ]
    return report


def load_rows(path: str | Path, audio_check: str = "header", min_samples: int | None = None) -> list[dict]:
    """The rows of a valid file, with absolute audio paths; raises DataError listing every problem otherwise.
    Training calls it before loading the model, so a clip that would crash the run hours in stops it at once."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    rows, report = [], []
    for number, row, problems in read_rows(path, audio_check, min_samples):
        rows.append(row)
        report += [f"{path}:{number}: {problem}" for problem in problems]
    if report:
        shown = "\n".join(report[:20]) + (f"\n... and {len(report) - 20} more" if len(report) > 20 else "")
        raise DataError(f"{path} is not a valid training file (run `python -m r1_aqa.data check {path}`):\n{shown}")
    if not rows:
        raise DataError(f"{path} holds no rows")
    for row in rows:
        row["audio_path"] = str(resolve_audio(row, path.parent).resolve())
    return rows


def to_grpo_row(row: dict, prompt_style: str, video_to_audio: bool) -> dict:
    """The columns the trainer and the rewards read: `prompt`, `solution`, `choices`, and `question` (the text the
    prompt asks, from which `choice_order.ChoiceShuffle` rebuilds it with its choices in another order)."""
    question = row["question_text"]
    if video_to_audio:
        # AVQA asks about "the video"; the model only hears the audio (R1-AQA made the same replacement).
        question = question.replace("video", "audio")
    choices = list(row["multi_choice"])
    return {
        "prompt": messages(row["audio_path"], question, choices, prompt_style),
        "solution": choices[row["answer"]],
        "choices": choices,
        "question": question,
        "id": str(row["id"]),
    }


def find_audio(video_name: str, audio_dir: Path) -> Path | None:
    """AVQA names clips `<youtube id>_<start, 6 digits>`; extracted wavs often drop the zero padding."""
    stems = [video_name]
    youtube_id, _, start = video_name.rpartition("_")
    if youtube_id and start.isdigit():
        stems.append(f"{youtube_id}_{int(start)}")
    for stem in stems:
        for extension in AUDIO_EXTENSIONS:
            candidate = audio_dir / f"{stem}{extension}"
            if candidate.is_file():
                return candidate
    return None


def convert_avqa(qa_file: Path, audio_dir: Path, output: Path, audio_check: str = "decode") -> tuple[int, int]:
    """AVQA `train_qa.json` + a folder of clips -> training JSON lines and a rejects file. Returns (kept, rejected)."""
    try:
        items = json.loads(qa_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{qa_file}: cannot read AVQA annotations ({error})") from error
    if not isinstance(items, list):
        raise DataError(f"{qa_file}: expected a JSON list of questions, got {type(items).__name__}")
    kept, rejects, first_index = [], [], {}
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "video_name" not in item:
            rejects.append({"index": index, "reason": "not an AVQA question (no video_name)", "item": item})
            continue
        audio = find_audio(str(item["video_name"]), audio_dir)
        row = {key: item.get(key) for key in FIELDS}
        row["dataset_name"] = item.get("dataset_name") or "AVQA"
        row["audio_path"] = str(audio.resolve()) if audio else ""
        if audio is None:
            problems = [f"audio missing: no {item['video_name']}.* in {audio_dir}"]
        else:
            problems = row_problems(row, output.parent, audio_check)
        key = str(item.get("id"))  # str: as the checker and to_grpo_row compare ids
        if item.get("id") is None:
            problems.append("no id")
        elif key in first_index:  # only kept rows count: a rejected first occurrence leaves its id free
            problems.append(f"duplicate id {item['id']!r} (first at index {first_index[key]})")
        if problems:
            rejects.append({"index": index, "id": item.get("id"), "reason": "; ".join(problems), "item": item})
        else:
            first_index[key] = index
            kept.append(row)
    write_jsonl(output, kept)
    write_jsonl(rejects_path(output), rejects)
    return len(kept), len(rejects)


def rejects_path(output: Path) -> Path:
    return output.with_name(output.stem + ".rejects.jsonl")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m r1_aqa.data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="validate training files")
    check_parser.add_argument("files", nargs="+", type=Path)
    check_parser.add_argument("--no-decode", action="store_true", help="read each clip's header only (fast)")
    check_parser.add_argument(
        "--family", choices=sorted(FAMILIES), help="check clip lengths for this model family (default: for all)"
    )
    convert = commands.add_parser("convert-avqa", help="AVQA train_qa.json + clips -> training JSON lines")
    convert.add_argument("--qa", type=Path, required=True, help="AVQA's train_qa.json")
    convert.add_argument("--audio-dir", type=Path, required=True, help="folder of clips named by video_name")
    convert.add_argument("--output", type=Path, required=True)
    convert.add_argument("--no-decode", action="store_true", help="read each clip's header only (fast)")
    args = parser.parse_args(argv)

    audio_check = "header" if args.no_decode else "decode"
    if args.command == "check":
        min_samples = FAMILIES[args.family].min_samples if args.family else None
        report = [line for path in args.files for line in check(path, audio_check, min_samples)]
        for line in report:
            print(line)
        print(f"{len(report)} problem(s) in {len(args.files)} file(s)", file=sys.stderr)
        return 1 if report else 0
    try:
        kept, rejected = convert_avqa(args.qa, args.audio_dir, args.output, audio_check)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{kept} rows written to {args.output}; {rejected} rejected, with reasons, in {rejects_path(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
