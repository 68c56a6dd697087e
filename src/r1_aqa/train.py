"""GRPO training of an audio-language model on multiple-choice audio questions.

    accelerate launch --config_file configs/accelerate/zero3.yaml -m r1_aqa.train \
        --config configs/r1_aqa_qwen2_audio_7b.yaml [--any_key value ...]

`run_grpo.sh` wraps this command. Every hyperparameter comes from the YAML recipe or the command line.
"""

from dataclasses import dataclass, field

from trl import GRPOConfig

from r1_aqa.choice_order import ChoiceShuffle
from r1_aqa.models import AudioModelConfig, adapter_base, family_at, load_model_from, load_processor, lora_config
from r1_aqa.rewards import REWARDS, get_rewards
from r1_aqa.runs import DataArguments, SaveResolvedConfig, build_dataset, resolved, run_cli, train_and_save
from r1_aqa.trainer import AudioGRPOTrainer


@dataclass
class GRPODataArguments(DataArguments):
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy", "format"],
        metadata={"help": f"names from {sorted(REWARDS)}; weights: reward_weights"},
    )
    shuffle_choices: bool = field(
        default=False,
        metadata={"help": "show each prompt's choices in an order drawn from (seed, epoch, item id), anew each epoch"},
    )
    think_budget_words: int = field(
        default=50, metadata={"help": "think_length reward: 1 up to this many words of thinking, 0 from twice it"}
    )

    def __post_init__(self):
        super().__post_init__()
        unknown = [name for name in self.reward_funcs if name not in REWARDS]
        if unknown:
            raise ValueError(f"unknown reward_funcs {unknown}; known: {sorted(REWARDS)}")
        if "think_length" in self.reward_funcs:
            get_rewards(["think_length"], self.prompt_style, self.think_budget_words)  # refuses what it cannot use


def main(data_args: GRPODataArguments, training_args: GRPOConfig, model_args: AudioModelConfig) -> None:
    if training_args.model_init_kwargs:
        raise ValueError(
            "model_init_kwargs: the policy is loaded from the model arguments (model_revision, dtype, "
            "attn_implementation), and TRL would apply these to the reference model alone"
        )
    base = adapter_base(model_args.model_name_or_path)
    if base is not None and training_args.beta != 0.0 and not model_args.use_peft:
        raise ValueError(
            f"{model_args.model_name_or_path} is a LoRA adapter: the policy would be its base with the adapter merged,"
            f" but TRL builds the KL reference from the base alone ({base}). Merge it into a full model first: "
            f"python -m r1_aqa.models merge {model_args.model_name_or_path} MERGED_FOLDER, then train from that"
        )
    groups = resolved(data=data_args, training=training_args, model=model_args)
    if model_args.model_revision != "main":
        # TRL rebuilds the KL reference from the policy's name with `model_init_kwargs` (its warning says they are
        # ignored; they are not): without this the reference would be another revision of the model.
        training_args.model_init_kwargs = {"revision": model_args.model_revision}
    # Every clip's header is read before the model loads: a clip too short for this family stops the run at once.
    dataset = build_dataset(data_args, family_at(model_args.model_name_or_path, model_args.model_revision).min_samples)
    model = load_model_from(model_args)
    trainer = AudioGRPOTrainer(
        model=model,
        processing_class=load_processor(model_args.model_name_or_path, revision=model_args.model_revision),
        reward_funcs=get_rewards(data_args.reward_funcs, data_args.prompt_style, data_args.think_budget_words),
        args=training_args,
        train_dataset=dataset,
        peft_config=lora_config(model_args, model),
        callbacks=[SaveResolvedConfig(groups)],
        choice_shuffle=ChoiceShuffle(training_args.seed, data_args.prompt_style) if data_args.shuffle_choices else None,
    )
    train_and_save(trainer, data_args, groups)


if __name__ == "__main__":
    run_cli(main, (GRPODataArguments, GRPOConfig, AudioModelConfig))
