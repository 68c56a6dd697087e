"""Files written whole or not at all."""

import json
import os
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: a reader never sees half a file under that name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_json(path: str | Path, value) -> None:
    write_atomic(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def resume_jsonl(path: str | Path) -> dict[str, dict]:
    """Records appended so far to a progress file, by id. A last line cut short by a kill is dropped (its item is
    redone) and the file rewritten without it, so that what is appended next starts on a line of its own."""
    path, done = Path(path), {}
    if not path.is_file():
        return done
    text = path.read_text(encoding="utf-8")
    whole = not text or text.endswith("\n")
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            whole = False
            continue
        done[record["id"]] = record
    if not whole:
        write_jsonl(path, list(done.values()))
    return done
