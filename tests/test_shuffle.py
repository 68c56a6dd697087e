"""Choice shuffling in GRPO: uniform positions over epochs, rewards unchanged, the same orders after a resume, and
the pass rate and answer positions in the trainer's logs."""

import ast
import re
from collections import Counter

import pytest
import torch
from conftest import training_row, write_clip, write_jsonl
from test_grpo_resume import SCHEDULE
from test_trainer import grpo_rows, make_trainer

from r1_aqa.choice_order import NO_CHOICE, ChoiceShuffle, choice_metrics, position
from r1_aqa.prompts import messages
from r1_aqa.rewards import get_rewards

CHOICES = ["tone", "noise", "silence", "chirp"]


def row(item_id="7", answer=0, style="answer"):
    """A training row as `data.to_grpo_row` builds it."""
    return {
        "prompt": messages("/clips/a.wav", "What sound is in the audio?", CHOICES, style),
        "solution": CHOICES[answer],
        "choices": list(CHOICES),
        "question": "What sound is in the audio?",
        "id": item_id,
    }


def shown_text(prompt: list[dict]) -> str:
    return next(part["text"] for part in prompt[0]["content"] if part.get("type") == "text")


def correct_positions(shuffle, epochs, items=("7",)) -> Counter:
    positions = Counter()
    for item in items:
        for epoch in range(epochs):
            built = shuffle.row(row(item), epoch) if shuffle else row(item)
            positions[position(built["solution"], built["choices"])] += 1
    return positions


@pytest.mark.parametrize(
    ("shuffle", "uniform"),
    [
        (ChoiceShuffle(seed=42, prompt_style="answer"), True),  # why: a new order each epoch
        (None, False),  # why: the fixed order keeps the gold answer first: the check must be able to fail
    ],
    ids=["shuffled", "fixed"],
)
def test_the_correct_choice_position_is_uniform_over_epochs(shuffle, uniform):
    positions = correct_positions(shuffle, epochs=800)
    # 200 expected per position; binomial sd ~12, so 60 is 5 sd: a fair shuffle fails this about never.
    assert all(abs(positions[index] - 200) < 60 for index in range(4)) == uniform, positions


def test_orders_differ_by_epoch_item_and_seed_and_repeat_for_the_same_triple():
    shuffle = ChoiceShuffle(seed=42, prompt_style="answer")
    by_epoch = {tuple(shuffle.row(row(), epoch)["choices"]) for epoch in range(20)}
    by_item = {tuple(shuffle.row(row(str(item)), 0)["choices"]) for item in range(20)}
    by_seed = {tuple(ChoiceShuffle(seed, "answer").row(row(), 0)["choices"]) for seed in range(20)}
    assert min(len(by_epoch), len(by_item), len(by_seed)) > 5
    assert shuffle.row(row(), 3) == ChoiceShuffle(seed=42, prompt_style="answer").row(row(), 3)


def test_the_prompt_shows_the_drawn_order_and_keeps_question_clip_and_solution():
    original = row(answer=2, style="think")
    built = ChoiceShuffle(seed=1, prompt_style="think").row(original, epoch=5)
    assert sorted(built["choices"]) == sorted(CHOICES) and built["choices"] != CHOICES
    assert built["solution"] == "silence" and built["id"] == original["id"]
    assert shown_text(built["prompt"]).startswith("What sound is in the audio? Please choose")
    assert shown(built["prompt"]) == ("/clips/a.wav", built["choices"]) and "<think>" in shown_text(built["prompt"])
    assert original["choices"] == CHOICES  # the dataset's row is not changed in place


@pytest.mark.parametrize(
    "completion",
    [
        "<think>it hums</think><answer>silence</answer>",  # why: the correct choice
        "<think>it hisses</think><answer>noise</answer>",  # why: a wrong one
        "<think>x</think><answer>(C) silence</answer>",  # why: a lettered answer, which mmau_match accepts
        "<think>x</think><answer>C</answer>",  # why: a bare letter names a position, which shuffling moves
        "no tags at all",  # why: nothing to extract
    ],
)
def test_rewards_are_unchanged_by_shuffling_for_the_same_completion(completion):
    rewards = get_rewards(["accuracy", "mmau_match", "format", "think_length"], "think", think_budget_words=5)
    original = row(answer=2, style="think")
    shuffle = ChoiceShuffle(seed=0, prompt_style="think")
    for epoch in range(8):
        built = shuffle.row(original, epoch)
        for reward in rewards:
            columns = {key: [value] for key, value in built.items() if key != "prompt"}
            before = reward([completion], **{key: [value] for key, value in original.items() if key != "prompt"})
            assert reward([completion], **columns) == before, (reward.__name__, epoch, built["choices"])


