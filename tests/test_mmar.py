"""MMAR: versions, preparation with its six defective items, and scoring against the official script's loop."""

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import write_clip

from r1_aqa import benchmarks, evaluate, mmar, score, scoring

# The 2025-05-11 MMAR-meta.json (ddlBoJack/MMAR @ 62497000), CC BY-NC 4.0: see tests/fixtures/README.md.
FIXTURE = Path(__file__).parent / "fixtures" / "mmar" / "MMAR-meta.2025-05-11.json"
GROUPS = ("modality", "category", "sub-category")
# shared/benchmarks/mmar/README.md: upstream's fixes of 2026-02-16, as (index into choices, choices stripped).
UPSTREAM_FIXES = {
    "BV1NtQuYTELJ_00-00-00_00-00-26": (1, False),
    "BV1mifMY4Ebq_00-02-41_00-03-10": (1, False),
    "BV1NX4y1p7Xq_00-33-16_00-33-45": (3, False),
    "BV16j411E7Z9_00-00-13_00-00-34": (3, False),
    "BV1P4411677K_0-00_0-20": (0, False),
    "Txj3Qv1lJgs_00-00-00_00-00-16": (3, True),
}


def items() -> list[dict]:
    return json.loads(FIXTURE.read_text())


def fixed(item: dict) -> dict:
    index, strip = UPSTREAM_FIXES[item["id"]]
    choices = [c.strip() for c in item["choices"]] if strip else item["choices"]
    return {**item, "choices": choices, "answer": choices[index]}


def test_fingerprint_tables_are_rebuilt_from_the_published_file_and_its_fixes():
    published = items()
    repaired = [fixed(item) if item["id"] in UPSTREAM_FIXES else item for item in published]
    assert mmar.known_versions() == {
        "2025-05-11": {item["id"]: mmar.fingerprint(item) for item in published},
        "2025-05-11+fixes": {item["id"]: mmar.fingerprint(item) for item in repaired},
    }


def test_the_published_file_and_the_fixed_answers_are_told_apart(tmp_path):
    published = items()
    assert mmar.detect_version(published)["version"] == "2025-05-11"
    repaired = [fixed(item) if item["id"] in UPSTREAM_FIXES else item for item in published]
    # why: the 2026 jsonl carries these answers; read as JSON lines, it is another version, not 2025-05-11
    (tmp_path / "MMAR-meta.jsonl").write_text("".join(json.dumps(item) + "\n" for item in repaired))
    assert mmar.detect_version(benchmarks.read_items(tmp_path / "MMAR-meta.jsonl"))["version"] == "2025-05-11+fixes"
    edited = [{**published[0], "question": published[0]["question"] + "?"}, *published[1:]]
    assert mmar.detect_version(edited)["version"] is None


def test_items_are_recognised_by_their_keys(tmp_path, capsys):
    assert benchmarks.recognise(items()) is mmar.BENCHMARK
    odd = [{"id": "x", "answer": "a", "choices": ["a", "b"], "model_output": "a", "genre": "jazz"}]
    (tmp_path / "odd.json").write_text(json.dumps(odd))
    assert score.main([str(tmp_path / "odd.json")]) == 2
    error = capsys.readouterr().err
    assert "cannot tell which benchmark" in error and "modality" in error and "task" in error


def official_string_match(answer: str, prediction: str, choices: list[str]) -> bool:
    """MMAR's code/evaluation.py rule (MMAU's string_match), written again here, independent of the package."""

    def tokenize(text):
        return set(re.findall(r"\b\w+\b", text.lower()))

    prediction_tokens, answer_tokens = tokenize(prediction), tokenize(answer)
    if not prediction_tokens:
        return False
    incorrect = set()
    for choice in choices:
        choice_tokens = tokenize(choice)
        if choice_tokens != answer_tokens:
            incorrect.update(choice_tokens - answer_tokens)
    return answer_tokens.issubset(prediction_tokens) and prediction_tokens.isdisjoint(incorrect)


