"""The audio GRPO trainer on a tiny random Qwen2-Audio: audio reaches generation and every log-prob pass."""

import copy
import inspect

import pytest
import torch
from conftest import training_row, write_clip, write_jsonl
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoProcessor
from trl import GRPOConfig, GRPOTrainer
from trl.trainer import grpo_trainer

from r1_aqa.audio import SAMPLING_RATE, load_audio
from r1_aqa.data import load_rows, to_grpo_row
from r1_aqa.families._qwen2_audio_savings import disable_fast_audio
from r1_aqa.models import load_model
from r1_aqa.processing import join_rows
from r1_aqa.prompts import completion_text
from r1_aqa.trainer import OVERRIDDEN_HOOKS, PATCHED_FUNCTIONS, AudioGRPOTrainer


def length_reward(completions, **kwargs):
    """Varies within every group (a random model's rewards would all be 0, so nothing would learn)."""
    return [float(len(completion_text(c))) for c in completions]


def make_trainer(
    model_dir, rows, output_dir, peft_config=None, reward_funcs=(length_reward,), trainer_kwargs=None, **overrides
):
    settings = dict(
        output_dir=str(output_dir),
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=8,
        temperature=1.0,
        learning_rate=1e-3,
        max_steps=1,
        beta=0.0,
        loss_type="grpo",
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        seed=0,
    )
    settings.update(overrides)
    model = load_model(model_dir, "float32")  # as training loads it: with the fast audio encoder
    return AudioGRPOTrainer(
        model=model,
        processing_class=AutoProcessor.from_pretrained(model_dir),
        reward_funcs=list(reward_funcs),
        args=GRPOConfig(**settings),
        train_dataset=Dataset.from_list(rows),
        peft_config=peft_config,
        **(trainer_kwargs or {}),
    )


def grpo_rows(train_file):
    return [to_grpo_row(row, "answer", True) for row in load_rows(train_file)]


def two_clip_rows(tmp_path, seconds=(1.0, 2.0), kinds=("tone", "noise")):
    """Two prompts whose clips differ; with different lengths the rows' audio-token counts tell them apart."""
    rows = []
    for index, (duration, kind) in enumerate(zip(seconds, kinds, strict=True)):
        write_clip(tmp_path / f"c{index}.wav", duration, kind, 500.0, seed=index)
        rows.append(training_row(index, f"c{index}.wav", answer=index))
    return [to_grpo_row(row, "answer", True) for row in load_rows(write_jsonl(tmp_path / "two.jsonl", rows))]


def reference_features(processor, path):
    """The feature extractor's own, right-padded features for one clip: what the model was trained on."""
    features = processor.feature_extractor(
        load_audio(path),
        sampling_rate=SAMPLING_RATE,
        padding="max_length",
        return_attention_mask=True,
        return_tensors="pt",
    )
    return features["input_features"][0], features["attention_mask"][0]


def plain_logps(model, ids, mask, features, feature_mask, completion_length):
    """Per-token log-probs of the completion from one ordinary forward pass of the stock model."""
    model = copy.deepcopy(model)
    disable_fast_audio(model)
    with torch.no_grad():
        logits = model(
            input_ids=ids, attention_mask=mask, input_features=features, feature_attention_mask=feature_mask
        ).logits
    logps = logits[:, -completion_length - 1 : -1].float().log_softmax(-1)
    return logps.gather(-1, ids[:, -completion_length:, None]).squeeze(-1)


def rollout(trainer, rows_per_prompt):
    """One generation batch as the trainer builds it: each prompt's row repeated num_generations times in a row."""
    inputs = [row for row in rows_per_prompt for _ in range(trainer.num_generations)]
    torch.manual_seed(0)
    output = trainer._generate_and_score_completions(inputs)
    # The audio travels as one tensor per sequence (TRL shuffles and splits lists with the batch): joined here.
    audio, _ = join_rows({key: output[key] for key in trainer.family.audio_keys})
    output.update(audio)
    ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
    mask = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
    return inputs, output, ids, mask


