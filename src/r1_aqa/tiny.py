"""Build a tiny random Qwen2-Audio (model + processor) from configs, with no download.

    python -m r1_aqa.tiny OUTPUT_DIR [--seed 0]

Same classes as Qwen/Qwen2-Audio-7B-Instruct (Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor, a Whisper
feature extractor with 128 mel bins) and the same special tokens and chat template; only the sizes differ and the
tokenizer is a byte-level BPE of a few hundred tokens trained here on the prompt texts.
"""

import argparse
import random

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    PreTrainedTokenizerFast,
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
    WhisperFeatureExtractor,
)

from r1_aqa.prompts import INSTRUCTIONS

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
_WORDS = "sound music speech man woman dog car bell bird piano guitar rain engine tone noise silence chirp low high"


def _corpus() -> list[str]:
    rng = random.Random(0)
    words = _WORDS.split()
    lines = [
        f"system\nYou are a helpful assistant.\nuser\nassistant\nAudio 1: {text}" for text in INSTRUCTIONS.values()
    ]
    for _ in range(200):
        choices = rng.sample(words, 4)
        lines.append(f"What is in the audio? Please choose the answer from the following options: {choices}.")
        lines.append(f"<think>I hear a {choices[0]}.</think><answer>{choices[1]}</answer>")
    return lines


def build_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={
            "audio_token": "<|AUDIO|>",
            "audio_bos_token": "<|audio_bos|>",
            "audio_eos_token": "<|audio_eos|>",
        },
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
            "hidden_size": hidden_size,
            "intermediate_size": 2 * hidden_size,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 4096,
            "tie_word_embeddings": False,
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


def build(
    output_dir: str,
    hidden_size: int = 64,
    chunk_length: int = 30,
    seed: int = 0,
    encoder_width: int | None = None,
    encoder_layers: int = 2,
) -> str:
    processor = build_processor(chunk_length)
    model = build_model(processor, hidden_size, seed, encoder_width, encoder_layers)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    return output_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--chunk-length", type=int, default=30, help="seconds of audio the encoder takes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder-width", type=int, help="audio encoder d_model (default: the hidden size)")
    parser.add_argument("--encoder-layers", type=int, default=2)
    args = parser.parse_args()
    print(build(args.output_dir, args.hidden_size, args.chunk_length, args.seed, args.encoder_width,
                args.encoder_layers))  # fmt: skip


if __name__ == "__main__":
    main()
