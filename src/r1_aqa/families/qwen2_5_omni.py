"""Qwen2.5-Omni (Qwen/Qwen2.5-Omni-7B and -3B), its thinker alone: the family, and a tiny random one built from configs.

    python -m r1_aqa.tiny OUTPUT_DIR --family qwen2_5_omni [--hidden-size 64] [--chunk-length 300]

The published folder holds the whole Omni model (`model_type: qwen2_5_omni`, thinker, talker, token2wav); the thinker
(audio encoder, vision tower, language model) is loaded from it and trained, the speech talker and token2wav are
never built, and a training checkpoint is a thinker folder (`qwen2_5_omni_thinker`). The tiny model is laid out as
the published one: whole-model config.json, `thinker.*`, `talker.*` and `token2wav.*` shards, spk_dict.pt, one
preprocessor_config.json with image and audio keys, chat_template.json, and the tokenizer files.

What departs from Qwen2-Audio:
- The processor is `OmniAudioProcessor`, the stock one with only its feature extractor and tokenizer: the stock class
  needs torchvision for its video processor (not installable beside torch 2.13 CPU), audio-only prompts never use
  either vision sub-processor, and its inputs are the stock class's bit for bit (checked in a venv with torchvision;
  the tests compare them when it is installed). `save_pretrained` writes the published layout (and
  names the stock class), so transformers with torchvision loads a checkpoint's processor as the stock one; without
  torchvision, `AutoProcessor` on the published folder or a checkpoint raises ImportError (Qwen2VLVideoProcessor).
  The stock class forces left text padding; this one pads the text on `tokenizer.padding_side`.
- Audio: `input_features` (B, 128, frames) and `feature_attention_mask` (B, frames), one row per sequence, right-
  padded; each <|AUDIO|> expands to ((L-1)//2+1-2)//2+1 tokens for L = ceil(samples/160) valid frames. The encoder
  reads the valid frames only and windows them itself (200 frames each), so a clip is one row at any length.
- Exact saving (`saving_kwargs`): the stock processor pads every clip to 300 s (4,800,000 samples, 15.4 MB of float32
  features a row); the features are padded to the batch's longest clip plus half an STFT window instead, so every
  valid frame sees the same zeros past the clip as with 300-s padding (equal bit for bit: tests).
- Placeholders <|AUDIO|>, <|IMAGE|>, <|VIDEO|> are never sampled; the vision tower (`model.visual`) and the audio
  encoder's unused bos/eos embedding stay frozen.
- The config needs `vision_start_token_id` even for audio only (the position code reads it); audio-only prompts get
  plain 1-D positions, and `mrope_section` sums to head_dim/2.

Chat template: transformers' Qwen2.5-Omni processor test (`prepare_processor_dict`, copied from the hub's
chat_template.json) and two Qwen2.5-Omni fine-tunes' verbatim chat_template files agree on the text below; the hub's
own file could not be read from here. Its default system turn is "You are a helpful assistant."; the "You are Qwen, a
virtual human..." prompt of Qwen's examples is passed explicitly there, never injected by the template.
"""

import json
import math
import os

import numpy as np
import torch
from transformers import (
    GenerationConfig,
    Qwen2_5OmniConfig,
    Qwen2_5OmniForConditionalGeneration,
    Qwen2_5OmniProcessor,
    Qwen2_5OmniThinkerConfig,
    Qwen2_5OmniThinkerForConditionalGeneration,
    WhisperFeatureExtractor,
)

from r1_aqa.families import Family, register
from r1_aqa.families._omni_processor import AudioOnlyOmniProcessor
from r1_aqa.families._tiny_text import build_tokenizer as build_text_tokenizer
from r1_aqa.families._tiny_text import tiny_lm_sizes

CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}{% set video_count = "
    "namespace(value=0) %}{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}{% for content in "
    "message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_bos|><|IMAGE|><|vision_eos|>{% elif content['type'] == 'audio' or 'audio' in content or "
    "'audio_url' in content %}{% set audio_count.value = audio_count.value + 1 %}{% if add_audio_id %}Audio "
    "{{ audio_count.value }}: {% endif %}<|audio_bos|><|AUDIO|><|audio_eos|>{% elif content['type'] == 'video' or "
    "'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_bos|><|VIDEO|><|vision_eos|>{% elif 'text' in content %}"
    "{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)
# The published added tokens from <|endoftext|> (151643) to <|VIDEO|> (151656), in their order.
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>", "<|box_end|>",
    "<|quad_start|>", "<|quad_end|>", "<|vision_bos|>", "<|vision_eos|>", "<|vision_pad|>", "<|IMAGE|>", "<|VIDEO|>",
]  # fmt: skip
NAMED_TOKENS = {
    "image_token": "<|IMAGE|>", "audio_token": "<|AUDIO|>", "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>",
}  # fmt: skip
# The image keys of the published preprocessor_config.json, written back so the stock class finds its image processor.
IMAGE_SETTINGS = {
    "image_processor_type": "Qwen2VLImageProcessor", "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14,
    "merge_size": 2, "temporal_patch_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
}  # fmt: skip
# The published feature extractor's chunk_length: it cuts every clip at 4,800,000 samples.
MAX_SECONDS = 300.0
# L = ceil(samples/160) valid frames give ((L-1)//2+1-2)//2+1 audio tokens: 1 token needs L >= 3, so 2 * 160 + 1
# samples. At 320 or fewer the prompt keeps no <|AUDIO|> and nothing fails: the model silently hears no clip (tests).
MIN_SAMPLES = 321
# MKL rounds the mel projection of a batch under 12 frames wide differently (1 ulp) from the 300-s batch's; padding
# to at least 1 s keeps every batch on the path the 300-s padding takes, for 0.5 % of its bytes.
MIN_PADDED_FRAMES = 100


class OmniAudioProcessor(AudioOnlyOmniProcessor, Qwen2_5OmniProcessor):
    """The stock Qwen2.5-Omni processor with its feature extractor and tokenizer only (`_omni_processor`)."""

    stock_name = Qwen2_5OmniProcessor.__name__
    image_keys = IMAGE_SETTINGS


