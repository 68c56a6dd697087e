"""Loading an audio-language model and its processor by folder or hub id, for training and evaluation alike.

A LoRA checkpoint (`use_peft: true`) holds only the adapter: it is loaded onto its base and merged. To train on from
one (SFT with LoRA, then GRPO with a KL reference), write the merged model as a full folder first:

    python -m r1_aqa.models merge exp/sft-lora/checkpoint-500 exp/sft-lora-merged [--base BASE]
"""

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import PeftModel
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


def adapter_base(path: str, base_model_name_or_path: str | None = None) -> str | None:
    """The base model of a LoRA checkpoint folder (None for a full model): the one given, else the adapter's own."""
    config = Path(path) / "adapter_config.json"
    if not config.is_file():
        return None
    base = base_model_name_or_path or json.loads(config.read_text())["base_model_name_or_path"]
    if os.path.isabs(base) and not os.path.isdir(base):  # a run trained elsewhere: say which knob fixes it
        raise ValueError(f"{path}: its base model {base} is not here; give it with base_model_name_or_path "
                         "(BASE_MODEL_PATH in test_mmau.sh)")  # fmt: skip
    return base


def load_model(
    path: str,
    dtype: str | None = "auto",
    attn_implementation: str | None = None,
    revision: str = "main",
    fast_audio_encoder: bool = True,
    base_model_name_or_path: str | None = None,
):
    """The model in `path`; for a LoRA checkpoint, its base with the adapter merged (`revision` is the base's)."""
    base = adapter_base(path, base_model_name_or_path)
    source = base or path
    model_type = AutoConfig.from_pretrained(source, revision=revision).model_type
    if model_type not in MODEL_CLASSES:
        raise ValueError(f"{source}: model_type {model_type!r} is not one of {sorted(MODEL_CLASSES)}")
    torch_dtype = dtype if dtype in ("auto", None) else getattr(torch, dtype)
    model = MODEL_CLASSES[model_type].from_pretrained(
        source, revision=revision, dtype=torch_dtype, attn_implementation=attn_implementation
    )
    if base:  # merged once here: inference then runs at the plain model's speed, with no peft wrapper around it
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
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


def load_processor(
    path: str, padding_side: str = "right", revision: str = "main", base_model_name_or_path: str | None = None
):
    """The processor, with `padding_side` set on the tokenizer alone. Passing `padding_side` to `from_pretrained`
    would also left-pad the audio frames, which Qwen2-Audio reads as starting at frame 0: silently wrong audio.
    A LoRA checkpoint saved without the processor files (the trainer normally saves them) gets its base's."""
    base = adapter_base(path, base_model_name_or_path)
    folder = Path(path)
    saved = (folder / "tokenizer_config.json").is_file() and any(
        (folder / name).is_file() for name in ("processor_config.json", "preprocessor_config.json")
    )
    if base and not saved:
        path = base
    processor = AutoProcessor.from_pretrained(path, revision=revision)
    processor.tokenizer.padding_side = padding_side
    return processor


def merge_adapter(path: str, output: str, base_model_name_or_path: str | None = None) -> None:
    """A LoRA checkpoint merged into its base, saved as a full model folder with its processor."""
    if adapter_base(path, base_model_name_or_path) is None:
        raise ValueError(f"{path}: no adapter_config.json, so no LoRA adapter to merge")
    model = load_model(path, "auto", fast_audio_encoder=False, base_model_name_or_path=base_model_name_or_path)
    model.save_pretrained(output)
    load_processor(path, base_model_name_or_path=base_model_name_or_path).save_pretrained(output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m r1_aqa.models", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    merge = commands.add_parser("merge", help="a LoRA checkpoint -> a full model folder")
    merge.add_argument("adapter", help="a checkpoint folder holding adapter_config.json")
    merge.add_argument("output")
    merge.add_argument("--base", help="its base model, if not where adapter_config.json says")
    args = parser.parse_args(argv)
    try:
        merge_adapter(args.adapter, args.output, args.base)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"merged model written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
