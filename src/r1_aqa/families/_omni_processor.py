"""What the two Omni families' processors share: the stock class with only its feature extractor and tokenizer.

The stock Omni processors need torchvision for their video sub-processor, which cannot be installed beside the CPU
torch; audio-only prompts use neither vision sub-processor. `ProcessorMixin.get_attributes()` reads the
sub-processors off `__init__`'s signature, so `from_pretrained` loads exactly these two from the published folder
(keep transformers pinned: each family's tests compare the outputs with an independent reference).
"""

import json
from pathlib import Path

from transformers.processing_utils import ProcessorMixin

# What the stock processors' `__init__` copies from the tokenizer.
TOKEN_ATTRIBUTES = (
    "image_token", "audio_token", "video_token", "vision_bos_token", "vision_eos_token", "audio_bos_token",
    "audio_eos_token", "image_token_id", "audio_token_id", "video_token_id",
)  # fmt: skip


class AudioOnlyOmniProcessor:
    """Mixin before the stock Omni processor class. A family sets `stock_name` (the class its saved files name),
    `image_keys` (the published preprocessor_config.json's image-processor keys, written back so the stock class
    finds its image processor) and `dropped_keys` (feature-extractor keys the published file does not have)."""

    stock_name: str
    image_keys: dict
    dropped_keys: tuple[str, ...] = ()
    text_kwargs = {}  # the stock {"padding_side": "left"} would override tokenizer.padding_side

    def __init__(self, feature_extractor=None, tokenizer=None, chat_template=None):
        ProcessorMixin.__init__(self, feature_extractor, tokenizer, chat_template=chat_template)
        for name in TOKEN_ATTRIBUTES:
            setattr(self, name, getattr(self.tokenizer, name))

    @property
    def model_input_names(self) -> list[str]:
        # The stock property also reads the image processor's, which this class does not have.
        names = [*self.tokenizer.model_input_names, *self.feature_extractor.model_input_names, "feature_attention_mask"]
        return list(dict.fromkeys(names))

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs) -> list[str]:
        """The published layout (preprocessor_config.json with image and audio keys, chat_template.json, the
        tokenizer's files with vocab.json and merges.txt), naming the stock class: ProcessorMixin's own would write
        a processor_config.json naming this class, which `AutoProcessor` elsewhere cannot find."""
        if push_to_hub:
            raise ValueError(f"{type(self).__name__} saves to a folder only; upload the folder")
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer._set_processor_class(self.stock_name)
        written = [*self.tokenizer.save_pretrained(folder, **kwargs)]
        self.tokenizer.backend_tokenizer.model.save(str(folder))
        features = {**self.image_keys, **self.feature_extractor.to_dict(), "processor_class": self.stock_name}
        for key in self.dropped_keys:
            features.pop(key, None)
        files = {"preprocessor_config.json": features, "chat_template.json": {"chat_template": self.chat_template}}
        for name, content in files.items():
            (folder / name).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            written.append(str(folder / name))
        return written
