"""Qwen2.5-Omni (thinker) on its tiny random model: the torchvision-free processor's inputs against references
computed here, the whole-Omni folder loading as the thinker alone, the processor files a checkpoint gets, padding the
features to the batch's longest clip (bit for bit the 300-s features, the same log-probs and gradients), and the
shortest clip."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_clip
from safetensors import safe_open
from transformers import AutoProcessor, Qwen2_5OmniForConditionalGeneration

from r1_aqa.audio import load_audio
from r1_aqa.families import family_of, family_of_processor
from r1_aqa.families import qwen2_5_omni as omni

RATE = 16_000
FAMILY = omni.FAMILY
QUESTION = "What is in the audio?"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return FAMILY.build_tiny(str(tmp_path_factory.mktemp("tiny-qwen2-5-omni")))


@pytest.fixture
def processor(model_dir):
    processor = FAMILY.processor_class.from_pretrained(model_dir)
    processor.tokenizer.padding_side = "right"
    return processor


@pytest.fixture(scope="module")
def model(model_dir):
    return FAMILY.model_class.from_pretrained(model_dir, dtype=torch.float32).eval()


def read_clip(tmp_path: Path, seconds: float, frequency: float = 440.0, kind: str = "tone") -> np.ndarray:
    path = write_clip(tmp_path / f"{kind}{seconds}-{frequency}.wav", seconds, kind, frequency)
    return load_audio(str(path), FAMILY.max_seconds)


def conversation(text: str = QUESTION) -> list[dict]:
    return [{"role": "user", "content": [{"type": "audio", "audio_url": "/clip.wav"}, {"type": "text", "text": text}]}]


def encode(processor, clips: list[np.ndarray], saving: bool = True, texts: list[str] | None = None):
    """As the project encodes a batch: the rendered template, padding=True and (with `saving`) the family's keywords;
    without them, the stock processor's 300-s padding."""
    conversations = [conversation(text) for text in texts or [QUESTION] * len(clips)]
    rendered = processor.apply_chat_template(conversations, tokenize=False, add_generation_prompt=True)
    keywords = FAMILY.processor_kwargs(processor, clips) if saving else {}
    return processor(text=rendered, audio=clips, sampling_rate=RATE, padding=True, return_tensors="pt", **keywords)


def audio_tokens(samples: int) -> int:
    """The encoder's output length for a clip: two stride-2 steps over its ceil(samples/160) mel frames."""
    frames = math.ceil(samples / 160)
    return ((frames - 1) // 2 + 1 - 2) // 2 + 1


def weight_names(folder: str) -> list[str]:
    names = []
    for file in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(file), "pt") as shard:
            names.extend(shard.keys())
    return names


def test_the_chat_template_renders_the_published_prompt(processor):
    rendered = processor.apply_chat_template([conversation()], tokenize=False, add_generation_prompt=True)[0]
    assert rendered == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|audio_bos|><|AUDIO|><|audio_eos|>What is in the audio?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert len(FAMILY.placeholder_ids(processor.tokenizer)) == 3  # why: all three are real tokens, none unknown


@pytest.mark.parametrize("side", ["right", "left"])  # why: the stock class would force left for both
def test_input_ids_expand_each_placeholder_and_pad_on_the_tokenizers_side(processor, tmp_path, side):
    clips = [read_clip(tmp_path, 2.3, 300.0), read_clip(tmp_path, 1.0, 500.0, "noise")]
    texts = [QUESTION, "Which?"]  # the short clip with the short text: its row is padded
    processor.tokenizer.padding_side = side
    encoded = encode(processor, clips, texts=texts)
    conversations = [conversation(text) for text in texts]
    rendered = processor.apply_chat_template(conversations, tokenize=False, add_generation_prompt=True)
    for row, (text, clip) in enumerate(zip(rendered, clips, strict=True)):
        expanded = text.replace("<|AUDIO|>", "<|AUDIO|>" * audio_tokens(len(clip)))
        expected = processor.tokenizer(expanded, add_special_tokens=False)["input_ids"]
        mask = encoded["attention_mask"][row].bool()
        assert encoded["input_ids"][row][mask].tolist() == expected
    padded = encoded["attention_mask"][1]
    assert padded[-1 if side == "right" else 0] == 0 and padded.sum() < padded.numel()


def test_features_are_the_extractors_own_right_padded_output(processor, tmp_path):
    clips = [read_clip(tmp_path, 2.3, 300.0), read_clip(tmp_path, 1.0, 500.0, "noise")]
    processor.tokenizer.padding_side = "left"  # text padding must not move the audio frames
    encoded = encode(processor, clips)
    extractor = processor.feature_extractor
    own = extractor(clips, sampling_rate=RATE, padding="max_length", max_length=omni.padded_length(processor, clips),
                    return_attention_mask=True, return_tensors="pt")  # fmt: skip
    assert torch.equal(encoded["input_features"], own["input_features"])
    assert torch.equal(encoded["feature_attention_mask"], own["attention_mask"])
    for mask, clip in zip(encoded["feature_attention_mask"], clips, strict=True):  # valid frames first, from frame 0
        frames = math.ceil(len(clip) / 160)
        assert mask[:frames].all() and not mask[frames:].any()


