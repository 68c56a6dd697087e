"""Audio Flamingo 3 on its tiny random model: 30-s windows as rows, the processor's inputs against references
computed here, the published folder layout, the exact encoder savings, and the shortest clip."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from conftest import write_clip
from transformers import AutoProcessor, WhisperFeatureExtractor

from r1_aqa.families import audio_flamingo3 as af3
from r1_aqa.families import family_of, family_of_processor

RATE = 16_000
FAMILY = af3.FAMILY
QUESTION = "What is in the audio?"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return FAMILY.build_tiny(str(tmp_path_factory.mktemp("tiny-audio-flamingo3")))


@pytest.fixture(scope="module")
def processor(model_dir):
    processor = FAMILY.processor_class.from_pretrained(model_dir)
    processor.tokenizer.padding_side = "left"
    return processor


@pytest.fixture(scope="module")
def model(model_dir):
    return FAMILY.model_class.from_pretrained(model_dir, dtype=torch.float32).eval()


def read_clip(tmp_path: Path, seconds: float, frequency: float = 440.0, kind: str = "tone") -> np.ndarray:
    samples, rate = soundfile.read(
        str(write_clip(tmp_path / f"{kind}{seconds}-{frequency}.wav", seconds, kind, frequency))
    )
    assert rate == RATE
    return samples.astype(np.float32)


def conversation(path: str = "/clip.wav") -> list[dict]:
    return [{"role": "user", "content": [{"type": "audio", "path": path}, {"type": "text", "text": QUESTION}]}]


def encode(processor, clips: list[np.ndarray], **overrides):
    """As the project encodes a batch: the rendered template, padding=True and the family's call keywords."""
    texts = processor.apply_chat_template([conversation()] * len(clips), tokenize=False, add_generation_prompt=True)
    keywords = {"padding": True, **FAMILY.call_kwargs(processor, clips), **overrides}
    return processor(text=texts, audio=clips, sampling_rate=RATE, return_tensors="pt", **keywords)


def windows(clip: np.ndarray, seconds: int = 30, most: int = 20) -> list[np.ndarray]:
    size = seconds * RATE
    return [clip[start : start + size] for start in range(0, max(len(clip), 1), size)][:most]


