from __future__ import annotations

import json
from typing import Any

import pytest
from transformers import PreTrainedTokenizerBase

from jobs.data import (
    IGNORE,
    Example,
    TokenizedExample,
    check_method,
    parse_jsonl,
    tokenize_example,
    tokenize_examples,
)
from jobs.errors import InvalidTrainingFileError

EOS = 2  # <|im_end|>


def jsonl(*lines: Any) -> bytes:
    return "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines).encode()


def chat(*messages: object, **extra: Any) -> dict[str, Any]:
    return {"messages": list(messages), **extra}


USER = {"role": "user", "content": "What is the capital of France?"}
ANSWER = {"role": "assistant", "content": "Paris is the capital of France."}


def parse_error(content: bytes, **kwargs: Any) -> InvalidTrainingFileError:
    with pytest.raises(InvalidTrainingFileError) as info:
        parse_jsonl(content, **kwargs)
    return info.value


# ---- parsing and validation ----


def test_parses_the_three_formats() -> None:
    [c] = parse_jsonl(jsonl(chat(USER, ANSWER)))
    assert c.kind == "chat" and c.line == 1 and [m.role for m in c.messages] == ["user", "assistant"]
    [p] = parse_jsonl(jsonl({"prompt": "Q:", "completion": " A"}))
    assert (p.kind, p.prompt, p.completion) == ("prompt_completion", "Q:", " A")
    [t] = parse_jsonl(jsonl({"text": "hello"}))
    assert (t.kind, t.text) == ("text", "hello")


def test_skips_empty_lines_and_keeps_line_numbers() -> None:
    examples = parse_jsonl(jsonl({"text": "a"}, "", "  ", {"text": "b"}, ""))
    assert [(e.line, e.text) for e in examples] == [(1, "a"), (4, "b")]
    error = parse_error(jsonl({"text": "a"}, "", "{not json"))
    assert error.message.startswith("Line 3: ") and error.code == "invalid_file_format"


def test_normalises_chat_fields() -> None:
    parts = {"role": "user", "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]}
    call = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    [e] = parse_jsonl(
        jsonl(
            chat(
                {"role": "developer", "content": "Be brief.", "name": "ops"},
                parts,
                {"role": "assistant", "content": None, "tool_calls": call, "weight": 0},
                {"role": "tool", "content": "42", "tool_call_id": "c1"},
                ANSWER,
                tools=tools,
                parallel_tool_calls=False,
            )
        )
    )
    assert e.messages[1].content == "Hello"
    assert (e.messages[2].content, e.messages[2].weight, e.messages[2].tool_calls) == ("", 0, call)
    assert e.messages[0].template_dict() == {"role": "developer", "content": "Be brief.", "name": "ops"}
    assert e.messages[3].template_dict()["tool_call_id"] == "c1"
    assert e.tools == tools and e.messages[4].weight == 1


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("[1, 2]", "expected a JSON object"),
        ('"text"', "expected a JSON object"),
        ({"foo": "bar"}, "unknown format"),
        ({"text": 3}, "'text' must be a string"),
        ({"prompt": "a", "completion": None}, "'prompt' and 'completion' must be strings"),
        ({"messages": []}, "non-empty list"),
        ({"messages": "hi"}, "non-empty list"),
        (chat(USER, ANSWER, tools="x"), "'tools' must be a list"),
        (chat("hi", ANSWER), "message 1 is not an object"),
        (chat({"role": "robot", "content": "x"}, ANSWER), "message 1 has role 'robot'"),
        (chat({"role": "function", "content": "x"}, ANSWER), "has role 'function'"),
        (chat(USER, {"role": "assistant", "content": 5}), "message 2: content must be a string or a list"),
        (chat(USER, {"role": "assistant"}), "content must be a string"),
        (chat({"role": "user", "content": [{"type": "image_url"}]}, ANSWER), "content parts must be"),
        (chat(USER, {**ANSWER, "weight": 2}), "'weight' must be 0 or 1"),
        (chat(USER, {**ANSWER, "weight": True}), "'weight' must be 0 or 1"),
        (chat({**USER, "weight": 1}, ANSWER), "only allowed on assistant"),
        (chat(USER, {**ANSWER, "weight": 0}), "no assistant message with weight 1"),
        (chat(USER), "no assistant message with weight 1"),
        (chat({**USER, "tool_calls": []}, ANSWER), "'tool_calls' must be a list, on assistant messages only"),
        (chat({**USER, "name": 3}, ANSWER), "'name' must be a string"),
    ],
)
def test_rejects_bad_lines_naming_the_line(line: Any, fragment: str) -> None:
    error = parse_error(jsonl(chat(USER, ANSWER), line))
    assert error.code == "invalid_file_format" and error.param == "training_file"
    assert error.message.startswith("Line 2: ") and fragment in error.message, error.message


