"""Resuming GRPO exactly: the prompts, their order and the generate/reuse schedule of the uninterrupted run.

TRL 1.16 generates once per window of `steps_per_generation * num_iterations` micro-steps and keeps the
generations in memory only, and its sampler reshuffles by advancing its own generator at each pass. A resumed
run builds a fresh sampler (epoch 0's order in any epoch) and has no buffered generations. `ExactResume` orders each
epoch by (seed, epoch), refuses a checkpoint inside a window, and refuses at start a run that would write one.
"""

import math

import torch
from transformers.trainer_utils import SaveStrategy
from trl.trainer.utils import RepeatSampler

from r1_aqa.checkpoints import CheckpointError

# The upstream methods `ExactResume` overrides; tests/test_trainer.py fails loudly if one disappears.
RESUME_HOOKS = ("_get_train_sampler", "_init_training_state")


class EpochRepeatSampler(RepeatSampler):
    """TRL's RepeatSampler whose order in epoch e is upstream's e-th pass, however many passes this instance made."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch  # the Trainer calls this before each epoch (accelerate forwards it to the sampler)

    def __iter__(self):
        if self.shuffle and self.seed is not None:
            self.generator.manual_seed(self.seed)
            for _ in range(self.epoch):  # upstream draws one permutation per pass: skip those of earlier epochs
                torch.randperm(self.num_samples, generator=self.generator)
        self.epoch += 1  # a loop that never calls set_epoch still gets upstream's next order at each pass
        yield from super().__iter__()


def generation_period(args) -> int:
    """Optimizer steps from one generation-window start to the next: the steps whose checkpoints can resume."""
    window = args.steps_per_generation * args.num_iterations  # micro-steps that share one generation
    return window // math.gcd(window, args.gradient_accumulation_steps)


class ExactResume:
    """GRPOTrainer mixin: a resumed run sees the uninterrupted run's prompts, order and generate/reuse schedule."""

    _epoch_sampler: EpochRepeatSampler | None = None  # None for an iterable dataset, which upstream streams

    def _get_train_sampler(self, dataset=None):
        # Upstream's sampler has no set_epoch: a resumed run's fresh one would replay epoch 0's order.
        upstream = super()._get_train_sampler(dataset)
        self._epoch_sampler = EpochRepeatSampler(
            upstream.data_source,
            upstream.mini_repeat_count,
            upstream.batch_size,
            upstream.repeat_count,
            upstream.shuffle,
            upstream.seed,
        )
        return self._epoch_sampler

    def _init_training_state(self, max_steps, num_update_steps_per_epoch, num_train_epochs, checkpoint, trial):
        # Upstream does not save the generations buffered for a window, so only a window start resumes exactly.
        epochs_trained, skipped = super()._init_training_state(
            max_steps, num_update_steps_per_epoch, num_train_epochs, checkpoint, trial
        )
        period = generation_period(self.args)
        describe = (
            f"one generation serves steps_per_generation x num_iterations = {self.args.steps_per_generation} x "
            f"{self.num_iterations} micro-steps ({self.args.gradient_accumulation_steps} per optimizer step) and is "
            "kept in memory only"
        )
        # The final checkpoint (max_steps) is not checked: it ends the run; resuming it to train on is refused below.
        if self.args.save_strategy == SaveStrategy.STEPS and self.state.save_steps % period:
            raise ValueError(
                f"save_steps={self.state.save_steps} must be a multiple of {period}: "
                f"{describe}, so a checkpoint inside a generation window could not be resumed"
            )
        if checkpoint is not None:
            if skipped % (self.args.steps_per_generation * self.num_iterations):
                raise CheckpointError(
                    f"{checkpoint}: step {self.state.global_step} is inside a generation window: {describe}, so "
                    f"this checkpoint cannot be resumed exactly; resume from a checkpoint at a multiple of {period} "
                    "steps within its epoch"
                )
            # Upstream's micro-step counter restarts at 0; it is read modulo the window only, and each epoch holds
            # whole windows, so at a window start 0 is where the uninterrupted run had it: nothing to restore.
            if self._epoch_sampler is not None:
                # With several processes, the wrapper that skips the trained batches does not pass set_epoch on.
                self._epoch_sampler.set_epoch(epochs_trained)
        return epochs_trained, skipped
