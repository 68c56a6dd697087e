"""Checkpoints: loading a saved model back into a resumed run, and finding the last complete checkpoint-N.

transformers 5 saves a model under the key names of its published checkpoints (`save_pretrained` reverts the
renaming `from_pretrained` applies: a saved `audio_tower.*` may be `model.audio_tower.*` in memory), but
`Trainer._load_from_checkpoint` loads the file with `load_state_dict(strict=False)` as it is: no key matches, a
warning is logged and the run goes on with its initial weights. `CheckpointLoading` applies the model's renaming
first (or, where saved weights need converting, e.g. a mixture of experts saved one tensor per expert, lets
`from_pretrained` convert them) and stops the run if any key is left over or missing. DeepSpeed and FSDP restore
weights their own way and PEFT checkpoints hold adapters only; those paths stay upstream's.
"""

import json
import logging
import os
import re

import safetensors.torch
import torch
from transformers.conversion_mapping import get_model_conversion_mapping
from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME

logger = logging.getLogger(__name__)
CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")
# Written into each checkpoint-N after all its other files, on every process: its presence means the save finished.
COMPLETE_MARKER = "resolved_config.yaml"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be restored as saved; the message names the folder and the keys."""


def _saved_state_dict(folder: str) -> dict[str, torch.Tensor] | None:
    """Every tensor of a safetensors checkpoint (one file or sharded), on the CPU; None if there is none."""
    single = os.path.join(folder, SAFE_WEIGHTS_NAME)
    if os.path.isfile(single):
        return safetensors.torch.load_file(single, device="cpu")
    index = os.path.join(folder, SAFE_WEIGHTS_INDEX_NAME)
    if not os.path.isfile(index):
        return None
    with open(index, encoding="utf-8") as handle:
        shards = sorted(set(json.load(handle)["weight_map"].values()))
    state_dict = {}
    for shard in shards:
        state_dict.update(safetensors.torch.load_file(os.path.join(folder, shard), device="cpu"))
    return state_dict


def to_model_keys(model, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """Rename saved keys as `from_pretrained` would for this model; None when a key needs more than a renaming (a
    mixture-of-experts model saves its fused experts one tensor per expert), which only `from_pretrained` applies."""
    transforms = get_model_conversion_mapping(model)
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if isinstance(t, WeightConverter)]
    renamed = {}
    for key, tensor in state_dict.items():
        target, converted = rename_source_key(key, renamings, converters)
        if converted is not None:
            return None
        renamed[target] = tensor
    return renamed


def converted_state_dict(model, folder: str) -> dict[str, torch.Tensor]:
    """The checkpoint as `from_pretrained` loads it into a fresh model of the same class (conversions applied), or an
    error naming the keys that do not fit."""
    fresh, info = type(model).from_pretrained(folder, dtype=model.dtype, output_loading_info=True)
    problems = {"not in the checkpoint": info["missing_keys"], "the model lacks": info["unexpected_keys"],
                "of another shape": [str(key) for key in info["mismatched_keys"]]}  # fmt: skip
    found = [f"{len(keys)} key(s) {what}: {_names(sorted(keys))}" for what, keys in problems.items() if keys]
    if found:
        raise CheckpointError(f"{folder} does not fit the model being trained: " + "; ".join(found))
    return fresh.state_dict()


def _names(keys: list[str], limit: int = 10) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" ... and {len(keys) - limit} more" if len(keys) > limit else "")


def load_weights(model, folder: str) -> None:
    """Load the full-model checkpoint in `folder` into `model`, every key or an error naming those that do not fit."""
    state_dict = _saved_state_dict(folder)
    if state_dict is None:
        raise CheckpointError(f"{folder}: no {SAFE_WEIGHTS_NAME} or {SAFE_WEIGHTS_INDEX_NAME} to resume from")
    renamed = to_model_keys(model, state_dict)
    if renamed is None:  # converted by transformers itself, then loaded whole (a second copy of the model, briefly)
        model.load_state_dict(converted_state_dict(model, folder), strict=True)
        logger.info("restored %s from %s (weights converted as from_pretrained does)", type(model).__name__, folder)
        return
    result = model.load_state_dict(renamed, strict=False)
    # A tied parameter (lm_head sharing the embeddings) is saved once: missing by name, loaded by storage.
    tensors = model.state_dict()
    loaded = {tensor.data_ptr() for name, tensor in tensors.items() if name not in result.missing_keys}
    missing = [key for key in result.missing_keys if tensors[key].data_ptr() not in loaded]
    problems = []
    if missing:
        problems.append(f"{len(missing)} model key(s) not in the checkpoint: {_names(missing)}")
    if result.unexpected_keys:
        problems.append(
            f"{len(result.unexpected_keys)} checkpoint key(s) the model lacks: {_names(result.unexpected_keys)}"
        )
    if problems:
        raise CheckpointError(f"{folder} does not fit the model being trained: " + "; ".join(problems))
    logger.info("restored %d tensors from %s", len(state_dict), folder)


class CheckpointLoading:
    """Trainer mixin: resuming without DeepSpeed/FSDP restores the checkpoint's weights, or stops naming the keys."""

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        # Upstream loads the saved keys without the model's renaming: nothing matches and the run silently restarts
        # from its initial weights (only a warning).
        target = self.model if model is None else model
        target = self.accelerator.unwrap_model(target) if hasattr(self, "accelerator") else target
        uses_upstream = (
            self.is_deepspeed_enabled
            or self.is_fsdp_enabled
            or hasattr(target, "peft_config")
            or not hasattr(target, "config")
        )
        if uses_upstream:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        load_weights(target, resume_from_checkpoint)


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The highest `checkpoint-N` in `output_dir` that holds `COMPLETE_MARKER`, written after every other file of it;
    a higher one without it (a job killed while saving) is skipped and said so."""
    steps = {}
    for name in os.listdir(output_dir) if os.path.isdir(output_dir) else []:
        match = CHECKPOINT_NAME.fullmatch(name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            steps[int(match.group(1))] = os.path.join(output_dir, name)
    for step in sorted(steps, reverse=True):
        if os.path.isfile(os.path.join(steps[step], COMPLETE_MARKER)):
            return steps[step]
        logger.warning("skipping %s: no %s, so it was not saved whole (killed while saving?)", steps[step],
                       COMPLETE_MARKER)  # fmt: skip
    return None
