"""The official matching rule and the scoring every benchmark shares: which text is scored, totals per group, floors.

The rule is MMAU's `string_match` (Sakshi113/MMAU `evaluation.py`); MMAR's official script uses it unchanged.
Two fields can be scored: `answer` (the headline) is the extracted answer, `model_prediction`, as R1-AQA stored and
scored it and RL papers report it; `raw` is the whole completion, `model_output`, as the official MMAU script reads it.
"""

import random
import re
from collections import defaultdict

from r1_aqa.prompts import answer_or_completion

_WORD = re.compile(r"\b\w+\b")
FIELDS = {
    "answer": "model_prediction (the text of the last <answer> tag, or the whole completion without one)",
    "raw": "model_output (the whole completion)",
}
HEADLINE = "answer"
LEGACY_FIELDS = {"model_prediction": "answer", "model_output": "raw"}  # what `--field` took before


def tokens(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def mmau_match(prediction: str, answer: str, choices: list[str]) -> bool:
    """Correct iff the prediction has a token, holds every answer token, and no token found only in wrong choices."""
    predicted = tokens(prediction)
    if not predicted:
        return False
    correct = tokens(answer)
    if not correct <= predicted:
        return False
    for choice in choices:
        wrong = tokens(choice)
        if wrong == correct:
            continue
        if predicted & (wrong - correct):
            return False
    return True


def scored_text(item: dict, field: str) -> str | None:
    """The text `field` scores for one item; None when the item has no output (counted wrong, and as missing).
    A `model_prediction` of None (files written before it held the fallback) means no tag: the completion counts."""
    output = item.get("model_output")
    if field == "raw":
        return output if isinstance(output, str) else None
    if isinstance(item.get("model_prediction"), str):
        return item["model_prediction"]
    return answer_or_completion(output) if isinstance(output, str) else None


def entry(correct: int, count: int) -> dict:
    return {"correct": correct, "count": count, "accuracy": 100.0 * correct / count if count else 0.0}


def score_items(items: list[dict], groups: tuple[str, ...], order: tuple[str, ...], field: str = HEADLINE) -> dict:
    """Official rule per item; totals per group and overall. No output counts as wrong (the official scripts skip
    such an item, which hides it)."""
    counts = {group: defaultdict(lambda: [0, 0]) for group in groups}
    correct_total, missing = 0, 0
    for item in items:
        text = scored_text(item, field)
        missing += text is None
        is_correct = text is not None and mmau_match(text, item["answer"], item["choices"])
        correct_total += is_correct
        for group in groups:
            counts[group][item[group]][0] += is_correct
            counts[group][item[group]][1] += 1
    metrics = {"total": entry(correct_total, len(items)), "missing": missing}
    for group in groups:
        listed = sorted(counts[group], key=lambda key: (order.index(key) if key in order else len(order), key))
        metrics[group] = {key: entry(*counts[group][key]) for key in listed}
    return metrics


def floor_predictions(items: list[dict], rule: str, seed: int = 0) -> list[dict]:
    """What a model that ignores everything would answer: the first choice, or a seeded random one."""
    rng = random.Random(seed)
    pick = (lambda choices: choices[0]) if rule == "first_choice" else rng.choice
    return [{**item, "model_output": pick(item["choices"]), "model_prediction": None} for item in items]


def metrics_for(benchmark, predictions: list[dict], silence: list[dict] | None = None, field: str = HEADLINE,
                seed: int = 0) -> dict:  # fmt: skip
    """Both fields' figures (`fields`), the headline's also at the top level, with the floors beside them."""
    if field not in FIELDS:
        raise ValueError(f"field must be one of {sorted(FIELDS)}, got {field!r}")

    def score(items: list[dict], which: str) -> dict:
        return score_items(items, benchmark.groups, benchmark.order, which)

    fields = {name: {"source": source, **score(predictions, name)} for name, source in FIELDS.items()}
    metrics = {
        "benchmark": {
            "key": benchmark.name,
            "official_key": benchmark.official_key,
            **benchmark.detect_version(predictions),
        },  # fmt: skip
        "scored_field": field,
        "headline": field,
        **{key: value for key, value in fields[field].items() if key != "source"},
        "fields": fields,
        "answer_not_a_choice": [item["id"] for item in predictions if item["answer"] not in item["choices"]],
    }
    floors = {
        "first_choice": score(floor_predictions(predictions, "first_choice"), field),
        "random": {"seed": seed, **score(floor_predictions(predictions, "random", seed), field)},
    }
    if silence is not None:
        floors["silent_audio"] = score(silence, field)
    kept = ("seed", "total", *benchmark.floor_groups)
    metrics["floors"] = {name: {k: v for k, v in floor.items() if k in kept} for name, floor in floors.items()}
    return metrics


def version_text(benchmark: dict) -> str:
    return benchmark.get("version") or " or ".join(benchmark.get("matching_versions", [])) or "unknown version"


def format_metrics(metrics: dict, table_groups: tuple[str, ...]) -> str:
    benchmark = metrics["benchmark"]
    field = metrics["scored_field"]
    lines = [f"{benchmark['name']} {version_text(benchmark)}: {benchmark['items']} items, scored on {field} "
             f"({FIELDS.get(field, field)})"]  # fmt: skip
    floors = metrics["floors"]
    lines.append(f"{'':<26}{'model':>8}" + "".join(f"{name:>14}" for name in floors))
    rows = [("total", metrics["total"], {n: f["total"] for n, f in floors.items()})]
    for group in table_groups:
        for key, value in metrics[group].items():
            rows.append((key, value, {n: f.get(group, {}).get(key) for n, f in floors.items()}))
    for key, value, floor in rows:
        cells = "".join(f"{v['accuracy']:>13.2f}%" if v else f"{'-':>14}" for v in floor.values())
        lines.append(f"{key[:25]:<26}{value['accuracy']:>7.2f}%{cells}")
    other = [name for name in metrics.get("fields", {}) if name != field]
    for name in other:
        lines.append(f"total scored on {name}: {metrics['fields'][name]['total']['accuracy']:.2f}%")
    lines.append(f"missing outputs (counted wrong): {metrics['missing']}")
    if metrics.get("answer_not_a_choice"):
        lines.append(f"answer not one of the choices (kept, scored as is): {', '.join(metrics['answer_not_a_choice'])}")
    if "cut_clips" in metrics:
        cut = metrics["cut_clips"]
        lines.append(f"clips cut to the model's {cut['max_seconds']:.0f} s: {cut['count']}")
    return "\n".join(lines)
