"""Scoring LoRA checkpoints: the base named by the adapter, the adapter merged, then evaluated as any model."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel
from test_evaluate import prepare_six, run_test_mmau
from test_trainer import grpo_rows, make_trainer
from trl import TrlParser

from r1_aqa import evaluate
from r1_aqa.models import load_model, load_processor

TINY_EVAL = Path(__file__).resolve().parents[1] / "configs" / "tiny_mmau_eval.yaml"
PROCESSOR_FILES = ("processor_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


@pytest.fixture
def prepared(tmp_path) -> Path:
    return prepare_six(tmp_path)


@pytest.fixture
def lora_run(tiny_model_dir, train_file, tmp_path):
    """A LoRA GRPO run of two steps, a checkpoint after each; the first checkpoint lacks the processor files."""
    run = tmp_path / "run"
    trainer = make_trainer(
        tiny_model_dir,
        grpo_rows(train_file),
        run,
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
        learning_rate=0.1,  # why: two steps must move the adapter far enough to change greedy answers
        max_steps=2,
        save_strategy="steps",
        save_steps=1,
    )
    trainer.train()
    assert not (run / "checkpoint-2" / "config.json").exists(), "a full model was saved: nothing to test"
    for name in PROCESSOR_FILES:  # an adapter saved without its processor: the base's is used
        (run / "checkpoint-1" / name).unlink(missing_ok=True)
    return run


def evaluation(model, mmau_file, output_dir) -> list[str]:
    """Outputs of `python -m r1_aqa.evaluate` with the settings test_mmau.sh uses in the tests."""
    overrides = ["--model_name_or_path", str(model), "--mmau_file", str(mmau_file), "--output_dir", str(output_dir)]
    (args,) = TrlParser((evaluate.EvalArguments,)).parse_args_and_config(["--config", str(TINY_EVAL), *overrides])
    evaluate.main(args)
    return outputs(output_dir)


def outputs(folder) -> list[str]:
    return [p["model_output"] for p in json.loads((folder / "predictions.json").read_text())]


def test_test_mmau_scores_lora_checkpoints_as_their_merged_models(tiny_model_dir, lora_run, prepared, tmp_path):
    run_test_mmau({"RUN_DIR": str(lora_run), "MMAU_DIR": str(prepared.parent)})

    merged = tmp_path / "merged"
    base = load_model(tiny_model_dir, "float32", fast_audio_encoder=False)
    PeftModel.from_pretrained(base, str(lora_run / "checkpoint-2")).merge_and_unload().save_pretrained(merged)
    load_processor(tiny_model_dir).save_pretrained(merged)
    assert outputs(lora_run / "mmau" / "checkpoint-2") == evaluation(merged, prepared, tmp_path / "merged-eval")
    base_outputs = evaluation(tiny_model_dir, prepared, tmp_path / "base-eval")
    assert outputs(lora_run / "mmau" / "checkpoint-2") != base_outputs, "the adapter changed nothing"
    assert (lora_run / "mmau" / "checkpoint-1" / "metrics.json").is_file()


def test_a_moved_base_is_given_as_an_option(tiny_model_dir, lora_run, tmp_path):
    checkpoint = lora_run / "checkpoint-2"
    expected = load_model(str(checkpoint), "float32").state_dict()
    moved = tmp_path / "moved-base"
    shutil.copytree(tiny_model_dir, moved)
    config = json.loads((checkpoint / "adapter_config.json").read_text())
    gone = str(tmp_path / "trained-elsewhere")
    (checkpoint / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": gone}))
    with pytest.raises(ValueError, match="BASE_MODEL_PATH"):
        load_model(str(checkpoint), "float32")
    loaded = load_model(str(checkpoint), "float32", base_model_name_or_path=str(moved)).state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[key], expected[key]) for key in expected)


def test_grpo_from_a_lora_adapter_is_refused_and_its_merge_trains(lora_run, train_file, tmp_path, monkeypatch):
    from test_trainer import grpo_main

    from r1_aqa import models

    adapter = lora_run / "checkpoint-2"
    # why: the policy would be base + adapter, but TRL would build the KL reference from the base alone
    with pytest.raises(ValueError, match="LoRA adapter.*r1_aqa.models merge"):
        grpo_main(str(adapter), train_file, tmp_path / "refused", monkeypatch, beta=0.04)

    merged = tmp_path / "merged"
    assert models.main(["merge", str(adapter), str(merged)]) == 0
    assert (merged / "config.json").is_file() and not (merged / "adapter_config.json").exists()
    ids = torch.tensor([[1, 5, 9, 20]])
    with torch.no_grad():
        expected = load_model(str(adapter), "float32")(input_ids=ids).logits
        assert torch.allclose(load_model(str(merged), "float32")(input_ids=ids).logits, expected, atol=1e-5)
    grpo_main(str(merged), train_file, tmp_path / "trains", monkeypatch, beta=0.04)  # the reference is the merge
