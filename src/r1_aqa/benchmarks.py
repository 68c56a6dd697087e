"""The benchmarks this toolkit scores, keyed by what their items hold; one module each (r1_aqa.mmau, r1_aqa.mmar).

    python -m r1_aqa.benchmarks prepare mmar --source data/MMAR/MMAR-meta.json --audio-dir data/MMAR \
        --output data/MMAR/MMAR-meta.prepared.json [--skip-missing] [--fix-defects]
    python -m r1_aqa.benchmarks source-name mmar     # the published file's name (test_mmau.sh's default)

Evaluation, scoring, `test_mmau.sh` and the summary ask this registry; none of them knows a benchmark by name.
Adding one (MMSU, MMAU-Pro) means a module that defines a `Benchmark` and one line in `registry()`.
"""

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from r1_aqa.audio import AudioError, load_audio
from r1_aqa.files import write_json

SELECTION_WARNING = (
    "Picking the best checkpoint by its score on a test set (test-mini, MMAR) selects on the test set: report a "
    "checkpoint chosen in advance (e.g. the last), or choose on held-out data."
)


class BenchmarkError(ValueError):
    """Unusable benchmark or predictions input; the message names the file, and the ids where it can."""


@dataclass(frozen=True)
class Benchmark:
    name: str  # the word in test_mmau.sh's BENCHMARKS and the run folder's subfolder
    keys: tuple[str, ...]  # every item of this benchmark has them (how a file is recognised)
    groups: tuple[str, ...]  # figures per value of each, in this order
    table_group: str  # the group whose values are the summary's columns, as papers report them
    floor_groups: tuple[str, ...]  # groups kept for the floors
    order: tuple[str, ...]  # how the official script lists known values; others follow by name
    official_key: str  # the key the official script scores
    source_name: str  # the metadata file's name as published
    detect_version: Callable[[list[dict]], dict]
    clip: Callable[[dict, Path], Path]  # an item's clip, from the folder the download unpacks to
    fixes: dict[str, Callable[[dict], dict]] = field(default_factory=dict)  # upstream fixes by id


def registry() -> dict[str, Benchmark]:
    from r1_aqa import mmar, mmau  # here: those modules build their `Benchmark` from this one

    return {benchmark.name: benchmark for benchmark in (mmau.BENCHMARK, mmar.BENCHMARK)}


def get(name: str) -> Benchmark:
    known = registry()
    if name not in known:
        raise BenchmarkError(f"unknown benchmark {name!r}; known: {', '.join(known)}")
    return known[name]


def recognise(items: list[dict], path: str | Path = "items") -> Benchmark:
    """The one benchmark whose keys every item has."""
    fitting = [b for b in registry().values() if items and all(all(k in item for k in b.keys) for item in items)]
    if len(fitting) != 1:
        wanted = "; ".join(f"{b.name}: {', '.join(b.keys)}" for b in registry().values())
        found = "several fit" if fitting else "none fits"
        raise BenchmarkError(f"{path}: cannot tell which benchmark this is ({found}). Every item needs the keys of "
                             f"one ({wanted})")  # fmt: skip
    return fitting[0]


