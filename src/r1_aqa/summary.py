"""One summary of every model scored in a run folder, on every benchmark: accuracy per group against training step.

    python -m r1_aqa.summary RUN_DIR

Reads `RUN_DIR/<benchmark>/*/metrics.json` (written by `r1_aqa.evaluate`; `<benchmark>` a name of the registry,
r1_aqa.benchmarks: mmau, mmar), writes `RUN_DIR/mmau_summary.md` (a table per benchmark, headed by its file version,
the field scored and its item count), `RUN_DIR/mmau_summary.csv` (a row per model, every benchmark's columns) and
`RUN_DIR/mmau_accuracy.png` (a line per benchmark), and prints the Markdown. When the run's checkpoints hold a trainer
state with rewards, it also plots the mean reward per 50 steps to `RUN_DIR/reward.png`. A model also evaluated with
`--shuffle_choices SEED` (its `shuffled-SEED/metrics.json`) gets a `shuffled-SEED` column beside its `average`.
"""

import csv
import io
import json
import os
import re
import sys
from pathlib import Path

from r1_aqa.benchmarks import SELECTION_WARNING, Benchmark, registry
from r1_aqa.files import write_atomic
from r1_aqa.scoring import FIELDS, LEGACY_FIELDS, version_text

FLOORS = ("first_choice", "random", "silent_audio")
REWARD_WINDOW = 50  # steps per point of the reward curve: single steps are too noisy to read


def group_values(benchmark: Benchmark, metrics: list[dict]) -> list[str]:
    """The values of the benchmark's table group (MMAU's tasks, MMAR's modalities), in its official order; or
    whatever another file in the same format has (e.g. the synthetic set's tasks)."""
    names = dict.fromkeys(key for m in metrics for key in m[benchmark.table_group])
    order = benchmark.order
    return sorted(names, key=lambda key: (order.index(key) if key in order else len(order), key))


def columns(rows: list[dict]) -> list[str]:
    groups = [key for key in rows[0] if key.startswith("group:")] if rows else []
    shuffled = [key for key in rows[0] if key.startswith("shuffled-")] if rows else []
    return ["model", "step", *groups, "average", *shuffled, "average_raw", "format", *FLOORS, "field", "items",
            "version", "missing"]  # fmt: skip


def shuffled_averages(model_dir: Path) -> dict[str, float]:
    """`shuffled-SEED` -> the average accuracy of the model's evaluation with choices in SEED's order."""
    return {path.parent.name: json.loads(path.read_text())["total"]["accuracy"]
            for path in model_dir.glob("shuffled-*/metrics.json")}  # fmt: skip


def _field(metrics: dict) -> str:
    field = metrics.get("scored_field", "raw")  # files written before both fields were scored scored model_output
    return LEGACY_FIELDS.get(field, field)


def _raw_average(metrics: dict) -> float | None:
    if "fields" in metrics:
        return metrics["fields"]["raw"]["total"]["accuracy"]
    return metrics["total"]["accuracy"] if _field(metrics) == "raw" else None


def collect(run_dir: Path, benchmark: Benchmark) -> list[dict]:
    """A row per model scored on `benchmark`: baselines (no step) first, then checkpoints by step."""
    paths = sorted((run_dir / benchmark.name).glob("*/metrics.json"))
    everything = [json.loads(path.read_text()) for path in paths]
    values = group_values(benchmark, everything)
    shuffled = [shuffled_averages(path.parent) for path in paths]
    orders = sorted({name for found in shuffled for name in found}, key=lambda name: int(name.split("-", 1)[1]))
    rows = []
    for path, metrics, found in zip(paths, everything, shuffled, strict=True):
        match = re.fullmatch(r"checkpoint-(\d+)", path.parent.name)
        floors = metrics["floors"]
        groups = metrics[benchmark.table_group]
        rows.append({
            "model": path.parent.name,
            "benchmark": metrics["benchmark"]["name"],
            "step": int(match.group(1)) if match else None,
            **{f"group:{value}": groups.get(value, {}).get("accuracy") for value in values},
            "average": metrics["total"]["accuracy"],
            **{name: found.get(name) for name in orders},
            "average_raw": _raw_average(metrics),
            "format": metrics.get("format", {}).get("rate"),
            **{name: floors[name]["total"]["accuracy"] if name in floors else None for name in FLOORS},
            "field": _field(metrics),
            "items": metrics["benchmark"]["items"],
            "version": version_text(metrics["benchmark"]),
            "missing": metrics["missing"],
        })  # fmt: skip
    return sorted(rows, key=lambda row: (row["step"] is not None, row["step"] or 0, row["model"]))


def collect_all(run_dir: Path) -> dict[str, list[dict]]:
    """Rows per benchmark scored in this run, in the registry's order."""
    found = {name: collect(run_dir, benchmark) for name, benchmark in registry().items()}
    return {name: rows for name, rows in found.items() if rows}


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _header(column: str) -> str:
    return column.removeprefix("group:")


def _title(rows: list[dict]) -> str:
    """What a figure never travels without: file version, field scored, items (missing: per row)."""
    names = sorted({row["benchmark"] for row in rows})
    versions = sorted({row["version"] for row in rows})
    fields = sorted({row["field"] for row in rows})
    items = sorted({row["items"] for row in rows})
    return (f"{' / '.join(names)} {' / '.join(versions)}: {' / '.join(map(str, items))} items, scored on "
            + " / ".join(f"{field} ({FIELDS.get(field, field)})" for field in fields))  # fmt: skip