@pytest.mark.parametrize(
    ("answered", "correct", "expected"),
    [
        # why: 2 groups of 2; group 1 half right, group 2 all wrong: pass rate 1/4, 1/2 of groups solved
        ([0, 1, 2, NO_CHOICE], [0, 0, 3, 3], {"pass_rate/mean": 0.25, "pass_rate/any_correct": 0.5}),
        # why: an answer that is no choice never matches, even where the solution is missing from the choices
        ([NO_CHOICE] * 4, [NO_CHOICE] * 4, {"pass_rate/mean": 0.0, "answer_position/none": 1.0}),
        # why: shares by shown position, answers against the correct choices' positions
        (
            [0, 0, 0, 1],
            [0, 1, 2, 3],
            {
                "answer_position/1": 0.75,
                "answer_position/2": 0.25,
                "correct_position/1": 0.25,
                "correct_position/4": 0.25,
            },
        ),
    ],
)
def test_choice_metrics(answered, correct, expected):
    metrics = choice_metrics(torch.tensor(answered), torch.tensor(correct), group_size=2, positions=4)
    assert {key: metrics[key] for key in expected} == expected
    assert sum(metrics[f"answer_position/{k}"] for k in range(1, 5)) + metrics["answer_position/none"] == 1.0


def shuffled_rows(root):
    """Eight items, the gold answer first in every one: a fixed order would put it first every time."""
    rows = []
    for index in range(8):
        write_clip(root / f"clip{index}.wav", 0.5, "tone" if index % 2 else "noise", 300.0 + 50 * index, seed=index)
        rows.append(training_row(index, f"clip{index}.wav", answer=0))
    return grpo_rows(write_jsonl(root / "train.jsonl", rows))


def shown(prompt: list[dict]) -> tuple[str, list[str]]:
    """(the clip, the choices in the order the prompt's text shows them)."""
    listed = re.search(r"options: (\[.*\])\. ", shown_text(prompt)).group(1)
    return prompt[0]["content"][0]["audio_url"], ast.literal_eval(listed)


def traced_prompts(trainer) -> list[tuple[int, list[tuple[str, list[str]]]]]:
    """(global step, (clip, shown choices) of each prompt) for each generation."""
    trace, tokenize = [], trainer._tokenize_prompts

    def tokenizing(prompts):
        trace.append((trainer.state.global_step, [shown(prompt) for prompt in prompts]))
        return tokenize(prompts)

    trainer._tokenize_prompts = tokenizing
    return trace


def shuffling(seed=0):
    return {"choice_shuffle": ChoiceShuffle(seed, "answer")}


@pytest.fixture(scope="module")
def shuffled_run(tiny_model_dir, tmp_path_factory):
    """Two epochs with shuffled choices (checkpoints every 2 steps, 4 steps an epoch): trace, run folder, rows."""
    root = tmp_path_factory.mktemp("shuffled")
    rows = shuffled_rows(root)
    trainer = make_trainer(tiny_model_dir, rows, root / "run", trainer_kwargs=shuffling(), **SCHEDULE)
    trace = traced_prompts(trainer)
    trainer.train()
    return trace, root / "run", rows


def test_training_prompts_show_a_new_order_each_epoch_the_same_for_a_whole_group(shuffled_run):
    trace, _, _ = shuffled_run
    assert [step for step, _ in trace] == [0, 2, 4, 6]  # epoch 0: steps 0-3, epoch 1: steps 4-7
    for _, prompts in trace:  # each prompt's row repeated num_generations (2) times in a row
        assert prompts[0::2] == prompts[1::2]
    epochs = [dict(trace[0][1] + trace[1][1]), dict(trace[2][1] + trace[3][1])]
    assert epochs[0].keys() == epochs[1].keys() and len(epochs[0]) == 8
    assert sum(epochs[0][clip] != epochs[1][clip] for clip in epochs[0]) >= 4, "the orders hardly changed"
    assert {tuple(choices) for choices in epochs[0].values()} != {("tone", "noise", "silence", "chirp")}


