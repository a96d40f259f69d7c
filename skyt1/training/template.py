"""The `qwen25` chat template Sky-T1 was trained with, registered into LlamaFactory.

SkyThought's LlamaFactory fork defined `qwen25`: ChatML turns, the EOS replaced by `<|endoftext|>` (so every
assistant turn ends `...<|endoftext|>` instead of `<|im_end|>`), a "\\n" separator before every later user
turn, and the tokenizer's own chat template left in place. LlamaFactory 0.9.5 has no such template and no
separator formatter, so the separator lives in a small Template subclass. `register()` is idempotent and runs
in every training process (skyt1.training.launcher), because LlamaFactory looks templates up by name.
"""

from __future__ import annotations

SKYT1_TEMPLATES = ("qwen25",)
QWEN25_EOS = "<|endoftext|>"
QWEN25_SEPARATOR = "\n"


def register() -> None:
    from llamafactory.data.formatter import FunctionFormatter, StringFormatter, ToolFormatter
    from llamafactory.data.template import TEMPLATES, Template, register_template

    if "qwen25" in TEMPLATES:
        return

    class SeparatedTemplate(Template):
        """Template with the separator older LlamaFactory put before each user turn after the first."""

        def _encode(self, tokenizer, messages, system, tools):
            encoded = super()._encode(tokenizer, messages, system, tools)
            sep = tokenizer.encode(QWEN25_SEPARATOR, add_special_tokens=False)
            return [sep + ids if i > 0 and i % 2 == 0 else ids for i, ids in enumerate(encoded)]

    register_template(
        name="qwen25",
        format_user=StringFormatter(slots=["<|im_start|>user\n{{content}}<|im_end|>\n<|im_start|>assistant\n"]),
        format_assistant=StringFormatter(slots=["{{content}}", {"eos_token"}]),
        format_system=StringFormatter(slots=["<|im_start|>system\n{{content}}<|im_end|>\n"]),
        format_function=FunctionFormatter(slots=["{{content}}", {"eos_token"}], tool_format="qwen"),
        format_observation=StringFormatter(
            slots=["<|im_start|>tool\n{{content}}<|im_end|>\n<|im_start|>assistant\n"]
        ),
        format_tools=ToolFormatter(tool_format="qwen"),
        default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
        stop_words=[QWEN25_EOS],
        replace_eos=True,
        replace_jinja_template=False,
        template_class=SeparatedTemplate,
    )
