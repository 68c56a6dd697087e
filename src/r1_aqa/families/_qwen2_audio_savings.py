"""Two exact savings in Qwen2-Audio's audio encoder, switched on per model by `enable_fast_audio(model)`.

1. Trim. The processor pads every clip to 30 s (3000 mel frames) and the stock encoder runs all of them, masking
   the padded keys. Here the batch's features are cut after its longest clip plus `MARGIN` frames, rounded up to
   an even length (the stride-2 convolution and the pooling halve it twice). The convolutions at the last valid
   positions read up to two frames past the valid end; keeping those padded frames keeps the outputs equal.
2. Share. GRPO feeds each clip once per completion (8 times in the paper's recipe); the encoder runs once per
   distinct clip in a batch and its output is shared by every row of that clip.

Both leave every valid output position as the stock encoder computes it (tests/test_fast_audio.py checks
log-probs and gradients against the stock path); the positions past a clip's end, which the model discards,
are not computed. `enable_fast_audio` is idempotent and can be undone with `disable_fast_audio`.
"""

import functools
import types

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

MARGIN = 2  # mel frames past the longest clip that the convolutions read


def trimmed_length(feature_attention_mask: torch.Tensor, frames: int) -> int:
    """Frames to keep: the longest clip plus MARGIN, even, at most `frames`."""
    length = min(frames, int(feature_attention_mask.sum(-1).max()) + MARGIN)
    return min(frames, length + length % 2)


def _first_occurrences(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(index of the first row of each distinct value, which distinct value each row is)."""
    _, inverse = torch.unique(rows, dim=0, return_inverse=True)
    positions = torch.arange(rows.size(0), device=rows.device)
    first = torch.full((int(inverse.max()) + 1,), rows.size(0), dtype=positions.dtype, device=rows.device)
    first = first.scatter_reduce(0, inverse, positions, reduce="amin")
    order = torch.argsort(first)  # keep the batch's own order of first appearance
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=rows.device)
    return first[order], rank[inverse]


def _encoder_forward(self, input_features: torch.Tensor, attention_mask=None, **kwargs):
    """The stock encoder's computation, for any even number of frames up to its maximum, once per distinct clip."""
    # Rows are the same clip when features and key mask agree: silence padded to two lengths has equal features.
    keys = input_features.flatten(1)
    if isinstance(attention_mask, torch.Tensor) and attention_mask.size(0) == keys.size(0):
        key_mask = attention_mask[:, 0, 0, :] if attention_mask.dim() == 4 else attention_mask.flatten(1)
        keys = torch.cat([keys, key_mask.to(keys.dtype)], dim=1)
    first, which = _first_occurrences(keys)
    shared = first.numel() < input_features.size(0)
    if shared:
        input_features = input_features[first]
        if isinstance(attention_mask, torch.Tensor) and attention_mask.size(0) > 1:
            attention_mask = attention_mask[first]
    maximum = self.config.max_source_positions * self.conv1.stride[0] * self.conv2.stride[0]
    if input_features.shape[-1] > maximum or input_features.shape[-1] % 2:
        raise ValueError(f"expected an even number of mel frames up to {maximum}, got {input_features.shape[-1]}")
    input_features = input_features.to(dtype=self.conv1.weight.dtype, device=self.conv1.weight.device)
    hidden_states = nn.functional.gelu(self.conv2(nn.functional.gelu(self.conv1(input_features)))).permute(0, 2, 1)
    hidden_states = hidden_states + self.embed_positions.weight[: hidden_states.size(1)]
    hidden_states = nn.functional.dropout(hidden_states, p=self.dropout, training=self.training)
    for layer in self.layers:
        if not (self.training and self.layerdrop > 0.0 and torch.rand([]) < self.layerdrop):
            hidden_states = layer(hidden_states, attention_mask, **kwargs)
    hidden_states = self.avg_pooler(hidden_states.permute(0, 2, 1)).permute(0, 2, 1)
    hidden_states = self.layer_norm(hidden_states)
    if shared:
        hidden_states = hidden_states[which]
    return BaseModelOutput(last_hidden_state=hidden_states)


def _trimming(forward):
    """`forward` (the class's function) cutting the features first, to bind to one module: a bound method, so that
    `copy.deepcopy` rebinds it to the copy (a closure over a bound method would run the original's weights)."""

    @functools.wraps(forward)  # keeps the stock signature, which Trainer reads
    def trimmed(self, *args, input_features=None, feature_attention_mask=None, **kwargs):
        if input_features is not None and feature_attention_mask is not None:
            length = trimmed_length(feature_attention_mask, input_features.shape[-1])
            input_features, feature_attention_mask = input_features[..., :length], feature_attention_mask[:, :length]
        return forward(
            self, *args, input_features=input_features, feature_attention_mask=feature_attention_mask, **kwargs
        )

    return trimmed


def _parts(model) -> tuple[nn.Module, nn.Module]:
    """(the module whose forward takes input_features, its audio encoder), through PEFT and other wrappers."""
    for module in model.modules():
        if hasattr(module, "audio_tower") and hasattr(module, "multi_modal_projector"):
            return module, module.audio_tower
    raise ValueError(f"{type(model).__name__} has no Qwen2-Audio audio tower")


def enable_fast_audio(model) -> None:
    audio_model, encoder = _parts(model)
    if "forward" not in vars(audio_model):
        audio_model.forward = types.MethodType(_trimming(type(audio_model).forward), audio_model)
    if "forward" not in vars(encoder):
        encoder.forward = types.MethodType(_encoder_forward, encoder)


def is_fast_audio_enabled(model) -> bool:
    return all("forward" in vars(module) for module in _parts(model))


def disable_fast_audio(model) -> None:
    for module in _parts(model):
        vars(module).pop("forward", None)
