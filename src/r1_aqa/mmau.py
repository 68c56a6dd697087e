"""MMAU test-mini: its keys, how the published versions are told apart, where its clips are (the registry's entry).

    python -m r1_aqa.mmau prepare --mmau-json data/MMAU/mmau-test-mini.json --audio-dir data/MMAU \
        --output data/MMAU/mmau-test-mini.prepared.json [--skip-missing]
    python -m r1_aqa.mmau score PREDICTIONS.json [--output metrics.json] [--field answer|raw] [--silence FILE]

`score` is `python -m r1_aqa.score` (any benchmark, recognised from the items). MMAU's official `evaluation.py`
scores `model_output`, the raw completion (`--field raw`); the headline, `--field answer`, scores the extracted
answer as R1-AQA did. An item without an output counts as wrong (and as `missing`) instead of being left out.
"""

import argparse
import sys
from pathlib import Path

from r1_aqa import benchmarks, scoring
from r1_aqa.benchmarks import Benchmark, BenchmarkError

BENCHMARK_KEYS = (
    "id", "audio_id", "question", "choices", "answer", "dataset", "task", "split", "category", "sub-category",
    "difficulty",
)  # fmt: skip
TASKS = ("sound", "music", "speech")
ORDER = (*TASKS, "easy", "medium", "hard")  # how the official script lists them; other keys follow by name
GROUPS = ("task", "difficulty", "sub-category")


def fingerprint(item: dict) -> str:
    return benchmarks.fingerprint(item, BENCHMARK_KEYS)


def known_versions() -> dict[str, dict[str, str]]:
    """Per published file of MMAU test-mini, each item's fingerprint by id (tests/test_mmau.py rebuilds it)."""
    return benchmarks.fingerprint_tables("mmau_fingerprints.json")


def detect_version(items: list[dict]) -> dict:
    """Which published files hold every one of these items unchanged (`version` set only when exactly one)."""
    return benchmarks.versions_of(items, fingerprint, known_versions(), "MMAU test-mini")


BENCHMARK = Benchmark(
    name="mmau",
    keys=("task", "difficulty", "sub-category"),
    groups=GROUPS,
    table_group="task",
    floor_groups=("task", "difficulty"),
    order=ORDER,
    official_key="model_output",
    source_name="mmau-test-mini.json",
    detect_version=detect_version,
    clip=lambda item, audio_dir: audio_dir / item.get("audio_id", f"{item['id']}.wav"),
)


def prepare(mmau_json: Path, audio_dir: Path, output: Path, skip_missing: bool = False) -> dict:
    """Benchmark items + their clips -> the file inference reads (each item gains an absolute `audio_path`)."""
    return benchmarks.prepare(BENCHMARK, mmau_json, audio_dir, output, skip_missing)


def score_items(items: list[dict], field: str = scoring.HEADLINE) -> dict:
    return scoring.score_items(items, GROUPS, ORDER, field)


def metrics_for(predictions: list[dict], silence: list[dict] | None = None, field: str = scoring.HEADLINE,
                seed: int = 0) -> dict:  # fmt: skip
    return scoring.metrics_for(BENCHMARK, predictions, silence, field, seed)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["score"]:
        from r1_aqa import score

        return score.main(argv[1:], prog="python -m r1_aqa.mmau score", known=BENCHMARK)
    parser = argparse.ArgumentParser(prog="python -m r1_aqa.mmau", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="benchmark JSON + clips -> the file inference reads")
    prep.add_argument("--mmau-json", type=Path, required=True)
    prep.add_argument("--audio-dir", type=Path, required=True, help="folder the items' audio_id paths start from")
    prep.add_argument("--output", type=Path, required=True)
    prep.add_argument("--skip-missing", action="store_true", help="leave out items whose clip is missing, listed")
    commands.add_parser("score", help="predictions JSON -> metrics JSON (python -m r1_aqa.score)")
    args = parser.parse_args(argv)
    try:
        report = prepare(args.mmau_json, args.audio_dir, args.output, args.skip_missing)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    benchmarks.print_report(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
