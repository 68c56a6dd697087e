"""Conversations + clips -> model inputs, one way for training and evaluation alike.

Only the text is padded (on the side the tokenizer says); the audio features are always right-padded by the
feature extractor, as the audio encoders expect (their frames must start at frame 0). What differs by model family
(the content key its chat template reads, the clip limit, extra processor keywords, how many feature rows a clip
gives) comes from the family the processor belongs to (`r1_aqa.families`).
"""

import json

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin

from r1_aqa.audio import SAMPLING_RATE, load_audio
from r1_aqa.families import Family, family_of_processor
from r1_aqa.prompts import audio_paths, drop_null_keys


def load_clips(conversations: list[list[dict]], max_seconds: float | None = None) -> list[np.ndarray]:
    """Every clip the conversations refer to, in order, cut to `max_seconds`; a clip repeated in a batch is decoded
    once."""
    paths = [path for conversation in conversations for path in audio_paths(conversation)]
    loaded = {path: load_audio(path, max_seconds) for path in dict.fromkeys(paths)}
    return [loaded[path] for path in paths]


def for_template(family: Family, conversation: list[dict]) -> list[dict]:
    """The conversation with its audio parts under the key the family's chat template reads."""
    key = family.audio_part_key
    if key == "audio_url":
        return conversation

    def part_for(part: dict) -> dict:
        if part.get("type") != "audio":
            return part
        return {**{name: value for name, value in part.items() if name != "audio_url"}, key: part["audio_url"]}

    return [
        {**message, "content": [part_for(part) for part in message["content"]]}
        if isinstance(message["content"], list)
        else message
        for message in conversation
    ]


def encode_rows(
    processor: ProcessorMixin,
    conversations: list[list[dict]],
    clips: list[np.ndarray] | None = None,
    chat_template_kwargs: dict | None = None,
) -> tuple[BatchFeature, list[int]]:
    """(`encode`'s batch, how many rows of the audio tensors each sequence owns, in order)."""
    family = family_of_processor(processor)
    conversations = [drop_null_keys(conversation) for conversation in conversations]
    if clips is None:
        keys = [json.dumps(conversation, sort_keys=True) for conversation in conversations]
        first = {key: index for index, key in reversed(list(enumerate(keys)))}  # first occurrence of each
        if len(first) < len(keys):
            distinct = sorted(first, key=first.get)
            rank = {key: position for position, key in enumerate(distinct)}
            encoded, rows = encode_rows(
                processor, [conversations[first[key]] for key in distinct], None, chat_template_kwargs
            )
            return _repeated(encoded, rows, [rank[key] for key in keys], family), [rows[rank[key]] for key in keys]
        clips = load_clips(conversations, family.max_seconds)
    counts = [len(audio_paths(conversation)) for conversation in conversations]
    if sum(counts) != len(clips):
        raise ValueError(f"{sum(counts)} audio parts in the conversations but {len(clips)} clips")
    clip_rows = [family.rows_of(processor, len(clip)) for clip in clips]
    bounds = np.cumsum([0, *counts])
    rows = [sum(clip_rows[bounds[i] : bounds[i + 1]]) for i in range(len(conversations))]
    texts = processor.apply_chat_template(
        [for_template(family, conversation) for conversation in conversations],
        tokenize=False,
        add_generation_prompt=True,
        **(chat_template_kwargs or {}),
    )
    encoded = processor(
        text=texts,
        audio=clips,
        sampling_rate=SAMPLING_RATE,
        padding=True,
        return_tensors="pt",
        **family.processor_kwargs(processor, clips),
    )
    for key in family.audio_keys:
        if encoded[key].size(0) != sum(rows):
            raise ValueError(f"{key}: {encoded[key].size(0)} rows from the processor, {sum(rows)} expected")
    return encoded, rows


def _repeated(encoded: BatchFeature, rows: list[int], which: list[int], family: Family) -> BatchFeature:
    """Sequence `which[i]` of `encoded` as the i-th, with the audio rows it owns."""
    index = torch.tensor(which)
    starts = np.cumsum([0, *rows])
    audio_index = torch.tensor([row for i in which for row in range(starts[i], starts[i + 1])], dtype=torch.long)
    return BatchFeature(
        {name: value[audio_index if name in family.audio_keys else index] for name, value in encoded.items()}
    )


def encode(
    processor: ProcessorMixin,
    conversations: list[list[dict]],
    clips: list[np.ndarray] | None = None,
    chat_template_kwargs: dict | None = None,
) -> BatchFeature:
    """Render the chat template (with `chat_template_kwargs` as its variables) and let the processor expand each
    audio placeholder for its clip.

    Without explicit `clips`, a conversation repeated in the batch (GRPO repeats each prompt once per completion)
    is processed once and its rows copied: the same tensors, one feature extraction per clip instead of G."""
    return encode_rows(processor, conversations, clips, chat_template_kwargs)[0]


def split_rows(audio: dict[str, torch.Tensor], rows: list[int]) -> dict[str, list[torch.Tensor]]:
    """The audio tensors as one tensor per sequence (its own rows): TRL shuffles and splits lists with the batch."""
    return {key: list(torch.split(value, rows)) for key, value in audio.items()}


def join_rows(audio: dict[str, list[torch.Tensor]]) -> tuple[dict[str, torch.Tensor], list[int]]:
    """`split_rows` undone: (the tensors, the rows each sequence owns)."""
    rows = [part.size(0) for part in next(iter(audio.values()))]
    return {key: torch.cat(parts) for key, parts in audio.items()}, rows
