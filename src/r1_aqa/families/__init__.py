"""Model families: what differs between audio-language models, one small module each, behind one registry.

The rest of the project asks the registry (`family_of`, `family_of_processor`, `FAMILIES`) and never names a family:
loading, processing, the trainer, SFT, evaluation, the demo and the benchmarks read what a `Family` declares.
A family is found by the `model_type` of a checkpoint's config.json, as transformers' Auto classes find theirs;
adding one means adding a module here (and its tiny-model tests), nothing else.
"""

import importlib
import json
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def one_row(processor, samples: int) -> int:
    """Audio rows of a clip for a family whose processor gives each clip one row."""
    return 1


def no_call_kwargs(processor, clips: list[np.ndarray]) -> dict:
    return {}


@dataclass(frozen=True)
class Family:
    """Everything about a model family that the trainer, evaluation and scripts need to know.

    name: the registry key (`--family` of `python -m r1_aqa.tiny`, `FAMILY` of `make demo`).
    model_types: the config `model_type`s that mean this family: the published folder's, and the trainable class's
        own (what a training checkpoint's config.json says).
    model_class: the class trained and evaluated (for the Omni families the thinker alone).
    processor_class: the class that loads the processor from a published folder or a checkpoint.
    audio_keys: processor outputs that carry the audio; their first dimension counts audio rows (`rows_of`).
    placeholder_tokens: tokens that stand for media in the prompt and must never be sampled.
    max_seconds: clips are cut to their first `max_seconds` when loaded (what the model hears at most).
    min_samples: the shortest clip (16-kHz samples) the model takes.
    build_tiny: `(output_dir, seed=0, hidden_size=64, chunk_length=None) -> output_dir`, a tiny random model and
        processor with the real classes, special tokens and chat template, laid out like the published folder.
    rows_of: `(processor, samples) -> int`, the audio rows a clip of so many 16-kHz samples gives (one per 30-s
        window for some families).
    frozen_modules: submodules (dotted names in `model_class`) that audio-only training keeps frozen by default.
    ignored_prefixes: keys of a published folder that `model_class` does not load, by design (the Omni talker).
    audio_part_key: the key of an audio content part that the family's chat template reads.
    call_kwargs: `(processor, clips) -> dict`, processor keywords a batch of clips needs (e.g. to undo a processor
        default that would change the features).
    saving_kwargs: the same, for keywords that are only an exact saving (e.g. padding the features to the batch's
        longest clip instead of the extractor's maximum); merged over `call_kwargs`, and what a benchmark turns off
        to measure the stock processor.
    enable_savings / disable_savings / savings_enabled: exact encoder savings switched on the model, if any.
    build_full_size: `(dtype, device) -> (model, processor)`, the published architecture at full size with random
        weights, built in memory with no download (bench/gpu.sh); None where none is written yet.
    """

    name: str
    model_types: tuple[str, ...]
    model_class: type
    processor_class: type
    audio_keys: tuple[str, ...]
    placeholder_tokens: tuple[str, ...]
    max_seconds: float
    min_samples: int
    build_tiny: Callable[..., str]
    rows_of: Callable[[object, int], int] = one_row
    frozen_modules: tuple[str, ...] = ()
    ignored_prefixes: tuple[str, ...] = ()
    audio_part_key: str = "audio_url"
    call_kwargs: Callable[[object, list[np.ndarray]], dict] = no_call_kwargs
    saving_kwargs: Callable[[object, list[np.ndarray]], dict] = no_call_kwargs
    enable_savings: Callable | None = None
    disable_savings: Callable | None = None
    savings_enabled: Callable | None = None
    build_full_size: Callable | None = None

    def processor_kwargs(self, processor, clips: list[np.ndarray]) -> dict:
        """`call_kwargs` with `saving_kwargs` over it (a keyword group such as `audio_kwargs` merged, not replaced)."""
        merged = dict(self.call_kwargs(processor, clips))
        for key, value in self.saving_kwargs(processor, clips).items():
            merged[key] = {**merged[key], **value} if isinstance(value, dict) and key in merged else value
        return merged

    def placeholder_ids(self, tokenizer) -> list[int]:
        ids = [tokenizer.convert_tokens_to_ids(token) for token in self.placeholder_tokens]
        return [i for i in ids if i is not None and i != tokenizer.unk_token_id]


FAMILIES: dict[str, Family] = {}
DEFAULT_FAMILY = "qwen2_audio"  # the paper's model: what `r1_aqa.tiny` builds when no family is named


def register(family: Family) -> Family:
    taken = {t: f.name for f in FAMILIES.values() for t in f.model_types}
    clash = [t for t in family.model_types if t in taken]
    if family.name in FAMILIES or clash:
        raise ValueError(f"family {family.name!r}: name or model_types {clash} registered already")
    FAMILIES[family.name] = family
    return family


def family_of(model_or_config_or_type) -> Family:
    """The family of a model, a config, a config's `model_type`, or a folder holding a config.json."""
    model_type = model_or_config_or_type
    if not isinstance(model_type, str):
        config = getattr(model_type, "config", model_type)
        model_type = getattr(config, "model_type", None)
    elif (Path(model_type) / "config.json").is_file():
        model_type = json.loads((Path(model_type) / "config.json").read_text()).get("model_type")
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family
    known = sorted(t for f in FAMILIES.values() for t in f.model_types)
    raise ValueError(f"model_type {model_type!r} is not a known audio-language model; known: {known}")


def family_of_processor(processor) -> Family:
    for family in FAMILIES.values():
        if isinstance(processor, family.processor_class):
            return family
    raise ValueError(f"{type(processor).__name__} is not the processor of a known family ({sorted(FAMILIES)})")


def _register_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):  # helpers of the family modules, not families
            continue
        importlib.import_module(f"{__name__}.{module.name}")


_register_all()
