"""MMAU test-mini: prepare the evaluation file, tell the published versions apart, score predictions.

    python -m r1_aqa.mmau prepare --mmau-json data/MMAU/mmau-test-mini.json --audio-dir data/MMAU \
        --output data/MMAU/mmau-test-mini.prepared.json [--skip-missing]
    python -m r1_aqa.mmau score PREDICTIONS.json [--output metrics.json] [--silence PREDICTIONS_SILENCE.json]

Scoring applies MMAU's official rule (`r1_aqa.scoring.mmau_match`) to each item's `model_output`, like the official
`evaluation.py`, with one difference: an item without an output counts as wrong (and is counted as `missing`)
instead of being left out of every total.
"""

import argparse
import hashlib
import json
import random
import sys
from collections import defaultdict
from importlib import resources
from pathlib import Path

from r1_aqa.audio import AudioError, load_audio
from r1_aqa.files import write_json
from r1_aqa.scoring import mmau_match

BENCHMARK_KEYS = (
    "id", "audio_id", "question", "choices", "answer", "dataset", "task", "split", "category", "sub-category",
    "difficulty",
)  # fmt: skip
TASKS = ("sound", "music", "speech")
ORDER = (*TASKS, "easy", "medium", "hard")  # how the official script lists them; other keys follow by name
GROUPS = ("task", "difficulty", "sub-category")
SELECTION_WARNING = (
    "Picking the best checkpoint by its test-mini score selects on the test set: report a checkpoint chosen in "
    "advance (e.g. the last), or choose on held-out data."
)


class MMAUError(ValueError):
    """Unusable benchmark or predictions input; the message names the file, and the ids where it can."""


def read_items(path: str | Path, what: str = "MMAU file") -> list[dict]:
    """A JSON list of objects, or an MMAUError naming the file."""
    try:
        items = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise MMAUError(f"{path}: cannot read the {what} ({error.strerror})") from error
    except json.JSONDecodeError as error:
        raise MMAUError(f"{path}: the {what} is not valid JSON ({error.msg}, line {error.lineno})") from error
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise MMAUError(f"{path}: the {what} must be a JSON list of objects")
    for index, item in enumerate(items):
        if "id" not in item:
            raise MMAUError(f"{path}: item {index} has no id")
    return items


