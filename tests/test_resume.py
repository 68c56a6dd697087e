"""Resuming without DeepSpeed (the demo's accelerate config, one GPU, `python -m r1_aqa.sft --resume true`): the
resumed run holds the checkpoint's weights, stops on keys that do not fit, and skips a half-written checkpoint."""

import logging
import shutil
from pathlib import Path

import pytest
import safetensors.torch
import torch
from conftest import write_training_set
from test_trainer import grpo_rows, make_trainer
from transformers import TrainerCallback
from trl import SFTConfig

from r1_aqa import sft
from r1_aqa.checkpoints import COMPLETE_MARKER, CheckpointError
from r1_aqa.models import AudioModelConfig, load_model


def sft_run(model_dir, data_file, output_dir, resume=False):
    """`python -m r1_aqa.sft` in-process: 4 steps of 2 rows (8 rows: one epoch), a checkpoint every 2 steps."""
    data_args = sft.SFTDataArguments(data_file=str(data_file), resume=resume)
    training_args = SFTConfig(
        output_dir=str(output_dir), use_cpu=True, bf16=False, gradient_checkpointing=False, max_steps=4,
        save_steps=2, per_device_train_batch_size=2, learning_rate=1e-3, report_to="none", logging_steps=1, seed=0,
    )  # fmt: skip
    model_args = AudioModelConfig(model_name_or_path=model_dir, dtype="float32")
    sft.main(data_args, training_args, model_args)


def weights(folder) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(Path(folder) / "model.safetensors"))


def max_difference(left: dict, right: dict) -> float:
    assert left.keys() == right.keys()
    return max((left[key] - right[key]).abs().max().item() for key in left)


@pytest.fixture(scope="module")
def sft_uninterrupted(tiny_model_dir, tmp_path_factory):
    """A 4-step SFT run with checkpoint-2 and checkpoint-4, and its training file."""
    root = tmp_path_factory.mktemp("sft-run")
    data_file = write_training_set(root, 1.0)
    sft_run(tiny_model_dir, data_file, root / "run")
    return root / "run", data_file


def test_sft_resumed_from_checkpoint_2_ends_with_the_uninterrupted_weights(tiny_model_dir, sft_uninterrupted, tmp_path):
    run, data_file = sft_uninterrupted
    resumed = tmp_path / "resumed"
    shutil.copytree(run / "checkpoint-2", resumed / "checkpoint-2")
    sft_run(tiny_model_dir, data_file, resumed, resume=True)
    # The check can fail: a resumed run that restarted from the initial weights would end near checkpoint-2.
    assert max_difference(weights(run), weights(run / "checkpoint-2")) > 1e-4
    assert max_difference(weights(resumed), weights(run)) < 1e-6


def test_resume_skips_a_half_written_checkpoint(tiny_model_dir, sft_uninterrupted, tmp_path, caplog):
    run, data_file = sft_uninterrupted
    resumed = tmp_path / "resumed"
    shutil.copytree(run / "checkpoint-2", resumed / "checkpoint-2")
    # A job killed while writing checkpoint-4: the trainer state is there, the weights and the marker are not.
    (resumed / "checkpoint-4").mkdir()
    shutil.copy(run / "checkpoint-4" / "trainer_state.json", resumed / "checkpoint-4")
    with caplog.at_level(logging.INFO):
        sft_run(tiny_model_dir, data_file, resumed, resume=True)
    assert f"skipping {resumed / 'checkpoint-4'}" in caplog.text
    assert f"resuming from {resumed / 'checkpoint-2'}" in caplog.text
    assert (resumed / "checkpoint-4" / COMPLETE_MARKER).is_file()
    assert max_difference(weights(resumed), weights(run)) < 1e-6


class WeightsAtStart(TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.weights = {name: p.detach().clone() for name, p in model.named_parameters()}


def grpo_checkpoints(model_dir, train_file, output_dir):
    trainer = make_trainer(model_dir, grpo_rows(train_file), output_dir, max_steps=2, save_strategy="steps",
                           save_steps=1, beta=0.04)  # fmt: skip
    trainer.train()
    return trainer


def test_grpo_resumed_run_holds_the_checkpoints_weights(tiny_model_dir, train_file, tmp_path):
    grpo_checkpoints(tiny_model_dir, train_file, tmp_path / "run")
    checkpoint = tmp_path / "run" / "checkpoint-1"
    saved = {name: p.detach() for name, p in load_model(str(checkpoint), "float32").named_parameters()}
    initial = {name: p.detach() for name, p in load_model(tiny_model_dir, "float32").named_parameters()}
    assert max_difference(saved, initial) > 1e-4, "step 1 changed nothing: the test could not fail"

    trainer = make_trainer(tiny_model_dir, grpo_rows(train_file), tmp_path / "run", max_steps=2, beta=0.04)
    start = WeightsAtStart()
    trainer.add_callback(start)
    trainer.train(resume_from_checkpoint=str(checkpoint))
    assert max_difference(start.weights, saved) == 0.0


def test_a_checkpoint_key_that_does_not_fit_stops_the_run_naming_it(tiny_model_dir, train_file, tmp_path):
    grpo_checkpoints(tiny_model_dir, train_file, tmp_path / "run")
    checkpoint = tmp_path / "run" / "checkpoint-1"
    tensors = weights(checkpoint)
    dropped = next(key for key in tensors if key.startswith("audio_tower.layers.0."))
    del tensors[dropped]
    tensors["audio_tower.extra_layer.weight"] = torch.zeros(2)
    safetensors.torch.save_file(tensors, str(checkpoint / "model.safetensors"), metadata={"format": "pt"})

    trainer = make_trainer(tiny_model_dir, grpo_rows(train_file), tmp_path / "run", max_steps=2)
    with pytest.raises(CheckpointError) as error:
        trainer.train(resume_from_checkpoint=str(checkpoint))
    message = str(error.value)
    assert str(checkpoint) in message
    assert "audio_tower.extra_layer.weight" in message
    assert "model." + dropped in message  # named as the model calls it: model.audio_tower.layers.0...


def test_lora_resumed_run_holds_the_checkpoints_adapter(tiny_model_dir, train_file, tmp_path):
    from peft import LoraConfig, PeftModel

    def lora():
        return LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])

    rows = grpo_rows(train_file)
    make_trainer(tiny_model_dir, rows, tmp_path / "run", lora(), max_steps=2, save_strategy="steps", save_steps=1,
                 learning_rate=1e-2).train()  # fmt: skip
    checkpoint = tmp_path / "run" / "checkpoint-1"
    saved = PeftModel.from_pretrained(load_model(tiny_model_dir, "float32"), str(checkpoint)).named_parameters()
    saved = {name: p.detach() for name, p in saved if "lora_" in name}
    assert any(p.abs().max() > 0 for name, p in saved.items() if "lora_B" in name), "lora_B still at its zero init"

    trainer = make_trainer(tiny_model_dir, rows, tmp_path / "run", lora(), max_steps=2, learning_rate=1e-2)
    start = WeightsAtStart()
    trainer.add_callback(start)
    trainer.train(resume_from_checkpoint=str(checkpoint))
    assert max_difference({name: start.weights[name] for name in saved}, saved) == 0.0