def preference(preferred: str = "Paris.", non_preferred: str = "No idea.", **extra: Any) -> dict[str, Any]:
    return {
        "input": {"messages": [USER]},
        "preferred_output": [{"role": "assistant", "content": preferred}],
        "non_preferred_output": [{"role": "assistant", "content": non_preferred}],
        **extra,
    }


def test_parses_openais_preference_format() -> None:
    [example] = parse_jsonl(jsonl(preference()))
    assert example.kind == "preference" and [m.role for m in example.messages] == ["user"]
    assert example.preferred[0].content == "Paris." and example.non_preferred[0].content == "No idea."


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ({"input": []}, "'input' must be an object with a non-empty 'messages' list"),
        ({**preference(), "preferred_output": []}, "'preferred_output' must be a list of one assistant message"),
        ({**preference(), "non_preferred_output": [USER]}, "'non_preferred_output' must be an assistant message"),
        ({**preference(), "input": {"messages": [USER], "tools": [{"type": "function"}]}}, "'tools'"),
    ],
)
def test_rejects_bad_preference_lines(line: Any, fragment: str) -> None:
    error = parse_error(jsonl(preference(), line))
    assert error.message.startswith("Line 2: ") and fragment in error.message, error.message


def test_dpo_needs_preferences_and_supervised_fine_tuning_refuses_them() -> None:
    preferences, chats = parse_jsonl(jsonl(preference())), parse_jsonl(jsonl(chat(USER, ANSWER)))
    check_method(preferences, "dpo")
    check_method(chats, "supervised")
    with pytest.raises(InvalidTrainingFileError, match="a supervised job needs chat, prompt-completion or text lines"):
        check_method(preferences, "supervised")
    with pytest.raises(InvalidTrainingFileError, match="a dpo job needs the preference format") as info:
        check_method(chats, "dpo", param="validation_file")
    assert info.value.param == "validation_file" and info.value.code == "invalid_training_file"


def test_rejects_mixed_formats() -> None:
    error = parse_error(jsonl({"text": "a"}, {"text": "b"}, {"prompt": "p", "completion": "c"}))
    assert error.message == "Line 3: format 'prompt_completion' differs from 'text' on line 1"


def test_rejects_non_utf8() -> None:
    error = parse_error(b'{"text": "caf\xe9"}')
    assert error.code == "invalid_file_format" and "UTF-8" in error.message


def test_counts_examples() -> None:
    assert parse_error(b"\n\n").code == "invalid_n_examples"
    error = parse_error(jsonl({"text": "a"}, {"text": "b"}), min_examples=10)
    assert error.code == "invalid_n_examples" and "2 examples" in error.message and "10" in error.message


def test_param_names_the_file() -> None:
    assert parse_error(b"nope", param="validation_file").param == "validation_file"


def test_line_separators_inside_strings_are_not_line_breaks() -> None:
    [e] = parse_jsonl(jsonl({"text": "a\u2028b\x85c"}))
    assert e.text == "a\u2028b\x85c"


# ---- tokenization and masking ----


def learned(tokenizer: PreTrainedTokenizerBase, t: TokenizedExample) -> list[str]:
    """Decoded runs of consecutive learned tokens."""
    runs: list[list[int]] = []
    for i, label in enumerate(t.labels):
        if label != IGNORE:
            if i == 0 or t.labels[i - 1] == IGNORE:
                runs.append([])
            runs[-1].append(label)
    return [tokenizer.decode(run) for run in runs]


def one(content: bytes) -> Example:
    [example] = parse_jsonl(content)
    return example


def test_labels_are_the_ids_where_learned(tokenizer: PreTrainedTokenizerBase) -> None:
    t = tokenize_example(one(jsonl(chat(USER, ANSWER))), tokenizer, 512)
    assert len(t.labels) == len(t.input_ids)
    assert all(label in (IGNORE, tid) for tid, label in zip(t.input_ids, t.labels, strict=True))


def test_chat_learns_assistant_content_and_end_of_turn_only(tokenizer: PreTrainedTokenizerBase) -> None:
    messages = [USER, ANSWER]
    t = tokenize_example(one(jsonl(chat(*messages))), tokenizer, 512)
    # Same tokens as the chat template gives at serving time, default system prompt included.
    assert t.input_ids == list(tokenizer.apply_chat_template(messages)["input_ids"])
    content_ids = tokenizer(ANSWER["content"], add_special_tokens=False)["input_ids"]
    first = t.labels.index(next(label for label in t.labels if label != IGNORE))
    assert t.labels[first:] == [*content_ids, EOS, IGNORE]  # content, <|im_end|>; the final "\n" is not learned
    assert set(t.labels[:first]) == {IGNORE}
    header = tokenizer.decode(t.input_ids[:first])
    assert header.endswith("<|im_start|>assistant\n")  # the assistant header is masked
    assert "You are a helpful AI assistant named SmolLM" in header  # so is the injected system prompt
    assert learned(tokenizer, t) == ["Paris is the capital of France.<|im_end|>"]


