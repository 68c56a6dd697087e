"""The trimmed, shared audio encoder gives the stock encoder's log-probs and gradients (float32, within 1e-5)."""

import copy
import inspect

import numpy as np
import pytest
import soundfile
import torch
from conftest import training_row, write_clip, write_jsonl

from r1_aqa.data import load_rows, to_grpo_row
from r1_aqa.families import _qwen2_audio_savings as fast_audio
from r1_aqa.models import load_model, load_processor
from r1_aqa.processing import encode


@pytest.mark.parametrize(
    ("valid", "frames", "expected"),
    [
        ([100, 250], 3000, 252),  # why: longest clip + 2 frames of margin, already even
        ([101], 3000, 104),  # why: 103 rounded up to even
        ([2999], 3000, 3000),  # why: never past the processor's 30 s
        ([3000, 10], 3000, 3000),  # why: a full-length clip keeps everything
    ],
)
def test_trimmed_length(valid, frames, expected):
    mask = torch.zeros(len(valid), frames, dtype=torch.long)
    for row, length in enumerate(valid):
        mask[row, :length] = 1
    assert fast_audio.trimmed_length(mask, frames) == expected


@pytest.fixture
def batch(tiny_model_dir, tmp_path):
    """Clips of 0.5, 1.2 and 2.5 s, each three times and interleaved, as in a shuffled GRPO batch."""
    rows = []
    for index, seconds in enumerate((0.5, 1.2, 2.5)):
        write_clip(tmp_path / f"c{index}.wav", seconds, "noise" if index % 2 else "tone", 200.0 + 300 * index)
        rows.append(training_row(index, f"c{index}.wav"))
    prompts = [to_grpo_row(row, "answer", True)["prompt"] for row in load_rows(write_jsonl(tmp_path / "d.jsonl", rows))]
    encoded = encode(load_processor(tiny_model_dir), [prompts[i % 3] for i in range(9)])
    return {key: value for key, value in encoded.items()}


