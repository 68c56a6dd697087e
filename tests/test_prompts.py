import pytest

from r1_aqa.prompts import extract_answer, messages, question_text


def test_answer_style_is_the_papers_prompt_word_for_word():
    text = question_text("What is making the sound?", ["dog", "car"], "answer")
    assert text == (
        "What is making the sound? Please choose the answer from the following options: ['dog', 'car']. "
        "Output the final answer in <answer> </answer>."
    )


def test_think_style_asks_for_reasoning_then_answer():
    text = question_text("Q?", ["a"], "think")
    assert text.endswith("Output the thinking process in <think> </think> and final answer in <answer> </answer>.")


def test_unknown_style_is_rejected():
    with pytest.raises(ValueError, match="prompt_style"):
        question_text("Q?", ["a"], "letters")


def test_messages_put_the_clip_before_the_question():
    content = messages("/clips/a.wav", "Q?", ["a", "b"])[0]["content"]
    assert content[0] == {"type": "audio", "audio_url": "/clips/a.wav"}
    assert content[1]["type"] == "text"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>dog</answer>", "dog"),  # why: the plain case
        ("<answer>  dog \n</answer>", "dog"),  # why: whitespace inside the tag is not part of the answer
        ("<think>maybe <answer>cat</answer>?</think><answer>dog</answer>", "dog"),  # why: the last tag is the answer
        ("<answer>a\nlong answer</answer>", "a\nlong answer"),  # why: answers may span lines
        ("dog", None),  # why: no tag, no answer
        ("<answer>dog", None),  # why: an unclosed tag is not an answer
        ("<answer></answer>", ""),  # why: an empty tag is an empty answer, not a missing one
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected
