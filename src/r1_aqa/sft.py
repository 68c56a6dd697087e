"""Supervised fine-tuning baseline: the same prompts as GRPO, the correct choice as the target, loss on it alone.

    accelerate launch --config_file configs/accelerate/zero3.yaml -m r1_aqa.sft --config configs/sft_qwen2_audio_7b.yaml
    python -m r1_aqa.sft --config configs/demo_sft.yaml          # the CPU demo

TRL's SFTTrainer with an audio-aware collator: the prompt is encoded exactly as GRPO and evaluation encode it, the
target is the assistant turn the chat template renders for `<answer>{correct choice}</answer>`, and only the
target's tokens carry labels. Full fine-tuning by default; `use_peft: true` for LoRA.
"""

from dataclasses import dataclass

import torch
from trl import SFTConfig, SFTTrainer

from r1_aqa.checkpoints import CheckpointLoading
from r1_aqa.families import family_of_processor
from r1_aqa.models import AudioModelConfig, family_at, load_model_from, load_processor, lora_config
from r1_aqa.processing import encode, for_template
from r1_aqa.prompts import drop_null_keys
from r1_aqa.runs import DataArguments, SaveResolvedConfig, build_dataset, resolved, run_cli, train_and_save

IGNORE = -100  # label of tokens that carry no loss


@dataclass
class SFTDataArguments(DataArguments):
    def __post_init__(self):
        super().__post_init__()
        if self.prompt_style != "answer":
            raise ValueError("SFT needs prompt_style: answer (the data has answers, not reasoning to imitate)")


@dataclass
class AudioSFTCollator:
    """Rows with `prompt` and `solution` -> input_ids, labels (answer only) and right-padded audio features."""

    processor: object

    def target(self, prompt: list[dict], solution: str) -> str:
        """The assistant turn as the chat template renders it after the prompt (answer, end of turn)."""
        prompt = for_template(family_of_processor(self.processor), drop_null_keys(prompt))  # as `encode` renders it
        reply = {"role": "assistant", "content": f"<answer>{solution}</answer>"}
        full = self.processor.apply_chat_template([*prompt, reply], tokenize=False)
        head = self.processor.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        if not full.startswith(head):
            raise ValueError("the chat template does not render the reply after the generation prompt")
        return full[len(head) :]

    def __call__(self, rows: list[dict]) -> dict:
        encoded = encode(self.processor, [row["prompt"] for row in rows])
        tokenizer = self.processor.tokenizer
        sequences, labels = [], []
        for ids, mask, row in zip(encoded["input_ids"], encoded["attention_mask"], rows, strict=True):
            prompt_ids = ids[mask.bool()]
            target = tokenizer(self.target(row["prompt"], row["solution"]), add_special_tokens=False)["input_ids"]
            target = torch.tensor(target, dtype=prompt_ids.dtype)
            sequences.append(torch.cat([prompt_ids, target]))
            labels.append(torch.cat([torch.full_like(prompt_ids, IGNORE), target]))
        width = max(len(sequence) for sequence in sequences)
        batch = {
            "input_ids": torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(rows), width), dtype=torch.long),
            "labels": torch.full((len(rows), width), IGNORE, dtype=torch.long),
        }
        for index, (sequence, label) in enumerate(zip(sequences, labels, strict=True)):
            batch["input_ids"][index, : len(sequence)] = sequence
            batch["attention_mask"][index, : len(sequence)] = 1
            batch["labels"][index, : len(label)] = label
        batch.update({key: encoded[key] for key in family_of_processor(self.processor).audio_keys})
        return batch


class AudioSFTTrainer(CheckpointLoading, SFTTrainer):
    """TRL's SFTTrainer; resuming restores the checkpoint's weights (see r1_aqa.checkpoints)."""


def main(data_args: SFTDataArguments, training_args: SFTConfig, model_args: AudioModelConfig) -> None:
    groups = resolved(data=data_args, training=training_args, model=model_args)
    processor = load_processor(model_args.model_name_or_path, revision=model_args.model_revision)
    dataset = build_dataset(data_args, family_at(model_args.model_name_or_path, model_args.model_revision).min_samples)
    # The collator tokenizes on the fly, from file paths: TRL must neither pre-tokenize nor drop the columns.
    training_args.dataset_kwargs = {**(training_args.dataset_kwargs or {}), "skip_prepare_dataset": True}
    training_args.remove_unused_columns = False
    model = load_model_from(model_args)
    trainer = AudioSFTTrainer(
        model=model,
        processing_class=processor,
        args=training_args,
        train_dataset=dataset,
        data_collator=AudioSFTCollator(processor),
        peft_config=lora_config(model_args, model),
        callbacks=[SaveResolvedConfig(groups)],
    )
    train_and_save(trainer, data_args, groups)


if __name__ == "__main__":
    run_cli(main, (SFTDataArguments, SFTConfig, AudioModelConfig))
