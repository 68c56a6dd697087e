"""Audio Flamingo 3 (nvidia/audio-flamingo-3-hf): the family, and a tiny random one built from configs.

    python -m r1_aqa.tiny OUTPUT_DIR --family audio_flamingo3 [--hidden-size 64] [--chunk-length 30]

Rows: the processor cuts a clip into 30-s windows (the feature extractor's `chunk_length`), at least one and at most
`max_audio_len // chunk_length` = 20 (600 s; later audio is dropped with a warning); each window is one row of
`input_features` (R, 128, 3000) and `input_features_mask` (R, 3000), right-padded to 3000 mel frames. A 5-s clip is
1 row, a 45-s clip 2, a 30.01-s clip 2 (the second holds 1 valid frame). The one `<sound>` of the chat template
expands to f(L) tokens, L the valid mel frames (ceil(samples / 160)) summed over the clip's windows and
f(L) = ((L - 1) // 2 + 1 - 2) // 2 + 1 = (L + 1) // 4, which equals the sum of f over the windows since a full
window's 3000 is a multiple of 4: 750 tokens per 30 s, 25 per second.

Departures from Qwen2-Audio: several rows per sequence (`rows_of`); clips up to 600 s; two processor habits that
`call_kwargs` undoes. (1) It pads the text on the LEFT unless a padding side comes with the call, whatever
`tokenizer.padding_side` says: harmless for training (pads are dropped by attention_mask) and what batched
generation wants, but a caller asking for right padding would silently get left. Passing the tokenizer's side as
`text_kwargs` works and leaves the features unchanged. (2) A top-level `padding=True` also reaches the feature
extractor ("longest"): the windows of a batch of short clips come out shorter than 3000 frames, which the stock
encoder rejects (it adds all 1500 positions) and whose last valid frame differs from the extractor's own output.
Rounding every window up to the extractor's `n_samples` restores its own right-padded output exactly.

Savings (exact, `enable_savings`): like Qwen2-Audio's Whisper encoder, the stock encoder runs every padded frame of
every window and masks the padded keys. Here the rows are cut after the batch's longest window plus 2 frames (the
convolutions read two frames past a window's end) and the encoder runs once per distinct row (GRPO repeats a clip
once per completion). A batch holding any clip of 30 s or more keeps all 3000 frames; sharing still applies.

Placeholders never to be sampled: `<sound>`, and the media tokens the AF3 tokenizer inherits from VILA (`<speech>`,
`<image>`, `<vila/video>`). No frozen modules: the model is the audio tower, the projector and the Qwen2.5-7B LM.

The published folder: config.json (`audioflamingo3`, `AudioFlamingo3ForConditionalGeneration`), safetensors
shards, processor_config.json (the WhisperFeatureExtractor nested, `audio_token` `<sound>`), chat_template.jinja,
tokenizer files, generation_config.json, and `think/`, a PEFT LoRA adapter (adapter_config.json and its weights)
that turns on AF-Think's reasoning mode; `build_tiny` does not build `think/`. `AutoProcessor` on the published
folder or a tiny one gives an `AudioFlamingo3Processor`.

Sources: CHAT_TEMPLATE is verbatim the processor template of transformers'
models/audioflamingo3/convert_audioflamingo3_to_hf.py, which wrote the published chat_template.jinja; its 703
bytes match the size the Hub lists for that file (the Hub itself was not reachable). The published vocabulary is
Qwen2.5's 151665 tokens plus 7 (151672): `<sound>` 151669 is the config's audio_token_id, 151670/151671 its bos/pad
ids; that the 7 are `<vila/sentinel> <image> <vila/video> <speech> <sound> [BOS] [PAD]`, in that order, is inferred
from NVIDIA/audio-flamingo's llava/constants.py listing, not read from the tokenizer. The tiny tokenizer has these 7
and the three Qwen2.5 specials the template uses. generation_config follows the converter's (sampling: temperature
0.7, top_k 20, top_p 0.8, repetition_penalty 1.05); transformers 5.23 fills every field that a caller's
GenerationConfig leaves None from it.
"""

import types

import torch
from torch import nn
from transformers import (
    AudioFlamingo3Config,
    AudioFlamingo3ForConditionalGeneration,
    AudioFlamingo3Processor,
    GenerationConfig,
    WhisperFeatureExtractor,
)
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.audioflamingo3.modeling_audioflamingo3 import AudioFlamingo3Encoder

