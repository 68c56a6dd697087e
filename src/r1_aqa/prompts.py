"""The prompt text and the answer extraction, shared by training and evaluation."""

import re
from typing import Literal

PromptStyle = Literal["answer", "think"]

# R1-AQA's instructions (arXiv:2503.11197 and its released code), word for word.
INSTRUCTIONS = {
    "answer": "Output the final answer in <answer> </answer>.",
    "think": "Output the thinking process in <think> </think> and final answer in <answer> </answer>.",
}

ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
THINK_TAG = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def question_text(question: str, choices: list[str], style: PromptStyle = "answer") -> str:
    """The user turn's text. Choices are shown as Python's list repr, as the paper's model was trained on."""
    if style not in INSTRUCTIONS:
        raise ValueError(f"prompt_style must be one of {sorted(INSTRUCTIONS)}, got {style!r}")
    return f"{question} Please choose the answer from the following options: {choices}. {INSTRUCTIONS[style]}"


def messages(audio_path: str, question: str, choices: list[str], style: PromptStyle = "answer") -> list[dict]:
    """A one-turn conversation: the clip, then the question. `audio_url` is the key the paper's model's template
    reads; a family whose template reads another gets it renamed (`processing.for_template`)."""
    return [
        {
            "role": "user",
            "content": [
                {"type": "audio", "audio_url": audio_path},
                {"type": "text", "text": question_text(question, choices, style)},
            ],
        }
    ]


def drop_null_keys(conversation: list[dict]) -> list[dict]:
    """Undo Arrow's struct unification: a `datasets` row gives every content part every key, absent ones as None,
    and a chat template may treat any part with an `audio_url` key, even None, as a clip."""
    return [
        {**message, "content": [{k: v for k, v in part.items() if v is not None} for part in message["content"]]}
        if isinstance(message["content"], list)
        else message
        for message in conversation
    ]


def audio_paths(conversation: list[dict]) -> list[str]:
    """The clips a conversation refers to, in order."""
    return [
        part["audio_url"]
        for message in conversation
        if isinstance(message["content"], list)
        for part in message["content"]
        if part.get("type") == "audio"
    ]


def completion_text(completion: str | list[dict]) -> str:
    """TRL passes a conversational completion as `[{"role": "assistant", "content": ...}]`; rewards want its text."""
    if isinstance(completion, str):
        return completion
    return "".join(message["content"] for message in completion)


def extract_answer(text: str) -> str | None:
    """The text inside the last <answer>...</answer>, stripped; None when there is no such tag."""
    found = ANSWER_TAG.findall(text)
    return found[-1].strip() if found else None


def think_texts(text: str) -> list[str]:
    """The text inside each <think>...</think>, in order; [] when there is none (an unclosed tag is none)."""
    return THINK_TAG.findall(text)


def answer_or_completion(text: str) -> str:
    """The answer as R1-AQA's evaluation stored and scored it (`model_prediction`): the tag's text, or the whole
    completion when it has no tag (an empty tag stays empty)."""
    answer = extract_answer(text)
    return text if answer is None else answer
