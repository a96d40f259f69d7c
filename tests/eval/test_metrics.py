import math

import pytest

from skyt1.evaluation.metrics import ks_for, mean_stderr, pass_at_k, summarize


@pytest.mark.parametrize(
    "n,c,k,expected",
    [
        (4, 1, 1, 0.25),
        (4, 1, 2, 1 - 3 / 6),  # C(3,2)/C(4,2)
        (4, 2, 2, 1 - 1 / 6),  # C(2,2)/C(4,2)
        (8, 3, 4, 1 - 5 / 70),  # C(5,4)/C(8,4)
        (4, 0, 4, 0.0),
        (4, 4, 1, 1.0),
        (5, 3, 4, 1.0),  # fewer wrong samples than k: always a correct one
    ],
)
def test_pass_at_k_matches_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize("n,c,k", [(4, 5, 1), (4, 1, 5), (4, 1, 0), (4, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_ks_are_powers_of_two_up_to_n():
    assert ks_for(1) == [1]
    assert ks_for(6) == [1, 2, 4]
    assert ks_for(64) == [1, 2, 4, 8, 16, 32, 64]


def _samples(results: dict[str, list[bool]]) -> list[dict]:
    return [{"problem_id": p, "correct": c, "finish_reason": "stop", "completion_tokens": 10 * (i + 1),
             "status": "passed" if c else "wrong_answer"}
            for p, cs in results.items() for i, c in enumerate(cs)]


def test_avg_at_n_and_stderr_are_over_per_problem_means():
    # per-problem means 1.0, 0.5, 0.0, 0.75 -> mean 0.5625
    results = {"a": [True] * 4, "b": [True, False, True, False], "c": [False] * 4, "d": [True, True, True, False]}
    s = summarize(_samples(results))
    means = [1.0, 0.5, 0.0, 0.75]
    mu = sum(means) / 4
    sd = math.sqrt(sum((m - mu) ** 2 for m in means) / 3)
    assert s["accuracy"] == pytest.approx(0.5625)
    assert s["stderr"] == pytest.approx(sd / 2)
    assert s["n"] == 4 and s["problems"] == 4 and s["samples"] == 16
    # pass@2 per problem: 1, 1-C(2,2)/C(4,2)=5/6, 0, 1 -> mean
    assert s["pass_at_k"]["pass@2"] == pytest.approx((1 + 5 / 6 + 0 + 1) / 4)
    assert s["pass_at_k"]["pass@4"] == pytest.approx(0.75)
    assert s["pass_at_k"]["pass@1"] == pytest.approx(s["accuracy"])
    assert s["completion_tokens"] == {"mean": 25.0, "median": 25.0, "max": 40, "total": 400}
    assert s["finish_reasons"] == {"stop": 16}


def test_single_problem_has_no_stderr_and_difficulty_groups():
    assert mean_stderr([0.5]) == (0.5, None)
    assert mean_stderr([]) == (None, None)
    s = summarize(_samples({"x": [True, False], "y": [False, False]}), {"x": "easy", "y": "hard"})
    assert s["by_difficulty"]["easy"]["accuracy"] == 0.5
    assert s["by_difficulty"]["hard"]["accuracy"] == 0.0
    assert s["by_difficulty"]["easy"]["stderr"] is None


def test_error_finish_reasons_are_grouped():
    s = summarize([{"problem_id": "a", "correct": False, "finish_reason": "error: HTTP 500"},
                   {"problem_id": "a", "correct": True, "finish_reason": "length"}])
    assert s["finish_reasons"] == {"error": 1, "length": 1}
