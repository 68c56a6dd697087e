"""Tiny byte-level BPE tokenizers for the tiny models of every family: a few hundred tokens trained here on the
prompt texts, plus the family's real special tokens (so chat templates and placeholders behave as published)."""

import random

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from r1_aqa.prompts import INSTRUCTIONS

_WORDS = "sound music speech man woman dog car bell bird piano guitar rain engine tone noise silence chirp low high"


def corpus() -> list[str]:
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


def build_tokenizer(
    special_tokens: list[str], eos_token: str, pad_token: str, extra_special_tokens: dict, vocab_size: int = 400
) -> PreTrainedTokenizerFast:
    """`special_tokens` get the first ids, in order; `extra_special_tokens` names some of them (audio_token, ...)."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=eos_token,
        pad_token=pad_token,
        extra_special_tokens=extra_special_tokens,
    )


def tiny_lm_sizes(hidden_size: int, tokenizer) -> dict:
    """The language-model sizes every tiny model shares (a family adds its own rotary, token and length keys)."""
    return {
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": len(tokenizer),
        "tie_word_embeddings": False,
    }
