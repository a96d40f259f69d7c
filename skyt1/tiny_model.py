"""A tiny random Qwen2-architecture chat model, built offline in seconds.

The tokenizer is a byte-level BPE trained here on a corpus generated in code (numbers, arithmetic, LaTeX,
Python, English, the Sky-T1 section markers), wrapped with Qwen's ChatML special tokens and a Qwen2.5 chat
template, so everything that loads Qwen2.5 (transformers, vLLM, LlamaFactory's `qwen`/`qwen25` templates)
loads this too. The tokenizer depends on nothing but the code (teacher and student built with different
seeds share it); the weights depend on the seed.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]  # ids 0, 1, 2
SKY_T1_MARKERS = [
    "<|begin_of_thought|>", "<|end_of_thought|>", "<|begin_of_solution|>", "<|end_of_solution|>",
]
DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

# Qwen2.5-Instruct's template without the tool-calling branches: ChatML turns, Qwen's default system prompt
# when none is given, `add_generation_prompt` opens the assistant turn.
QWEN25_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_WORDS = (
    "the a an of to and in is that it for as with be on by this are we find let so then thus therefore "
    "since because if not number answer solution problem value sum product square root prime integer "
    "real positive negative equation function given compute show prove triangle circle area angle side "
    "length probability count ways first second last each every all how many what which where when "
    "input output return print list string test case example step think check wait verify final result "
    "hence note consider suppose assume case cases total remainder divisible digits even odd maximum "
    "minimum equal less greater than between point line slope ratio rate time speed distance"
).split()
_LATEX = [
    "\\frac{", "\\sqrt{", "\\boxed{", "\\cdot", "\\times", "\\pi", "\\le", "\\ge", "\\neq", "\\sum_{",
    "\\int_{", "\\left(", "\\right)", "\\alpha", "\\theta", "\\binom{", "\\dfrac{", "^{2}", "_{n}", "$$", "$",
]
_PY = [
    "def solve():", "n = int(input())", "a = list(map(int, input().split()))", "print(ans)", "return ",
    "for i in range(n):", "if x % 2 == 0:", "while lo < hi:", "import sys", "```python", "```",
    "class Solution:", "    def ", "self, nums: List[int]) -> int:", "ans += 1", "else:", "elif ",
]

_CHAT = [
    f"{IM_START}system\n{DEFAULT_SYSTEM}{IM_END}\n{IM_START}user\nHello{IM_END}\n{IM_START}assistant\n",
    "You are a helpful and harmless assistant. You are Qwen developed by Alibaba. You should think step-by-step.",
    "Return your final response within \\boxed{}. Please reason step by step, and put your final answer within",
    "Generate an executable Python function generated from the given prompt. Read from standard input.",
    "Organize your response into two main sections: Thought and Solution.",
]


# Qwen2's pre-tokenization pattern (digits one at a time), as Qwen2.5's tokenizer.json has it.
QWEN2_PRETOKENIZE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                     r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def _corpus(n_lines: int = 3000) -> list[str]:
    """Deterministic training text for the tokenizer (independent of the model seed)."""
    rng = random.Random(1234)
    lines = []
    for i in range(n_lines):
        kind = i % 5
        if kind == 0:
            a, b = rng.randint(0, 999), rng.randint(1, 99)
            op = rng.choice("+-*/")
            lines.append(f"{a} {op} {b} = {a + b if op == '+' else a * b} so the answer is \\boxed{{{a + b}}}.")
        elif kind == 1:
            lines.append(" ".join(rng.choice(_LATEX) + str(rng.randint(0, 20)) + "}" for _ in range(6)))
        elif kind == 2:
            lines.append("\n".join(rng.sample(_PY, 5)))
        elif kind == 3:
            lines.append(" ".join(rng.choice(_WORDS) for _ in range(14)).capitalize() + ".")
        else:
            m = SKY_T1_MARKERS
            lines.append(f"{m[0]}\n\nLet me think. {rng.choice(_WORDS)} {rng.randint(1, 99)}\n\n{m[1]}\n\n"
                         f"{m[2]}\n\nThe answer is $\\boxed{{{rng.randint(0, 999)}}}$.\n\n{m[3]}")
    lines += _CHAT * 50 + [str(d) for d in range(1000)] + list("0123456789+-*/=()[]{}<>.,;:!?'\"\\^_$#%&|~`@")
    return lines


def build_tokenizer(vocab_size: int = 1024):
    """A transformers fast tokenizer: byte-level BPE trained on `_corpus()`, ChatML specials, Qwen2.5 template."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Qwen2's own normalizer and pre-tokenizer: newer transformers load any qwen2 model's tokenizer as
    # Qwen2Tokenizer, which rebuilds them from scratch; with others, the same prompt would tokenize
    # differently in the generation environment than in the training one.
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    # Markers are ordinary text for Qwen too, but one token each keeps tiny sequences short.
    tok.add_tokens([AddedToken(m, special=False, normalized=False) for m in SKY_T1_MARKERS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token=ENDOFTEXT, unk_token=None, bos_token=None,
        additional_special_tokens=[IM_START, IM_END], model_max_length=32768, padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = QWEN25_CHAT_TEMPLATE
    return fast


def build_tiny_model(
    out_dir: str | Path, *, seed: int = 0, vocab_size: int = 1024, hidden_size: int = 64,
    num_layers: int = 2, num_heads: int = 4, num_kv_heads: int = 2, intermediate_size: int = 128,
    max_position_embeddings: int = 4096,
) -> Path:
    """Write a random Qwen2ForCausalLM and its tokenizer to `out_dir` (save_pretrained layout); return the path."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(vocab_size)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings, tie_word_embeddings=True,
        bos_token_id=ids[ENDOFTEXT], eos_token_id=ids[IM_END], pad_token_id=ids[ENDOFTEXT],
        use_sliding_window=False, torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=ids[ENDOFTEXT], eos_token_id=[ids[IM_END], ids[ENDOFTEXT]], pad_token_id=ids[ENDOFTEXT],
        do_sample=True, temperature=0.7, top_p=0.8,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "skyt1_tiny.json").write_text(json.dumps({
        "builder": "skyt1.tiny_model", "seed": seed, "vocab_size": vocab_size, "hidden_size": hidden_size,
        "num_layers": num_layers, "parameters": sum(p.numel() for p in model.parameters()),
    }, indent=2) + "\n")
    return out
