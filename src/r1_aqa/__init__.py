"""r1-aqa: GRPO fine-tuning of audio-language models for audio question answering."""

__version__ = "0.1.0"
