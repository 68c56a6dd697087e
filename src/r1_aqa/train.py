"""GRPO training of an audio-language model on multiple-choice audio questions.

    accelerate launch --config_file configs/accelerate/zero3.yaml -m r1_aqa.train \
        --config configs/r1_aqa_qwen2_audio_7b.yaml [--any_key value ...]

`run_grpo.sh` wraps this command. Every hyperparameter comes from the YAML recipe or the command line.
"""

import logging
import os
import sys
from dataclasses import asdict, dataclass, field

import yaml
from datasets import Dataset
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint
from trl import GRPOConfig, ModelConfig, TrlParser, get_peft_config

from r1_aqa.data import DataError, load_rows, to_grpo_row
from r1_aqa.models import load_model, load_processor
from r1_aqa.prompts import INSTRUCTIONS
from r1_aqa.rewards import REWARDS, get_rewards
from r1_aqa.trainer import AudioGRPOTrainer

logger = logging.getLogger(__name__)

RESOLVED_CONFIG = "resolved_config.yaml"


@dataclass
class DataArguments:
    data_file: str = field(metadata={"help": "training JSON lines (see `python -m r1_aqa.data check`)"})
    prompt_style: str = field(default="answer", metadata={"help": f"one of {sorted(INSTRUCTIONS)}"})
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy", "format"],
        metadata={"help": f"names from {sorted(REWARDS)}; weights: reward_weights"},
    )
    question_video_to_audio: bool = field(
        default=True, metadata={"help": "replace 'video' by 'audio' in questions (AVQA)"}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "use only the first N rows"})
    resume: bool = field(default=False, metadata={"help": "continue from the last checkpoint-N in output_dir"})

    def __post_init__(self):
        if self.prompt_style not in INSTRUCTIONS:
            raise ValueError(f"prompt_style must be one of {sorted(INSTRUCTIONS)}, got {self.prompt_style!r}")
        unknown = [name for name in self.reward_funcs if name not in REWARDS]
        if unknown:
            raise ValueError(f"unknown reward_funcs {unknown}; known: {sorted(REWARDS)}")


class SaveResolvedConfig(TrainerCallback):
    """Write every argument group next to each checkpoint, so any result traces back to its exact run."""

    def __init__(self, groups: dict):
        self.text = yaml.safe_dump(groups, sort_keys=False)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            with open(os.path.join(folder, RESOLVED_CONFIG), "w") as out:
                out.write(self.text)


def build_dataset(data_args: DataArguments) -> Dataset:
    rows = load_rows(data_args.data_file)
    if data_args.max_train_samples is not None:
        rows = rows[: data_args.max_train_samples]
    return Dataset.from_list(
        [to_grpo_row(row, data_args.prompt_style, data_args.question_video_to_audio) for row in rows]
    )


def resolved(data_args, training_args, model_args) -> dict:
    return {
        "data": asdict(data_args),
        "model": asdict(model_args),
        "training": {key: value for key, value in training_args.to_dict().items() if not key.startswith("_")},
    }


def main(data_args: DataArguments, training_args: GRPOConfig, model_args: ModelConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    groups = resolved(data_args, training_args, model_args)
    trainer = AudioGRPOTrainer(
        model=load_model(
            model_args.model_name_or_path, model_args.dtype, model_args.attn_implementation, model_args.model_revision
        ),
        processing_class=load_processor(model_args.model_name_or_path, revision=model_args.model_revision),
        reward_funcs=get_rewards(data_args.reward_funcs, data_args.prompt_style),
        args=training_args,
        train_dataset=build_dataset(data_args),
        peft_config=get_peft_config(model_args),
        callbacks=[SaveResolvedConfig(groups)],
    )
    checkpoint = training_args.resume_from_checkpoint
    if data_args.resume and checkpoint is None and os.path.isdir(training_args.output_dir):
        checkpoint = get_last_checkpoint(training_args.output_dir)
        logger.info("resuming from %s", checkpoint or "scratch (no checkpoint yet)")
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(training_args.output_dir)
    if trainer.accelerator.is_main_process:
        with open(os.path.join(training_args.output_dir, RESOLVED_CONFIG), "w") as out:
            yaml.safe_dump(groups, out, sort_keys=False)


if __name__ == "__main__":
    parser = TrlParser((DataArguments, GRPOConfig, ModelConfig))
    try:
        main(*parser.parse_args_and_config())
    except DataError as error:  # bad input: say what and where, without a traceback
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
