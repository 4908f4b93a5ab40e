"""Reasoning content blocks of Chat Completions answers (001 Reasoning).

With reasoning, message.content is a list: a `reasoning` block whose `summary` holds
{type: summary_text, text, signature} items, then a `text` block. `reasoning_content_blocks` is the gate: it
requires the list and validates each block against the schema of its type; with check_args
{reasoning_may_be_hidden: true} it also accepts an answer without a reasoning block (a plain string, or text
blocks only) from a model that reasons without exposing it. The other checks judge lists only, so a string answer
is reported once, not once per check. An answer cut at max_tokens may lack its text block: a reasoning model can
spend a short max_tokens reasoning before it writes any text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from conformance.checks.base import CheckContext, check, get
from conformance.checks.chat import completion_of, was_cut
from conformance.schemas import validate

SPEC = "001 Reasoning / Gemini model example: The API response includes both thinking and text content blocks"
BLOCK_SCHEMAS = {"reasoning": "chat.content.reasoning", "text": "chat.content.text"}


def _contents(ctx: CheckContext) -> Iterator[tuple[str, Any, Any]]:
    choices = get(completion_of(ctx), "choices")
    for i, choice in enumerate(choices if isinstance(choices, list) else []):
        yield f"$.choices[{i}].message.content", get(choice, "message", "content"), choice


def _summary_items(content: list[Any], where: str) -> Iterator[tuple[str, Any]]:
    for b, block in enumerate(content):
        if isinstance(block, dict) and block.get("type") == "reasoning" and isinstance(block.get("summary"), list):
            for s, item in enumerate(block["summary"]):
                yield f"{where}[{b}].summary[{s}]", item


@check("reasoning_content_blocks", spec=f"{SPEC}; 001 Reasoning: ChatCompletionMessage(content=[reasoning, text]); "
                                        "How does a reasoning model work?: others ... discard them and do not "
                                        "expose them in the final output",
       strength="must",
       reason='a documented response: "The API response includes both thinking and text content blocks", and the '
              "Claude example reads msg.content[0] and msg.content[1]")
def reasoning_content_blocks(ctx: CheckContext) -> Iterator[str]:
    hidden_allowed = bool(ctx.args.get("reasoning_may_be_hidden"))
    for where, content, choice in _contents(ctx):
        if isinstance(content, str) and hidden_allowed:
            continue
        if not isinstance(content, list):
            yield f"{where}: {type(content).__name__}, expected a list of content blocks (reasoning, then text)"
            continue
        for b, block in enumerate(content):
            kind = get(block, "type")
            if kind in BLOCK_SCHEMAS:
                yield from (f"{where}[{b}]{e[1:]}" for e in validate(BLOCK_SCHEMAS[kind], block))
        kinds = [get(block, "type") for block in content]
        if "reasoning" not in kinds and not hidden_allowed:
            yield f"{where}: no reasoning block (block types: {kinds})"
        if "text" not in kinds and not was_cut(ctx, choice):
            yield f"{where}: no text block (block types: {kinds}), and the answer was not cut at max_tokens"


@check("reasoning_before_text", spec=f"{SPEC} (first the reasoning block, then the text block)",
       strength="should",
       reason="implied by the documented order (the reasoning block, then the text block); no sentence states an "
              "order")
def reasoning_before_text(ctx: CheckContext) -> Iterator[str]:
    for where, content, _ in _contents(ctx):
        if not isinstance(content, list):
            continue
        kinds = [get(block, "type") for block in content]
        if "reasoning" in kinds and "text" in kinds:
            last_reasoning = max(i for i, k in enumerate(kinds) if k == "reasoning")
            if last_reasoning > kinds.index("text"):
                yield f"{where}: block types {kinds}: a reasoning block follows the text"


@check("reasoning_summary_non_empty",
       spec="001 Reasoning: reasoning = msg.content[0][\"summary\"][0][\"text\"] is printed as the reasoning",
       strength="should",
       reason="implied: the Claude example prints the summary text as the reasoning")
def reasoning_summary_non_empty(ctx: CheckContext) -> Iterator[str]:
    for path, item in _every_summary_item(ctx):
        text = get(item, "text")
        if isinstance(text, str) and not text.strip():
            yield f"{path}.text: empty summary text"


@check("reasoning_summary_signed",
       spec="001 Reasoning: every summary_text item carries a signature; 001 Manage reasoning across multiple "
            "turns: the full, unmodified assistant message is sent back",
       strength="should",
       reason='implied: 001 shows a signature on the summary item, and a later turn must carry "the full, '
              'unmodified assistant message"; a non-empty signature is not stated')
def reasoning_summary_signed(ctx: CheckContext) -> Iterator[str]:
    for path, item in _every_summary_item(ctx):
        signature = get(item, "signature")
        if not isinstance(signature, str) or not signature:
            yield f"{path}.signature: {signature!r}, expected a non-empty signature string"


def _every_summary_item(ctx: CheckContext) -> Iterator[tuple[str, Any]]:
    """(path, summary item) of every reasoning block of every choice whose content is a list of blocks."""
    for where, content, _ in _contents(ctx):
        if isinstance(content, list):
            yield from _summary_items(content, where)


@check("reasoning_documented_extraction",
       spec="001 Reasoning / Claude model example: reasoning = msg.content[0][\"summary\"][0][\"text\"]; "
            "answer = msg.content[1][\"text\"] (an answer cut at max_tokens may have no text, or no text block)",
       strength="must",
       reason="what the documented example reads: reasoning = msg.content[0][...] and answer = msg.content[1][...] "
              "(001 Claude model example)")
def reasoning_documented_extraction(ctx: CheckContext) -> Iterator[str]:
    for where, content, choice in _contents(ctx):
        if not isinstance(content, list):
            continue
        reasoning, answer = get(content, 0, "summary", 0, "text"), get(content, 1, "text")
        cut = was_cut(ctx, choice)
        if not isinstance(reasoning, str):
            yield f"{where}[0].summary[0].text: {reasoning!r}: the documented extraction of the reasoning fails"
        if answer is None and len(content) == 1 and cut:
            continue  # max_tokens spent reasoning: no text block yet
        if not isinstance(answer, str):
            yield f"{where}[1].text: {answer!r}: the documented extraction of the answer fails"
        elif not answer.strip() and not cut:
            yield f"{where}[1].text: empty answer text"


@check("reasoning_absent_without_thinking",
       spec="001 Reasoning / Types of reasoning models: hybrid models support fast, instant replies, and reason "
            "when asked (thinking with budget_tokens); 001 Chat: print(response.choices[0].message.content). "
            "Without thinking, no reasoning block: the content is a string or text blocks only",
       strength="should",
       reason='described, not stated as a rule: hybrid models give "fast, instant replies" unless thinking is '
              'requested, and GPT-5.1\'s reasoning_effort "is set to none by default"')
def reasoning_absent_without_thinking(ctx: CheckContext) -> Iterator[str]:
    for where, content, _ in _contents(ctx):
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            yield f"{where}: {type(content).__name__}, expected a string or a list of text blocks"
            continue
        kinds = [get(block, "type") for block in content]
        if "reasoning" in kinds:
            yield f"{where}: a reasoning block although no thinking was requested (block types: {kinds})"
