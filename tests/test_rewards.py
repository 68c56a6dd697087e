import pytest

from r1_aqa.rewards import REWARDS, accuracy_reward, get_rewards, make_format_reward, mmau_match_reward

CHOICES = ["Man", "Woman", "A young child", "Robot"]


@pytest.mark.parametrize(
    ("completion", "solution", "expected"),
    [
        ("<answer>Woman</answer>", "Woman", 1.0),  # why: exact choice text
        ("<answer> woman </answer>", "Woman", 1.0),  # why: case and surrounding whitespace are folded
        ("<answer>A  young\nchild</answer>", "A young child", 1.0),  # why: inner whitespace runs are folded
        ("<answer>Man</answer>", "Woman", 0.0),  # why: a wrong choice
        ("<answer>B</answer>", "Woman", 0.0),  # why: a bare letter is not the answer (MMAU does not count it)
        ("<answer>(B) Woman</answer>", "Woman", 0.0),  # why: accuracy wants the choice text alone
        ("Woman", "Woman", 0.0),  # why: without the tag nothing is extracted
        ("<answer>Man</answer> <answer>Woman</answer>", "Woman", 1.0),  # why: the last answer counts
        ("<answer>Woman</answer> <answer>Man</answer>", "Woman", 0.0),  # why: ... in both directions
    ],
)
def test_accuracy(completion, solution, expected):
    assert accuracy_reward([completion], solution=[solution], choices=[CHOICES]) == [expected]


@pytest.mark.parametrize(
    ("completion", "solution", "expected"),
    [
        ("<answer>Woman</answer>", "Woman", 1.0),  # why: exact choice text
        ("<answer>(B) Woman</answer>", "Woman", 1.0),  # why: MMAU's token rule accepts a lettered choice text
        ("<answer>The woman.</answer>", "Woman", 1.0),  # why: extra words that are in no wrong choice
        ("<answer>It is a woman.</answer>", "Woman", 0.0),  # why: "a" belongs to the wrong choice "A young child"
        ("<answer>B</answer>", "Woman", 0.0),  # why: a bare letter holds none of the answer's tokens
        ("<answer>Man or Woman</answer>", "Woman", 0.0),  # why: it names a wrong choice too
        ("<answer>young child</answer>", "A young child", 0.0),  # why: the answer's token "a" is missing
        ("Woman", "Woman", 0.0),  # why: the rule applies to the tag's text; no tag, no answer
        ("<answer></answer>", "Woman", 0.0),  # why: no tokens is never correct
    ],
)
def test_mmau_match(completion, solution, expected):
    assert mmau_match_reward([completion], solution=[solution], choices=[CHOICES]) == [expected]


@pytest.mark.parametrize(
    ("style", "completion", "expected"),
    [
        ("answer", "<answer>dog</answer>", 1.0),  # why: the exact structure
        ("answer", "  <answer>dog</answer>\n", 1.0),  # why: surrounding whitespace is not content
        ("answer", "It is <answer>dog</answer>", 0.0),  # why: text outside the tag
        ("answer", "<answer>dog</answer><answer>cat</answer>", 0.0),  # why: two answers
        ("answer", "<answer><answer>dog</answer></answer>", 0.0),  # why: nested tags
        ("answer", "<think>x</think><answer>dog</answer>", 0.0),  # why: thinking was not asked for
        ("answer", "<answer>\ndog\n</answer>", 1.0),  # why: newlines inside the tag are allowed
        ("think", "<think>barks</think>\n<answer>dog</answer>", 1.0),  # why: the think structure
        ("think", "<answer>dog</answer>", 0.0),  # why: the reasoning is missing
        ("think", "<answer>dog</answer><think>barks</think>", 0.0),  # why: wrong order
        ("think", "<think>a</think><think>b</think><answer>dog</answer>", 0.0),  # why: two think blocks
    ],
)
def test_format(style, completion, expected):
    assert make_format_reward(style)([completion]) == [expected]


def test_rewards_accept_conversational_completions():
    completion = [{"role": "assistant", "content": "<answer>Woman</answer>"}]
    assert accuracy_reward([completion], solution=["Woman"]) == [1.0]
    assert make_format_reward("answer")([completion]) == [1.0]


def test_registry_builds_each_reward_and_rejects_unknown_names():
    assert [f.__name__ for f in get_rewards(list(REWARDS), "answer")] == [
        "accuracy_reward",
        "mmau_match_reward",
        "format_reward",
    ]
    with pytest.raises(ValueError, match="unknown reward"):
        get_rewards(["letters"], "answer")