def trainer_logps(trainer, output, ids, mask):
    trainer._batch_audio = {key: output[key] for key in trainer.family.audio_keys}
    trainer._batch_rows = [1] * ids.size(0)
    try:
        with torch.no_grad():
            logps, _, _ = trainer._get_per_token_logps_and_entropies(
                trainer.model,
                ids,
                mask,
                output["completion_ids"].size(1),
                batch_size=3,  # 3: uneven chunks
            )
    finally:
        trainer._batch_audio = None
    return logps


def test_overridden_hooks_still_exist_upstream():
    for name in PATCHED_FUNCTIONS:
        assert hasattr(grpo_trainer, name), f"trl.trainer.grpo_trainer.{name} is gone: see AudioGRPOTrainer"
    for name in OVERRIDDEN_HOOKS:
        assert hasattr(GRPOTrainer, name), (
            f"TRL's GRPOTrainer no longer has {name}: AudioGRPOTrainer overrides it to feed audio. "
            "Re-read the new upstream trainer before changing the TRL pin."
        )
    parameters = list(inspect.signature(GRPOTrainer._get_per_token_logps_and_entropies).parameters)
    assert parameters[:5] == ["self", "model", "input_ids", "attention_mask", "logits_to_keep"], parameters
    assert list(inspect.signature(GRPOTrainer._tokenize_prompts).parameters) == ["self", "prompts"]
    assert list(inspect.signature(GRPOTrainer._init_training_state).parameters) == [
        "self",
        "max_steps",
        "num_update_steps_per_epoch",
        "num_train_epochs",
        "resume_from_checkpoint",
        "trial",
    ]


def test_features_fed_for_a_clip_are_the_extractors_right_padded_ones(tiny_model_dir, tmp_path):
    rows = two_clip_rows(tmp_path)
    trainer = make_trainer(tiny_model_dir, rows, tmp_path / "out")
    prompts = [row["prompt"] for row in rows]
    _, _, fields = trainer._tokenize_prompts(prompts)
    for index, row in enumerate(rows):
        features, frame_mask = reference_features(trainer.processing_class, row["prompt"][0]["content"][0]["audio_url"])
        assert torch.equal(fields["input_features"][index], features)
        assert torch.equal(fields["feature_attention_mask"][index], frame_mask)
        assert frame_mask[0] == 1 and frame_mask[-1] == 0  # audio frames start at 0: right padding
    # The check can fail: left-padded audio (what `padding_side="left"` on the processor does) differs.
    left_padding = copy.deepcopy(trainer.processing_class.feature_extractor)
    left_padding.padding_side = "left"
    left = left_padding(
        load_audio(rows[0]["prompt"][0]["content"][0]["audio_url"]),
        sampling_rate=SAMPLING_RATE,
        padding="max_length",
        return_tensors="pt",
    )["input_features"][0]
    assert not torch.equal(left, fields["input_features"][0])


def test_logps_equal_a_plain_forward_and_depend_on_the_clip(tiny_model_dir, tmp_path):
    rows = two_clip_rows(tmp_path, seconds=(1.0, 1.0))  # equal lengths, so the clips can be swapped
    trainer = make_trainer(tiny_model_dir, rows, tmp_path / "out")
    _, output, ids, mask = rollout(trainer, rows[:1])
    completion_mask = output["completion_mask"].bool()
    logps = trainer_logps(trainer, output, ids, mask)
    plain = plain_logps(
        trainer.model, ids, mask, output["input_features"], output["feature_attention_mask"], completion_mask.size(1)
    )
    assert torch.allclose(logps[completion_mask], plain[completion_mask], atol=1e-5)

    other, other_mask = reference_features(trainer.processing_class, rows[1]["prompt"][0]["content"][0]["audio_url"])
    swapped = plain_logps(
        trainer.model,
        ids,
        mask,
        other.expand_as(output["input_features"]),
        other_mask.expand_as(output["feature_attention_mask"]),
        completion_mask.size(1),
    )
    assert (logps[completion_mask] - swapped[completion_mask]).abs().max() > 1e-4


