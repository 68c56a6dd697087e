"""Reward functions with TRL's signature, chosen by name from `REWARDS`.

Each reads the dataset columns `solution` (the correct choice's text) and `choices`, which `data.to_grpo_rows`
adds, and returns one float per completion. Pure functions: no I/O, no globals, no environment switches. A factory
of the registry receives the recipe's prompt style and reward options (`think_budget_words`) and uses what it needs.
"""

import re
from collections.abc import Callable

from r1_aqa.prompts import completion_text, extract_answer, think_texts
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


def think_length_score(text: str, budget_words: int) -> float:
    """1 while the words inside <think> (every block, counted together) are within the budget, falling linearly to
    0 at twice the budget; 0 without a think block. Length only: the format reward asks for the structure."""
    blocks = think_texts(text)
    if not blocks:
        return 0.0
    words = sum(len(block.split()) for block in blocks)
    return min(1.0, max(0.0, 2.0 - words / budget_words))


def make_think_length_reward(style: str, budget_words: int | None) -> Callable[..., list[float]]:
    """`think_length_score` of each completion, for prompt_style think with a budget in words from the recipe."""
    if style != "think":
        raise ValueError(f"think_length needs prompt_style think (the prompt asks for <think>), got {style!r}")
    if budget_words is None or budget_words < 1:
        raise ValueError(f"think_length needs think_budget_words of at least 1, got {budget_words!r}")

    def think_length_reward(completions, **kwargs) -> list[float]:
        return [think_length_score(completion_text(c), budget_words) for c in completions]

    return think_length_reward


REWARDS: dict[str, Callable[..., Callable[..., list[float]]]] = {
    "accuracy": lambda style, **options: accuracy_reward,
    "mmau_match": lambda style, **options: mmau_match_reward,
    "format": lambda style, **options: make_format_reward(style),
    "think_length": lambda style, think_budget_words=None, **options: make_think_length_reward(
        style, think_budget_words
    ),
}


def get_rewards(
    names: list[str], style: str, think_budget_words: int | None = None
) -> list[Callable[..., list[float]]]:
    unknown = [name for name in names if name not in REWARDS]
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; known: {sorted(REWARDS)}")
    return [REWARDS[name](style, think_budget_words=think_budget_words) for name in names]
