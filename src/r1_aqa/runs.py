"""What every training entry point shares: data arguments, the resolved config beside each checkpoint, resume."""

import logging
import os
import sys
from dataclasses import asdict, dataclass, field

import yaml
from accelerate import PartialState
from datasets import Dataset
from transformers import TrainerCallback
from trl import TrlParser

from r1_aqa.checkpoints import COMPLETE_MARKER, CheckpointError, last_complete_checkpoint
from r1_aqa.data import DataError, load_rows, to_grpo_row
from r1_aqa.files import write_atomic
from r1_aqa.prompts import INSTRUCTIONS

logger = logging.getLogger(__name__)
RESOLVED_CONFIG = COMPLETE_MARKER  # the resolved config doubles as the marker of a whole checkpoint


@dataclass
class DataArguments:
    data_file: str = field(metadata={"help": "training JSON lines (see `python -m r1_aqa.data check`)"})
    prompt_style: str = field(default="answer", metadata={"help": f"one of {sorted(INSTRUCTIONS)}"})
    question_video_to_audio: bool = field(
        default=True, metadata={"help": "replace 'video' by 'audio' in questions (AVQA)"}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "use only the first N rows"})
    resume: bool = field(default=False, metadata={"help": "continue from the last checkpoint-N in output_dir"})

    def __post_init__(self):
        if self.prompt_style not in INSTRUCTIONS:
            raise ValueError(f"prompt_style must be one of {sorted(INSTRUCTIONS)}, got {self.prompt_style!r}")


def build_dataset(data_args: DataArguments, min_samples: int | None = None) -> Dataset:
    """Rows with `prompt` (the conversation with its clip), `solution`, `choices` and `id`; every clip at least
    `min_samples` long (the model family's minimum; default: every family's)."""
    rows = load_rows(data_args.data_file, min_samples=min_samples)
    if data_args.max_train_samples is not None:
        rows = rows[: data_args.max_train_samples]
    style, reword = data_args.prompt_style, data_args.question_video_to_audio
    return Dataset.from_list([to_grpo_row(row, style, reword) for row in rows])


def resolved(**groups) -> dict:
    """Every argument group as plain data, for `resolved_config.yaml`."""
    plain = {}
    for name, group in groups.items():
        values = group.to_dict() if hasattr(group, "to_dict") else asdict(group)
        plain[name] = {key: value for key, value in values.items() if not key.startswith("_")}
    return plain


class SaveResolvedConfig(TrainerCallback):
    """Write every argument group next to each checkpoint, so any result traces back to its exact run. Written
    last, once every process has written its part (ZeRO shards), it also marks the checkpoint as complete."""

    def __init__(self, groups: dict):
        self.text = yaml.safe_dump(groups, sort_keys=False)

    def on_save(self, args, state, control, **kwargs):
        PartialState().wait_for_everyone()
        if state.is_local_process_zero if args.save_on_each_node else state.is_world_process_zero:
            folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            write_atomic(os.path.join(folder, RESOLVED_CONFIG), self.text)


def train_and_save(trainer, data_args: DataArguments, groups: dict) -> None:
    """Train (resuming when asked), then save the final model and its resolved config in `output_dir`."""
    output_dir = trainer.args.output_dir
    checkpoint = trainer.args.resume_from_checkpoint
    if data_args.resume and checkpoint is None and os.path.isdir(output_dir):
        checkpoint = last_complete_checkpoint(output_dir)
        logger.info("resuming from %s", checkpoint or "scratch (no complete checkpoint yet)")
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(output_dir)
    if trainer.accelerator.is_main_process:
        write_atomic(os.path.join(output_dir, RESOLVED_CONFIG), yaml.safe_dump(groups, sort_keys=False))


def run_cli(main, argument_classes: tuple) -> None:
    """Parse `--config recipe.yaml` plus overrides into the dataclasses, then run; bad data or a checkpoint that
    does not fit exits 2, no traceback."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        main(*TrlParser(argument_classes).parse_args_and_config())
    except (DataError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
