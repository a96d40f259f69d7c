import os

import pytest

from skyt1.scoring import extract_math_answer, score
from skyt1.scoring.math import extract

from .conftest import read_jsonl

GSM8K_ANSWER = r"^A:\s*(.+?)\s*$"  # GSM8K example solutions end with "A: <n>"


@pytest.mark.parametrize("response,expected", [
    ("so the area is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("first \\boxed{1} then \\fbox{2}", "2"),
    ("\\boxed{\\{1, \\{2\\}\\}}", "\\{1, \\{2\\}\\}"),
    ("<|begin_of_thought|> maybe \\boxed{3} <|end_of_thought|><|begin_of_solution|> so \\boxed{4}"
     "<|end_of_solution|>", "4"),
    ("<think>\\boxed{3}</think> The answer: \\boxed{5}", "5"),
    ("Thus the final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}"),
    ("The final answer is: 12.", "12"),
])
def test_extracts_the_final_answer(response, expected):
    assert extract_math_answer(response) == expected


@pytest.mark.parametrize("response", [
    "We get 5 apples, then 7, so 12",  # no final answer: no "last number" fallback
    "<think> I compute \\boxed{12} but wait",  # truncated inside the thinking
    "<|begin_of_thought|> \\boxed{12} and then the output stopped",  # truncated Sky-T1 trace
    "so the answer is \\boxed{12",  # unbalanced box
])
def test_no_final_answer_is_no_answer(response):
    assert extract_math_answer(response) is None
    verdict = score("math", response, "12")
    assert verdict == {"correct": False, "extracted": None, "status": "no_answer", "passed": 0, "total": 1}


@pytest.mark.parametrize("answer,reference,correct", [
    ("50", "0.5", False),  # reference bug: x100 / 100 tolerance
    ("0.5", "50", False),
    ("100", "1", False),
    ("1", "100", False),
    ("025", "25", True),  # AIME zero padding
    ("27.0", "27", True),  # AMC floats
    ("123456789012345678901", "123456789012345678900", False),  # big integers exactly
    ("\\frac{1}{2}", "0.5", True),
    ("\\{2, 1\\}", "\\{1,2\\}", True),  # sets
    ("[1, 2)", "[1,2)", True),  # intervals
    ("(1, 2]", "[1,2)", False),
    ("(3, 4)", "(3,4)", True),  # tuples/intervals as written
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", True),
    ("5\\text{ cm}", "5", True),  # units
    ("x^2+2x+1", "(x+1)^2", True),
    ("\\text{Evelyn}", "\\text{Evelyn}", True),
    ("\\text{Candy}", "\\text{Evelyn}", False),
    ("\\text{brand}", "\\text{br}", False),  # reference bug: every "and" deleted from text answers
    ("3", "3.0001", False),
])
def test_equivalence(answer, reference, correct):
    verdict = score("math", f"Therefore \\boxed{{{answer}}}.", reference)
    assert verdict["correct"] is correct, verdict
    assert verdict["status"] == ("passed" if correct else "wrong_answer")


def test_sympy_hang_is_a_timeout_not_a_crash():
    verdict = score("math", "\\boxed{9^{9^{9^{9^{9}}}}}", "10^{10^{10^{10}}}", timeout_s=2)
    assert verdict["status"] == "timeout" and verdict["correct"] is False
    assert score("math", "\\boxed{4}", "4")["correct"] is True  # the pool recovered


def test_a_slow_starting_worker_does_not_time_out_its_first_item(tmp_path, monkeypatch):
    """A CPU busy with generation slows the math worker's imports; they used to count against the first
    item's time limit, so right answers came back as timeouts (4 of 200 in one demo run)."""
    from skyt1.scoring import ScoringPool

    (tmp_path / "sitecustomize.py").write_text("import time\ntime.sleep(2.5)\n")  # runs at every start
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    with ScoringPool(workers=1, timeout_s=1) as pool:
        first = pool.submit("math", "The final answer is $\\boxed{2 \\times 7 = 14}$.", "14").result()
        hang = pool.submit("math", "\\boxed{9^{9^{9^{9^{9}}}}}", "10^{10^{10^{10}}}").result()
        after = pool.submit("math", "\\boxed{11 + 3}", "14").result()  # a fresh worker, slow to start again
    assert (first["status"], first["correct"]) == ("passed", True), first
    assert hang["status"] == "timeout"  # the item's own limit still holds
    assert (after["status"], after["correct"]) == ("passed", True), after


@pytest.mark.parametrize("response,reference", [(None, "1"), ("\\boxed{1}", ""), ("\\boxed{1}", None)])
def test_invalid_input(response, reference):
    assert score("math", response, reference)["status"] == "invalid_input"


def test_math500_gold_solutions_score_correct(data, pool):
    rows = read_jsonl(data / "math500" / "test.jsonl")
    futures = [pool.submit("math", row["solution"], row["answer"]) for row in rows]
    wrong = [(row["unique_id"], f.result()) for row, f in zip(rows, futures, strict=True)
             if not f.result()["correct"]]
    assert len(rows) == 500 and wrong == []


def test_gsm8k_verdicts_agree_with_all_5276_labels(data, pool):
    cases = []
    for i, row in enumerate(read_jsonl(data / "gsm8k" / "example_model_solutions.jsonl")):
        reference = extract_math_answer(row["ground_truth"], answer_pattern=GSM8K_ANSWER)
        for model in ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"):
            cases.append((f"{i}/{model}", row[model]["solution"], reference, row[model]["is_correct"]))
    futures = [pool.submit("math", sol, ref, answer_pattern=GSM8K_ANSWER) for _, sol, ref, _ in cases]
    disagree = [(key, label, f.result()) for (key, _, _, label), f in zip(cases, futures, strict=True)
                if f.result()["correct"] != label]
    assert len(cases) == 5276 and disagree == []


def test_qwen25_math_outputs_agree_with_their_labels(data, pool):
    """800 labelled Qwen2.5-Math responses: every verdict agrees with its label except one mislabel,
    "10{,}000" (gold) vs "10000", which are the same number."""
    rows = read_jsonl(data / "model_outputs" / "qwen25_math_rm_maj_example" / "math_cot_100.jsonl")
    cases = [(r["code"][i], str(r["gt"]), r["score"][i]) for r in rows for i in range(len(r["code"]))]
    futures = [pool.submit("math", response, gold) for response, gold, _ in cases]
    disagree = [(gold, f.result()["extracted"], label) for (_, gold, label), f in zip(cases, futures, strict=True)
                if f.result()["correct"] != label]
    assert len(cases) == 800 and disagree == [("10{,}000", "10000", False)]


@pytest.mark.parametrize("response,answer,rule", [
    # an answer split over several boxes is read whole; an earlier box elsewhere does not join it
    ("so \\boxed{-2} and \\boxed{1}.", "-2, 1", "boxed"),
    ("$$\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}$$", "(2, 2), (6, 2)", "boxed"),
    ("\\[\\boxed{k = 45} \\quad \\text{and} \\quad \\boxed{n = 2}\\]", "k = 45, n = 2", "boxed"),
    ("\\( y_1 = \\boxed{3} \\) and \\( y_2 = \\boxed{5} \\)", "3, 5", "boxed"),
    ("\\boxed{1},\\boxed{2},\\boxed{3}", "1, 2, 3", "boxed"),
    ("We get \\boxed{7} for the first part. Hence the whole is \\boxed{9}", "9", "boxed"),
    # a final-answer statement ends with its sentence
    ("The final answer is $14{,}916$. I hope it is correct. Note: we checked 3 more cases.", "14{,}916",
     "final_answer"),
    ("Final Answer: The final answer is 12,000,023. I hope it is correct.", "12,000,023", "final_answer"),
    # a later final answer beats an intermediate box
    ("Interest: $\\boxed{255}$, so $10,200 + $255 = $10,455. Final Answer: The final answer is $10,455$. "
     "I hope it is correct.", "10,455", "final_answer"),
    # Minerva's "Final Answer:" without "the final answer is"
    ("So $n \\le 34$.\nFinal Answer: The largest $n$ is 34.", "34", "final_answer"),
    ("Final Answer: Jane started growing 3 hours ago. I hope it is correct.", "3", "final_answer"),
    ("The final answer is \\boxed{5}. <|im_start|>user\nThe final answer is 6.", "5", "boxed"),  # run-on turn
])
def test_extraction_rules(response, answer, rule):
    assert extract(response) == (answer, rule)


@pytest.mark.parametrize("response,reference", [
    ("so \\boxed{-2} and \\boxed{1}.", "1,-2"),
    ("$$\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}$$", "(6, 2), (2, 2)"),
    ("\\boxed{k = 45} \\quad \\text{and} \\quad \\boxed{n = 2}", "k = 45, n = 2"),
    ("The final answer is $14{,}916$. I hope it is correct. Note: we checked 3 more cases.", "14916"),
    ("Final Answer: The final answer is 12,000,023. I hope it is correct.", "12000023"),
    ("Interest: $\\boxed{255}$. Final Answer: The final answer is $10,455$. I hope it is correct.", "10455"),
    ("Final Answer: The largest $n$ is 34.", "34"),
    ("\\boxed{2}", "In all, \\boxed{1} and then, thus, \\boxed{2}"),  # a worked solution as the reference
])
def test_misses_of_the_field_suites_are_read_correctly(response, reference):
    verdict = score("math", response, reference)
    assert verdict["correct"], verdict


@pytest.mark.parametrize("response,reference", [
    ("\\boxed{32, 349}", "32349"),  # two numbers, not a thousands separator
    ("\\boxed{1, 2, 3}", "\\boxed{1} and and or thus but \\boxed{2} and \\boxed{3}"),  # the reference reads 2, 3
    ("\\boxed{2}. The final answer is 5", "2"),  # the later statement is the answer
    ("\\boxed{1} and \\boxed{2}", "2"),
])
def test_reading_more_does_not_make_wrong_answers_right(response, reference):
    verdict = score("math", response, reference, finish_reason="stop")
    assert not verdict["correct"], verdict


PROSE = [  # answers stated without a box or a "final answer" marker
    ("We get 5 apples, then 7, so 12", "12"),
    ("Therefore $x \\geq 5$ is the solution.", "x \\ge 5"),
    ("The identity matrix is $ \\begin{pmatrix}1 & 0 \\\\ 0 & 1\\end{pmatrix} $.",
     "\\begin{pmatrix}1 & 0 \\\\ 0 & 1\\end{pmatrix}"),
    ("So we divide and the answer is 0", "0"),
    ("so $x+y = 1000$ therefore answer is $1$", "1"),
    ("Hence the probability that Alice wins the game is 2/3.", "\\frac{2}{3}"),
    ("Il reste donc 220 $ à payer dans 12 mois.", "220"),  # a dollar sign is not math
]


@pytest.mark.parametrize("response,reference", PROSE)
def test_prose_answers_count_only_for_responses_that_finished(response, reference):
    finished = score("math", response, reference, finish_reason="stop")
    assert finished["correct"] and finished["extraction"] in ("answer_is", "last_expression"), finished
    for unfinished in ("length", None):  # truncated, or unknown: a number from an unfinished trace is no answer
        verdict = score("math", response, reference, finish_reason=unfinished)
        assert verdict["status"] == "no_answer" and not verdict["correct"]


@pytest.mark.parametrize("response", [
    "<think> I compute \\boxed{12} and 12 but wait",  # truncated inside the thinking, even if it says "stop"
    "<|begin_of_thought|> so 12 <|end_of_thought|>",
    "Answer $ \n 12 \n $",  # inline math broken over lines is not an answer
    "No idea.",
])
def test_finished_responses_without_an_answer_stay_without_one(response):
    assert score("math", response, "12", finish_reason="stop")["status"] == "no_answer"


def test_the_rule_is_recorded():
    assert score("math", "so \\boxed{4}", "4")["extraction"] == "boxed"
    assert score("math", "The final answer is 4.", "4")["extraction"] == "final_answer"
    gsm = score("math", "so she has 4 apples.\nA: 4", "4", answer_pattern=GSM8K_ANSWER)
    assert gsm["extraction"] == "pattern"
    assert "extraction" not in score("math", "no answer", "4")


@pytest.mark.parametrize("response", ["\\boxed{" * 20000, "\\(" * 20000 + "\\[" * 20000, "$x$ 1 " * 20000 + "$ 2"])
def test_pathological_responses_are_read_without_running_out_of_time(response):
    verdict = score("math", response, "1", finish_reason="stop", timeout_s=5)
    assert verdict["status"] != "timeout", verdict  # extraction is linear in the response's length