@pytest.mark.parametrize(
    "seconds",
    [
        (1.0,),  # one clip: padded to its length plus half a window
        (321 / RATE,),  # alone: under 12 frames wide, MKL would round the mel projection apart (the 1-s floor)
        (2.3, 0.4),  # the short clip's frames sit far inside the batch's padding
        (321 / RATE, 0.5),  # the shortest clip the family takes, in a batch
        (10.0 + 1 / RATE,),  # one sample into a new frame
        (299.99,),  # within half a window of the 300-s cap: padded to 300 s exactly, as the stock processor does
    ],
)
def test_padding_to_the_longest_clip_gives_the_300_s_features_bit_for_bit(processor, seconds):
    rng = np.random.default_rng(0)
    clips = [(0.3 * rng.standard_normal(round(s * RATE))).astype(np.float32) for s in seconds]
    saved, stock = encode(processor, clips), encode(processor, clips, saving=False)
    assert stock["input_features"].size(-1) == 30_000
    assert saved["input_features"].size(-1) <= stock["input_features"].size(-1)
    assert torch.equal(saved["input_ids"], stock["input_ids"])
    for row in range(len(clips)):
        frames = int(stock["feature_attention_mask"][row].sum())
        assert int(saved["feature_attention_mask"][row].sum()) == frames
        assert torch.equal(saved["input_features"][row, :, :frames], stock["input_features"][row, :, :frames])


def test_padding_to_the_clip_alone_would_reflect_its_last_samples(processor):
    """Why `padded_length` adds half a window: padded to its own length, a clip's last frames read a reflection."""
    clip = (0.3 * np.random.default_rng(1).standard_normal(RATE)).astype(np.float32)
    extractor = processor.feature_extractor
    exact = extractor([clip], sampling_rate=RATE, max_length=RATE, return_attention_mask=True, return_tensors="pt")
    stock = encode(processor, [clip], saving=False)
    frames = int(stock["feature_attention_mask"][0].sum())
    assert not torch.equal(exact["input_features"][0, :, :frames], stock["input_features"][0, :, :frames])


def test_the_saving_leaves_logps_and_encoder_gradients_unchanged(model, processor, tmp_path):
    clips = [read_clip(tmp_path, 2.3, 300.0), read_clip(tmp_path, 1.0, 500.0, "noise")]
    results = []
    for saving in (True, False):
        encoded = encode(processor, clips, saving=saving)
        model.zero_grad()
        logits = model(**encoded).logits
        logps = logits[:, :-1].log_softmax(-1).gather(-1, encoded["input_ids"][:, 1:, None]).squeeze(-1)
        mask = encoded["attention_mask"][:, 1:].bool()
        logps[mask].sum().backward()
        grads = {n: p.grad.clone() for n, p in model.model.audio_tower.named_parameters() if p.grad is not None}
        results.append((logps[mask].detach(), grads))
    (saved, saved_grads), (stock, stock_grads) = results
    assert torch.allclose(saved, stock, atol=1e-5)
    # why: gradients reach the whole encoder (but the bos/eos embedding, which the thinker never reads)
    unused = {n for n, _ in model.model.audio_tower.named_parameters()} - set(stock_grads)
    assert unused == {"audio_bos_eos_token.weight"} and all(g.abs().sum() > 0 for g in stock_grads.values())
    for name, grad in stock_grads.items():
        assert torch.allclose(saved_grads[name], grad, atol=1e-5, rtol=1e-5), name


