"""The YAML recipes parse into the typed arguments, and the paper recipe holds the paper's values."""

from pathlib import Path

import pytest
import yaml
from trl import GRPOConfig, SFTConfig, TrlParser

from r1_aqa.evaluate import EvalArguments
from r1_aqa.models import AudioModelConfig
from r1_aqa.passrate import PassRateArguments
from r1_aqa.sft import SFTDataArguments
from r1_aqa.train import GRPODataArguments as DataArguments

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# R1-AQA (arXiv:2503.11197) and its released code, as listed in the project's facts sheet.
PAPER = {
    "model_name_or_path": "Qwen/Qwen2-Audio-7B-Instruct",
    "num_generations": 8,
    "per_device_train_batch_size": 8,  # one prompt x 8 completions per device
    "gradient_accumulation_steps": 2,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "max_completion_length": 256,
    "learning_rate": 1e-6,
    "lr_scheduler_type": "linear",
    "max_steps": 1000,
    "beta": 0.04,
    "num_iterations": 1,
    "loss_type": "grpo",
    "max_grad_norm": 1.0,
    "seed": 42,
    "bf16": True,
    "save_steps": 100,
    "reward_funcs": ["accuracy", "format"],
    "reward_weights": [1.0, 1.0],
    "prompt_style": "answer",
}


def parse(config: Path, *overrides: str):
    parser = TrlParser((DataArguments, GRPOConfig, AudioModelConfig))
    return parser.parse_args_and_config(["--config", str(config), *overrides])


def test_paper_recipe_has_the_papers_values():
    recipe = yaml.safe_load((CONFIGS / "r1_aqa_qwen2_audio_7b.yaml").read_text())
    assert {key: recipe.get(key) for key in PAPER} == PAPER


def test_paper_recipe_parses_into_the_typed_arguments():
    # This machine has no bf16 GPU, which GRPOConfig checks; everything else is parsed as written.
    data, training, model = parse(CONFIGS / "r1_aqa_qwen2_audio_7b.yaml", "--bf16", "false", "--use_cpu", "true")
    assert data.reward_funcs == ["accuracy", "format"] and training.loss_type == "grpo" and training.beta == 0.04
    assert training.steps_per_generation == 2  # generation covers both micro-steps: all updates on-policy
    assert model.dtype == "bfloat16"


def test_beyond_recipe_is_the_paper_recipe_plus_its_named_departures():
    paper = yaml.safe_load((CONFIGS / "r1_aqa_qwen2_audio_7b.yaml").read_text())
    beyond = yaml.safe_load((CONFIGS / "beyond_qwen2_audio_7b.yaml").read_text())
    departures = {"shuffle_choices": True, "output_dir": "exp/beyond"}
    assert {key: value for key, value in beyond.items() if key not in departures} == {
        key: value for key, value in paper.items() if key not in departures
    }
    assert {key: beyond[key] for key in departures} == departures
    data, _, _ = parse(CONFIGS / "r1_aqa_qwen2_audio_7b.yaml", *ON_CPU)
    assert data.shuffle_choices is False  # the paper trained on the fixed order


@pytest.mark.parametrize("override", [["--prompt_style", "letters"], ["--reward_funcs", "accuracy", "letters"]])
def test_bad_values_fail_at_parse_time(override):
    with pytest.raises(ValueError):
        parse(CONFIGS / "tiny_grpo.yaml", *override)


# bf16 is checked against the hardware, so recipes for GPUs are parsed here with it off.
ON_CPU = ["--bf16", "false", "--use_cpu", "true"]


