"""MMAU preparation, version detection and scoring against the official rule's verdicts."""

import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest
from conftest import write_clip

from r1_aqa import mmau, summary

FIXTURES = Path(__file__).parent / "fixtures" / "mmau"
VERSIONS = ("2024-12-09", "2025-03-25", "2025-05-15")


def benchmark(version: str) -> list[dict]:
    return json.loads((FIXTURES / f"mmau-test-mini.{version}.json").read_text())


def test_fingerprint_table_is_rebuilt_from_the_published_files():
    assert mmau.known_versions() == {v: {i["id"]: mmau.fingerprint(i) for i in benchmark(v)} for v in VERSIONS}


@pytest.mark.parametrize("version", VERSIONS)
def test_each_published_file_is_recognised(version):
    items = benchmark(version)
    assert mmau.detect_version(items)["version"] == version
    # The facts sheet's other tell: difficulty counts differ between the old files and the revised one.
    expected = (224, 540, 236) if version == "2025-05-15" else (258, 510, 232)
    counts = Counter(item["difficulty"] for item in items)
    assert (counts["easy"], counts["medium"], counts["hard"]) == expected


def test_an_edited_item_is_not_passed_off_as_a_published_file():
    items = benchmark("2025-05-15")
    items[0] = {**items[0], "answer": items[0]["choices"][-1]}
    assert mmau.detect_version(items)["version"] is None


def words(text: str) -> set[str]:
    return set(re.findall(r"\b\w+\b", text.lower()))


def by_group(items: list[dict], correct: set[str]) -> dict:
    """Expected counts computed directly from which ids are right, without the scorer."""
    expected = {}
    for group in ("task", "difficulty"):
        for item in items:
            entry = expected.setdefault(group, {}).setdefault(item[group], [0, 0])
            entry[0] += item["id"] in correct
            entry[1] += 1
    return expected


