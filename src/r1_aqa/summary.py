"""One table and one plot of every model scored in a run folder: accuracy per task against training step.

    python -m r1_aqa.summary RUN_DIR

Reads `RUN_DIR/mmau/*/metrics.json` (written by `r1_aqa.evaluate`), writes `RUN_DIR/mmau_summary.md`,
`RUN_DIR/mmau_summary.csv` and `RUN_DIR/mmau_accuracy.png`, and prints the Markdown table. When the run's
checkpoints hold a trainer state with rewards, it also plots the mean reward per 50 steps to `RUN_DIR/reward.png`.
"""

import csv
import io
import json
import os
import re
import sys
from pathlib import Path

from r1_aqa.files import write_atomic
from r1_aqa.mmau import ORDER, SELECTION_WARNING

FLOORS = ("first_choice", "random", "silent_audio")
REWARD_WINDOW = 50  # steps per point of the reward curve: single steps are too noisy to read


def task_names(metrics: list[dict]) -> list[str]:
    """MMAU's sound, music, speech; or whatever tasks another MMAU-format file has (e.g. the synthetic set)."""
    names = dict.fromkeys(key for m in metrics for key in m["task"])
    return sorted(names, key=lambda key: (ORDER.index(key) if key in ORDER else len(ORDER), key))


def columns(rows: list[dict]) -> list[str]:
    tasks = [key for key in rows[0] if key.startswith("task:")] if rows else []
    return ["model", "step", *tasks, "average", "format", *FLOORS, "items", "version", "missing"]


def collect(run_dir: Path) -> list[dict]:
    """A row per scored model: baselines (no step) first, then checkpoints by step."""
    paths = sorted((run_dir / "mmau").glob("*/metrics.json"))
    everything = [json.loads(path.read_text()) for path in paths]
    tasks = task_names(everything)
    rows = []
    for path, metrics in zip(paths, everything, strict=True):
        match = re.fullmatch(r"checkpoint-(\d+)", path.parent.name)
        benchmark = metrics["benchmark"]
        floors = metrics["floors"]
        row = {
            "model": path.parent.name,
            "step": int(match.group(1)) if match else None,
            **{f"task:{task}": metrics["task"].get(task, {}).get("accuracy") for task in tasks},
            "average": metrics["total"]["accuracy"],
            "format": metrics.get("format", {}).get("rate"),
            **{name: floors[name]["total"]["accuracy"] if name in floors else None for name in FLOORS},
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


def _header(column: str) -> str:
    return column.removeprefix("task:")


def markdown(rows: list[dict]) -> str:
    names = columns(rows)
    lines = ["| " + " | ".join(map(_header, names)) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(_cell(row[column]) for column in names) + " |" for row in rows]
    notes = [
        "",
        "Accuracy in % (MMAU's official rule; an item without output counts as wrong). `average` is over all items;",
        "`format`: % of outputs in the prompt's tag structure. `first_choice`, `random` (seeded) and `silent_audio`",
        "(the same model, every clip silenced) are floors.",
    ]
    if len({row["version"] for row in rows}) > 1:
        notes.append("WARNING: these rows were scored on different benchmark files; do not compare them.")
    notes.append(SELECTION_WARNING)
    return "\n".join(lines + notes) + "\n"


def save_figure(figure, path: Path) -> None:
    """As `write_atomic` for text: a failed or killed save leaves the previous image whole."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        figure.savefig(temporary, format="png", dpi=120)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [row for row in rows if row["step"] is not None]
    figure, axis = plt.subplots(figsize=(7, 4.5))
    tasks = [(column, "-o") for column in columns(rows) if column.startswith("task:")]
    for column, style in [*tasks, ("average", "-s"), ("silent_audio", ":x")]:
        if steps and any(row[column] is not None for row in steps):
            points = [row[column] for row in steps]
            axis.plot([row["step"] for row in steps], points, style, label=_header(column))
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
    version = rows[0]["version"] if rows else "unknown"
    axis.set_title(f"MMAU test-mini {version}" if version != "unknown" else "MMAU-format evaluation set")
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
    rows = collect(run_dir)
    if not rows:
        raise FileNotFoundError(f"{run_dir}: no mmau/*/metrics.json to summarize")
    table = markdown(rows)
    write_atomic(run_dir / "mmau_summary.md", table)
    buffer = io.StringIO()
    names = columns(rows)
    writer = csv.writer(buffer)
    writer.writerow([_header(name) for name in names])
    writer.writerows([[_cell(row[name]) if row[name] is not None else "" for name in names] for row in rows])
    write_atomic(run_dir / "mmau_summary.csv", buffer.getvalue())
    plot(rows, run_dir / "mmau_accuracy.png")
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
