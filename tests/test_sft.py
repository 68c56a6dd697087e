"""The SFT baseline: loss on the answer only, audio right-padded, the real SFTTrainer updating every part."""

import pytest
import torch
from test_trainer import grpo_rows, reference_features
from trl import SFTConfig, SFTTrainer

from r1_aqa.models import load_model, load_processor
from r1_aqa.processing import encode
from r1_aqa.sft import IGNORE, AudioSFTCollator, SFTDataArguments


def test_only_the_answer_and_end_of_turn_carry_labels(tiny_model_dir, train_file):
    processor = load_processor(tiny_model_dir)
    rows = grpo_rows(train_file)[:3]
    batch = AudioSFTCollator(processor)(rows)
    prompts = encode(processor, [row["prompt"] for row in rows])
    for index, row in enumerate(rows):
        labelled = batch["labels"][index][batch["labels"][index] != IGNORE]
        assert processor.tokenizer.decode(labelled) == f"<answer>{row['solution']}</answer><|im_end|>\n"
        # The prompt part is exactly what GRPO and evaluation feed (same module, same tokens).
        prompt_ids = prompts["input_ids"][index][prompts["attention_mask"][index].bool()]
        assert torch.equal(batch["input_ids"][index][: len(prompt_ids)], prompt_ids)
        features, frame_mask = reference_features(processor, row["prompt"][0]["content"][0]["audio_url"])
        assert torch.equal(batch["input_features"][index], features)
        assert torch.equal(batch["feature_attention_mask"][index], frame_mask)
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE).all()


def test_think_style_is_refused_for_sft():
    with pytest.raises(ValueError, match="prompt_style: answer"):
        SFTDataArguments(data_file="x.jsonl", prompt_style="think")


@pytest.mark.parametrize("use_lora", [False, True], ids=["full", "lora"])
def test_a_step_of_sft_trains_the_audio_path(tiny_model_dir, train_file, tmp_path, use_lora):
    from datasets import Dataset
    from peft import LoraConfig

    processor = load_processor(tiny_model_dir)
    model = load_model(tiny_model_dir, "float32")
    args = SFTConfig(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, gradient_checkpointing=False, max_steps=2,
        per_device_train_batch_size=4, learning_rate=1e-3, report_to="none", save_strategy="no",
        remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True}, logging_steps=1,
    )  # fmt: skip
    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]) if use_lora else None
    trainer = SFTTrainer(model=model, processing_class=processor, args=args,
                         train_dataset=Dataset.from_list(grpo_rows(train_file)),
                         data_collator=AudioSFTCollator(processor), peft_config=peft_config)  # fmt: skip
    trainable = {name: p.detach().clone() for name, p in trainer.model.named_parameters() if p.requires_grad}
    losses = [e["loss"] for e in trainer.train() and trainer.state.log_history if "loss" in e]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    changed = {name for name, p in trainer.model.named_parameters()
               if p.requires_grad and not torch.equal(trainable[name], p.detach())}  # fmt: skip
    assert changed == set(trainable)
    # LoRA on q_proj/v_proj adapts attention in the encoder and the LM; the projector has no such layer.
    parts = {"audio_tower", "language_model"} | (set() if use_lora else {"multi_modal_projector"})
    assert all(any(part in name for name in changed) for part in parts), sorted(changed)[:5]