def fingerprint(item: dict, keys: tuple[str, ...]) -> str:
    """A short hash of the item's benchmark keys: equal iff the item is unchanged in them."""
    canonical = json.dumps({key: item.get(key) for key in keys}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def fingerprint_tables(filename: str) -> dict[str, dict[str, str]]:
    """Per published file of a benchmark, each item's fingerprint by id, as shipped in the package."""
    return json.loads(resources.files("r1_aqa").joinpath(filename).read_text())


def versions_of(items: list[dict], fingerprint: Callable[[dict], str], tables: dict[str, dict[str, str]],
                name: str) -> dict:  # fmt: skip
    """Which published files hold every one of these items unchanged, by per-item fingerprints. A small subset
    can fit several files; `version` is set only when exactly one fits."""
    found = {item["id"]: fingerprint(item) for item in items}
    matches = [v for v, table in tables.items() if all(table.get(i) == value for i, value in found.items())]
    if not matches:
        return {"name": f"unknown (not a published {name} file)", "version": None, "items": len(found)}
    return {
        "name": name,
        "version": matches[0] if len(matches) == 1 else None,
        "matching_versions": matches,
        "items": len(found),
        "of": len(tables[matches[0]]),
    }


def read_items(path: str | Path, what: str = "benchmark file") -> list[dict]:
    """A JSON list of objects (or JSON lines, one object each), or a BenchmarkError naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as error:
        raise BenchmarkError(f"{path}: cannot read the {what} ({error.strerror})") from error
    try:
        if str(path).endswith(".jsonl"):
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            items = json.loads(text)
    except json.JSONDecodeError as error:
        raise BenchmarkError(f"{path}: the {what} is not valid JSON ({error.msg}, line {error.lineno})") from error
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise BenchmarkError(f"{path}: the {what} must be a JSON list of objects")
    for index, item in enumerate(items):
        if "id" not in item:
            raise BenchmarkError(f"{path}: item {index} has no id")
    return items


def checked(items: list[dict], path: str | Path, benchmark: Benchmark | None = None) -> list[dict]:
    benchmark = benchmark or recognise(items, path)
    for item in items:
        absent = [key for key in ("answer", "choices", *benchmark.groups) if key not in item]
        if absent:
            raise BenchmarkError(f"{path}: item {item['id']} lacks {', '.join(absent)}")
        if not isinstance(item["choices"], list) or not all(isinstance(c, str) for c in item["choices"]):
            raise BenchmarkError(f"{path}: item {item['id']}: choices must be a list of strings")
    return items


def join_benchmark(predictions: list[dict], source: list[dict] | None, path: Path,
                   benchmark: Benchmark | None = None) -> list[dict]:  # fmt: skip
    """Raw predictions ({id, model_output}) get the benchmark's keys by id; full items pass through."""
    if all("answer" in item and "choices" in item for item in predictions):
        return checked(predictions, path, benchmark)
    if source is None:
        raise BenchmarkError(f"{path}: items lack answer/choices; give the benchmark file with --benchmark to join "
                             "by id")  # fmt: skip
    by_id = {item["id"]: item for item in source}
    unknown = [item["id"] for item in predictions if item["id"] not in by_id]
    if unknown:
        raise BenchmarkError(f"{path}: ids not in the benchmark file: {', '.join(map(str, unknown[:10]))}")
    return checked([{**by_id[item["id"]], **item} for item in predictions], path, benchmark)


def prepare(benchmark: Benchmark, source: Path, audio_dir: Path, output: Path, skip_missing: bool = False,
            fix_defects: bool = False) -> dict:  # fmt: skip
    """Benchmark items + their clips -> the file inference reads (each item gains an absolute `audio_path`).
    Items whose answer is not one of their choices are kept and listed; `fix_defects` applies the upstream fixes."""
    items = read_items(source)
    if fix_defects:
        items = [benchmark.fixes[item["id"]](item) if item["id"] in benchmark.fixes else item for item in items]
    problems, kept = {}, []
    for item in items:
        path = benchmark.clip(item, audio_dir).resolve()
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
        raise BenchmarkError(f"{source}: {len(problems)} of {len(items)} clips missing or unreadable "
                             f"(--skip-missing leaves them out):\n{listed}")  # fmt: skip
    write_json(output, kept)
    return {
        "benchmark": benchmark.detect_version(items),
        "kept": len(kept),
        "skipped": sorted(problems),
        "answer_not_a_choice": [item["id"] for item in items if item["answer"] not in item["choices"]],
        "fixed": sorted(item["id"] for item in items if fix_defects and item["id"] in benchmark.fixes),
    }


def print_report(report: dict, output: Path) -> None:
    found = report["benchmark"]
    print(f"{report['kept']} items written to {output} ({found['name']} {found['version']})")
    if report["skipped"]:
        print(f"skipped {len(report['skipped'])} items without usable audio: {', '.join(report['skipped'])}")
    if report["fixed"]:
        print(f"upstream fixes applied to {len(report['fixed'])} items: {', '.join(report['fixed'])}")
    if report["answer_not_a_choice"]:
        print(f"{len(report['answer_not_a_choice'])} items whose answer is not one of their choices (kept; "
              f"--fix-defects applies the upstream fixes): {', '.join(report['answer_not_a_choice'])}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m r1_aqa.benchmarks", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="benchmark JSON + clips -> the file inference reads")
    prep.add_argument("benchmark", choices=sorted(registry()))
    prep.add_argument("--source", type=Path, required=True, help="the benchmark's metadata file, as published")
    prep.add_argument("--audio-dir", type=Path, required=True, help="folder the items' clip paths start from")
    prep.add_argument("--output", type=Path, required=True)
    prep.add_argument("--skip-missing", action="store_true", help="leave out items whose clip is missing, listed")
    prep.add_argument("--fix-defects", action="store_true", help="apply the benchmark's upstream fixes by id")
    name = commands.add_parser("source-name", help="the benchmark's metadata file name, as published")
    name.add_argument("benchmark")
    args = parser.parse_args(argv)
    try:
        benchmark = get(args.benchmark)
        if args.command == "source-name":
            print(benchmark.source_name)
            return 0
        report = prepare(benchmark, args.source, args.audio_dir, args.output, args.skip_missing, args.fix_defects)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_report(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
