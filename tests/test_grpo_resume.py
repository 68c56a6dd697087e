"""A resumed GRPO run sees the uninterrupted run's prompts, in its order, with its generate/reuse schedule; a
checkpoint that cannot be resumed so is refused, and a run that would write one is refused at start."""

import pytest
from accelerate.data_loader import DataLoaderShard
from conftest import write_training_set
from test_trainer import grpo_rows, make_trainer
from transformers import TrainerCallback
from trl.trainer.utils import RepeatSampler

from r1_aqa.checkpoints import CheckpointError
from r1_aqa.grpo_resume import EpochRepeatSampler

# 8 prompts, 4 per generation (8 rows / 2 completions), each generation used for 2 steps (num_iterations 2):
# an epoch is 4 steps, 2 generation windows; checkpoints every 2 steps fall on window starts.
SCHEDULE = dict(
    per_device_train_batch_size=8,
    num_generations=2,
    num_iterations=2,
    max_completion_length=4,
    max_steps=8,
    save_strategy="steps",
    save_steps=2,
)


class SaveAtStep(TrainerCallback):
    """Force a checkpoint at one step, as a run written before the start-up check (or a user's callback) could."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_save = True


def traced(trainer) -> list[tuple[int, str, list[str]]]:
    """(global step, 'generate' or 'reuse', the row ids of the generation trained on) for each micro-step."""
    trace, generations = [], []
    generate, prepare = trainer._generate_and_score_completions, trainer._prepare_inputs

    def generating(inputs):
        generations.append([row["id"] for row in inputs])
        return generate(inputs)

    def preparing(generation_batch):
        before = len(generations)
        inputs = prepare(generation_batch)
        decision = "generate" if len(generations) > before else "reuse"
        trace.append((trainer.state.global_step, decision, generations[-1]))
        return inputs

    trainer._generate_and_score_completions = generating
    trainer._prepare_inputs = preparing
    return trace


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_dir, tmp_path_factory):
    """Two epochs without interruption: its trace, its output folder (checkpoint-1, -2, -4, -6, -8) and its rows."""
    root = tmp_path_factory.mktemp("grpo-resume")
    rows = grpo_rows(write_training_set(root, 0.5))
    trainer = make_trainer(tiny_model_dir, rows, root / "run", **SCHEDULE)
    trainer.add_callback(SaveAtStep(1))  # inside the first window: for the refusal test
    trace = traced(trainer)
    trainer.train()
    return trace, root / "run", rows


@pytest.mark.parametrize(
    ("step", "forwarded"),
    [
        # why: inside epoch 0, the next window's generation comes from the skipped-to batch (this row passed on the
        # old code too: a window start needs no micro-step counter; a checkpoint inside a window is the refusal test)
        (2, True),
        (4, True),  # why: at the end of epoch 0, the resumed run starts epoch 1 afresh
        (6, True),  # why: inside epoch 1, whose order a fresh sampler would take from epoch 0
        (6, False),  # why: with 2 processes, accelerate's skipping wrapper does not pass set_epoch to the sampler
    ],
    ids=["epoch0", "epoch-end", "epoch1", "epoch1-set-epoch-not-forwarded"],
)
def test_resumed_run_sees_the_uninterrupted_prompts_and_schedule(
    tiny_model_dir, uninterrupted, tmp_path, monkeypatch, step, forwarded
):
    trace, run, rows = uninterrupted
    assert [decision for _, decision, _ in trace] == ["generate", "reuse"] * 4  # num_iterations 2 reuses once
    assert trace[:4] != trace[4:], "both epochs in one order: a resume in epoch 1 could not go wrong"

    trainer = make_trainer(tiny_model_dir, rows, tmp_path / "resumed", **SCHEDULE)
    resumed = traced(trainer)
    if not forwarded:
        monkeypatch.setattr(DataLoaderShard, "set_epoch", lambda self, epoch: None)
    trainer.train(resume_from_checkpoint=str(run / f"checkpoint-{step}"))
    assert resumed == trace[step:]


def test_a_checkpoint_inside_a_generation_window_is_refused_naming_the_resumable_steps(
    tiny_model_dir, uninterrupted, tmp_path
):
    _, run, rows = uninterrupted
    trainer = make_trainer(tiny_model_dir, rows, tmp_path / "resumed", **SCHEDULE)
    generations = traced(trainer)
    with pytest.raises(CheckpointError, match=r"checkpoint-1.*multiple of 2 steps"):
        trainer.train(resume_from_checkpoint=str(run / "checkpoint-1"))
    assert generations == []


@pytest.mark.parametrize(
    ("overrides", "period"),
    [
        ({"save_steps": 1}, 2),  # why: one generation serves 2 steps, so odd steps are inside a window
        ({"save_steps": 3}, 2),  # why: 3, 9, ... are inside too, though 6 is not
        ({"save_steps": 0.125}, 2),  # why: a fraction of max_steps (8), resolved to 1 step
        ({"num_iterations": 3, "max_steps": 6}, 3),  # why: one generation serves 3 steps
        # why: a window is 2 (steps_per_generation = accumulation) x 2 iterations = 4 micro-steps = 2 steps
        ({"gradient_accumulation_steps": 2, "per_device_train_batch_size": 4, "save_steps": 1}, 2),
    ],
    ids=lambda value: ",".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else f"period={value}",
)
def test_a_run_that_would_write_an_unresumable_checkpoint_is_refused_at_start(
    tiny_model_dir, uninterrupted, tmp_path, overrides, period
):
    _, _, rows = uninterrupted
    trainer = make_trainer(tiny_model_dir, rows, tmp_path / "run", **{**SCHEDULE, **overrides})
    generations = traced(trainer)
    with pytest.raises(ValueError, match=rf"multiple of {period}\b"):
        trainer.train()
    assert generations == []


def test_epoch_order_is_upstreams_and_depends_on_the_epoch_alone():
    upstream = RepeatSampler(range(10), mini_repeat_count=2, batch_size=5, repeat_count=2, seed=3)
    orders = [list(upstream) for _ in range(3)]
    assert orders[0] != orders[1] != orders[2]
    for epoch in (2, 0, 1):  # why: a resumed run starts at any epoch, on a fresh sampler
        fresh = EpochRepeatSampler(range(10), mini_repeat_count=2, batch_size=5, repeat_count=2, seed=3)
        fresh.set_epoch(epoch)
        assert list(fresh) == orders[epoch], epoch
    never_told = EpochRepeatSampler(range(10), mini_repeat_count=2, batch_size=5, repeat_count=2, seed=3)
    assert [list(never_told) for _ in range(3)] == orders  # a loop that never calls set_epoch: upstream's passes