def assert_metrics_match(metrics: dict, items: list[dict], correct: set[str]) -> None:
    for group, entries in by_group(items, correct).items():
        for key, (right, count) in entries.items():
            assert metrics[group][key]["correct"] == right and metrics[group][key]["count"] == count, (group, key)
            assert metrics[group][key]["accuracy"] == pytest.approx(100 * right / count)
    assert metrics["total"] == {
        "correct": len(correct),
        "count": len(items),
        "accuracy": 100 * len(correct) / len(items),
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_totals_per_task_and_difficulty_on_each_published_file(version, tmp_path):
    items = benchmark(version)
    predictions, correct = [], set()
    for index, item in enumerate(items):
        answer_tokens = words(item["answer"])
        wrong = [c for c in item["choices"] if words(c) != answer_tokens]
        if index % 3 and answer_tokens:  # the answer's own text: always counted right
            predictions.append({**item, "model_output": item["answer"]})
            correct.add(item["id"])
        else:  # another choice's text (its tokens are not the answer's), or nothing: always counted wrong
            predictions.append({**item, "model_output": wrong[0] if wrong else ""})
    path = tmp_path / "predictions.json"
    path.write_text(json.dumps(predictions))
    assert mmau.main(["score", str(path), "--output", str(tmp_path / "metrics.json")]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["benchmark"]["version"] == version
    assert_metrics_match(metrics, items, correct)


def test_totals_follow_the_official_verdicts_of_the_scoring_cases(tmp_path):
    items = {item["id"]: item for item in benchmark("2025-05-15")}
    cases = [json.loads(line) for line in (FIXTURES / "scoring_cases.jsonl").read_text().splitlines()]
    kinds = sorted({case["kind"] for case in cases})
    chosen = {}
    for case in cases:  # one case per item, cycling through the kinds of prediction
        if case["id"] not in chosen and case["kind"] == kinds[len(chosen) % len(kinds)]:
            chosen[case["id"]] = case
    predictions = [{**items[i], "model_output": case["prediction"]} for i, case in chosen.items()]
    correct = {i for i, case in chosen.items() if case["official_match"]}
    assert len(predictions) > 300 and 0 < len(correct) < len(predictions)
    assert_metrics_match(mmau.metrics_for(predictions), predictions, correct)


def test_items_without_output_count_as_wrong_and_are_reported():
    items = benchmark("2025-05-15")[:10]
    predictions = [{**item, "model_output": item["answer"]} for item in items[:8]] + items[8:]
    metrics = mmau.metrics_for(predictions)
    assert metrics["missing"] == 2
    assert metrics["total"]["count"] == 10 and metrics["total"]["correct"] == 8  # the official script would say 8/8


def test_raw_predictions_are_joined_to_the_benchmark_by_id(tmp_path, capsys):
    items = benchmark("2024-12-09")
    raw = [{"id": item["id"], "model_output": f"<answer>{item['answer']}</answer>"} for item in items]
    (tmp_path / "raw.json").write_text(json.dumps(raw))
    (tmp_path / "mmau.json").write_text(json.dumps(items))
    assert mmau.main(["score", str(tmp_path / "raw.json"), "--benchmark", str(tmp_path / "mmau.json"),
                      "--output", str(tmp_path / "m.json")]) == 0  # fmt: skip
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["benchmark"]["version"] == "2024-12-09"
    # Tagged answers score like the bare text, except where "answer" is itself a token of some wrong choice.
    assert metrics["total"]["accuracy"] > 99.0
    assert "MMAU test-mini 2024-12-09" in capsys.readouterr().out


def test_floors_sit_beside_the_models_figures():
    items = benchmark("2025-05-15")
    metrics = mmau.metrics_for([{**item, "model_output": item["answer"]} for item in items])
    assert metrics["floors"]["first_choice"]["total"]["accuracy"] == pytest.approx(39.8)  # shared/mmau/README.md
    assert 15 < metrics["floors"]["random"]["total"]["accuracy"] < 35
    again = mmau.metrics_for([{**item, "model_output": item["answer"]} for item in items])
    assert again["floors"]["random"] == metrics["floors"]["random"]  # seeded


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),  # why: a truncated or hand-edited file
        ('{"id": 1}', "must be a JSON list"),  # why: one object instead of a list
        ('[{"model_output": "x"}]', "item 0 has no id"),  # why: cannot be matched to a question
        ('[{"id": "a", "answer": "x", "choices": ["x"], "model_output": "x"}]', "item a lacks task"),  # why: no groups
    ],
)
def test_bad_predictions_file_is_named_in_the_error(tmp_path, capsys, content, message):
    path = tmp_path / "predictions.json"
    path.write_text(content)
    assert mmau.main(["score", str(path)]) == 2
    error = capsys.readouterr().err
    assert str(path) in error and message in error and "Traceback" not in error


def write_mmau_folder(root: Path, items: list[dict], skip: set[str] = frozenset()) -> Path:
    for index, item in enumerate(items):
        if item["id"] not in skip:
            write_clip(root / item["audio_id"], 0.5 + 0.5 * (index % 3), "tone", 300.0 + 40 * index)
    (root / "mmau-test-mini.json").write_text(json.dumps(items))
    return root / "mmau-test-mini.json"


def test_prepare_names_every_missing_clip_and_writes_nothing(tmp_path, capsys):
    items = benchmark("2025-05-15")[:5]
    missing = {items[1]["id"], items[3]["id"]}
    source = write_mmau_folder(tmp_path, items, skip=missing)
    output = tmp_path / "prepared.json"
    assert (
        mmau.main(["prepare", "--mmau-json", str(source), "--audio-dir", str(tmp_path), "--output", str(output)]) == 2
    )
    error = capsys.readouterr().err
    assert all(item_id in error for item_id in missing) and str(source) in error
    assert not output.exists()

    arguments = ["prepare", "--mmau-json", str(source), "--audio-dir", str(tmp_path), "--output", str(output)]
    assert mmau.main([*arguments, "--skip-missing"]) == 0
    printed = capsys.readouterr().out
    assert all(item_id in printed for item_id in missing)
    prepared = json.loads(output.read_text())
    assert [item["id"] for item in prepared] == [item["id"] for item in items if item["id"] not in missing]
    assert all(Path(item["audio_path"]).is_file() for item in prepared)


