"""Qwen2-Audio (Qwen/Qwen2-Audio-7B-Instruct, the paper's model): the family, and a tiny random one built from configs.

    python -m r1_aqa.tiny OUTPUT_DIR --family qwen2_audio [--hidden-size 64] [--chunk-length 30]

The processor pads every clip to 30 s (`input_features` (B, 128, 3000), `feature_attention_mask` (B, 3000)), one row
per sequence; each <|AUDIO|> expands to ((L-1)//2+1-2)//2+1 tokens for L valid mel frames. Exact savings: the
encoder runs on the valid frames only, once per distinct clip (`_qwen2_audio_savings`).
"""

import torch
from transformers import (
    GenerationConfig,
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
    WhisperFeatureExtractor,
)

from r1_aqa.families import Family, register
from r1_aqa.families._qwen2_audio_savings import disable_fast_audio, enable_fast_audio, is_fast_audio_enabled
from r1_aqa.families._tiny_text import build_tokenizer as build_text_tokenizer
from r1_aqa.families._tiny_text import tiny_lm_sizes

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
# Its encoder sees at most 30 s (3000 mel frames); the processor would cut longer clips anyway.
MAX_SECONDS = 30.0
# transformers 5.23 gives ((L-1)//2+1-2)//2+1 audio tokens for L = ceil(samples/160) mel frames, and the forward falls
# back to a legacy merge when no two audio tokens of a batch are adjacent (a GRPO batch is often one clip): 2 tokens
# need L >= 7, so 6 * 160 + 1 samples (60 ms). 320 samples or fewer give no token at all.
MIN_SAMPLES = 961


def build_tokenizer(vocab_size: int = 400):
    return build_text_tokenizer(
        SPECIAL_TOKENS,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={
            "audio_token": "<|AUDIO|>",
            "audio_bos_token": "<|audio_bos|>",
            "audio_eos_token": "<|audio_eos|>",
        },
        vocab_size=vocab_size,
    )


def build_processor(chunk_length: int = 30) -> Qwen2AudioProcessor:
    feature_extractor = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16_000, hop_length=160, chunk_length=chunk_length, n_fft=400
    )
    return Qwen2AudioProcessor(feature_extractor=feature_extractor, tokenizer=build_tokenizer())


def build_config(
    processor: Qwen2AudioProcessor,
    hidden_size: int = 64,
    encoder_width: int | None = None,
    encoder_layers: int = 2,
    text: dict | None = None,
) -> Qwen2AudioConfig:
    """`encoder_width=1280` gives the real encoder's layer shape (20 heads, ffn 5120); by default it is hidden_size.
    `text` overrides the language model's sizes (bench/ uses the 7B model's)."""
    tokenizer = processor.tokenizer
    chunk_frames = processor.feature_extractor.nb_max_frames  # mel frames in one padded clip
    width = encoder_width or hidden_size
    return Qwen2AudioConfig(
        audio_config={
            "d_model": width,
            "encoder_layers": encoder_layers,
            "encoder_attention_heads": max(2, width // 64),
            "encoder_ffn_dim": 4 * width if encoder_width else 2 * width,
            "num_mel_bins": 128,
            "max_source_positions": chunk_frames // 2,
        },
        text_config={
            "model_type": "qwen2",
            **tiny_lm_sizes(hidden_size, tokenizer),
            "max_position_embeddings": 4096,
            **(text or {}),
        },
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )


def build_model(
    processor: Qwen2AudioProcessor,
    hidden_size: int = 64,
    seed: int = 0,
    encoder_width: int | None = None,
    encoder_layers: int = 2,
):
    tokenizer = processor.tokenizer
    config = build_config(processor, hidden_size, encoder_width, encoder_layers)
    torch.manual_seed(seed)
    model = Qwen2AudioForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.convert_tokens_to_ids("<|endoftext|>"), tokenizer.eos_token_id],
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


# Qwen2-Audio-7B(-Instruct)'s published config.json: a 32-layer Whisper-large-style encoder (d_model 1280), a 32-layer
# LM of width 4096, MLP 11008, 32 heads, vocabulary 156032.
TEXT_7B = {"intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
           "vocab_size": 156032, "max_position_embeddings": 8192}  # fmt: skip


def build_full_size(dtype: torch.dtype, device: str):
    """The 7B architecture with random weights, in memory on `device` (~17 GB in bf16), and the tiny processor (the
    vocabulary's size is the published one; the tokens beyond the tiny tokenizer are never produced by it)."""
    processor = build_processor()
    config = build_config(processor, 4096, 1280, 32, TEXT_7B)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Qwen2AudioForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(default)
    return model, processor


def build_tiny(
    output_dir: str,
    seed: int = 0,
    hidden_size: int = 64,
    chunk_length: int | None = None,
    encoder_width: int | None = None,
    encoder_layers: int = 2,
) -> str:
    processor = build_processor(chunk_length or 30)
    model = build_model(processor, hidden_size, seed, encoder_width, encoder_layers)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    return output_dir


FAMILY = register(
    Family(
        name="qwen2_audio",
        model_types=("qwen2_audio",),
        model_class=Qwen2AudioForConditionalGeneration,
        processor_class=Qwen2AudioProcessor,
        audio_keys=("input_features", "feature_attention_mask"),
        placeholder_tokens=("<|AUDIO|>",),
        max_seconds=MAX_SECONDS,
        min_samples=MIN_SAMPLES,
        build_tiny=build_tiny,
        enable_savings=enable_fast_audio,
        disable_savings=disable_fast_audio,
        savings_enabled=is_fast_audio_enabled,
        build_full_size=build_full_size,
    )
)