def official_figures(samples: list[dict], key: str) -> dict:
    """The official script's loop: per modality, category, sub-category and in total; no key, item skipped."""
    tallies = {group: defaultdict(lambda: [0, 0]) for group in GROUPS}
    total = [0, 0]
    for sample in samples:
        if key not in sample:
            continue
        match = official_string_match(sample["answer"], sample[key], sample["choices"])
        for group in GROUPS:
            tallies[group][sample[group]][0] += match
            tallies[group][sample[group]][1] += 1
        total[0] += match
        total[1] += 1
    return {"total": total, **{group: dict(values) for group, values in tallies.items()}}


def completion(index: int, item: dict) -> str:
    """Completions of every kind that the two fields treat differently, cycled over the 1000 items."""
    answer, choices = item["answer"], item["choices"]
    wrong = next((c for c in choices if c != answer), answer)
    kinds = [
        answer,
        f"<answer>{answer}</answer>",
        f"<think>It could be {wrong}.</think><answer>{answer}</answer>",
        f"<answer>{answer}</answer> Though {wrong} is possible.",
        f"<answer>{wrong}</answer><answer>{answer}</answer>",
        f"<answer>{wrong}</answer>",
        wrong,
        "",
        "I cannot tell.",
    ]
    return kinds[index % len(kinds)]


def test_both_fields_equal_the_official_script_on_the_full_file(tmp_path):
    predictions = [evaluate.prediction(item, completion(n, item)) for n, item in enumerate(items())]
    path = tmp_path / "predictions.json"
    path.write_text(json.dumps(predictions))
    for field, key in (("raw", "model_output"), ("answer", "model_prediction")):
        output = tmp_path / f"metrics-{field}.json"
        assert score.main([str(path), "--output", str(output), "--field", field]) == 0
        metrics = json.loads(output.read_text())
        expected = official_figures(predictions, key)
        assert [metrics["total"]["correct"], metrics["total"]["count"]] == expected["total"], field
        assert metrics["missing"] == 0
        for group in GROUPS:
            assert set(metrics[group]) == set(expected[group]), (field, group)
            for value, (right, count) in expected[group].items():
                assert metrics[group][value]["correct"] == right and metrics[group][value]["count"] == count
                assert metrics[group][value]["accuracy"] == pytest.approx(100 * right / count)
    raw = json.loads((tmp_path / "metrics-raw.json").read_text())["total"]["correct"]
    answer = json.loads((tmp_path / "metrics-answer.json").read_text())["total"]["correct"]
    assert 0 < raw < answer < 1000, "the two fields must differ on this file, or the comparison proves little"
    assert len(raw_groups := json.loads((tmp_path / "metrics-raw.json").read_text())["modality"]) == 7, raw_groups


ITEM = items()[0]  # choices Owl, Robot, Rooster, Parrot; answer Parrot


@pytest.mark.parametrize(
    ("output", "prediction", "answer_right", "raw_right"),
    [
        ("<answer>Parrot</answer>", None, True, True),  # why: a clean tagged answer is right either way
        (
            "<think>Not an Owl, a Parrot.</think><answer>Parrot</answer>",
            None,
            True,
            False,
        ),  # why: reasoning names a distractor
        ("<answer>Parrot</answer> Or an Owl.", None, True, False),  # why: text after the tag names a distractor
        ("Parrot", None, True, True),  # why: no tag at all: the whole completion is the answer
        ("It is an Owl.", None, False, False),  # why: no tag, wrong: wrong either way
        ("<answer>Owl</answer><answer>Parrot</answer>", None, True, False),  # why: two tags: the last one counts
        ("<answer>Parrot</answer><answer>Owl</answer>", None, False, False),  # why: two tags, the last wrong
        ("<answer></answer>", None, False, False),  # why: an empty tag is an empty answer, not the completion
        ("Parrot", "absent", True, True),  # why: a file written before model_prediction held the fallback (None)
    ],
)
def test_the_answer_and_raw_fields_differ_exactly_where_they_should(output, prediction, answer_right, raw_right):
    item = evaluate.prediction(ITEM, output)
    if prediction == "absent":
        item["model_prediction"] = None
    verdict = {}
    for field in scoring.FIELDS:
        verdict[field] = scoring.score_items([item], mmar.GROUPS, mmar.ORDER, field)["total"]["correct"] == 1
    assert verdict == {"answer": answer_right, "raw": raw_right}


