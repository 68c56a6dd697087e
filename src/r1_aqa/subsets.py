"""Training files made from measured pass rates (r1_aqa.passrate): difficulty filters, a curriculum order and the
audio-contribution split. Pure selection functions, and one writer that copies the chosen rows unchanged."""

import json
import os
from pathlib import Path

from r1_aqa.data import DataError
from r1_aqa.files import write_atomic

ORDERS = ("original", "easy_to_hard")


def select(records: list[dict], drop_unsolved: bool = False, drop_solved: bool = False, order: str = "original"):
    """The ids to train on, from pass-rate records in the data's order. At pass rate 0 or 1 every completion of a
    group gets the same accuracy, so GRPO's advantages are 0 and the item teaches nothing. `easy_to_hard` sorts
    by pass rate, highest first, ties in the data's order."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    kept = [
        record
        for record in records
        if not (drop_unsolved and record["passes"] == 0) and not (drop_solved and record["passes"] == record["samples"])
    ]
    if order == "easy_to_hard":
        kept = sorted(kept, key=lambda record: -record["pass_rate"])  # stable: ties keep the data's order
    return [record["id"] for record in kept]


def split(records: list[dict], min_passes: int) -> tuple[list[str], list[str]]:
    """(weak, strong) ids from pass-rate records measured with silent audio: an item answered correctly in at least
    `min_passes` of its samples without hearing anything has a weak audio contribution."""
    weak = [record["id"] for record in records if record["passes"] >= min_passes]
    strong = [record["id"] for record in records if record["passes"] < min_passes]
    return weak, strong


def write_rows(source: str | Path, ids: list[str], destination: str | Path) -> int:
    """The rows of training file `source` with these ids, in this order, written to `destination` as they are.
    One exception: a relative `audio_path` is re-based onto the destination's folder, so it names the same clip."""
    source, destination = Path(source), Path(destination)
    rows = {}
    with open(source, encoding="utf-8-sig") as lines:  # as data.read_rows reads it
        for line in lines:
            if line.strip():
                row = json.loads(line)
                rows[str(row["id"])] = row
    missing = [key for key in ids if key not in rows]
    if missing:
        raise DataError(f"{source}: no row with id {', '.join(missing[:10])} (pass rates of another file?)")
    moved = source.parent.resolve() != destination.parent.resolve()
    lines = []
    for key in ids:
        row = rows[key]
        if moved and not os.path.isabs(row["audio_path"]):
            clip = (source.parent / row["audio_path"]).resolve()
            row = {**row, "audio_path": os.path.relpath(clip, destination.parent.resolve())}
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    write_atomic(destination, "".join(lines))
    return len(lines)
