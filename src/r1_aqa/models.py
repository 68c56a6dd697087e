"""Loading an audio-language model and its processor by folder or hub id, for training and evaluation alike."""

from dataclasses import dataclass, field

import torch
from transformers import AutoConfig, AutoProcessor, Qwen2AudioForConditionalGeneration
from trl import ModelConfig

from r1_aqa.fast_audio import enable_fast_audio

# Audio-language models by `model_type`; each is loaded with its concrete class (AutoModelForCausalLM rejects them).
MODEL_CLASSES = {"qwen2_audio": Qwen2AudioForConditionalGeneration}


@dataclass
class AudioModelConfig(ModelConfig):
    fast_audio_encoder: bool = field(
        default=True,
        metadata={"help": "run the audio encoder on the valid frames only, once per distinct clip (exact)"},
    )


def load_model(
    path: str,
    dtype: str | None = "auto",
    attn_implementation: str | None = None,
    revision: str = "main",
    fast_audio_encoder: bool = True,
):
    model_type = AutoConfig.from_pretrained(path, revision=revision).model_type
    if model_type not in MODEL_CLASSES:
        raise ValueError(f"{path}: model_type {model_type!r} is not one of {sorted(MODEL_CLASSES)}")
    torch_dtype = dtype if dtype in ("auto", None) else getattr(torch, dtype)
    model = MODEL_CLASSES[model_type].from_pretrained(
        path, revision=revision, dtype=torch_dtype, attn_implementation=attn_implementation
    )
    if fast_audio_encoder:
        enable_fast_audio(model)
    return model


def load_model_from(model_args: "AudioModelConfig"):
    return load_model(
        model_args.model_name_or_path,
        model_args.dtype,
        model_args.attn_implementation,
        model_args.model_revision,
        model_args.fast_audio_encoder,
    )


def load_processor(path: str, padding_side: str = "right", revision: str = "main"):
    """The processor, with `padding_side` set on the tokenizer alone. Passing `padding_side` to `from_pretrained`
    would also left-pad the audio frames, which Qwen2-Audio reads as starting at frame 0: silently wrong audio."""
    processor = AutoProcessor.from_pretrained(path, revision=revision)
    processor.tokenizer.padding_side = padding_side
    return processor