def test_each_completion_is_scored_with_its_own_prompts_clip(tiny_model_dir, tmp_path):
    rows = two_clip_rows(tmp_path)  # 2 prompts per device x 4 generations = the 8 rows of one batch
    trainer = make_trainer(tiny_model_dir, rows, tmp_path / "out")
    inputs, output, ids, mask = rollout(trainer, rows)
    logps = trainer_logps(trainer, output, ids, mask)
    completion_mask = output["completion_mask"].bool()
    audio_token = trainer.model.config.audio_token_id
    for row in range(len(inputs)):
        features, frame_mask = reference_features(
            trainer.processing_class, inputs[row]["prompt"][0]["content"][0]["audio_url"]
        )
        assert torch.equal(output["input_features"][row], features), f"row {row} carries another prompt's clip"
        # One completion alone, with the clip fetched independently of the trainer.
        alone = plain_logps(
            trainer.model,
            ids[row : row + 1],
            mask[row : row + 1],
            features[None],
            frame_mask[None],
            completion_mask.size(1),
        )[0]
        assert torch.allclose(logps[row][completion_mask[row]], alone[completion_mask[row]], atol=1e-5), row
        assert (output["prompt_ids"][row] == audio_token).sum() == 25 * (1 + row // 4)  # 25 tokens per second

    # Through TRL's shuffle and split into micro-batches, rows keep their clip: a row's audio-token count must match
    # the length of the features it carries.
    trainer.model.train()
    torch.manual_seed(1)
    batch = trainer._prepare_inputs(inputs)
    lengths = torch.cat(batch["feature_attention_mask"]).sum(-1)
    tokens = (batch["prompt_ids"] == audio_token).sum(-1)
    assert torch.equal(tokens, ((lengths - 1) // 2 + 1 - 2) // 2 + 1)
    assert set(lengths.tolist()) == {100, 200}


def test_one_step_changes_every_trainable_parameter(tiny_model_dir, train_file, tmp_path):
    trainer = make_trainer(tiny_model_dir, grpo_rows(train_file), tmp_path / "out", beta=0.04)
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    unchanged = [
        name
        for name, p in trainer.model.named_parameters()
        if p.requires_grad and torch.equal(before[name], p.detach())
    ]
    assert unchanged == []
    groups = {name.split(".")[1] for name in before}
    assert {"audio_tower", "multi_modal_projector", "language_model"} <= groups, groups


@pytest.mark.parametrize(
    "overrides",
    [
        {"beta": 0.04},  # why: the reference model's pass needs the audio too
        {"num_iterations": 2},  # why: the old-policy pass runs only when batches are reused
        {"gradient_accumulation_steps": 2, "per_device_train_batch_size": 4},  # why: micro-batches split the clips
        {"use_peft": True, "beta": 0.04},  # why: LoRA's reference is the base model with the adapter disabled
        {"gradient_checkpointing": True},  # why: the paper's recipe recomputes activations, audio encoder included
        *[{"loss_type": loss} for loss in ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")],
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_training_runs_with_audio_in_every_configuration(tiny_model_dir, train_file, tmp_path, overrides):
    overrides = dict(overrides)
    peft_config = (
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]) if overrides.pop("use_peft", False) else None
    )
    trainer = make_trainer(
        tiny_model_dir, grpo_rows(train_file), tmp_path / "out", peft_config, max_steps=2, **overrides
    )
    trainer_passes = []
    original = AudioGRPOTrainer._get_per_token_logps_and_entropies

    def counting(self, model, input_ids, *args, **kwargs):
        trainer_passes.append(input_ids.size(0))
        return original(self, model, input_ids, *args, **kwargs)  # raises if any forward missed its audio

    trainer._get_per_token_logps_and_entropies = counting.__get__(trainer)
    result = trainer.train()
    assert torch.isfinite(torch.tensor(result.training_loss))
    assert trainer_passes, "no log-prob pass ran"
    reference_or_old = overrides.get("beta", 0) > 0 or overrides.get("num_iterations", 1) > 1
    steps = 2 * overrides.get("gradient_accumulation_steps", 1)
    assert len(trainer_passes) > steps if reference_or_old else len(trainer_passes) == steps


def weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: the city's name.
    """
    return "sunny"


class Counter:
    """An environment whose one method TRL would expose as a tool."""

    def reset(self, **kwargs):
        self.count = 0

    def increment(self, step: int) -> str:
        """Add to the count.

        Args:
            step: how much to add.
        """
        self.count += step
        return str(self.count)


@pytest.mark.parametrize(
    ("overrides", "trainer_kwargs", "message"),
    [
        # why: TRL 1.16 sends vLLM the prompts' images only: every rollout would be generated without the audio
        ({"use_vllm": True}, {}, "use_vllm.*audio"),
        # why: TRL's tool loop re-tokenizes prompt + tool replies without the clips, and the prompts here are
        # rendered without the tools
        ({}, {"tools": [weather]}, "tools.*audio"),
        ({}, {"environment_factory": Counter}, "environment_factory.*audio"),  # why: its methods become tools
    ],
    ids=["use_vllm", "tools", "environment_factory"],
)
def test_what_would_lose_the_audio_is_refused_at_start(
    tiny_model_dir, train_file, tmp_path, overrides, trainer_kwargs, message
):
    with pytest.raises(ValueError, match=message):
        make_trainer(
            tiny_model_dir, grpo_rows(train_file), tmp_path / "out", trainer_kwargs=trainer_kwargs, **overrides
        )


def test_chat_template_kwargs_reach_the_rendered_prompts(tiny_model_dir, tmp_path):
    rows = two_clip_rows(tmp_path)
    trainer = make_trainer(tiny_model_dir, rows, tmp_path / "out", chat_template_kwargs={"preamble": "Be brief."})
    processor = trainer.processing_class
    processor.chat_template = "{% if preamble is defined %}{{ preamble }}{% endif %}" + processor.chat_template
    prompt_ids, _, fields = trainer._tokenize_prompts([row["prompt"] for row in rows])
    for ids in prompt_ids:
        assert processor.tokenizer.decode(ids).startswith("Be brief.<|im_start|>")
    assert fields["input_features"].size(0) == len(rows)


def grpo_main(model_dir, train_file, output_dir, monkeypatch, model_revision="main", **overrides):
    """`python -m r1_aqa.train` in-process up to the trainer it builds (no training); the revisions it loads."""
    from trl.trainer import grpo_trainer

    from r1_aqa import train
    from r1_aqa.models import AudioModelConfig

    revisions = []
    upstream = grpo_trainer.create_model_from_path

    def recording(model_id, **kwargs):
        revisions.append(kwargs.get("revision", "main"))
        return upstream(model_id, **kwargs)

    monkeypatch.setattr(grpo_trainer, "create_model_from_path", recording)
    monkeypatch.setattr(train, "train_and_save", lambda *args: None)
    settings = dict(use_cpu=True, bf16=False, per_device_train_batch_size=8, num_generations=4, report_to="none")
    train.main(
        train.GRPODataArguments(data_file=str(train_file)),
        GRPOConfig(output_dir=str(output_dir), **{**settings, **overrides}),
        AudioModelConfig(model_name_or_path=model_dir, model_revision=model_revision, dtype="float32"),
    )
    return revisions


def test_the_reference_model_is_loaded_at_the_policys_revision(tiny_model_dir, train_file, tmp_path, monkeypatch):
    # A local folder has no revisions, so only the argument TRL's loader receives can be checked.
    assert grpo_main(tiny_model_dir, train_file, tmp_path, monkeypatch, "v2", beta=0.04) == ["v2"]


def test_model_init_kwargs_are_refused(tiny_model_dir, train_file, tmp_path, monkeypatch):
    # The policy is loaded from the model arguments; TRL would apply these to the reference model alone.
    with pytest.raises(ValueError, match="model_init_kwargs"):
        grpo_main(tiny_model_dir, train_file, tmp_path, monkeypatch, beta=0.04, model_init_kwargs={"revision": "v1"})
