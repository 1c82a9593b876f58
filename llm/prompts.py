"""Prompt templating: the exact text the model is given for an example, and its token ids.

An example's prompt is a question string, or a list of chat messages (``{"role", "content"}``,
kept in ``meta["messages"]`` by the verl adapter of `llm.datasets`). `render_prompt` turns it into
the text fed to the model:

1. a question string goes through the prompt template (``data.prompt_template``, e.g.
   ``"{question}\\nPut the final answer in \\\\boxed{{}}."``; ``""`` = the question as it is) and becomes
   one user message; a message list is used as given;
2. ``data.system_prompt`` (if set, and the messages have no system message) is put first;
3. with ``data.chat_template = "auto"`` and a tokenizer that has a chat template, the messages are
   rendered by ``tokenizer.apply_chat_template(messages, add_generation_prompt=True)``; otherwise
   (``"none"``, or no template) the contents are joined by a blank line — for a plain question with
   no system prompt and no template that is the question itself, the behaviour of earlier versions.

The rendered text is what `llm.samples` logs and what is tokenized (``add_special_tokens=False``:
the chat template already wrote every special token it wants).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PromptEncoder", "PromptFormat", "messages_of", "render_prompt"]


@dataclass(frozen=True)
class PromptFormat:
    """How prompts are templated (the ``data.chat_template``, ``data.system_prompt``, ``data.prompt_template`` keys)."""

    chat_template: str = "auto"
    """'auto' (the tokenizer's chat template when it has one) or 'none' (plain text)."""
    system_prompt: str = ""
    """A system message put before every prompt ('' = none)."""
    prompt_template: str = ""
    """A template with one ``{question}`` field applied to question strings ('' = the question as it is)."""

    @classmethod
    def of(cls, data_cfg) -> PromptFormat:
        """The format named by a `llm.config.DataConfig`."""
        return cls(data_cfg.chat_template, data_cfg.system_prompt, data_cfg.prompt_template)


def messages_of(example, fmt: PromptFormat) -> list[dict[str, str]]:
    """The chat messages of an example: its own (``meta["messages"]``) or one user turn, system prompt first."""
    given = example.meta.get("messages") if isinstance(example.meta, dict) else None
    if given:
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in given]
    else:
        text = fmt.prompt_template.format(question=example.prompt) if fmt.prompt_template else example.prompt
        messages = [{"role": "user", "content": text}]
    if fmt.system_prompt and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": fmt.system_prompt})
    return messages


def render_prompt(tokenizer, example, fmt: PromptFormat) -> str:
    """The exact text given to the model for ``example`` (see the module docstring)."""
    messages = messages_of(example, fmt)
    if fmt.chat_template == "auto" and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages)


class PromptEncoder:
    """Rendered prompts and their token ids, cached per prompt (a run sees each prompt many times)."""

    def __init__(self, tokenizer, fmt: PromptFormat, *, max_tokens: int | None = None, source: str = "data") -> None:
        self.tokenizer, self.fmt, self.max_tokens, self.source = tokenizer, fmt, max_tokens, source
        self._cache: dict[Any, tuple[str, list[int]]] = {}

    @classmethod
    def for_model(cls, tokenizer, model, cfg) -> PromptEncoder:
        """The trainer's encoder: ``cfg.data``'s format, prompts limited to the model's positions minus
        ``cfg.rollout.max_new_tokens`` (`llm.model.context_length`; no limit if the model does not say)."""
        from .model import context_length

        context = context_length(model)
        limit = None if context is None else context - cfg.rollout.max_new_tokens
        return cls(tokenizer, PromptFormat.of(cfg.data), max_tokens=limit, source=str(cfg.data.train))

    def __call__(self, example) -> tuple[str, list[int]]:
        """(rendered text, token ids) of an example's prompt.

        A prompt over ``max_tokens``, or with a character the tokenizer maps to its unknown token, is a
        one-line `DataError`.
        """
        key = (example.prompt, repr(example.meta.get("messages")))
        if key not in self._cache:
            text = render_prompt(self.tokenizer, example, self.fmt)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if getattr(self.tokenizer, "unk_token_id", None) in ids:  # a character the tokenizer does not know
                from .data import check_prompts

                check_prompts([example], self.tokenizer, source=self.source, lines=[f"prompt {example.prompt[:40]!r}"])
            if self.max_tokens is not None and len(ids) > self.max_tokens:
                from .data import DataError

                raise DataError(
                    f"a prompt is {len(ids)} tokens after templating, over the limit of {self.max_tokens} (the "
                    f"model's positions minus rollout.max_new_tokens): {text[:60]!r}…; shorten it or lower "
                    "rollout.max_new_tokens"
                )
            self._cache[key] = (text, ids)
        return self._cache[key]

    def text(self, example) -> str:
        return self(example)[0]

    def ids(self, example) -> list[int]:
        return self(example)[1]
