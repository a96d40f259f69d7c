import pytest

from skyt1.scoring import extract_choice, score


@pytest.mark.parametrize("response,n,expected", [
    ("Thus the answer is \\boxed{C}.", 4, "C"),
    ("\\boxed{\\text{(b)}}", 4, "B"),
    ("so \\boxed{D. 42}", 4, "D"),
    ("The answer is (B).", 4, "B"),
    ("the answer is (a)", 4, "A"),
    ("Answer: C", 4, "C"),
    ("The correct answer is **B**", 4, "B"),
    ("<think>The answer is A.</think>The answer is D.", 4, "D"),
    ("The answer is I.", 10, "I"),
    ("The answer is (J)", 10, "J"),
    ("The answer is (J)", 4, None),  # not an option
    # reference bug: a stray article or pronoun became an answer
    ("A cat sat on a mat, so I guess it is a tough one.", 4, None),
    ("I think I know it. I am sure.", 10, None),
    ("the answer is a bit unclear", 4, None),
    ("I think the answer is I think B", 10, None),
    ("Answer: a", 4, None),
    ("<think>The answer is B", 4, None),  # truncated
])
def test_extract_choice(response, n, expected):
    assert extract_choice(response, n_options=n) == expected


def test_verdicts():
    assert score("choice", "The answer is (B).", "B")["status"] == "passed"
    assert score("choice", "The answer is (C).", "B") == {
        "correct": False, "extracted": "C", "status": "wrong_answer", "passed": 0, "total": 1, "extraction": "answer_is"}
    assert score("choice", "I am not sure, a hard one.", "A")["status"] == "no_answer"
    assert score("choice", "The answer is (I).", "I", n_options=10)["correct"] is True
    assert score("choice", "The answer is (B).", "Z")["status"] == "invalid_input"
    assert score("choice", "The answer is (B).", "B", n_options=1)["status"] == "invalid_input"
