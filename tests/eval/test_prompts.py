from skyt1.data import prompts
from skyt1.data.benchmarks import load_task


def test_system_prompt_per_model_family():
    assert prompts.system_prompt_for("NovaSky-AI/Sky-T1-32B-Preview") == prompts.SKYT1_SYSTEM_PROMPT
    assert prompts.system_prompt_for("Qwen/QwQ-32B-Preview") == prompts.QWEN_COT_PROMPT
    assert prompts.system_prompt_for("Qwen/Qwen2.5-32B-Instruct") == prompts.QWEN_COT_PROMPT
    assert prompts.system_prompt_for("meta-llama/Llama-3.1-8B-Instruct") is None


def test_skyt1_system_prompt_asks_for_both_sections():
    p = prompts.SKYT1_SYSTEM_PROMPT
    for marker in ("<|begin_of_thought|>", "<|end_of_thought|>", "<|begin_of_solution|>", "<|end_of_solution|>"):
        assert marker in p
    assert 1100 <= len(p) <= 1500


def test_prompt_ids_and_hashes_are_recorded_and_modes_differ(data_dir):
    sky = load_task("aime24", data_dir=data_dir, limit=2, system_prompt="SYS")
    plain = load_task("aime24", data_dir=data_dir, limit=2, prompt_mode="default")
    assert sky.prompt["templates"] == {"skyt1/math": prompts.TEMPLATES["skyt1/math"].digest}
    assert plain.prompt["templates"] == {"default/math": prompts.TEMPLATES["default/math"].digest}
    assert sky.prompt["system_prompt_digest"] == prompts.digest("SYS")
    assert plain.prompt["system_prompt_digest"] is None
    first = sky.problems[0].messages
    assert first[0] == {"role": "system", "content": "SYS"}
    assert first[1]["content"].startswith("Return your final response within \\boxed{}. Every morning Aya")
    assert plain.problems[0].messages[0]["role"] == "user"
    assert plain.problems[0].messages[0]["content"].endswith(prompts.QWEN_COT_PROMPT)