def test_the_whole_omni_folder_loads_as_the_thinker_alone(model_dir, tmp_path):
    config = json.loads((Path(model_dir) / "config.json").read_text())
    assert config["model_type"] == "qwen2_5_omni" and config["architectures"] == ["Qwen2_5OmniModel"]
    assert {"thinker_config", "talker_config", "token2wav_config"} <= set(config) and config["enable_audio_output"]
    names = weight_names(model_dir)
    thinker = [n for n in names if n.startswith("thinker.")]
    assert thinker and all(n.startswith(("thinker.", *FAMILY.ignored_prefixes)) for n in names)
    assert all(any(n.startswith(prefix) for n in names) for prefix in FAMILY.ignored_prefixes)
    model, info = FAMILY.model_class.from_pretrained(model_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    assert all(key.startswith(FAMILY.ignored_prefixes) for key in info["unexpected_keys"])
    assert len(model.state_dict()) == len(thinker)  # every thinker tensor, and nothing but the thinker
    assert not [n for n, _ in model.named_modules() if "talker" in n or "token2wav" in n]
    for module in FAMILY.frozen_modules:
        assert sum(p.numel() for p in model.get_submodule(module).parameters()) > 0
    assert family_of(model_dir) is FAMILY
    model.save_pretrained(tmp_path / "checkpoint")  # what a training run writes: a thinker folder
    assert family_of(str(tmp_path / "checkpoint")) is FAMILY


def test_the_tiny_folder_is_a_whole_omni_model(model_dir, model):
    """The whole class (thinker, talker, token2wav, speakers) loads every tensor it has: the layout is complete.
    (Its `from_pretrained` breaks on `output_loading_info`, so the tensors are compared instead.)"""
    whole = Qwen2_5OmniForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)
    assert sorted(whole.speaker_map) == ["Chelsie", "Ethan"]
    thinker = model.state_dict()
    assert all(torch.equal(value, thinker[key]) for key, value in whole.thinker.state_dict().items())
    saved = {}
    for file in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(file), "pt") as shard:
            saved |= {name: shard.get_tensor(name) for name in shard.keys() if not name.startswith("thinker.")}
    speech = {f"{part}.{key}": value for part in ("talker", "token2wav")
              for key, value in getattr(whole, part).state_dict().items()}  # fmt: skip
    assert speech.keys() == saved.keys() and all(torch.equal(speech[k], saved[k]) for k in saved)


def test_the_processor_loads_from_the_published_layout(model_dir):
    files = set(os.listdir(model_dir))
    assert {"preprocessor_config.json", "chat_template.json", "tokenizer_config.json", "vocab.json",
            "merges.txt", "added_tokens.json", "special_tokens_map.json", "spk_dict.pt"} <= files  # fmt: skip
    assert "processor_config.json" not in files
    settings = json.loads((Path(model_dir) / "preprocessor_config.json").read_text())
    assert settings["chunk_length"] == 300 and settings["n_samples"] == 4_800_000 and "min_pixels" in settings
    processor = FAMILY.processor_class.from_pretrained(model_dir)
    assert family_of_processor(processor) is FAMILY and processor.chat_template == omni.CHAT_TEMPLATE
    assert processor.feature_extractor.nb_max_frames == 30_000 and processor.audio_token == "<|AUDIO|>"


def test_saved_processor_files_load_back_equal_and_name_the_stock_class(processor, tmp_path):
    clip = read_clip(tmp_path, 1.5)
    processor.save_pretrained(tmp_path / "saved")
    files = set(os.listdir(tmp_path / "saved"))
    assert files == {"preprocessor_config.json", "chat_template.json", "tokenizer.json", "tokenizer_config.json",
                     "vocab.json", "merges.txt"}  # fmt: skip
    for name in ("preprocessor_config.json", "tokenizer_config.json"):
        assert json.loads((tmp_path / "saved" / name).read_text())["processor_class"] == "Qwen2_5OmniProcessor"
    again = FAMILY.processor_class.from_pretrained(str(tmp_path / "saved"))
    again.tokenizer.padding_side = processor.tokenizer.padding_side
    assert type(again) is type(processor) and again.chat_template == processor.chat_template
    before, after = encode(processor, [clip]), encode(again, [clip])
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("where", ["published", "saved"])
def test_plain_auto_processor_gives_the_stock_class_or_asks_for_torchvision(model_dir, processor, tmp_path, where):
    folder = model_dir if where == "published" else str(tmp_path / "saved")
    if where == "saved":
        processor.save_pretrained(folder)
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="Torchvision"):  # why: neither folder ever gives a bare tokenizer
            AutoProcessor.from_pretrained(folder)
        return
    stock = AutoProcessor.from_pretrained(folder)
    assert type(stock).__name__ == "Qwen2_5OmniProcessor"
    clip = np.zeros(RATE, np.float32)
    stock.tokenizer.padding_side = "left"
    processor.tokenizer.padding_side = "left"
    ours, theirs = encode(processor, [clip], saving=False), encode(stock, [clip], saving=False)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_the_shortest_clip_is_heard_and_one_sample_fewer_silently_is_not(model, processor):
    rng = np.random.default_rng(2)

    def logits(samples: int) -> tuple[torch.Tensor, int]:
        clips = [(0.3 * rng.standard_normal(samples)).astype(np.float32)]
        encoded = encode(processor, clips)
        with torch.no_grad():
            return model(**encoded).logits, int((encoded["input_ids"] == processor.audio_token_id).sum())

    (first, tokens), (second, _) = logits(FAMILY.min_samples), logits(FAMILY.min_samples)
    assert tokens == 1 and (first - second).abs().max() > 1e-4, "the shortest clip is not heard"
    (first, tokens), (second, _) = logits(FAMILY.min_samples - 1), logits(FAMILY.min_samples - 1)
    assert tokens == 0 and torch.equal(first, second), "one sample fewer: no audio token, the clip is not heard"
