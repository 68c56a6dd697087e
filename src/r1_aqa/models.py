"""Loading an audio-language model and its processor by folder or hub id, for training and evaluation alike.

A LoRA checkpoint (`use_peft: true`) holds only the adapter: it is loaded onto its base and merged. To train on from
one (SFT with LoRA, then GRPO with a KL reference), write the merged model as a full folder first:

    python -m r1_aqa.models merge exp/sft-lora/checkpoint-500 exp/sft-lora-merged [--base BASE]
"""

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import PeftModel
from torch import nn
from transformers import AutoConfig
from trl import ModelConfig, get_peft_config

from r1_aqa.families import Family, family_of


@dataclass
class AudioModelConfig(ModelConfig):
    fast_audio_encoder: bool = field(
        default=True,
        metadata={"help": "the model family's exact encoder savings (e.g. valid frames only, once per clip)"},
    )
    train_frozen_modules: bool = field(
        default=False,
        metadata={"help": "also train what audio-only training leaves frozen (a vision tower: Family.frozen_modules)"},
    )


class LoadingError(ValueError):
    """A checkpoint whose weights do not all fit the model class; the message names the folder and the keys."""


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


def family_at(path: str, revision: str = "main", base_model_name_or_path: str | None = None) -> Family:
    """The model family of a folder or hub id (a LoRA checkpoint's: its base's), by its config's `model_type`."""
    source = adapter_base(path, base_model_name_or_path) or path
    try:
        return family_of(AutoConfig.from_pretrained(source, revision=revision))
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error


def from_published(family: Family, source: str, **kwargs):
    """`family.model_class` from a folder or hub id, stopping on any weight the class expects and did not get (or
    got in another shape), and on any weight it does not take beyond those the family leaves out by design (the
    speech talker of a whole-model folder): a partial load would otherwise train from random weights with only a
    warning."""
    model, info = family.model_class.from_pretrained(source, output_loading_info=True, **kwargs)
    unexpected = [key for key in info["unexpected_keys"] if not key.startswith(family.ignored_prefixes)]
    problems = {
        "missing (left at their random initial values)": info["missing_keys"],
        "of another shape": [str(item) for item in info["mismatched_keys"]],
        "not taken by the model": unexpected,
    }
    found = [f"{len(keys)} {what}: {', '.join(sorted(keys)[:8])}" for what, keys in problems.items() if keys]
    if found:
        raise LoadingError(f"{source}: as {family.model_class.__name__}, weights " + "; ".join(found))
    # Loaded under ZeRO-3, transformers 5.23 keeps every key conversion of the class for `save_pretrained` to revert,
    # used or not (its other loading path keeps the used ones): the unused ones then rename a thinker's keys
    # twice (`thinker.model.thinker.audio_tower.*`) and its checkpoints no longer load. Kept as the other path does.
    conversions = getattr(model, "_weight_conversions", None)
    if conversions:
        model._weight_conversions = [conversion for conversion in conversions if conversion.was_used()]
    return model


def freeze_unused(family: Family, model) -> None:
    """What audio-only training never uses stays frozen: out of the optimizer, and seen by no DDP/ZeRO reducer."""
    for name in family.frozen_modules:
        model.get_submodule(name).requires_grad_(False)


def load_model(
    path: str,
    dtype: str | None = "auto",
    attn_implementation: str | None = None,
    revision: str = "main",
    fast_audio_encoder: bool = True,
    base_model_name_or_path: str | None = None,
    train_frozen_modules: bool = False,
):
    """The model in `path`; for a LoRA checkpoint, its base with the adapter merged (`revision` is the base's)."""
    base = adapter_base(path, base_model_name_or_path)
    source = base or path
    family = family_at(source, revision)
    torch_dtype = dtype if dtype in ("auto", None) else getattr(torch, dtype)
    model = from_published(
        family, source, revision=revision, dtype=torch_dtype, attn_implementation=attn_implementation
    )
    if base:  # merged once here: inference then runs at the plain model's speed, with no peft wrapper around it
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
    # A mixture of experts saved by TRL's SFT says `output_router_logits: true` (SFT turns it on for its auxiliary
    # loss): generation would then compute the load-balancing loss at every decoding step, which transformers 5.23's
    # MoE thinker cannot do with a KV cache (a mask of the whole sequence against the step's tokens). TRL's trainers
    # ask each training forward for the router logits themselves.
    text_config = model.config.get_text_config()
    if getattr(text_config, "output_router_logits", False):
        text_config.output_router_logits = False
    if not train_frozen_modules:
        freeze_unused(family, model)
    if fast_audio_encoder:
        enable_savings(model)
    return model


def enable_savings(model, family: Family | None = None) -> None:
    """The family's exact encoder savings on `model`, if it has any. A wrapper whose `config` is not the model's
    (a DeepSpeed engine) needs `family` given; PEFT forwards `config` to its model."""
    family = family or family_of(model)
    if family.enable_savings is not None:
        family.enable_savings(model)


def savings_enabled(model, family: Family | None = None) -> bool:
    family = family or family_of(model)
    return family.savings_enabled is not None and family.savings_enabled(model)


def lora_config(model_args: "AudioModelConfig", model):
    """TRL's LoRA config from the model arguments (None without `use_peft`), kept off what stays frozen: an adapter
    there would get no gradient, which DDP and ZeRO stop on. `all-linear` is resolved here to the linear layers'
    names outside the frozen modules and the output layer (PEFT's own resolution also collects names inside a
    vision tower, `0` and `2` of a Sequential among them, which then match whole encoder layers and fail)."""
    config = get_peft_config(model_args)
    if config is None:
        return None
    family = family_of(model)
    frozen = () if model_args.train_frozen_modules else family.frozen_modules
    if frozen:
        config.exclude_modules = "(" + "|".join(map(re.escape, frozen)) + r")(\..*)?"
    if config.target_modules == "all-linear":
        output = model.get_output_embeddings()
        config.target_modules = {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and module is not output
            and not any(name == f or name.startswith(f + ".") for f in frozen)
        }  # fmt: skip
    return config


def load_model_from(model_args: "AudioModelConfig"):
    return load_model(
        model_args.model_name_or_path,
        model_args.dtype,
        model_args.attn_implementation,
        model_args.model_revision,
        model_args.fast_audio_encoder,
        train_frozen_modules=model_args.train_frozen_modules,
    )


def load_processor(
    path: str, padding_side: str = "right", revision: str = "main", base_model_name_or_path: str | None = None
):
    """The family's processor, with `padding_side` set on the tokenizer alone. Passing `padding_side` to
    `from_pretrained` would also left-pad the audio frames, which the encoders read as starting at frame 0: silently
    wrong audio. The family's own class loads it (`AutoProcessor` fails, or gives a bare tokenizer, for a processor
    whose stock class needs a package not installed here, torchvision). A LoRA checkpoint saved without the
    processor files (the trainer normally saves them) gets its base's."""
    family = family_at(path, revision, base_model_name_or_path)
    base = adapter_base(path, base_model_name_or_path)
    folder = Path(path)
    saved = (folder / "tokenizer_config.json").is_file() and any(
        (folder / name).is_file() for name in ("processor_config.json", "preprocessor_config.json")
    )
    if base and not saved:
        path = base
    processor = family.processor_class.from_pretrained(path, revision=revision)
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