def test_metrics_hold_both_fields_name_the_headline_and_count_missing_as_wrong():
    predictions = [evaluate.prediction(item, f"<think>{item['choices'][-1]}</think><answer>{item['answer']}</answer>")
                   for item in items()[:20]]  # fmt: skip
    for item in predictions[:3]:
        del item["model_output"], item["model_prediction"]
    metrics = scoring.metrics_for(mmar.BENCHMARK, predictions)
    assert metrics["headline"] == metrics["scored_field"] == "answer"
    assert metrics["total"] == metrics["fields"]["answer"]["total"]
    assert metrics["missing"] == metrics["fields"]["raw"]["missing"] == 3
    assert metrics["total"]["count"] == 20 and metrics["total"]["correct"] == 17  # the official script: 17 of 17
    assert set(metrics["floors"]["first_choice"]) == {"total", "modality", "category"}


def test_floors_on_the_published_file():
    metrics = scoring.metrics_for(mmar.BENCHMARK, [{**item, "model_output": item["answer"]} for item in items()])
    assert metrics["total"]["accuracy"] == 100.0  # shared/benchmarks/mmar/README.md: the bare answer, 1000/1000
    assert metrics["floors"]["first_choice"]["total"]["accuracy"] == pytest.approx(27.9)  # ... and 27.9 %
    assert 20 < metrics["floors"]["random"]["total"]["accuracy"] < 40
    assert metrics["answer_not_a_choice"] == [item["id"] for item in items() if item["id"] in UPSTREAM_FIXES]


def write_mmar_folder(root: Path, chosen: list[dict], skip: set[str] = frozenset(), long: set[str] = frozenset()):
    """MMAR's download as unpacked: the metadata file and audio/<id>.wav (as each item's audio_path says)."""
    for index, item in enumerate(chosen):
        if item["id"] not in skip:
            seconds = 31.0 if item["id"] in long else 0.5 + 0.25 * (index % 3)
            write_clip(root / item["audio_path"], seconds, "tone", 300.0 + 50 * index)
    (root / "MMAR-meta.json").write_text(json.dumps(chosen, ensure_ascii=False))
    return root / "MMAR-meta.json"


def test_the_six_defective_items_are_listed_kept_and_fixed_by_option(tmp_path, capsys):
    everything = items()
    chosen = [item for item in everything if item["id"] in UPSTREAM_FIXES] + everything[:2]
    source = write_mmar_folder(tmp_path, chosen)
    arguments = ["prepare", "mmar", "--source", str(source), "--audio-dir", str(tmp_path)]
    assert benchmarks.main([*arguments, "--output", str(tmp_path / "as-published.json")]) == 0
    printed = capsys.readouterr().out
    assert all(item_id in printed for item_id in UPSTREAM_FIXES) and "not one of their choices" in printed
    kept = json.loads((tmp_path / "as-published.json").read_text())
    assert [item["id"] for item in kept] == [item["id"] for item in chosen]  # listed, not dropped
    assert {i["id"]: i["answer"] for i in kept} == {i["id"]: i["answer"] for i in chosen}

    assert benchmarks.main([*arguments, "--output", str(tmp_path / "fixed.json"), "--fix-defects"]) == 0
    assert "upstream fixes applied to 6 items" in capsys.readouterr().out
    repaired = {item["id"]: item for item in json.loads((tmp_path / "fixed.json").read_text())}
    for item in chosen:
        expected = fixed(item) if item["id"] in UPSTREAM_FIXES else item
        assert (repaired[item["id"]]["answer"], repaired[item["id"]]["choices"]) == (expected["answer"],
                                                                                      expected["choices"])  # fmt: skip
        assert repaired[item["id"]]["answer"] in repaired[item["id"]]["choices"]


def test_missing_clips_are_named_by_id(tmp_path, capsys):
    chosen = items()[:4]
    source = write_mmar_folder(tmp_path, chosen, skip={chosen[2]["id"]})
    arguments = ["prepare", "mmar", "--source", str(source), "--audio-dir", str(tmp_path), "--output",
                 str(tmp_path / "prepared.json")]  # fmt: skip
    assert benchmarks.main(arguments) == 2
    assert chosen[2]["id"] in capsys.readouterr().err and not (tmp_path / "prepared.json").exists()
    assert benchmarks.main([*arguments, "--skip-missing"]) == 0
    assert len(json.loads((tmp_path / "prepared.json").read_text())) == 3
