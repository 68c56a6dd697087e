import pytest

from r1_aqa.rewards import (
    REWARDS,
    accuracy_reward,
    get_rewards,
    make_format_reward,
    make_think_length_reward,
    mmau_match_reward,
)

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


def words(count: int) -> str:
    return " ".join(["word"] * count)


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        (f"<think>{words(3)}</think><answer>dog</answer>", 1.0),  # why: well within the budget (10)
        (f"<think>{words(10)}</think><answer>dog</answer>", 1.0),  # why: at the budget, still full reward
        (f"<think>{words(15)}</think><answer>dog</answer>", 0.5),  # why: halfway to twice the budget
        (f"<think>{words(11)}</think><answer>dog</answer>", 0.9),  # why: one word over loses a tenth
        (f"<think>{words(20)}</think><answer>dog</answer>", 0.0),  # why: twice the budget
        (f"<think>{words(60)}</think><answer>dog</answer>", 0.0),  # why: far over is no worse than twice (not < 0)
        ("<think></think><answer>dog</answer>", 1.0),  # why: length only; the format reward judges the structure
        ("<answer>dog</answer>", 0.0),  # why: no think block, no thinking to reward
        (f"<think>{words(5)}<answer>dog</answer>", 0.0),  # why: an unclosed block (truncated) is no block
        (f"<think>{words(8)}</think><think>{words(8)}</think><answer>x</answer>", 0.4),  # why: blocks add up (16)
        (f"<think>{words(5)}</think><answer>{words(30)}</answer>", 1.0),  # why: only the thinking is counted
        ("<think>" + "\n\t".join(["w"] * 11) + "</think><answer>x</answer>", 0.9),  # why: any whitespace splits words
    ],
)
def test_think_length(completion, expected):
    assert make_think_length_reward("think", 10)([completion]) == [pytest.approx(expected)]


@pytest.mark.parametrize(
    ("style", "budget", "message"),
    [
        ("answer", 10, "prompt_style think"),  # why: the answer prompt asks for no thinking: every score would be 0
        ("think", 0, "at least 1"),  # why: a zero budget divides by zero
        ("think", None, "at least 1"),  # why: the recipe must say the budget
    ],
)
def test_think_length_refuses_what_it_cannot_score(style, budget, message):
    with pytest.raises(ValueError, match=message):
        make_think_length_reward(style, budget)


def test_registry_builds_each_reward_and_rejects_unknown_names():
    assert [f.__name__ for f in get_rewards(list(REWARDS), "think", think_budget_words=50)] == [
        "accuracy_reward",
        "mmau_match_reward",
        "format_reward",
        "think_length_reward",
    ]
    assert get_rewards(["think_length"], "think", 2)[0](["<think>a b c</think><answer>x</answer>"]) == [0.5]
    with pytest.raises(ValueError, match="unknown reward"):
        get_rewards(["letters"], "answer")