def padded_length(processor, clips: list[np.ndarray]) -> int:
    """Samples to pad a batch to: every valid frame's centred STFT window (n_fft/2 each side) reads the same samples
    as with the extractor's full padding, also where it reaches past the clip (zeros, never a reflection of the
    array's end), and no frame past that can raise a row's maximum (the log-mel floor is max - 8)."""
    extractor = processor.feature_extractor
    hop, longest = extractor.hop_length, max(len(clip) for clip in clips)
    frames = max(MIN_PADDED_FRAMES, math.ceil((longest + extractor.n_fft // 2) / hop))
    return min(extractor.n_samples, frames * hop)


def saving_kwargs(processor, clips: list[np.ndarray]) -> dict:
    # The processor hard-codes padding="max_length"; its max_length reaches the feature extractor only this way
    # (a bare `max_length` would also truncate the text).
    return {"audio_kwargs": {"max_length": padded_length(processor, clips)}}


def build_tokenizer(vocab_size: int = 400):
    return build_text_tokenizer(
        SPECIAL_TOKENS, eos_token="<|im_end|>", pad_token="<|endoftext|>", extra_special_tokens=NAMED_TOKENS,
        vocab_size=vocab_size,
    )  # fmt: skip


def build_processor(chunk_length: int = 300) -> OmniAudioProcessor:
    feature_extractor = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16_000, hop_length=160, chunk_length=chunk_length, n_fft=400,
        return_attention_mask=True,
    )  # fmt: skip
    return OmniAudioProcessor(feature_extractor, build_tokenizer(), chat_template=CHAT_TEMPLATE)


def build_config(processor: OmniAudioProcessor, hidden_size: int = 64, encoder_layers: int = 2) -> Qwen2_5OmniConfig:
    """The whole model's config at tiny sizes: thinker (audio encoder, vision tower, LM), talker, token2wav."""
    tokenizer = processor.tokenizer
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    media = {
        "audio_token_index": ids["<|AUDIO|>"], "image_token_index": ids["<|IMAGE|>"],
        "video_token_index": ids["<|VIDEO|>"], "audio_start_token_id": ids["<|audio_bos|>"],
        "audio_end_token_id": ids["<|audio_eos|>"], "vision_start_token_id": ids["<|vision_bos|>"],
    }  # fmt: skip
    thinker = {
        "audio_config": {
            "d_model": hidden_size, "encoder_layers": encoder_layers, "encoder_attention_heads": 2,
            "encoder_ffn_dim": 2 * hidden_size, "num_mel_bins": 128, "output_dim": hidden_size,
            "n_window": 100, "max_source_positions": 1500,  # the published values: 200-frame windows
        },
        "vision_config": {
            "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": hidden_size,
            "fullatt_block_indexes": [1],
        },
        "text_config": {
            **tiny_lm_sizes(hidden_size, tokenizer), "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": mrope(hidden_size // 4)},
            "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"],
        },
        "user_token_id": tokenizer.encode("user", add_special_tokens=False)[0],  # "user" is one published token
        **media,
    }  # fmt: skip
    talker_head = 32
    talker = {
        # Only the talker reads these (never run here); in range of its 32 codes, which transformers checks.
        "vocab_size": 32, "tts_text_pad_token_id": 25, "tts_text_start_token_id": 26, "tts_text_end_token_id": 27,
        "tts_codec_pad_token_id": 28, "tts_codec_start_token_id": 29, "tts_codec_end_token_id": 30,
        "tts_codec_mask_token_id": 31, "vision_end_token_id": ids["<|vision_eos|>"],
        "embedding_size": hidden_size, "hidden_size": hidden_size, "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": talker_head,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": mrope(talker_head)},
        **media,
    }  # fmt: skip
    token2wav = {
        "dit_config": {
            "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "ff_mult": 1, "emb_dim": 16,
            "head_dim": 16, "num_embeds": 32, "mel_dim": 8, "enc_emb_dim": 8, "enc_dim": 8,
            "enc_channels": [8, 8, 8, 8, 24], "enc_attention_channels": 8, "enc_se_channels": 8,
            "look_ahead_layers": [1], "look_backward_layers": [0],
        },
        "bigvgan_config": {
            "mel_dim": 8, "upsample_initial_channel": 16, "resblock_kernel_sizes": [3],
            "resblock_dilation_sizes": [[1, 3, 5]], "upsample_rates": [2, 2], "upsample_kernel_sizes": [4, 4],
        },
    }  # fmt: skip
    return Qwen2_5OmniConfig(
        thinker_config=thinker, talker_config=talker, token2wav_config=token2wav, enable_audio_output=True
    )


def mrope(head_dim: int) -> list[int]:
    """Temporal, height, width rotary sections summing to head_dim / 2, in the published 2:3:3 proportion."""
    half = head_dim // 2
    side = (3 * half) // 8
    return [half - 2 * side, side, side]


def build_tiny(
    output_dir: str,
    seed: int = 0,
    hidden_size: int = 64,
    chunk_length: int | None = None,
    encoder_layers: int = 2,
) -> str:
    processor = build_processor(chunk_length or int(MAX_SECONDS))
    tokenizer = processor.tokenizer
    config = build_config(processor, hidden_size, encoder_layers)
    torch.manual_seed(seed)
    model = Qwen2_5OmniForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id], pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(output_dir, max_shard_size="1MB")  # several shards and an index, as published
    config_file = os.path.join(output_dir, "config.json")
    with open(config_file, encoding="utf-8") as file:
        saved = json.load(file)
    saved["architectures"] = ["Qwen2_5OmniModel"]  # the published name, which no transformers 5 class has
    with open(config_file, "w", encoding="utf-8") as file:
        json.dump(saved, file, indent=2, sort_keys=True)
    speakers = {
        name: {"bos_token": tokenizer.convert_tokens_to_ids("<|im_start|>"),  # any thinker id: the talker's
               "cond": torch.randn(1, config.token2wav_config.dit_config.enc_emb_dim),
               "ref_mel": torch.randn(1, 30, config.token2wav_config.dit_config.mel_dim)}
        for name in ("Chelsie", "Ethan")
    }  # fmt: skip
    torch.save(speakers, os.path.join(output_dir, "spk_dict.pt"))  # the whole class's from_pretrained reads it
    processor.save_pretrained(output_dir)
    write_legacy_tokenizer_files(tokenizer, output_dir)
    return output_dir


def write_legacy_tokenizer_files(tokenizer, output_dir: str) -> None:
    """added_tokens.json and special_tokens_map.json, which the published folder also has (the processor's
    `save_pretrained` writes vocab.json and merges.txt)."""
    added = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    special = {"eos_token": tokenizer.eos_token, "pad_token": tokenizer.pad_token,
               "additional_special_tokens": [t for t in SPECIAL_TOKENS if t not in ("<|endoftext|>",)]}  # fmt: skip
    for name, content in (("added_tokens.json", added), ("special_tokens_map.json", special)):
        with open(os.path.join(output_dir, name), "w", encoding="utf-8") as file:
            json.dump(content, file, indent=2)


FAMILY = register(
    Family(
        name="qwen2_5_omni",
        model_types=("qwen2_5_omni", Qwen2_5OmniThinkerConfig.model_type),  # published folder, training checkpoint
        model_class=Qwen2_5OmniThinkerForConditionalGeneration,
        processor_class=OmniAudioProcessor,
        audio_keys=("input_features", "feature_attention_mask"),
        placeholder_tokens=("<|AUDIO|>", "<|IMAGE|>", "<|VIDEO|>"),
        max_seconds=MAX_SECONDS,
        min_samples=MIN_SAMPLES,
        build_tiny=build_tiny,
        # The vision tower serves images and video only; the encoder's bos/eos embedding is read by no forward (a
        # trainable parameter that never gets a gradient also stops DDP).
        frozen_modules=("model.visual", "model.audio_tower.audio_bos_eos_token"),
        ignored_prefixes=("talker.", "token2wav."),
        saving_kwargs=saving_kwargs,
    )
)
