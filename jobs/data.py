"""Training files: JSONL parsing and validation, and tokenization with loss masking.

Three line formats are accepted for supervised fine-tuning, one per file: OpenAI's chat format
(`{"messages": [...], "tools": [...]}`), `{"prompt": ..., "completion": ...}` and `{"text": ...}`; and for DPO,
OpenAI's preference format (`{"input": {"messages": [...]}, "preferred_output": [...], "non_preferred_output":
[...]}`). Labels are -100 on every token that is not learned."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import structlog

from jobs.errors import InvalidTrainingFileError

if TYPE_CHECKING:  # transformers itself only where examples are tokenized, in the trainer's process
    from transformers import PreTrainedTokenizerBase

log = structlog.get_logger("jobs.data")

MIN_EXAMPLES = 1
ROLES = ("system", "developer", "user", "assistant", "tool")
IGNORE = -100

Kind = Literal["chat", "prompt_completion", "text", "preference"]
PREFERENCE: Kind = "preference"


class Message(msgspec.Struct, frozen=True):
    role: str
    content: str
    weight: int = 1
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    def template_dict(self) -> dict[str, Any]:
        """The message as a chat template sees it (no weight)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        for key in ("name", "tool_calls", "tool_call_id"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


class Example(msgspec.Struct, frozen=True):
    """One validated line; `line` is its 1-based line number in the file."""

    kind: Kind
    line: int
    messages: list[Message] = []
    tools: list[dict[str, Any]] | None = None
    prompt: str = ""
    completion: str = ""
    text: str = ""
    preferred: list[Message] = []
    """preference: the answer to prefer to `non_preferred`, after `messages`."""
    non_preferred: list[Message] = []


class TokenizedExample(msgspec.Struct, frozen=True):
    input_ids: list[int]
    labels: list[int]

    @property
    def n_learned(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def _fail(line: int, text: str, code: str = "invalid_file_format", param: str = "training_file") -> InvalidTrainingFileError:
    return InvalidTrainingFileError(f"Line {line}: {text}", param=param, code=code)


# ---- parsing and validation ----


def parse_jsonl(content: bytes, *, min_examples: int = MIN_EXAMPLES, param: str = "training_file") -> list[Example]:
    """Decode and validate a whole JSONL file; empty lines are skipped. Errors name `param` (the file's field)."""
    try:
        return _parse(content, min_examples)
    except InvalidTrainingFileError as exc:
        exc.param = param
        raise


def _parse(content: bytes, min_examples: int) -> list[Example]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidTrainingFileError("The file is not UTF-8 text", code="invalid_file_format") from exc
    examples: list[Example] = []
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and other characters splitlines() breaks on.
    for number, raw in enumerate(text.split("\n"), start=1):
        example = _line(raw, number, examples[0] if examples else None)
        if example is not None:
            examples.append(example)
    _check_count(len(examples), min_examples)
    return examples


def check_jsonl_file(path: Path, *, min_examples: int = MIN_EXAMPLES) -> None:
    """`parse_jsonl`'s checks over a file read line by line, never whole: for files too large to hold."""
    first: Example | None = None
    count = 0
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidTrainingFileError("The file is not UTF-8 text", code="invalid_file_format") from exc
            example = _line(text, number, first)
            if example is not None:
                first, count = first or example, count + 1
    _check_count(count, min_examples)


def _line(raw: str, number: int, first: Example | None) -> Example | None:
    """The example on one line (None for a blank one); `first` is the file's first, whose format every line shares."""
    if not raw.strip():
        return None
    try:
        obj = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise _fail(number, f"not valid JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise _fail(number, "expected a JSON object")
    example = validate_example(obj, number)
    if first is not None and example.kind != first.kind:
        raise _fail(number, f"format '{example.kind}' differs from '{first.kind}' on line {first.line}")
    return example


def _check_count(count: int, min_examples: int) -> None:
    if count < min_examples:
        raise InvalidTrainingFileError(
            f"The file has {count} examples; at least {min_examples} are required", code="invalid_n_examples"
        )


def validate_example(obj: dict[str, Any], line: int) -> Example:
    """Check one decoded line and normalise it; extra top-level keys are ignored."""
    if "messages" in obj:
        return _chat_example(obj, line)
    if "input" in obj:
        return _preference_example(obj, line)
    if "prompt" in obj and "completion" in obj:
        prompt, completion = obj["prompt"], obj["completion"]
        if not isinstance(prompt, str) or not isinstance(completion, str):
            raise _fail(line, "'prompt' and 'completion' must be strings")
        return Example(kind="prompt_completion", line=line, prompt=prompt, completion=completion)
    if "text" in obj:
        if not isinstance(obj["text"], str):
            raise _fail(line, "'text' must be a string")
        return Example(kind="text", line=line, text=obj["text"])
    raise _fail(line, "unknown format: expected 'messages', 'prompt' and 'completion', 'text', or 'input' (preference)")


def _preference_example(obj: dict[str, Any], line: int) -> Example:
    source = obj["input"]
    if not isinstance(source, dict) or not isinstance(source.get("messages"), list) or not source["messages"]:
        raise _fail(line, "'input' must be an object with a non-empty 'messages' list")
    if source.get("tools"):
        raise _fail(line, "'tools' in preference examples are not supported: DPO here trains on messages only")
    messages = [_message(m, line, i) for i, m in enumerate(source["messages"], start=1)]
    answers = []
    for key in ("preferred_output", "non_preferred_output"):
        output = obj.get(key)
        if not isinstance(output, list) or len(output) != 1:
            raise _fail(line, f"'{key}' must be a list of one assistant message")
        answer = _message(output[0], line, 1)
        if answer.role != "assistant" or answer.tool_calls:
            raise _fail(line, f"'{key}' must be an assistant message with text content")
        answers.append(answer)
    return Example(kind=PREFERENCE, line=line, messages=messages, preferred=answers[:1], non_preferred=answers[1:])


def _chat_example(obj: dict[str, Any], line: int) -> Example:
    raw_messages, tools = obj["messages"], obj.get("tools")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise _fail(line, "'messages' must be a non-empty list")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
        raise _fail(line, "'tools' must be a list of objects")
    messages = [_message(m, line, i) for i, m in enumerate(raw_messages, start=1)]
    if not any(m.role == "assistant" and m.weight == 1 for m in messages):
        raise _fail(line, "no assistant message with weight 1 to learn from")
    return Example(kind="chat", line=line, messages=messages, tools=tools)


def _message(raw: Any, line: int, index: int) -> Message:
    where = f"message {index}"
    if not isinstance(raw, dict):
        raise _fail(line, f"{where} is not an object")
    role = raw.get("role")
    if role not in ROLES:
        raise _fail(line, f"{where} has role {role!r}; expected one of {', '.join(ROLES)}")
    tool_calls = raw.get("tool_calls")
    if tool_calls is not None and (role != "assistant" or not isinstance(tool_calls, list)):
        raise _fail(line, f"{where}: 'tool_calls' must be a list, on assistant messages only")
    content = raw.get("content")
    if content is None and tool_calls:
        content = ""
    elif isinstance(content, list):
        if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
            raise _fail(line, f"{where}: content parts must be {{'type': 'text', 'text': str}}")
        content = "".join(p["text"] for p in content)
    elif not isinstance(content, str):
        raise _fail(line, f"{where}: content must be a string or a list of text parts")
    weight = raw.get("weight", 1)
    if "weight" in raw and role != "assistant":
        raise _fail(line, f"{where}: 'weight' is only allowed on assistant messages")
    if type(weight) is not int or weight not in (0, 1):
        raise _fail(line, f"{where}: 'weight' must be 0 or 1")
    for key in ("name", "tool_call_id"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise _fail(line, f"{where}: '{key}' must be a string")
    return Message(role, content, weight, raw.get("name"), tool_calls, raw.get("tool_call_id"))


def check_method(examples: list[Example], method: str, *, param: str = "training_file") -> None:
    """DPO trains on the preference format only; supervised fine-tuning on the other three."""
    if examples and (examples[0].kind == PREFERENCE) != (method == "dpo"):
        if method == "dpo":
            needs = "the preference format ('input', 'preferred_output', 'non_preferred_output')"
        else:
            needs = "chat, prompt-completion or text lines"
        found = "the preference format, for DPO" if examples[0].kind == PREFERENCE else f"the '{examples[0].kind}' format"
        message = f"a {method} job needs {needs}; this file is in {found}"
        raise _fail(examples[0].line, message, code="invalid_training_file", param=param)


# ---- tokenization ----


def tokenize_examples(
    examples: list[Example],
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    *,
    param: str = "training_file",
    train_on_inputs: bool = False,
) -> list[TokenizedExample]:
    """Tokenize all examples, dropping those left without a learned token; fails only if every one is. With
    `train_on_inputs`, every token is learned (prompts and every message too), as Together's option of that name."""
    out = [tokenize_example(e, tokenizer, max_seq_length) for e in examples]
    if train_on_inputs:
        out = [TokenizedExample(input_ids=t.input_ids, labels=list(t.input_ids)) for t in out]
    kept = [t for t in out if t.n_learned > 0]
    if examples and not kept:
        raise _fail(
            examples[0].line,
            f"no token left to learn within max_seq_length={max_seq_length}; every example is empty after truncation",
            code="invalid_training_file",
            param=param,
        )
    if len(kept) < len(out):
        log.warning("examples_dropped", dropped=len(out) - len(kept), reason="no learned token after truncation")
    return kept


def tokenize_example(example: Example, tokenizer: PreTrainedTokenizerBase, max_seq_length: int) -> TokenizedExample:
    """Tokens and labels of one example, truncated to `max_seq_length` (keeping the start).

    chat: the tokenizer's chat template; learned are the assistant turns with weight 1, from the end of the
    assistant header to the end-of-turn token included. prompt_completion: plain text, the completion and EOS are
    learned. text: every token and EOS are learned."""
    if example.kind == "chat":
        text, spans = _render_chat(example, tokenizer)
        ids, labels = _label_spans(tokenizer, text, spans, add_special_tokens=False)
    else:
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token")
        prompt = example.prompt if example.kind == "prompt_completion" else ""
        text = prompt + (example.completion if example.kind == "prompt_completion" else example.text)
        ids, labels = _label_spans(tokenizer, text, [(len(prompt), len(text))], add_special_tokens=True)
        ids.append(tokenizer.eos_token_id)
        labels.append(tokenizer.eos_token_id)
    return TokenizedExample(input_ids=ids[:max_seq_length], labels=labels[:max_seq_length])


def _label_spans(
    tokenizer: PreTrainedTokenizerBase, text: str, spans: list[tuple[int, int]], *, add_special_tokens: bool
) -> tuple[list[int], list[int]]:
    """Tokenize `text`; a token is learned when its characters overlap one of the `spans`."""
    enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    labels = [
        tid if any(s < end and e > start for start, end in spans) else IGNORE
        for tid, (s, e) in zip(ids, enc["offset_mapping"], strict=True)
    ]
    return ids, labels


def _generation_prompt(tokenizer: PreTrainedTokenizerBase) -> str:
    """The assistant header the template adds for generation, e.g. "<|im_start|>assistant\\n" for ChatML."""
    probe = [{"role": "user", "content": "x"}]
    bare = tokenizer.apply_chat_template(probe, tokenize=False)
    prompted = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    if not prompted.startswith(bare):
        raise ValueError("the chat template's generation prompt is not a suffix of the conversation")
    return prompted[len(bare) :]


def _render_chat(example: Example, tokenizer: PreTrainedTokenizerBase) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans to learn.

    Conversation prefixes are rendered one message longer at a time: the text a turn adds is its slice of the full
    rendering (this also covers a default system prompt the template injects). In an assistant turn, learning starts
    after the generation prompt (the assistant header) and ends with the last EOS of the turn, or with the turn's
    text minus trailing whitespace if the template ends turns with another token."""
    messages = [m.template_dict() for m in example.messages]
    kwargs: dict[str, Any] = {"tools": example.tools} if example.tools else {}

    def render(part: list[dict[str, Any]]) -> str:
        return tokenizer.apply_chat_template(part, tokenize=False, **kwargs) if part else ""

    full = render(messages)
    header = _generation_prompt(tokenizer)
    eos = tokenizer.eos_token
    spans: list[tuple[int, int]] = []
    turn_start = 0
    for i, message in enumerate(example.messages):
        prefix = render(messages[: i + 1])
        if not full.startswith(prefix):
            raise ValueError("the chat template does not render conversations prefix by prefix")
        turn_end = len(prefix)
        if message.role == "assistant" and message.weight == 1:
            at = full.find(header, turn_start, turn_end)
            if at < 0:
                raise ValueError("the chat template's assistant header was not found in an assistant turn")
            start = at + len(header)
            turn = full[start:turn_end]
            end = start + (turn.rfind(eos) + len(eos) if eos and eos in turn else len(turn.rstrip()))
            spans.append((start, end))
        turn_start = turn_end
    return full, spans