@pytest.mark.parametrize(
    ("recipe", "groups", "overrides"),
    [
        ("tiny_grpo.yaml", (DataArguments, GRPOConfig, AudioModelConfig), []),
        ("demo_grpo.yaml", (DataArguments, GRPOConfig, AudioModelConfig), []),
        ("demo_sft.yaml", (SFTDataArguments, SFTConfig, AudioModelConfig), []),
        ("sft_qwen2_audio_7b.yaml", (SFTDataArguments, SFTConfig, AudioModelConfig), ON_CPU),
        ("beyond_qwen2_audio_7b.yaml", (DataArguments, GRPOConfig, AudioModelConfig), ON_CPU),
        ("mmau_eval.yaml", (EvalArguments,), ["--model_name_or_path", "m", "--mmau_file", "f", "--output_dir", "o"]),
        (
            "tiny_mmau_eval.yaml",
            (EvalArguments,),
            ["--model_name_or_path", "m", "--mmau_file", "f", "--output_dir", "o"],
        ),
        (
            "demo_mmau_eval.yaml",
            (EvalArguments,),
            ["--model_name_or_path", "m", "--mmau_file", "f", "--output_dir", "o"],
        ),
        ("audio_contribution_split.yaml", (PassRateArguments,), []),
        ("weak_to_strong_sft_qwen2_audio_7b.yaml", (SFTDataArguments, SFTConfig, AudioModelConfig), ON_CPU),
        ("weak_to_strong_grpo_qwen2_audio_7b.yaml", (DataArguments, GRPOConfig, AudioModelConfig), ON_CPU),
        ("r1_aqa_qwen2_5_omni_7b.yaml", (DataArguments, GRPOConfig, AudioModelConfig), ON_CPU),
        ("r1_aqa_qwen3_omni_30b_a3b.yaml", (DataArguments, GRPOConfig, AudioModelConfig), ON_CPU),
        ("r1_aqa_audio_flamingo3.yaml", (DataArguments, GRPOConfig, AudioModelConfig), ON_CPU),
    ],
)
def test_every_recipe_parses(recipe, groups, overrides):
    parsed = TrlParser(groups).parse_args_and_config(["--config", str(CONFIGS / recipe), *overrides])
    assert len(parsed) == len(groups)


def test_weak_to_strong_stages_chain_and_the_split_samples_as_grpo_does():
    split, sft_stage, grpo_stage = (
        yaml.safe_load((CONFIGS / name).read_text())
        for name in ("audio_contribution_split.yaml", "weak_to_strong_sft_qwen2_audio_7b.yaml",
                     "weak_to_strong_grpo_qwen2_audio_7b.yaml")
    )  # fmt: skip
    assert sft_stage["data_file"] == split["weak_output"] and grpo_stage["data_file"] == split["strong_output"]
    assert grpo_stage["model_name_or_path"] == sft_stage["output_dir"]
    paper = yaml.safe_load((CONFIGS / "r1_aqa_qwen2_audio_7b.yaml").read_text())
    # The split's prompt and sampling are the training's, so "answered without audio" means under GRPO's sampling.
    shared = ["prompt_style", "question_video_to_audio", "num_generations", "max_completion_length", "temperature",
              "top_k", "top_p", "model_name_or_path", "data_file"]  # fmt: skip
    assert {key: split[key] for key in shared} == {key: paper[key] for key in shared}
    # Stage 2 is the paper recipe but for what chains it to stage 1.
    chained = {"model_name_or_path", "data_file", "output_dir"}
    assert {k: v for k, v in grpo_stage.items() if k not in chained} == {
        k: v for k, v in paper.items() if k not in chained
    }


@pytest.mark.parametrize(
    ("recipe", "model", "departures"),
    [
        ("r1_aqa_qwen2_5_omni_7b.yaml", "Qwen/Qwen2.5-Omni-7B", {"train_frozen_modules": False}),
        ("r1_aqa_qwen3_omni_30b_a3b.yaml", "Qwen/Qwen3-Omni-30B-A3B-Instruct", {"train_frozen_modules": False}),
        ("r1_aqa_audio_flamingo3.yaml", "nvidia/audio-flamingo-3-hf", {}),
    ],
)
def test_family_recipes_are_the_paper_recipe_on_another_model(recipe, model, departures):
    paper = yaml.safe_load((CONFIGS / "r1_aqa_qwen2_audio_7b.yaml").read_text())
    other = yaml.safe_load((CONFIGS / recipe).read_text())
    assert other["model_name_or_path"] == model
    kept = {key: value for key, value in other.items() if key not in {"model_name_or_path", "output_dir", *departures}}
    assert kept == {key: value for key, value in paper.items() if key not in {"model_name_or_path", "output_dir"}}
    assert {key: other[key] for key in departures} == departures
