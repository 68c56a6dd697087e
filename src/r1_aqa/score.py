"""Score a predictions file of any registered benchmark (MMAU, MMAR), recognised from its items.

    python -m r1_aqa.score PREDICTIONS.json [--output metrics.json] [--field answer|raw] [--silence FILE]
        [--benchmark BENCHMARK.json] [--seed 0]

`--field answer` (the headline) scores `model_prediction`, the extracted answer (the whole completion when it has
no <answer> tag), as R1-AQA stored and scored it; `--field raw` scores `model_output` as MMAU's official script does.
The metrics file holds both figures and names the headline. An item without an output counts as wrong.
"""

import argparse
import sys
from pathlib import Path

from r1_aqa.benchmarks import Benchmark, BenchmarkError, join_benchmark, read_items, recognise
from r1_aqa.files import write_json
from r1_aqa.scoring import FIELDS, HEADLINE, LEGACY_FIELDS, format_metrics, metrics_for


def main(argv: list[str] | None = None, prog: str = "python -m r1_aqa.score", known: Benchmark | None = None) -> int:
    """`known`: score as that benchmark (`python -m r1_aqa.mmau score`) instead of recognising it."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("predictions", type=Path)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--field", default=HEADLINE, choices=[*FIELDS, *LEGACY_FIELDS],
                        help="answer: model_prediction (headline); raw: model_output (MMAU's script)")  # fmt: skip
    parser.add_argument("--silence", type=Path, help="predictions of the same model with silent audio (a floor)")
    parser.add_argument("--benchmark", type=Path, help="benchmark JSON, to score raw {id, model_output} files")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random-choice floor")
    args = parser.parse_args(argv)
    field = LEGACY_FIELDS.get(args.field, args.field)
    try:
        source = read_items(args.benchmark, "benchmark file") if args.benchmark else None
        items = read_items(args.predictions, "predictions file")
        predictions = join_benchmark(items, source, args.predictions, known)
        benchmark = known or recognise(predictions, args.predictions)
        silence = read_items(args.silence, "predictions file") if args.silence else None
        if silence is not None:
            silence = join_benchmark(silence, source, args.silence, benchmark)
        metrics = metrics_for(benchmark, predictions, silence, field, args.seed)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    metrics["predictions"] = str(args.predictions)
    if args.output:
        write_json(args.output, metrics)
    print(format_metrics(metrics, benchmark.floor_groups))
    return 0


if __name__ == "__main__":
    sys.exit(main())
