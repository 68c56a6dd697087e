"""MMAU's official matching rule (Sakshi113/MMAU `evaluation.py`), as a pure function."""

import re

_WORD = re.compile(r"\b\w+\b")


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
