"""MMAU's official rule against 4000 predictions scored by the official `evaluation.py`."""

import json
from pathlib import Path

from r1_aqa.scoring import mmau_match

# Source: shared/mmau/scoring_cases.jsonl of this project (predictions over MMAU test-mini 2025-05-15, Apache-2.0,
# each with the verdict of Sakshi113/MMAU's evaluation.py). See tests/fixtures/README.md.
CASES = Path(__file__).parent / "fixtures" / "mmau" / "scoring_cases.jsonl"


def test_agrees_with_the_official_scorer_on_every_case():
    cases = [json.loads(line) for line in CASES.read_text().splitlines()]
    assert len(cases) == 4000
    disagreements = [c for c in cases if mmau_match(c["prediction"], c["answer"], c["choices"]) != c["official_match"]]
    assert not disagreements, disagreements[:3]
