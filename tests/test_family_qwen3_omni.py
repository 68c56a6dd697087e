"""The Qwen3-Omni family (r1_aqa.families.qwen3_omni) on its tiny model: its processor against references computed
here, the published layout loading the thinker alone, the saved processor files, the shortest clip, and the padded
frames the encoder never reads."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_clip
from safetensors import safe_open
from transformers import AutoProcessor, Qwen3OmniMoeProcessor

from r1_aqa.audio import load_audio
from r1_aqa.families import family_of, family_of_processor, qwen3_omni

FAMILY = qwen3_omni.FAMILY
QUESTION = "What is in the audio? Please choose the answer from the following options: ['dog', 'car']."
HOP = 160  # samples per mel frame


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> str:
    return FAMILY.build_tiny(str(tmp_path_factory.mktemp("tiny-qwen3-omni")))


@pytest.fixture(scope="module")
def processor(tiny_dir):
    return FAMILY.processor_class.from_pretrained(tiny_dir)


@pytest.fixture(scope="module")
def model(tiny_dir):
    return FAMILY.model_class.from_pretrained(tiny_dir, dtype=torch.float32).eval()


def conversation(path: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "audio", "audio_url": path}, {"type": "text", "text": QUESTION}]}]


def clips_and_texts(processor, tmp_path, seconds: list[float]) -> tuple[list[np.ndarray], list[str]]:
    """Real wav files, decoded as training decodes them, and the template rendered for each."""
    paths = [str(write_clip(tmp_path / f"c{i}.wav", s, "noise", seed=i)) for i, s in enumerate(seconds)]
    clips = [load_audio(path, FAMILY.max_seconds) for path in paths]
    texts = processor.apply_chat_template([conversation(p) for p in paths], tokenize=False, add_generation_prompt=True)
    return clips, texts


def encode(processor, texts, clips):
    return processor(text=texts, audio=clips, sampling_rate=16_000, padding=True, return_tensors="pt")


def audio_tokens(frames: int) -> int:
    """The encoder's output length, from its architecture: 100-frame windows (2 x n_window) of 13 tokens, the rest
    through three stride-2, kernel-3, padding-1 convolutions."""
    rest = frames % 100
    for _ in range(3):
        rest = (rest - 1) // 2 + 1 if rest else 0
    return frames // 100 * 13 + rest


def test_the_template_renders_the_published_prompt(processor):
    text = processor.apply_chat_template([conversation("a.wav")], tokenize=False, add_generation_prompt=True)[0]
    assert text == (
        "<|im_start|>user\n<|audio_start|><|audio_pad|><|audio_end|>" + QUESTION + "<|im_end|>\n<|im_start|>assistant\n"
    )  # why: no default system turn, the audio before the question as the content order says


def test_input_ids_are_the_template_with_the_placeholder_expanded_by_the_encoder_formula(processor, tmp_path):
    # why 2.0023 s: not a whole number of frames, nor of 1-s windows
    clips, texts = clips_and_texts(processor, tmp_path, [2.0023, 5.0])
    batch = encode(processor, texts, clips)
    pad = processor.tokenizer.audio_token
    expanded = [t.replace(pad, pad * audio_tokens(-(-len(c) // HOP))) for t, c in zip(texts, clips, strict=True)]
    reference = processor.tokenizer(expanded, padding=True, return_tensors="pt")
    assert torch.equal(batch["input_ids"], reference["input_ids"])
    assert torch.equal(batch["attention_mask"], reference["attention_mask"])
    assert [int((row == processor.audio_token_id).sum()) for row in batch["input_ids"]] == [27, 65]


def test_features_are_the_extractors_own_output_right_padded(processor, tmp_path):
    clips, texts = clips_and_texts(processor, tmp_path, [2.0023, 5.0])
    batch = encode(processor, texts, clips)
    for row, clip in enumerate(clips):
        frames = -(-len(clip) // HOP)
        mask = batch["feature_attention_mask"][row]
        assert mask[:frames].all() and not mask[frames:].any(), "the frames are not right-padded"
        # The extractor alone on the clip followed by silence: every valid frame sees zeros past the clip's end.
        silence = np.zeros(processor.feature_extractor.n_fft // 2, np.float32)
        own = processor.feature_extractor([np.concatenate([clip, silence])], sampling_rate=16_000, return_tensors="pt")
        assert torch.equal(batch["input_features"][row, :, :frames], own["input_features"][0, :, :frames])


def test_a_clips_frames_and_tokens_do_not_depend_on_the_clips_beside_it(processor, tmp_path):
    clips, texts = clips_and_texts(processor, tmp_path, [2.0023, 5.0])
    alone, beside = encode(processor, texts[:1], clips[:1]), encode(processor, texts, clips)
    frames = int(alone["feature_attention_mask"].sum())
    assert frames == int(beside["feature_attention_mask"][0].sum()) == 201  # why: the stock class gives 200 alone
    assert torch.equal(alone["input_features"][0, :, :frames], beside["input_features"][0, :, :frames])
    assert torch.equal(alone["input_ids"][0], beside["input_ids"][0][beside["attention_mask"][0].bool()])


@pytest.mark.parametrize("side", ["left", "right"])  # why both: the stock class pads text left whatever is set
def test_text_is_padded_on_the_tokenizers_side_and_audio_always_right(processor, tmp_path, side):
    clips, texts = clips_and_texts(processor, tmp_path, [1.0, 3.0])
    processor.tokenizer.padding_side = side
    try:
        batch = encode(processor, texts, clips)
    finally:
        processor.tokenizer.padding_side = "right"
    short = batch["attention_mask"][0]
    assert not short[0 if side == "left" else -1] and short[-1 if side == "left" else 0]
    assert batch["feature_attention_mask"][:, 0].all()


def test_the_published_layout_loads_the_thinker_alone(tiny_dir):
    config = json.loads((Path(tiny_dir) / "config.json").read_text())
    assert config["model_type"] == "qwen3_omni_moe" and config["architectures"] == [
        "Qwen3OmniMoeForConditionalGeneration"
    ]
    index = json.loads((Path(tiny_dir) / "model.safetensors.index.json").read_text())["weight_map"]
    ignored = [key for key in index if key.startswith(FAMILY.ignored_prefixes)]
    assert ignored and all(key.startswith(("thinker.", *FAMILY.ignored_prefixes)) for key in index)
    model, info = FAMILY.model_class.from_pretrained(tiny_dir, dtype=torch.float32, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    assert all(key.startswith(FAMILY.ignored_prefixes) for key in info["unexpected_keys"])
    assert not [name for name, _ in model.named_modules() if name.startswith(("talker", "code2wav"))]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert family_of(tiny_dir) is FAMILY and model.get_submodule(FAMILY.frozen_modules[0]) is model.model.visual


def test_build_tiny_is_reproducible_talker_experts_included(tiny_dir, tmp_path):
    """5.23 leaves the whole model's talker experts as torch.empty: two builds would differ there."""
    again = FAMILY.build_tiny(str(tmp_path / "again"))

    def tensors(folder: str) -> dict:
        out = {}
        for shard in sorted(Path(folder).glob("*.safetensors")):
            with safe_open(str(shard), "pt") as handle:
                out.update({key: handle.get_tensor(key) for key in handle.keys()})
        return out

    first, second = tensors(tiny_dir), tensors(again)
    assert any(".experts." in key for key in first if key.startswith("talker."))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_a_thinker_checkpoint_reloads_and_maps_to_the_family(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "qwen3_omni_moe_thinker"
    assert family_of(str(tmp_path)) is FAMILY
    _, info = FAMILY.model_class.from_pretrained(str(tmp_path), output_loading_info=True)
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys"))


def test_saved_processor_files_reload_into_an_equal_processor(processor, tmp_path):
    processor.save_pretrained(tmp_path / "saved")
    saved = tmp_path / "saved"
    preprocessor = json.loads((saved / "preprocessor_config.json").read_text())
    assert preprocessor["processor_class"] == "Qwen3OmniMoeProcessor" and "chunk_length" not in preprocessor
    assert preprocessor["image_processor_type"] == "Qwen2VLImageProcessor"  # why: the stock class reads it there
    assert not (saved / "processor_config.json").exists()
    assert json.loads((saved / "chat_template.json").read_text())["chat_template"] == qwen3_omni.CHAT_TEMPLATE
    reloaded = FAMILY.processor_class.from_pretrained(str(saved))
    assert family_of_processor(reloaded) is FAMILY and reloaded.chat_template == processor.chat_template
    clips, texts = clips_and_texts(processor, tmp_path, [1.5, 4.0])
    before, after = encode(processor, texts, clips), encode(reloaded, texts, clips)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_auto_processor_on_a_saved_folder_builds_the_stock_class(processor, tmp_path):
    """The folder names the stock class: with torchvision it is that class; without, its video sub-processor fails."""
    processor.save_pretrained(tmp_path)
    if importlib.util.find_spec("torchvision") is None:
        with pytest.raises(ImportError, match="Qwen2VLVideoProcessor requires the Torchvision"):
            AutoProcessor.from_pretrained(str(tmp_path))
    else:
        assert isinstance(AutoProcessor.from_pretrained(str(tmp_path)), Qwen3OmniMoeProcessor)


def test_padded_frames_never_reach_the_encoder(model, processor, tmp_path):
    """Why no saving is declared: 400 frames more of padding, junk included, change neither log-probs nor the
    encoder's gradients."""
    clips, texts = clips_and_texts(processor, tmp_path, [2.0023])
    batch = encode(processor, texts, clips)
    padded = dict(batch)
    junk = torch.randn(1, 128, 400, generator=torch.Generator().manual_seed(0))
    padded["input_features"] = torch.cat([batch["input_features"], junk], dim=-1)
    padded["feature_attention_mask"] = torch.cat(
        [batch["feature_attention_mask"], torch.zeros(1, 400, dtype=torch.long)], -1
    )
    results = []
    for inputs in (batch, padded):
        model.zero_grad()
        logps = model(**inputs).logits.float().log_softmax(-1)
        logps.gather(-1, inputs["input_ids"][..., None]).sum().backward()
        grads = [p.grad.clone() for p in model.model.audio_tower.parameters()]
        results.append((logps.detach(), grads))
    model.zero_grad()
    (plain, plain_grads), (long, long_grads) = results
    assert torch.allclose(plain, long, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(plain_grads, long_grads, strict=True))
    assert any(g.abs().sum() > 0 for g in plain_grads), "the encoder got no gradient: the check above proves nothing"


def test_min_samples_is_the_shortest_clip_that_runs(model, processor):
    texts = processor.apply_chat_template([conversation("a.wav")], tokenize=False, add_generation_prompt=True)
    clip = np.full(FAMILY.min_samples, 0.1, np.float32)
    batch = encode(processor, texts, [clip])
    assert int((batch["input_ids"] == processor.audio_token_id).sum()) == 1
    with torch.no_grad():
        assert torch.isfinite(model(**batch).logits).all()
    with pytest.raises(RuntimeError, match="Padding size should be less than the corresponding input dimension"):
        encode(processor, texts, [clip[: FAMILY.min_samples - 1]])