def tokens_of(valid_frames: int) -> int:
    """The encoder's output length for a window: stride-2 convolution, then stride-2 average pooling."""
    return ((valid_frames - 1) // 2 + 1 - 2) // 2 + 1


@pytest.mark.parametrize(
    ("samples", "rows"),
    [
        (5 * RATE, 1),  # why: a short clip is one padded window
        (30 * RATE, 1),  # why: exactly one full window
        (30 * RATE + 160, 2),  # why: 30.01 s spills one mel frame into a second window
        (45 * RATE, 2),  # why: a full window and a half one
        (601 * RATE, 20),  # why: past 600 s the processor keeps the first 20 windows
    ],
)
def test_rows_of_counts_the_processors_windows(processor, samples, rows):
    clip = np.full(samples, 0.01, dtype=np.float32)
    encoded = encode(processor, [clip])
    assert FAMILY.rows_of(processor, samples) == rows
    assert encoded["input_features"].shape == (rows, 128, 3000)
    assert encoded["input_features_mask"].shape == (rows, 3000)


def test_a_5s_and_a_45s_clip_give_the_references_rows_and_ids(processor, tmp_path):
    clips = [read_clip(tmp_path, 5.0, 300.0), read_clip(tmp_path, 45.0, 700.0, "noise")]
    encoded = encode(processor, clips)
    own = [FAMILY.rows_of(processor, len(clip)) for clip in clips]
    assert own == [1, 2]
    extractor = WhisperFeatureExtractor(feature_size=128, return_attention_mask=True)
    flat = [window for clip in clips for window in windows(clip)]
    reference = extractor(flat, sampling_rate=RATE, return_attention_mask=True, return_tensors="pt")
    # Rows in clip order, each the extractor's own right-padded output of one window (frame 0 first).
    assert torch.equal(encoded["input_features"], reference["input_features"])
    assert torch.equal(encoded["input_features_mask"], reference["attention_mask"])
    assert encoded["input_features_mask"].sum(-1).tolist() == [500, 3000, 1500]
    tokenizer = processor.tokenizer
    for index, start in enumerate(np.cumsum([0, *own[:-1]])):
        valid = encoded["input_features_mask"][start : start + own[index]].sum(-1).tolist()
        sounds = sum(tokens_of(frames) for frames in valid)
        text = (
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            f"<|im_start|>user\n{'<sound>' * sounds}{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
        )
        expected = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids = encoded["input_ids"][index][encoded["attention_mask"][index].bool()].tolist()
        assert ids == expected
        assert sounds == [125, 1125][index]  # why: 25 tokens per second, 750 per full window


@pytest.mark.parametrize("side", ["left", "right"])
def test_text_pads_on_the_tokenizers_side_and_audio_stays_right_padded(processor, tmp_path, side):
    clips = [read_clip(tmp_path, 1.0), read_clip(tmp_path, 3.0)]  # different lengths, so the shorter text is padded
    processor = copy.deepcopy(processor)
    processor.tokenizer.padding_side = side
    encoded = encode(processor, clips)
    mask = encoded["attention_mask"]
    padded = mask[0] if mask[0].sum() < mask[1].sum() else mask[1]
    assert padded[0 if side == "left" else -1] == 0
    assert padded[-1 if side == "left" else 0] == 1
    assert (encoded["input_features_mask"][:, 0] == 1).all()  # why: frame 0 is always a clip's first


def test_without_call_kwargs_the_processor_ignores_the_tokenizers_padding_side(processor, tmp_path):
    # Why call_kwargs passes the side: the processor forces left padding of the text unless told otherwise.
    clips = [read_clip(tmp_path, 1.0), read_clip(tmp_path, 3.0)]
    processor = copy.deepcopy(processor)
    processor.tokenizer.padding_side = "right"
    texts = processor.apply_chat_template([conversation()] * 2, tokenize=False, add_generation_prompt=True)
    encoded = processor(text=texts, audio=clips, sampling_rate=RATE, return_tensors="pt")
    assert encoded["attention_mask"][:, 0].tolist() == [0, 1]


def test_plain_padding_true_shortens_the_windows_which_the_stock_encoder_rejects(processor, model, tmp_path):
    # Why call_kwargs rounds the audio up: a top-level padding=True also pads the features to the longest window.
    clips = [read_clip(tmp_path, 5.0)]
    texts = processor.apply_chat_template([conversation()], tokenize=False, add_generation_prompt=True)
    plain = processor(text=texts, audio=clips, sampling_rate=RATE, padding=True, return_tensors="pt")
    assert plain["input_features"].shape[-1] == 500
    with torch.no_grad(), pytest.raises(RuntimeError, match="size of tensor"):
        model(**plain)
    with torch.no_grad():
        assert model(**encode(processor, clips)).logits.isfinite().all()


def test_the_published_layout_loads_with_nothing_missing_or_extra(model_dir):
    files = {path.name for path in Path(model_dir).iterdir()}
    assert files == {
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "processor_config.json",
        "chat_template.jinja",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    config = json.loads((Path(model_dir) / "config.json").read_text())
    assert (config["model_type"], config["architectures"]) == ("audioflamingo3", [FAMILY.model_class.__name__])
    assert family_of(model_dir) is FAMILY
    processor_config = json.loads((Path(model_dir) / "processor_config.json").read_text())
    assert processor_config["feature_extractor"]["chunk_length"] == 30  # why: the extractor is nested, as published
    assert not (Path(model_dir) / "preprocessor_config.json").exists()
    model, info = FAMILY.model_class.from_pretrained(model_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"] and not info["unexpected_keys"]
    assert {name for name, _ in model.named_children()} == {"model", "lm_head"}
    assert {name for name, _ in model.model.named_children()} == {
        "audio_tower",
        "language_model",
        "multi_modal_projector",
    }
    assert model.model.audio_tower.config.max_source_positions == 1500  # why: the encoder takes 30-s windows


def test_the_chat_template_is_the_published_one(model_dir, processor):
    template = (Path(model_dir) / "chat_template.jinja").read_bytes()
    assert len(template) == 703  # why: the size the Hub lists for nvidia/audio-flamingo-3-hf's chat_template.jinja
    # The prompt transformers' own AF3 processor test expects: <sound> first even when the text part comes first.
    content = [{"type": "text", "text": QUESTION}, {"type": "audio", "path": "/clip.wav"}]
    rendered = processor.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n<sound>{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    )


def test_saved_processor_loads_again_as_an_equal_one(processor, tmp_path):
    processor.save_pretrained(tmp_path / "saved")
    again = FAMILY.processor_class.from_pretrained(tmp_path / "saved")
    assert family_of_processor(again) is FAMILY
    assert type(AutoProcessor.from_pretrained(tmp_path / "saved")) is FAMILY.processor_class  # why: no custom class
    again.tokenizer.padding_side = processor.tokenizer.padding_side
    clips = [read_clip(tmp_path, 5.0), read_clip(tmp_path, 45.0, kind="noise")]
    first, second = encode(processor, clips), encode(again, clips)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_every_placeholder_is_a_token_of_its_own(processor):
    ids = FAMILY.placeholder_ids(processor.tokenizer)
    assert len(set(ids)) == len(FAMILY.placeholder_tokens)
    assert processor.audio_token_id in ids
    assert processor.tokenizer.pad_token_id not in ids


def logps_and_grads(model, batch):
    model.zero_grad()
    logits = model(**batch).logits[:, :-1].float()
    logps = logits.log_softmax(-1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    (logps * batch["attention_mask"][:, 1:]).sum().backward()
    tower = model.model.audio_tower
    return logps.detach(), {name: p.grad.clone() for name, p in tower.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(
    ("clips", "encoded"),
    [
        # why: every window short: cut to the longest (12.005 s, 1201 frames: odd, so the convolutions read 2 frames
        # past it) + 2, 602 positions; repeats run once
        ((("tone", 5.0), ("noise", 12.005), ("tone", 5.0), ("tone", 5.0)), (2, 602)),
        # why: a full window keeps all 3000 frames; the repeated 45-s clip's two rows run once
        ((("tone", 5.0), ("noise", 45.0), ("noise", 45.0)), (3, 1500)),
        # why: silences of two lengths have equal features, only their masks differ: not shared
        ((("silence", 1.0), ("silence", 2.0)), (2, 101)),
    ],
)
@pytest.mark.parametrize(
    ("dtype", "tolerance"),
    [
        (torch.float32, 1e-5),  # why: the precision training runs in on CPU; only summation order differs
        (torch.float64, 1e-10),  # why: with rounding out of the way, both compute the same function
    ],
)
def test_savings_give_the_stock_logps_and_encoder_gradients(
    model, processor, tmp_path, clips, encoded, dtype, tolerance
):
    audio = [np.zeros(int(s * RATE), np.float32) if kind == "silence" else read_clip(tmp_path, s, kind=kind)
             for kind, s in clips]  # fmt: skip
    batch = dict(encode(processor, audio))
    batch["input_features"] = batch["input_features"].to(dtype)
    stock, fast = copy.deepcopy(model).to(dtype), copy.deepcopy(model).to(dtype)
    FAMILY.enable_savings(fast)
    assert FAMILY.savings_enabled(fast) and not FAMILY.savings_enabled(stock)
    shapes = []
    fast.model.audio_tower.layers[0].register_forward_hook(lambda module, args, output: shapes.append(args[0].shape))
    mask = batch["attention_mask"][:, 1:].bool()
    stock_logps, stock_grads = logps_and_grads(stock, batch)
    fast_logps, fast_grads = logps_and_grads(fast, batch)
    assert (stock_logps - fast_logps)[mask].abs().max() <= tolerance
    assert stock_grads.keys() == fast_grads.keys() and stock_grads
    for name, grad in stock_grads.items():
        scale = max(grad.abs().max().item(), 1.0)  # why: float32 holds ~7 digits of the largest entry
        assert (grad - fast_grads[name]).abs().max() <= tolerance * scale, name
    assert tuple(shapes[0][:2]) == encoded  # why: the saving did cut and share (rows, encoder positions)
    FAMILY.disable_savings(fast)
    assert not FAMILY.savings_enabled(fast)


def test_savings_survive_a_deepcopy_with_the_copys_weights(model, processor, tmp_path):
    # TRL's reference model is a deepcopy: its encoder must run its own weights, not the original's.
    fast = copy.deepcopy(model)
    FAMILY.enable_savings(fast)
    copied = copy.deepcopy(fast)
    with torch.no_grad():
        for parameter in copied.model.audio_tower.parameters():
            parameter.mul_(0.5)
    batch = dict(encode(processor, [read_clip(tmp_path, 2.0)]))
    with torch.no_grad():
        assert not torch.allclose(fast(**batch).logits, copied(**batch).logits)
    assert FAMILY.savings_enabled(copied)


@pytest.mark.parametrize("savings", [False, True])
def test_the_shortest_clip_gets_one_sound_token_and_one_sample_less_none(model, processor, savings):
    model = copy.deepcopy(model)
    if savings:
        FAMILY.enable_savings(model)
    shortest = np.full(FAMILY.min_samples, 0.1, dtype=np.float32)
    batch = encode(processor, [shortest])
    assert (batch["input_ids"] == processor.audio_token_id).sum() == 1
    with torch.no_grad():
        output = model(**batch)
    assert output.audio_hidden_states.shape[0] == 1  # why: the one token got the clip's one encoder frame
    # The failure one sample less: no <sound> in the prompt, so the model runs without hearing the clip.
    batch = encode(processor, [shortest[:-1]])
    assert (batch["input_ids"] == processor.audio_token_id).sum() == 0