def markdown(tables: dict[str, list[dict]]) -> str:
    lines = []
    for name, rows in tables.items():
        names = columns(rows)
        lines += [f"### {name}: {_title(rows)}", ""]  # e.g. "mmar: MMAR 2025-05-11: 1000 items, scored on answer"
        lines += ["| " + " | ".join(map(_header, names)) + " |", "|" + "---|" * len(names)]
        lines += ["| " + " | ".join(_cell(row[column]) for column in names) + " |" for row in rows]
        if len({row["version"] for row in rows}) > 1:
            lines.append(f"WARNING: these {name} rows were scored on different benchmark files; do not compare them.")
        if len({row["field"] for row in rows}) > 1:
            lines.append(f"WARNING: these {name} rows were scored on different fields; do not compare them.")
        lines.append("")
    notes = [
        "Accuracy in % (the official rule; an item without output counts as wrong). `average` is over all items, on",
        "the field named: `answer` is the extracted answer (the text of the last <answer> tag, or the whole",
        "completion without one), as R1-AQA and RL papers score it; `average_raw` scores the whole completion, as",
        "MMAU's official script does. `format`: % of outputs in the prompt's tag structure. `first_choice`, `random`",
        "(seeded) and `silent_audio` (the same model, every clip silenced) are floors. `shuffled-S`: `average` with",
        "each item's choices shown in the order drawn from seed S (evaluate --shuffle_choices S); well below",
        "`average`, the model answers partly by the choices' position.",
        SELECTION_WARNING,
    ]
    return "\n".join(lines + notes) + "\n"


def csv_text(tables: dict[str, list[dict]]) -> str:
    """A row per model; every benchmark's columns, named `<benchmark> <column>`."""
    models = {}
    for name, rows in tables.items():
        for row in rows:
            merged = models.setdefault(row["model"], {"model": row["model"], "step": row["step"]})
            merged.update({f"{name} {_header(column)}": row[column] for column in columns(rows)[2:]})
    names = ["model", "step"] + [f"{name} {_header(c)}" for name, rows in tables.items() for c in columns(rows)[2:]]
    ordered = sorted(models.values(), key=lambda row: (row["step"] is not None, row["step"] or 0, row["model"]))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(names)
    writer.writerows([[_cell(row.get(name)) if row.get(name) is not None else "" for name in names] for row in ordered])
    return buffer.getvalue()


def save_figure(figure, path: Path) -> None:
    """As `write_atomic` for text: a failed or killed save leaves the previous image whole."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        figure.savefig(temporary, format="png", dpi=120)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def plot(tables: dict[str, list[dict]], path: Path) -> None:
    """A line per benchmark (its average against step), its silent-audio floor dotted and first-choice floor
    dashed in the same colour; baselines (no step) as dash-dot lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for index, (name, rows) in enumerate(tables.items()):
        color = f"C{index}"
        steps = [row for row in rows if row["step"] is not None]
        label = f"{name} {rows[0]['version']} ({rows[0]['field']})"
        if steps:
            axis.plot([row["step"] for row in steps], [row["average"] for row in steps], "-o", color=color, label=label)
            silent = [row for row in steps if row["silent_audio"] is not None]
            if silent:
                axis.plot([row["step"] for row in silent], [row["silent_audio"] for row in silent], ":x", color=color,
                          label=f"{name} silent audio")  # fmt: skip
        for row in rows:
            if row["step"] is None:
                axis.axhline(row["average"], linestyle="-.", color=color, linewidth=1)
                axis.annotate(f"{name} {row['model']}", (0, row["average"]), xycoords=("axes fraction", "data"),
                              fontsize=8)  # fmt: skip
        first = [row["first_choice"] for row in rows if row["first_choice"] is not None]
        if first:
            axis.axhline(sum(first) / len(first), linestyle="--", color=color, linewidth=1,
                         label=f"{name} first-choice floor")  # fmt: skip
    axis.set_xlabel("training step")
    axis.set_ylabel("accuracy (%)")
    axis.set_title(" · ".join(tables))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="best")
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)


def reward_windows(run_dir: Path) -> list[tuple[int, float]]:
    """(last step, mean reward) per window of REWARD_WINDOW training steps, from the latest trainer state."""
    states = sorted(run_dir.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    if not states:
        return []
    history = [e for e in json.loads(states[-1].read_text())["log_history"] if "reward" in e and "step" in e]
    windows = {}
    for entry in history:
        windows.setdefault((entry["step"] - 1) // REWARD_WINDOW, []).append((entry["step"], entry["reward"]))
    return [(max(s for s, _ in w), sum(r for _, r in w) / len(w)) for _, w in sorted(windows.items())]


def plot_rewards(windows: list[tuple[int, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.5))
    axis.plot([step for step, _ in windows], [reward for _, reward in windows], "-o")
    axis.set_xlabel("training step (end of window)")
    axis.set_ylabel(f"mean reward over {REWARD_WINDOW} steps")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)


def summarize(run_dir: Path) -> str:
    tables = collect_all(run_dir)
    if not tables:
        raise FileNotFoundError(f"{run_dir}: no {{{','.join(registry())}}}/*/metrics.json to summarize")
    table = markdown(tables)
    write_atomic(run_dir / "mmau_summary.md", table)
    write_atomic(run_dir / "mmau_summary.csv", csv_text(tables))
    plot(tables, run_dir / "mmau_accuracy.png")
    windows = reward_windows(run_dir)
    if windows:
        plot_rewards(windows, run_dir / "reward.png")
        table += "\nMean training reward per window: " + ", ".join(f"steps <= {s}: {r:.3f}" for s, r in windows)
        table += "\n"
    return table


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        print(summarize(Path(sys.argv[1])), end="")
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