@pytest.mark.parametrize("step", [2, 4, 6], ids=["epoch0", "epoch-end", "epoch1"])
def test_a_resumed_run_shows_the_uninterrupted_runs_orders(tiny_model_dir, shuffled_run, tmp_path, step):
    trace, run, rows = shuffled_run
    trainer = make_trainer(tiny_model_dir, rows, tmp_path / "resumed", trainer_kwargs=shuffling(), **SCHEDULE)
    resumed = traced_prompts(trainer)
    trainer.train(resume_from_checkpoint=str(run / f"checkpoint-{step}"))
    assert resumed == [entry for entry in trace if entry[0] >= step]
    assert resumed, "nothing compared"


def test_another_seed_shows_other_orders(tiny_model_dir, shuffled_run, tmp_path):
    trace, run, rows = shuffled_run  # why: the resume test must not pass because the order ignores the seed
    trainer = make_trainer(tiny_model_dir, rows, tmp_path / "resumed", trainer_kwargs=shuffling(seed=1), **SCHEDULE)
    other = traced_prompts(trainer)
    trainer.train(resume_from_checkpoint=str(run / "checkpoint-6"))
    assert [step for step, _ in other] == [6] and other != trace[3:]


def test_pass_rate_and_answer_positions_are_logged_each_step(tiny_model_dir, tmp_path):
    rows = shuffled_rows(tmp_path)
    trainer = make_trainer(tiny_model_dir, rows, tmp_path / "run", trainer_kwargs=shuffling(), max_steps=3)
    # Every completion answers "tone", the gold answer of every item: its shown position is the gold one's.
    trainer.processing_class.batch_decode = lambda ids, **kwargs: ["<answer>tone</answer>"] * len(ids)
    trace = traced_prompts(trainer)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "pass_rate/mean" in entry]
    assert len(logged) == 3 and "frac_reward_zero_std" in logged[0]
    for entry, (_, prompts) in zip(logged, trace, strict=True):
        expected = Counter(choices.index("tone") + 1 for _, choices in prompts)
        assert entry["pass_rate/mean"] == 1.0 and entry["pass_rate/any_correct"] == 1.0
        assert entry["rewards/length_reward/mean"] == len("<answer>tone</answer>")  # the rewards saw the same text
        for k in range(1, 5):
            assert entry[f"answer_position/{k}"] == pytest.approx(expected[k] / len(prompts)), (k, prompts)
            assert entry[f"correct_position/{k}"] == entry[f"answer_position/{k}"]
        assert entry["answer_position/none"] == 0.0
    assert sum(entry["answer_position/1"] for entry in logged) < 3, "positions of the original order were logged"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"shuffle_choices": True}, ChoiceShuffle(seed=5, prompt_style="answer")),  # why: the run seed draws orders
        ({}, None),  # why: off by default, as the paper trained
    ],
)
def test_the_recipe_key_reaches_the_trainer(tiny_model_dir, train_file, tmp_path, monkeypatch, options, expected):
    from trl import GRPOConfig

    from r1_aqa import train
    from r1_aqa.models import AudioModelConfig

    built = []
    monkeypatch.setattr(train, "train_and_save", lambda trainer, *args: built.append(trainer))
    settings = dict(use_cpu=True, bf16=False, per_device_train_batch_size=8, num_generations=4, report_to="none")
    train.main(
        train.GRPODataArguments(data_file=str(train_file), **options),
        GRPOConfig(output_dir=str(tmp_path), seed=5, **settings),
        AudioModelConfig(model_name_or_path=tiny_model_dir, dtype="float32"),
    )
    assert built[0].choice_shuffle == expected


def test_think_length_without_the_think_prompt_is_refused_at_parse_time(train_file):
    from r1_aqa.train import GRPODataArguments

    with pytest.raises(ValueError, match="prompt_style think"):
        GRPODataArguments(data_file=str(train_file), reward_funcs=["accuracy", "think_length"])
    assert GRPODataArguments(data_file=str(train_file), reward_funcs=["think_length"], prompt_style="think")