def scored(folder: bytes | Path) -> None:
    """A metrics.json in `folder`, as r1_aqa.evaluate writes it (bytes: a file name that is not UTF-8)."""
    items = benchmark("2025-05-15")
    os.makedirs(folder)
    metrics = mmau.metrics_for([{**item, "model_output": item["answer"]} for item in items])
    Path(os.fsdecode(folder), "metrics.json").write_text(json.dumps(metrics))


def summary_files(run: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(run.iterdir()) if path.is_file()}


def test_a_summary_that_fails_midway_leaves_the_previous_one_whole(tmp_path):
    run = tmp_path / "run"
    scored(run / "mmau" / "checkpoint-1")
    summary.summarize(run)
    before = summary_files(run)
    assert set(before) == {"mmau_summary.md", "mmau_summary.csv", "mmau_accuracy.png"}
    # A folder copied from a system with another file-name encoding: its name cannot be written as UTF-8.
    scored(os.fsencode(run / "mmau") + b"/base-\xff")
    with pytest.raises(UnicodeEncodeError):
        summary.summarize(run)
    assert summary_files(run) == before  # no half-written table, and no temporary file left


def test_a_plot_that_fails_midway_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    run = tmp_path / "run"
    scored(run / "mmau" / "checkpoint-1")
    summary.summarize(run)
    before = summary_files(run)
    from matplotlib.figure import Figure

    def full_disk(self, path, **kwargs):
        Path(path).write_bytes(b"half a png")
        raise OSError("No space left on device")

    monkeypatch.setattr(Figure, "savefig", full_disk)
    with pytest.raises(OSError, match="No space"):
        summary.summarize(run)
    assert summary_files(run) == before


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (None, 1.0),  # why: the headline scores the extracted answer, as R1-AQA and RL papers do (a change: was raw)
        ("answer", 1.0),  # why: the same, named
        ("raw", 0.0),  # why: the official script scores the whole completion, whose reasoning names a distractor
        ("model_output", 0.0),  # why: the name --field took before, still accepted, = raw
        ("model_prediction", 1.0),  # why: the other old name, = answer
    ],
)
def test_mmau_score_scores_the_field_asked_for_and_keeps_both(tmp_path, field, expected):
    item = benchmark("2025-05-15")[0]
    wrong = next(c for c in item["choices"] if not words(c) & words(item["answer"]))
    completion = f"<think>Maybe {wrong}.</think><answer>{item['answer']}</answer>"
    (tmp_path / "p.json").write_text(json.dumps([{**item, "model_output": completion}]))
    option = [] if field is None else ["--field", field]
    assert mmau.main(["score", str(tmp_path / "p.json"), "--output", str(tmp_path / "m.json"), *option]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["total"]["correct"] == expected
    assert metrics["fields"]["answer"]["total"]["correct"] == 1 and metrics["fields"]["raw"]["total"]["correct"] == 0
    assert metrics["headline"] == ("raw" if expected == 0.0 else "answer")


def test_a_metrics_file_written_before_both_fields_is_summarized_as_raw(tmp_path):
    run = tmp_path / "run"
    scored(run / "mmau" / "checkpoint-1")
    path = run / "mmau" / "checkpoint-1" / "metrics.json"
    old = json.loads(path.read_text())
    old = {k: v for k, v in old.items() if k not in ("fields", "headline", "answer_not_a_choice")}
    path.write_text(json.dumps({**old, "scored_field": "model_output"}))  # as this toolkit wrote it until now
    summary.summarize(run)
    header, row = (run / "mmau_summary.csv").read_text().splitlines()
    cells = dict(zip(header.split(","), row.split(","), strict=True))
    assert cells["mmau field"] == "raw" and cells["mmau average_raw"] == cells["mmau average"]
    assert "scored on raw" in (run / "mmau_summary.md").read_text()
