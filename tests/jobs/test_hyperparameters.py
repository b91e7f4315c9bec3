from __future__ import annotations

from typing import Any

import pytest

from jobs.errors import InvalidHyperparameterError
from jobs.hyperparameters import ResolvedHyperparameters, resolve_hyperparameters, validate_hyperparameters


def resolve(raw: dict[str, Any], n_examples: int = 40, **kwargs: Any) -> ResolvedHyperparameters:
    resolved, _ = resolve_hyperparameters(raw, n_examples=n_examples, **kwargs)
    return resolved


def error(raw: Any, **kwargs: Any) -> InvalidHyperparameterError:
    with pytest.raises(InvalidHyperparameterError) as info:
        resolve_hyperparameters(raw, n_examples=40, **kwargs)
    return info.value


def test_defaults() -> None:
    resolved, warnings = resolve_hyperparameters({}, n_examples=40)
    assert warnings == []
    assert resolved.to_dict() == {
        "n_epochs": 3,
        "batch_size": 1,
        "learning_rate_multiplier": 1.0,
        "learning_rate": 2e-4,
        "per_device_batch_size": 1,
        "gradient_accumulation_steps": 1,
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "max_seq_length": 512,
        "fp16": False,
        "gradient_checkpointing": False,
        "n_workers": 1,
        "warmup_ratio": 0.0,
        "lr_scheduler": "linear",
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "lora_target_modules": "all-linear",
        "train_on_inputs": False,
        "bf16": False,
        "beta": 0.1,
        "n_checkpoints": 3,
    }
    assert resolved.openai_view() == {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.0}
    shown = resolved.method_view()
    assert shown["n_epochs"] == 3 and shown["lora_r"] == 16 and shown["lora_alpha"] == 32 and shown["learning_rate"] == 2e-4
    assert "per_device_batch_size" not in shown and "beta" not in shown and resolved.method_view("dpo")["beta"] == 0.1
    assert resolve({"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}) == resolved


@pytest.mark.parametrize(
    ("n_examples", "epochs"),
    [(1, 25), (3, 25), (10, 10), (33, 4), (34, 3), (40, 3), (8333, 3), (8334, 2), (20_000, 1), (100_000, 1)],
)
def test_auto_epochs(n_examples: int, epochs: int) -> None:
    assert resolve({}, n_examples).n_epochs == epochs


@pytest.mark.parametrize(("n_examples", "batch"), [(10, 1), (749, 1), (750, 2), (2250, 5), (10_000, 20), (500_000, 256)])
def test_auto_batch_size(n_examples: int, batch: int) -> None:
    assert resolve({"n_epochs": 1}, n_examples).batch_size == batch


@pytest.mark.parametrize(
    ("raw", "max_device_batch", "per_device", "accumulation"),
    [
        ({"batch_size": 4}, 8, 4, 1),
        ({"batch_size": 8}, 8, 8, 1),
        ({"batch_size": 16}, 8, 8, 2),
        ({"batch_size": 10}, 8, 5, 2),
        ({"batch_size": 256}, 8, 8, 32),
        ({"batch_size": 3}, 1, 1, 3),
        ({"batch_size": 20, "gradient_accumulation_steps": 4}, 8, 5, 4),
        ({"batch_size": 10, "gradient_accumulation_steps": 3}, 8, 4, 3),
        ({"batch_size": 32, "gradient_accumulation_steps": 1}, 8, 32, 1),
    ],
)
def test_device_batch_and_accumulation(raw: dict, max_device_batch: int, per_device: int, accumulation: int) -> None:
    resolved = resolve(raw, max_device_batch=max_device_batch)
    assert (resolved.per_device_batch_size, resolved.gradient_accumulation_steps) == (per_device, accumulation)
    assert resolved.batch_size == raw["batch_size"]


def test_learning_rate() -> None:
    assert resolve({"learning_rate_multiplier": 2}).learning_rate == pytest.approx(4e-4)
    absolute, warnings = resolve_hyperparameters({"learning_rate": 1e-3}, n_examples=40)
    assert absolute.learning_rate == 1e-3 and absolute.learning_rate_multiplier == pytest.approx(5.0)
    assert warnings == []
    both, warnings = resolve_hyperparameters({"learning_rate": 1e-3, "learning_rate_multiplier": 3}, n_examples=40)
    assert both.learning_rate == 1e-3 and warnings == ["learning_rate overrides learning_rate_multiplier"]


def test_num_epochs_alias() -> None:
    assert resolve({"num_epochs": 7}).n_epochs == 7
    assert resolve({"num_epochs": 7, "n_epochs": 7}).n_epochs == 7
    e = error({"num_epochs": 7, "n_epochs": 5})
    assert e.param == "num_epochs" and "alias" in e.message


def test_extensions() -> None:
    resolved = resolve(
        {
            "lora_r": 8,
            "lora_alpha": 16.5,
            "lora_dropout": 0,
            "max_seq_length": 128,
            "gradient_checkpointing": True,
            "n_epochs": 2.0,
        }
    )
    assert (resolved.lora_r, resolved.lora_alpha, resolved.lora_dropout) == (8, 16.5, 0)
    assert (resolved.max_seq_length, resolved.gradient_checkpointing, resolved.n_epochs) == (128, True, 2)


def test_schedule_regularization_and_target_modules() -> None:
    resolved = resolve(
        {
            "warmup_ratio": 0.1,
            "lr_scheduler": "cosine",
            "weight_decay": 0.01,
            "max_grad_norm": 0.5,
            "lora_target_modules": ["q_proj", "v_proj"],
            "train_on_inputs": True,
        }
    )
    assert (resolved.warmup_ratio, resolved.lr_scheduler, resolved.weight_decay, resolved.max_grad_norm) == (
        0.1,
        "cosine",
        0.01,
        0.5,
    )
    assert resolved.lora_target_modules == ["q_proj", "v_proj"] and resolved.train_on_inputs is True


@pytest.mark.parametrize("name", ["fp16", "bf16"])
def test_half_precision_needs_cuda(name: str) -> None:
    on_cpu, warnings = resolve_hyperparameters({name: True}, n_examples=40)
    assert not getattr(on_cpu, name) and warnings == [f"{name} is not available on CPU; training in float32"]
    on_gpu, warnings = resolve_hyperparameters({name: True}, n_examples=40, has_cuda=True)
    assert getattr(on_gpu, name) and warnings == []


def test_fp16_and_bf16_exclude_each_other() -> None:
    assert error({"fp16": True, "bf16": True}).param == "bf16"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n_epochs", 0),
        ("n_epochs", 51),
        ("n_epochs", 2.5),
        ("n_epochs", "abc"),
        ("n_epochs", True),
        ("n_epochs", None),
        ("num_epochs", 0),
        ("batch_size", 0),
        ("batch_size", 257),
        ("batch_size", "8"),
        ("learning_rate_multiplier", 0),
        ("learning_rate_multiplier", -1),
        ("learning_rate_multiplier", 10.5),
        ("learning_rate_multiplier", "x"),
        ("learning_rate_multiplier", float("nan")),
        ("learning_rate", 0),
        ("learning_rate", 1.5),
        ("learning_rate", "auto"),
        ("learning_rate", float("inf")),
        ("lora_r", 0),
        ("lora_r", 257),
        ("lora_r", 8.5),
        ("lora_alpha", 0),
        ("lora_alpha", "32"),
        ("lora_dropout", 1),
        ("lora_dropout", -0.1),
        ("max_seq_length", 15),
        ("max_seq_length", 32769),
        ("gradient_accumulation_steps", 0),
        ("gradient_accumulation_steps", 257),
        ("fp16", "true"),
        ("fp16", 1),
        ("gradient_checkpointing", None),
        ("n_workers", 0),
        ("n_workers", 65),
        ("warmup_ratio", 1),
        ("warmup_ratio", -0.1),
        ("lr_scheduler", "exponential"),
        ("weight_decay", 2),
        ("max_grad_norm", 0),
        ("lora_target_modules", []),
        ("lora_target_modules", "q_proj"),
        ("lora_target_modules", ["q_proj", "v proj"]),
        ("train_on_inputs", "yes"),
        ("bf16", 1),
        ("n_checkpoints", 0),
        ("n_checkpoints", 101),
    ],
)
def test_out_of_range_or_wrong_type(name: str, value: Any) -> None:
    e = error({name: value})
    assert e.param == name and e.message.startswith(f"Invalid hyperparameter '{name}': must be ")
    with pytest.raises(InvalidHyperparameterError):
        validate_hyperparameters({name: value})