def logps_and_grads(model, batch):
    model.zero_grad()
    logits = model(**batch).logits[:, :-1].float()
    logps = logits.log_softmax(-1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    (logps * batch["attention_mask"][:, 1:]).sum().backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    return logps.detach(), grads


@pytest.mark.parametrize(
    ("dtype", "tolerance"),
    [
        (torch.float32, 1e-5),  # why: the precision training runs in on CPU; only summation order differs
        (torch.float64, 1e-10),  # why: with rounding out of the way, the two computations are the same function
    ],
)
def test_fast_encoder_matches_the_stock_one(tiny_model_dir, batch, dtype, tolerance):
    stock = load_model(tiny_model_dir, "float32", fast_audio_encoder=False).to(dtype)
    fast = copy.deepcopy(stock)
    fast_audio.enable_fast_audio(fast)
    mask = batch["attention_mask"][:, 1:].bool()
    stock_logps, stock_grads = logps_and_grads(stock, batch)
    fast_logps, fast_grads = logps_and_grads(fast, batch)
    assert (stock_logps - fast_logps)[mask].abs().max() <= tolerance
    assert stock_grads.keys() == fast_grads.keys()
    assert any(name.startswith("model.audio_tower") for name in fast_grads)
    for name, grad in stock_grads.items():
        # Relative to the tensor's largest entry: conv1's gradient entries reach ~10, where float32 holds ~7 digits.
        scale = max(grad.abs().max().item(), 1.0)
        assert (grad - fast_grads[name]).abs().max() <= tolerance * scale, name


def test_silences_of_different_lengths_are_not_shared(tiny_model_dir, tmp_path):
    # Zero-valued clips have equal features at every frame; only their masks tell them apart (the silent floor).
    processor = load_processor(tiny_model_dir)
    rows = []
    for index, seconds in enumerate((0.5, 2.0)):
        soundfile.write(str(tmp_path / f"s{index}.wav"), np.zeros(int(seconds * 16_000), dtype=np.float32), 16_000)
        rows.append(training_row(index, f"s{index}.wav"))
    prompts = [to_grpo_row(r, "answer", True)["prompt"] for r in load_rows(write_jsonl(tmp_path / "s.jsonl", rows))]
    batch = dict(encode(processor, prompts))
    stock = load_model(tiny_model_dir, "float32", fast_audio_encoder=False)
    fast = copy.deepcopy(stock)
    fast_audio.enable_fast_audio(fast)
    with torch.no_grad():
        difference = (stock(**batch).logits - fast(**batch).logits)[batch["attention_mask"].bool()].abs().max()
    assert difference <= 1e-5


def test_without_the_margin_the_outputs_differ(tiny_model_dir, batch, monkeypatch):
    # The check above can fail: cutting right at the longest clip's end changes what the convolutions read.
    stock = load_model(tiny_model_dir, "float32", fast_audio_encoder=False)
    fast = copy.deepcopy(stock)
    fast_audio.enable_fast_audio(fast)
    monkeypatch.setattr(fast_audio, "MARGIN", 0)
    with torch.no_grad():
        difference = (stock(**batch).logits - fast(**batch).logits).abs().max()
    assert difference > 1e-4


def test_enable_is_idempotent_and_reversible(tiny_model_dir, batch):
    model = load_model(tiny_model_dir, "float32", fast_audio_encoder=False)
    with torch.no_grad():
        reference = model(**batch).logits
        fast_audio.enable_fast_audio(model)
        fast_audio.enable_fast_audio(model)
        assert torch.allclose(model(**batch).logits, reference, atol=1e-5)
        fast_audio.disable_fast_audio(model)
        assert torch.equal(model(**batch).logits, reference)


def test_a_deep_copy_runs_its_own_weights(tiny_model_dir, batch):
    # An EMA or reference model made by copy.deepcopy must not run the original's forward.
    model = load_model(tiny_model_dir, "float32")
    copied = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in copied.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
        stock = copy.deepcopy(copied)
        fast_audio.disable_fast_audio(stock)
        assert fast_audio.is_fast_audio_enabled(copied)
        difference = (copied(**batch).logits - stock(**batch).logits).abs().max()
        changed = (stock(**batch).logits - model(**batch).logits).abs().max()
    assert changed > 1e-3, "the changed weights do not change the output: the test could not fail"
    assert difference <= 1e-5, "the copy did not run its own weights"


def test_the_fast_forward_shows_the_stock_signature(tiny_model_dir):
    # Trainer reads forward signatures (which columns to keep, whether the model takes loss kwargs).
    model = load_model(tiny_model_dir, "float32")
    for wrapped in (model, copy.deepcopy(model)):
        audio_model, _ = fast_audio._parts(wrapped)
        assert "forward" in vars(audio_model)
        stock = list(inspect.signature(type(audio_model).forward).parameters)
        assert list(inspect.signature(audio_model.forward).parameters) == stock[1:]  # without `self`


def test_a_repeated_prompt_is_processed_once_with_the_same_tensors(tiny_model_dir, tmp_path, monkeypatch):
    from r1_aqa import processing

    processor = load_processor(tiny_model_dir)
    rows = []
    for index in range(2):
        write_clip(tmp_path / f"c{index}.wav", 1.0 + index, "tone", 300.0 + 200 * index)
        rows.append(training_row(index, f"c{index}.wav"))
    prompts = [to_grpo_row(row, "answer", True)["prompt"] for row in load_rows(write_jsonl(tmp_path / "d.jsonl", rows))]
    batch = [prompts[index % 2] for index in range(8)]  # two prompts, 4 completions each, interleaved
    one_by_one = encode(processor, batch, processing.load_clips(batch))  # explicit clips: no sharing

    extracted = []
    original = type(processor.feature_extractor).__call__

    def counting(self, audio, **kwargs):
        extracted.append(len(audio))
        return original(self, audio, **kwargs)

    monkeypatch.setattr(type(processor.feature_extractor), "__call__", counting)
    shared = encode(processor, batch)
    assert extracted == [2]
    assert shared.keys() == one_by_one.keys()
    for key in shared:
        assert torch.equal(shared[key], one_by_one[key]), key


def test_the_reference_model_gets_the_policys_encoder_path(tiny_model_dir, train_file, tmp_path):
    from test_trainer import grpo_rows, make_trainer

    trainer = make_trainer(tiny_model_dir, grpo_rows(train_file), tmp_path / "out", beta=0.04)
    assert fast_audio.is_fast_audio_enabled(trainer.model)
    assert fast_audio.is_fast_audio_enabled(trainer.ref_model)
