"""GRPO moves the policy toward what the reward asks, and away when the reward is negated (audio aside)."""

import pytest
from test_trainer import grpo_rows, make_trainer

from r1_aqa.prompts import completion_text

LETTER = "e"  # frequent in the tiny tokenizer's corpus, so a random model already emits it sometimes


def letter_share(completions, **kwargs) -> list[float]:
    """Share of the completion's characters that are LETTER: varies within every group of a random model."""
    return [completion_text(c).count(LETTER) / max(len(completion_text(c)), 1) for c in completions]


def negated_letter_share(completions, **kwargs) -> list[float]:
    return [-reward for reward in letter_share(completions)]


def mean_share(trainer, steps: slice) -> float:
    """The mean of the (unsigned) share over some logged steps, whichever sign the run was rewarded with."""
    history = [entry for entry in trainer.state.log_history if "reward" in entry]
    rewards = [abs(entry["reward"]) for entry in history[steps]]
    return sum(rewards) / len(rewards)


@pytest.mark.parametrize(("reward", "direction"), [(letter_share, 1), (negated_letter_share, -1)])
def test_grpo_follows_the_sign_of_the_reward(tiny_model_dir, train_file, tmp_path, reward, direction):
    # lr 3e-2: far above a real run's, so that 30 steps of a random model show the direction beyond noise.
    trainer = make_trainer(tiny_model_dir, grpo_rows(train_file), tmp_path / "out", reward_funcs=[reward],
                           max_steps=30, learning_rate=3e-2, max_completion_length=12, loss_type="dapo")  # fmt: skip
    trainer.train()
    before, after = mean_share(trainer, slice(0, 4)), mean_share(trainer, slice(-4, None))
    # A clear margin: the share at least doubles, or at least halves.
    assert (after > 2 * before) if direction > 0 else (after < before / 2), (before, after)