def fingerprint(item: dict) -> str:
    canonical = json.dumps({key: item.get(key) for key in BENCHMARK_KEYS}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def known_versions() -> dict[str, dict[str, str]]:
    """Per published file of MMAU test-mini, each item's fingerprint by id (tests/test_mmau.py rebuilds it)."""
    return json.loads(resources.files("r1_aqa").joinpath("mmau_fingerprints.json").read_text())


def detect_version(items: list[dict]) -> dict:
    """Which published files hold every one of these items unchanged. A small subset can fit several files;
    `version` is set only when exactly one fits."""
    found = {item["id"]: fingerprint(item) for item in items}
    tables = known_versions()
    matches = [v for v, table in tables.items() if all(table.get(i) == value for i, value in found.items())]
    if not matches:
        return {"name": "unknown (not a published MMAU test-mini file)", "version": None, "items": len(found)}
    return {
        "name": "MMAU test-mini",
        "version": matches[0] if len(matches) == 1 else None,
        "matching_versions": matches,
        "items": len(found),
        "of": len(tables[matches[0]]),
    }


def prepare(mmau_json: Path, audio_dir: Path, output: Path, skip_missing: bool = False) -> dict:
    """Benchmark items + their clips -> the file inference reads (each item gains an absolute `audio_path`)."""
    items = read_items(mmau_json)
    problems, kept = {}, []
    for item in items:
        path = (audio_dir / item.get("audio_id", f"{item['id']}.wav")).resolve()
        try:
            if not path.is_file():
                raise AudioError(f"{path}: audio missing")
            load_audio(str(path))
        except AudioError as error:
            problems[item["id"]] = str(error)
            continue
        kept.append({**item, "audio_path": str(path)})
    if problems and not skip_missing:
        listed = "\n".join(f"  {item_id}: {reason}" for item_id, reason in problems.items())
        raise MMAUError(
            f"{mmau_json}: {len(problems)} of {len(items)} clips missing or unreadable "
            f"(--skip-missing leaves them out):\n{listed}"
        )
    write_json(output, kept)
    return {"benchmark": detect_version(items), "kept": len(kept), "skipped": sorted(problems)}


def _entry(correct: int, count: int) -> dict:
    return {"correct": correct, "count": count, "accuracy": 100.0 * correct / count if count else 0.0}


def score_items(items: list[dict], field: str = "model_output") -> dict:
    """Official rule per item; totals per task, difficulty, sub-category and overall. No output counts as wrong."""
    counts = {group: defaultdict(lambda: [0, 0]) for group in GROUPS}
    correct_total, missing = 0, 0
    for item in items:
        output = item.get(field)
        if not isinstance(output, str):
            missing += 1
        is_correct = isinstance(output, str) and mmau_match(output, item["answer"], item["choices"])
        correct_total += is_correct
        for group in GROUPS:
            counts[group][item[group]][0] += is_correct
            counts[group][item[group]][1] += 1
    metrics = {"total": _entry(correct_total, len(items)), "missing": missing}
    for group in GROUPS:
        order = sorted(counts[group], key=lambda key: (ORDER.index(key) if key in ORDER else len(ORDER), key))
        metrics[group] = {key: _entry(*counts[group][key]) for key in order}
    return metrics


def floor_predictions(items: list[dict], rule: str, seed: int = 0) -> list[dict]:
    """What a model that ignores everything would answer: the first choice, or a seeded random one."""
    rng = random.Random(seed)
    pick = (lambda choices: choices[0]) if rule == "first_choice" else rng.choice
    return [{**item, "model_output": pick(item["choices"])} for item in items]


def metrics_for(predictions: list[dict], silence: list[dict] | None = None, field: str = "model_output",
                seed: int = 0) -> dict:  # fmt: skip
    metrics = {"benchmark": detect_version(predictions), "scored_field": field, **score_items(predictions, field)}
    floors = {
        "first_choice": score_items(floor_predictions(predictions, "first_choice")),
        "random": {"seed": seed, **score_items(floor_predictions(predictions, "random", seed))},
    }
    if silence is not None:
        floors["silent_audio"] = score_items(silence, field)
    metrics["floors"] = {name: {k: v for k, v in floor.items() if k in ("seed", "total", "task", "difficulty")}
                         for name, floor in floors.items()}  # fmt: skip
    return metrics


def join_benchmark(predictions: list[dict], benchmark: list[dict] | None, path: Path) -> list[dict]:
    """Raw predictions ({id, model_output}) get the benchmark's keys by id; full items pass through."""
    if all("answer" in item and "choices" in item for item in predictions):
        return _checked(predictions, path)
    if benchmark is None:
        raise MMAUError(f"{path}: items lack answer/choices; give the benchmark file with --benchmark to join by id")
    by_id = {item["id"]: item for item in benchmark}
    unknown = [item["id"] for item in predictions if item["id"] not in by_id]
    if unknown:
        raise MMAUError(f"{path}: ids not in the benchmark file: {', '.join(map(str, unknown[:10]))}")
    return _checked([{**by_id[item["id"]], **item} for item in predictions], path)


def _checked(items: list[dict], path: Path) -> list[dict]:
    for item in items:
        absent = [key for key in ("answer", "choices", *GROUPS) if key not in item]
        if absent:
            raise MMAUError(f"{path}: item {item['id']} lacks {', '.join(absent)}")
        if not isinstance(item["choices"], list) or not all(isinstance(c, str) for c in item["choices"]):
            raise MMAUError(f"{path}: item {item['id']}: choices must be a list of strings")
    return items


def format_metrics(metrics: dict) -> str:
    benchmark = metrics["benchmark"]
    version = benchmark["version"] or " or ".join(benchmark.get("matching_versions", [])) or "unknown version"
    lines = [f"{benchmark['name']} {version}: {benchmark['items']} items, scored on {metrics['scored_field']}"]
    floors = metrics["floors"]
    header = f"{'':<16}{'model':>8}" + "".join(f"{name:>14}" for name in floors)
    lines.append(header)
    rows = [("total", metrics["total"], {n: f["total"] for n, f in floors.items()})]
    for group in ("task", "difficulty"):
        for key, entry in metrics[group].items():
            rows.append((key, entry, {n: f[group].get(key) for n, f in floors.items()}))
    for key, entry, floor in rows:
        cells = "".join(f"{v['accuracy']:>13.2f}%" if v else f"{'-':>14}" for v in floor.values())
        lines.append(f"{key:<16}{entry['accuracy']:>7.2f}%{cells}")
    lines.append(f"missing outputs (counted wrong): {metrics['missing']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m r1_aqa.mmau", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="benchmark JSON + clips -> the file inference reads")
    prep.add_argument("--mmau-json", type=Path, required=True)
    prep.add_argument("--audio-dir", type=Path, required=True, help="folder the items' audio_id paths start from")
    prep.add_argument("--output", type=Path, required=True)
    prep.add_argument("--skip-missing", action="store_true", help="leave out items whose clip is missing, listed")
    score = commands.add_parser("score", help="predictions JSON -> metrics JSON")
    score.add_argument("predictions", type=Path)
    score.add_argument("--output", type=Path)
    score.add_argument("--silence", type=Path, help="predictions of the same model with silent audio (a floor)")
    score.add_argument("--benchmark", type=Path, help="benchmark JSON, to score raw {id, model_output} files")
    score.add_argument("--field", default="model_output", help="model_output (official) or model_prediction")
    score.add_argument("--seed", type=int, default=0, help="seed of the random-choice floor")
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            report = prepare(args.mmau_json, args.audio_dir, args.output, args.skip_missing)
            print(f"{report['kept']} items written to {args.output} ({report['benchmark']['name']} "
                  f"{report['benchmark']['version']})")  # fmt: skip
            if report["skipped"]:
                print(f"skipped {len(report['skipped'])} items without usable audio: {', '.join(report['skipped'])}")
            return 0
        benchmark = read_items(args.benchmark, "benchmark file") if args.benchmark else None
        predictions = join_benchmark(read_items(args.predictions, "predictions file"), benchmark, args.predictions)
        silence = read_items(args.silence, "predictions file") if args.silence else None
        metrics = metrics_for(predictions, silence, args.field, args.seed)
    except MMAUError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    metrics["predictions"] = str(args.predictions)
    if args.output:
        write_json(args.output, metrics)
    print(format_metrics(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
