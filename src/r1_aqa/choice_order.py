"""The order a question's choices are shown in, and which position each answer took.

A policy trained on one fixed order can learn where the gold answer tends to be (MMAU test-mini's is the first
choice in 39.5 % of items) instead of listening. With `shuffle_choices: true` each training prompt shows its choices
in an order drawn from (run seed, epoch, item id): a new order each epoch, the same one on every process and after a
resume, and the same for all completions of one prompt. Rewards compare answer texts, so they do not change.
"""

import hashlib
import random
from dataclasses import dataclass

import torch

from r1_aqa.prompts import audio_paths, extract_answer, messages
from r1_aqa.rewards import fold

NO_CHOICE = -1  # the position of an answer that is none of the choices (or no answer)


def permutation(seed: int, epoch: int, item_id: str, size: int) -> list[int]:
    """Indices into the original choices, in the order shown. Seeded by sha256 of the triple, not Python's salted
    hash(), so every process and every resumed run draws the same order."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{item_id}".encode()).digest()
    order = list(range(size))
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
    return order


def shown_choices(choices: list[str], seed: int, epoch: int, item_id: str) -> list[str]:
    return [choices[index] for index in permutation(seed, epoch, str(item_id), len(choices))]


@dataclass(frozen=True)
class ChoiceShuffle:
    """Rebuilds a training row (from `data.to_grpo_row`) with its choices in the epoch's order."""

    seed: int
    prompt_style: str

    def row(self, row: dict, epoch: int) -> dict:
        """`prompt` shows the drawn order and `choices` is that order (the positions logged are the shown ones);
        `solution`, the correct choice's text, is unchanged."""
        choices = shown_choices(row["choices"], self.seed, epoch, row["id"])
        (audio,) = audio_paths(row["prompt"])
        prompt = messages(audio, row["question"], choices, self.prompt_style)
        return {**row, "prompt": prompt, "choices": choices}


def position(text: str | None, choices: list[str]) -> int:
    """Where `text` is among the shown choices, folded as the accuracy reward compares them; NO_CHOICE if nowhere."""
    folded = [fold(choice) for choice in choices]
    return folded.index(fold(text)) if text is not None and fold(text) in folded else NO_CHOICE


def answer_position(completion: str, choices: list[str]) -> int:
    """The shown position of the choice the completion's last <answer> names, or NO_CHOICE."""
    return position(extract_answer(completion), choices)


def choice_metrics(answered: torch.Tensor, correct: torch.Tensor, group_size: int, positions: int) -> dict:
    """Per-step metrics from each completion's answered and correct positions (NO_CHOICE for none), in groups of
    `group_size` consecutive completions of one prompt:
    `pass_rate/mean`: the share of completions whose answer is the correct choice (the accuracy reward's rule);
    `pass_rate/any_correct`: the share of groups with at least one (groups without one teach nothing);
    `answer_position/k`: the share of completions answering the choice shown k-th (`none`: no choice), against
    `correct_position/k`, the share whose correct choice is shown k-th (what an unbiased perfect policy answers)."""
    hits = (answered == correct) & (correct != NO_CHOICE)
    metrics = {
        "pass_rate/mean": hits.float().mean().item(),
        "pass_rate/any_correct": hits.view(-1, group_size).any(dim=1).float().mean().item(),
        "answer_position/none": (answered == NO_CHOICE).float().mean().item(),
    }
    for position in range(positions):
        metrics[f"answer_position/{position + 1}"] = (answered == position).float().mean().item()
        metrics[f"correct_position/{position + 1}"] = (correct == position).float().mean().item()
    return metrics