from r1_aqa.families import Family, register
from r1_aqa.families._tiny_text import build_tokenizer as build_text_tokenizer
from r1_aqa.families._tiny_text import tiny_lm_sizes

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<vila/sentinel>",
    "<image>",
    "<vila/video>",
    "<speech>",
    "<sound>",
    "[BOS]",
    "[PAD]",
]
PLACEHOLDER_TOKENS = ("<sound>", "<speech>", "<image>", "<vila/video>")
CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "{% for m in messages if m['content'] is not none %}"
    "<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}"
    "{{ m['content'] }}"
    "{% else %}"
    "{% set audio = namespace(found=False) %}"
    "{% set text_buf = namespace(v='') %}"
    "{% for c in m['content'] %}"
    "{% if c.get('type') == 'audio' or 'audio' in c %}"
    "{% set audio.found = True %}"
    "{% elif c.get('type') == 'text' or 'text' in c %}"
    "{% set text_buf.v = text_buf.v + c['text'] %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if audio.found %}{{ '<sound>' }}{% endif %}{{ text_buf.v }}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "<|im_start|>assistant\n"
    "{% endif %}"
)
# The processor's max_audio_len: 20 windows of 30 s; it would drop later audio itself.
MAX_SECONDS = 600.0
# ceil(samples / 160) mel frames L give (L + 1) // 4 tokens: one token needs L >= 3, so 2 * 160 + 1 samples (20 ms).
# 320 samples give no `<sound>` at all: the prompt then holds no audio and the model runs without hearing the clip.
MIN_SAMPLES = 321
# For L valid frames the last valid output reads frames up to index L + 1 when L is odd (kernel 3, then kernel 3 with
# stride 2): 2 frames past the window's end.
MARGIN = 2


