"""Conversations + clips -> model inputs, one way for training and evaluation alike.

Only the text is padded (on the side the tokenizer says); the audio features are always right-padded by the
feature extractor, as Qwen2-Audio expects (its audio frames must start at frame 0).
"""

import json

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin

from r1_aqa.audio import SAMPLING_RATE, load_audio
from r1_aqa.prompts import audio_paths, drop_null_keys


def load_clips(conversations: list[list[dict]]) -> list[np.ndarray]:
    """Every clip the conversations refer to, in order; a clip repeated in a batch is decoded once."""
    paths = [path for conversation in conversations for path in audio_paths(conversation)]
    loaded = {path: load_audio(path) for path in dict.fromkeys(paths)}
    return [loaded[path] for path in paths]


def encode(
    processor: ProcessorMixin,
    conversations: list[list[dict]],
    clips: list[np.ndarray] | None = None,
    chat_template_kwargs: dict | None = None,
) -> BatchFeature:
    """Render the chat template (with `chat_template_kwargs` as its variables) and let the processor expand each
    <|AUDIO|> for its clip.

    Without explicit `clips`, a conversation repeated in the batch (GRPO repeats each prompt once per completion)
    is processed once and its rows copied: the same tensors, one feature extraction per clip instead of G."""
    conversations = [drop_null_keys(conversation) for conversation in conversations]
    if clips is None:
        keys = [json.dumps(conversation, sort_keys=True) for conversation in conversations]
        first = {key: index for index, key in reversed(list(enumerate(keys)))}  # first occurrence of each
        if len(first) < len(keys):
            distinct = sorted(first, key=first.get)
            rank = {key: position for position, key in enumerate(distinct)}
            encoded = encode(processor, [conversations[first[key]] for key in distinct], None, chat_template_kwargs)
            rows = torch.tensor([rank[key] for key in keys])
            return BatchFeature({name: value[rows] for name, value in encoded.items()})
        clips = load_clips(conversations)
    texts = processor.apply_chat_template(
        conversations, tokenize=False, add_generation_prompt=True, **(chat_template_kwargs or {})
    )
    return processor(text=texts, audio=clips, sampling_rate=SAMPLING_RATE, padding=True, return_tensors="pt")