def test_several_workers_share_each_batch() -> None:
    two = resolve({"n_workers": 2, "batch_size": 16})
    assert (two.n_workers, two.batch_size, two.per_device_batch_size, two.gradient_accumulation_steps) == (2, 16, 8, 1)
    one = resolve({"batch_size": 16})
    assert (one.n_workers, one.per_device_batch_size, one.gradient_accumulation_steps) == (1, 8, 2)
    assert resolve({"n_workers": 3}, n_examples=40).batch_size == 3  # auto: the smallest multiple of the workers
    uneven = error({"n_workers": 2, "batch_size": 5})
    assert uneven.param == "n_workers" and "must divide batch_size (5)" in uneven.message


def test_n_epochs_message() -> None:
    assert error({"n_epochs": 0}).message == (
        "Invalid hyperparameter 'n_epochs': must be an integer between 1 and 50 or 'auto'"
    )


def test_lora_rank_limited_by_the_serving_engine() -> None:
    e = error({"lora_r": 128})
    assert e.param == "lora_r" and "at most 64" in e.message and "MAX_LORA_RANK" in e.message
    assert resolve({"lora_r": 128}, max_lora_rank=128).lora_r == 128
    with pytest.raises(InvalidHyperparameterError, match="at most 8"):
        validate_hyperparameters({"lora_r": 16}, max_lora_rank=8)


def test_unknown_key_and_not_an_object() -> None:
    e = error({"n_epochs": 2, "warmup": 0.1})
    assert e.param == "warmup" and "unknown hyperparameter" in e.message
    assert error(["n_epochs"]).param == "hyperparameters"


def test_validate_accepts_good_values() -> None:
    validate_hyperparameters({"n_epochs": "auto", "batch_size": 4, "lora_r": 64, "fp16": True})


def test_needs_examples() -> None:
    with pytest.raises(ValueError):
        resolve_hyperparameters({}, n_examples=0)