def rows_of(processor: AudioFlamingo3Processor, samples: int) -> int:
    """Rows of `input_features` a clip gives: its windows, as `AudioFlamingo3Processor._process_audio` counts them."""
    extractor = processor.feature_extractor
    window = int(extractor.sampling_rate * extractor.chunk_length)
    most = int(processor.max_audio_len // extractor.chunk_length)
    return min(most, max(1, -(-samples // window)))


def call_kwargs(processor: AudioFlamingo3Processor, clips) -> dict:
    """The tokenizer's padding side for the text, full windows for the audio (the module docstring says why)."""
    return {
        "text_kwargs": {"padding_side": processor.tokenizer.padding_side},
        "audio_kwargs": {"pad_to_multiple_of": processor.feature_extractor.n_samples},
    }


def _encoder_forward(self, input_features: torch.Tensor, input_features_mask: torch.Tensor, **kwargs):
    """The stock encoder's computation on the batch's frames up to its longest window plus MARGIN, once per
    distinct row; the positions past a window's end, which `get_audio_features` drops, come out fewer."""
    frames = min(input_features.shape[-1], int(input_features_mask.sum(-1).max()) + MARGIN)
    input_features, input_features_mask = input_features[..., :frames], input_features_mask[:, :frames]
    # Rows are the same window when features and mask agree (silence padded to two lengths has equal features).
    keys = torch.cat([input_features.flatten(1), input_features_mask.to(input_features.dtype)], dim=1)
    _, which = torch.unique(keys, dim=0, return_inverse=True)
    first = torch.empty(int(which.max()) + 1, dtype=torch.long, device=which.device)
    first.scatter_(0, which, torch.arange(which.numel(), device=which.device))  # any row of each: they are equal
    input_features, input_features_mask = input_features[first], input_features_mask[first]

    lengths = (input_features_mask.sum(-1) - 1) // 2 + 1
    hidden_states = nn.functional.gelu(self.conv2(nn.functional.gelu(self.conv1(input_features)))).permute(0, 2, 1)
    positions = hidden_states.size(1)
    hidden_states = hidden_states + self.embed_positions.weight[:positions]
    hidden_states = nn.functional.dropout(hidden_states, p=self.dropout, training=self.training)
    mask = torch.arange(positions, device=hidden_states.device) < lengths[:, None]
    attention_mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden_states, attention_mask=mask)
    for layer in self.layers:
        if not (self.training and self.layerdrop > 0.0 and torch.rand([]) < self.layerdrop):
            hidden_states = layer(hidden_states, attention_mask)
    hidden_states = self.layer_norm(self.avg_pooler(hidden_states.permute(0, 2, 1)).permute(0, 2, 1))
    return BaseModelOutputWithPooling(last_hidden_state=hidden_states[which])


def _encoders(model) -> list[nn.Module]:
    encoders = [module for module in model.modules() if isinstance(module, AudioFlamingo3Encoder)]
    if not encoders:
        raise ValueError(f"{type(model).__name__} has no Audio Flamingo 3 audio encoder")
    return encoders


def enable_savings(model) -> None:
    # A bound method, so that `copy.deepcopy` (TRL's reference model) rebinds it to the copy's own weights.
    for encoder in _encoders(model):
        encoder.forward = types.MethodType(_encoder_forward, encoder)


def disable_savings(model) -> None:
    for encoder in _encoders(model):
        vars(encoder).pop("forward", None)


def savings_enabled(model) -> bool:
    return all("forward" in vars(encoder) for encoder in _encoders(model))


def build_tokenizer(vocab_size: int = 400):
    return build_text_tokenizer(
        SPECIAL_TOKENS, eos_token="<|im_end|>", pad_token="[PAD]", extra_special_tokens={}, vocab_size=vocab_size
    )


def build_processor(chunk_length: int = 30) -> AudioFlamingo3Processor:
    # The converter's extractor: WhisperFeatureExtractor(feature_size=128, return_attention_mask=True).
    feature_extractor = WhisperFeatureExtractor(feature_size=128, chunk_length=chunk_length, return_attention_mask=True)
    return AudioFlamingo3Processor(
        feature_extractor=feature_extractor, tokenizer=build_tokenizer(), chat_template=CHAT_TEMPLATE
    )


def build_config(
    processor: AudioFlamingo3Processor, hidden_size: int = 64, encoder_width: int | None = None, encoder_layers: int = 2
) -> AudioFlamingo3Config:
    tokenizer = processor.tokenizer
    width = encoder_width or hidden_size
    ids = tokenizer.convert_tokens_to_ids
    return AudioFlamingo3Config(
        audio_config={
            "model_type": "audioflamingo3_encoder",
            "hidden_size": width,
            "num_hidden_layers": encoder_layers,
            "num_attention_heads": max(2, width // 64),
            "intermediate_size": 2 * width,
            "num_mel_bins": 128,
            # one window of mel frames, halved by the stride-2 convolution: 1500 for 30 s, as published
            "max_source_positions": processor.feature_extractor.nb_max_frames // 2,
        },
        text_config={
            "model_type": "qwen2",
            **tiny_lm_sizes(hidden_size, tokenizer),
            "max_position_embeddings": 32768,  # Qwen2.5-7B's; a 600-s clip alone is 15000 prompt tokens
            "bos_token_id": ids("[BOS]"),
            "eos_token_id": ids("<|im_end|>"),
            "pad_token_id": ids("[PAD]"),
        },
        audio_token_id=ids("<sound>"),
    )


def build_generation_config(tokenizer) -> GenerationConfig:
    end_of_text = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    return GenerationConfig(
        bos_token_id=end_of_text,
        do_sample=True,
        eos_token_id=[tokenizer.convert_tokens_to_ids("<|im_end|>"), end_of_text],
        pad_token_id=end_of_text,
        repetition_penalty=1.05,
        temperature=0.7,
        top_k=20,
        top_p=0.8,
    )


def build_model(
    processor: AudioFlamingo3Processor,
    hidden_size: int = 64,
    seed: int = 0,
    encoder_width: int | None = None,
    encoder_layers: int = 2,
) -> AudioFlamingo3ForConditionalGeneration:
    torch.manual_seed(seed)
    model = AudioFlamingo3ForConditionalGeneration(build_config(processor, hidden_size, encoder_width, encoder_layers))
    model.generation_config = build_generation_config(processor.tokenizer)
    return model


def build_tiny(
    output_dir: str,
    seed: int = 0,
    hidden_size: int = 64,
    chunk_length: int | None = None,
    encoder_width: int | None = None,
    encoder_layers: int = 2,
) -> str:
    """`chunk_length` is the window in seconds (30 as published); a shorter one keeps rows_of and the encoder
    consistent, with more rows per clip."""
    processor = build_processor(chunk_length or 30)
    build_model(processor, hidden_size, seed, encoder_width, encoder_layers).save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    return output_dir


FAMILY = register(
    Family(
        name="audio_flamingo3",
        model_types=(AudioFlamingo3Config.model_type,),
        model_class=AudioFlamingo3ForConditionalGeneration,
        processor_class=AudioFlamingo3Processor,
        audio_keys=("input_features", "input_features_mask"),
        placeholder_tokens=PLACEHOLDER_TOKENS,
        max_seconds=MAX_SECONDS,
        min_samples=MIN_SAMPLES,
        build_tiny=build_tiny,
        rows_of=rows_of,
        audio_part_key="path",  # what its documentation and transformers' chat-template audio loader read
        call_kwargs=call_kwargs,
        enable_savings=enable_savings,
        disable_savings=disable_savings,
        savings_enabled=savings_enabled,
    )
)
