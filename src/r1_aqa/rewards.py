"""Reward functions with TRL's signature, chosen by name from `REWARDS`.

Each reads the dataset columns `solution` (the correct choice's text) and `choices`, which `data.to_grpo_rows`
adds, and returns one float per completion. Pure functions: no I/O, no globals, no environment switches.
"""

import re
from collections.abc import Callable

from r1_aqa.prompts import completion_text, extract_answer
from r1_aqa.scoring import mmau_match as _mmau_match

# Exactly one tag pair of each kind, nothing outside them but whitespace, no tag nested inside another.
_NO_TAG = r"(?:(?!</?(?:answer|think)>).)*"
FORMATS = {
    "answer": re.compile(rf"\s*<answer>{_NO_TAG}</answer>\s*", re.DOTALL),
    "think": re.compile(rf"\s*<think>{_NO_TAG}</think>\s*<answer>{_NO_TAG}</answer>\s*", re.DOTALL),
}


def fold(text: str) -> str:
    """Case and whitespace folded: how the accuracy reward compares an answer with the correct choice (and the
    data checker finds choices the reward could not tell apart)."""
    return " ".join(text.split()).casefold()


def accuracy_reward(completions, solution, **kwargs) -> list[float]:
    """1 when the last <answer> holds the correct choice's text (case and whitespace folded), else 0."""
    rewards = []
    for completion, correct in zip(completions, solution, strict=True):
        answer = extract_answer(completion_text(completion))
        rewards.append(float(answer is not None and fold(answer) == fold(correct)))
    return rewards


def mmau_match_reward(completions, solution, choices, **kwargs) -> list[float]:
    """1 when the last <answer> is counted correct by MMAU's official rule, else 0."""
    rewards = []
    for completion, correct, options in zip(completions, solution, choices, strict=True):
        answer = extract_answer(completion_text(completion))
        rewards.append(float(answer is not None and _mmau_match(answer, correct, options)))
    return rewards


def make_format_reward(style: str) -> Callable[..., list[float]]:
    """1 when the whole completion is the tag structure the prompt style asks for, else 0."""
    if style not in FORMATS:
        raise ValueError(f"no format for prompt_style {style!r}; known: {sorted(FORMATS)}")
    pattern = FORMATS[style]

    def format_reward(completions, **kwargs) -> list[float]:
        return [float(pattern.fullmatch(completion_text(c)) is not None) for c in completions]

    format_reward.__name__ = "format_reward"  # TRL logs each reward under its function's name
    return format_reward


REWARDS: dict[str, Callable[[str], Callable[..., list[float]]]] = {
    "accuracy": lambda style: accuracy_reward,
    "mmau_match": lambda style: mmau_match_reward,
    "format": make_format_reward,
}


def get_rewards(names: list[str], style: str) -> list[Callable[..., list[float]]]:
    unknown = [name for name in names if name not in REWARDS]
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; known: {sorted(REWARDS)}")
    return [REWARDS[name](style) for name in names]