def test_chat_masks_system_user_tool_and_weight_zero_turns(tokenizer: PreTrainedTokenizerBase) -> None:
    example = one(
        jsonl(
            chat(
                {"role": "system", "content": "You answer in one word."},
                {"role": "user", "content": "Capital of Italy?"},
                {"role": "assistant", "content": "Milan", "weight": 0},
                {"role": "user", "content": "Wrong, try again."},
                {"role": "assistant", "content": "Rome"},
                {"role": "tool", "content": "lookup: Rome is correct"},
                {"role": "assistant", "content": "Indeed, Rome."},
            )
        )
    )
    t = tokenize_example(example, tokenizer, 512)
    assert learned(tokenizer, t) == ["Rome<|im_end|>", "Indeed, Rome.<|im_end|>"]
    rendered = tokenizer.decode(t.input_ids)
    assert rendered.startswith("<|im_start|>system\nYou answer in one word.")  # no default system prompt added


def test_chat_assistant_first_message(tokenizer: PreTrainedTokenizerBase) -> None:
    t = tokenize_example(one(jsonl(chat({"role": "assistant", "content": "Hello!"}))), tokenizer, 512)
    assert learned(tokenizer, t) == ["Hello!<|im_end|>"]


def test_chat_content_equal_to_header_text(tokenizer: PreTrainedTokenizerBase) -> None:
    t = tokenize_example(one(jsonl(chat(USER, {"role": "assistant", "content": "assistant"}))), tokenizer, 512)
    assert learned(tokenizer, t) == ["assistant<|im_end|>"]


def test_prompt_completion_learns_completion_and_eos(tokenizer: PreTrainedTokenizerBase) -> None:
    t = tokenize_example(one(jsonl({"prompt": "2 + 2 =", "completion": " 4"})), tokenizer, 512)
    assert tokenizer.decode(t.input_ids) == "2 + 2 = 4<|im_end|>"
    assert learned(tokenizer, t) == [" 4<|im_end|>"]
    prompt_len = len(tokenizer("2 + 2 =")["input_ids"])
    assert set(t.labels[:prompt_len]) == {IGNORE} and t.labels[-1] == EOS


def test_text_learns_everything_and_eos(tokenizer: PreTrainedTokenizerBase) -> None:
    t = tokenize_example(one(jsonl({"text": "The sky is blue."})), tokenizer, 512)
    assert t.labels == t.input_ids and t.input_ids[-1] == EOS
    assert tokenizer.decode(t.input_ids) == "The sky is blue.<|im_end|>"


def test_truncation_keeps_the_start(tokenizer: PreTrainedTokenizerBase) -> None:
    full = tokenize_example(one(jsonl({"text": "one two three four five six"})), tokenizer, 512)
    t = tokenize_example(one(jsonl({"text": "one two three four five six"})), tokenizer, 3)
    assert t.input_ids == full.input_ids[:3] and t.labels == full.labels[:3]


def test_examples_without_learned_tokens_are_dropped(tokenizer: PreTrainedTokenizerBase) -> None:
    long_prompt = {"prompt": "word " * 40, "completion": " end"}
    examples = parse_jsonl(jsonl(long_prompt, {"prompt": "hi", "completion": " there"}))
    kept = tokenize_examples(examples, tokenizer, 16)
    assert len(kept) == 1 and learned(tokenizer, kept[0]) == [" there<|im_end|>"]


def test_all_examples_empty_is_an_error(tokenizer: PreTrainedTokenizerBase) -> None:
    examples = parse_jsonl(jsonl("", chat(USER, ANSWER), chat(USER, ANSWER)))
    with pytest.raises(InvalidTrainingFileError) as info:
        tokenize_examples(examples, tokenizer, 16, param="validation_file")
    assert info.value.code == "invalid_training_file" and info.value.param == "validation_file"
    assert info.value.message.startswith("Line 2: ") and "max_seq_length=16" in info.value.message


def test_train_on_inputs_learns_every_token(tokenizer: PreTrainedTokenizerBase) -> None:
    examples = parse_jsonl(jsonl(chat(USER, ANSWER))) + parse_jsonl(jsonl({"prompt": "2 + 2 =", "completion": " 4"}))
    masked = tokenize_examples(examples, tokenizer, 512)
    every = tokenize_examples(examples, tokenizer, 512, train_on_inputs=True)
    for tokens, unmasked in zip(masked, every, strict=True):
        assert unmasked.input_ids == tokens.input_ids and unmasked.labels == tokens.input_ids
        assert unmasked.n_learned > tokens.n_learned
