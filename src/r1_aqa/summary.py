"""One table and one plot of every model scored in a run folder: accuracy per task against training step.

    python -m r1_aqa.summary RUN_DIR

Reads `RUN_DIR/mmau/*/metrics.json` (written by `r1_aqa.evaluate`), writes `RUN_DIR/mmau_summary.md`,
`RUN_DIR/mmau_summary.csv` and `RUN_DIR/mmau_accuracy.png`, and prints the Markdown table.
"""

import csv
import io
import json
import re
import sys
from pathlib import Path

from r1_aqa.mmau import SELECTION_WARNING, TASKS

COLUMNS = ("model", "step", *TASKS, "average", "first_choice", "random", "silent_audio", "items", "version", "missing")


def collect(run_dir: Path) -> list[dict]:
    """A row per scored model: baselines (no step) first, then checkpoints by step."""
    rows = []
    for path in sorted((run_dir / "mmau").glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        match = re.fullmatch(r"checkpoint-(\d+)", path.parent.name)
        benchmark = metrics["benchmark"]
        floors = metrics["floors"]
        row = {
            "model": path.parent.name,
            "step": int(match.group(1)) if match else None,
            **{task: metrics["task"].get(task, {}).get("accuracy") for task in TASKS},
            "average": metrics["total"]["accuracy"],
            **{
                name: floors[name]["total"]["accuracy"] if name in floors else None
                for name in ("first_choice", "random", "silent_audio")
            },  # fmt: skip
            "items": benchmark["items"],
            "version": benchmark["version"] or " or ".join(benchmark.get("matching_versions", [])) or "unknown",
            "missing": metrics["missing"],
        }
        rows.append(row)
    return sorted(rows, key=lambda row: (row["step"] is not None, row["step"] or 0, row["model"]))


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(row[column]) for column in COLUMNS) + " |" for row in rows]
    notes = [
        "",
        "Accuracy in % (MMAU's official rule; an item without output counts as wrong). `average` is over all items;",
        "`first_choice`, `random` (seeded) and `silent_audio` (the same model, every clip silenced) are floors.",
    ]
    if len({row["version"] for row in rows}) > 1:
        notes.append("WARNING: these rows were scored on different benchmark files; do not compare them.")
    notes.append(SELECTION_WARNING)
    return "\n".join(lines + notes) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [row for row in rows if row["step"] is not None]
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for column, style in [*((task, "-o") for task in TASKS), ("average", "-s"), ("silent_audio", ":x")]:
        if steps and any(row[column] is not None for row in steps):
            axis.plot([row["step"] for row in steps], [row[column] for row in steps], style, label=column)
    for row in rows:
        if row["step"] is None:
            axis.axhline(row["average"], linestyle="-.", color="grey", linewidth=1)
            axis.annotate(row["model"], (0, row["average"]), xycoords=("axes fraction", "data"), fontsize=8)
    for name, color in (("first_choice", "black"), ("random", "red")):
        values = [row[name] for row in rows if row[name] is not None]
        if values:
            axis.axhline(sum(values) / len(values), linestyle="--", color=color, linewidth=1, label=f"{name} floor")
    axis.set_xlabel("training step")
    axis.set_ylabel("MMAU accuracy (%)")
    axis.set_title(f"MMAU test-mini {rows[0]['version']}" if rows else "MMAU")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def summarize(run_dir: Path) -> str:
    rows = collect(run_dir)
    if not rows:
        raise FileNotFoundError(f"{run_dir}: no mmau/*/metrics.json to summarize")
    table = markdown(rows)
    (run_dir / "mmau_summary.md").write_text(table)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    (run_dir / "mmau_summary.csv").write_text(buffer.getvalue())
    plot(rows, run_dir / "mmau_accuracy.png")
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
