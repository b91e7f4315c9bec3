"""OpenAI's fine-tuning hyperparameters plus this platform's LoRA extensions, validated and resolved.

Resolution rules ("auto" or absent):
- n_epochs: 3, but at least 100 and at most 25,000 example passes in total, and 1 to 25 epochs.
- batch_size (examples per optimizer step): 0.2% of the examples, rounded half up, clamped to [1, 256].
- learning_rate: 2e-4 x learning_rate_multiplier (auto multiplier = 1), unless `learning_rate` is given.
- the schedule and regularization (extensions, as Together names them): warmup_ratio 0, lr_scheduler "linear",
  weight_decay 0, max_grad_norm 1; LoRA on "all-linear" modules unless `lora_target_modules` lists them;
  train_on_inputs false (only assistant turns and completions are learned); bf16 and fp16 only on a GPU;
  n_checkpoints = n_epochs (a checkpoint at each epoch's end), else that many spread evenly over the steps.
- n_workers (an extension): 1, or the number of data-parallel workers (Ray Train), each on its own share of
  every batch; batch_size must then be a multiple of it, so a run on several workers takes the same optimizer steps
  as one on a single worker.
- per-device batch and gradient accumulation, per worker: the fewest accumulation steps that keep the per-device
  batch within `max_device_batch`, then the smallest per-device batch that covers the worker's share of batch_size;
  an explicit `gradient_accumulation_steps` sets the per-device batch to ceil(share / steps)."""

from __future__ import annotations

import math
from typing import Any

import msgspec

from jobs.errors import InvalidHyperparameterError

BASE_LEARNING_RATE = 2e-4
AUTO = "auto"


class ResolvedHyperparameters(msgspec.Struct, frozen=True):
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    learning_rate: float
    per_device_batch_size: int
    gradient_accumulation_steps: int
    lora_r: int
    lora_alpha: float
    lora_dropout: float
    max_seq_length: int
    fp16: bool
    gradient_checkpointing: bool
    n_workers: int = 1
    warmup_ratio: float = 0.0
    lr_scheduler: str = "linear"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora_target_modules: str | list[str] = "all-linear"
    train_on_inputs: bool = False
    bf16: bool = False
    beta: float = 0.1
    """DPO's: how far the adapter may move from the base (higher keeps it closer)."""
    n_checkpoints: int = 0
    """Checkpoints spread evenly over the run; resolved to n_epochs (one per epoch end), as 0 also means."""

    def openai_view(self) -> dict[str, Any]:
        """The resolved values as OpenAI's job object shows them."""
        return {
            "n_epochs": self.n_epochs,
            "batch_size": self.batch_size,
            "learning_rate_multiplier": self.learning_rate_multiplier,
        }

    def method_view(self, method: str = "supervised") -> dict[str, Any]:
        """Every resolved value, as the job's `method` shows it: OpenAI's and this platform's extensions."""
        hidden = _INTERNAL if method == "dpo" else (*_INTERNAL, "beta")
        return {**self.openai_view(), **{k: v for k, v in self.to_dict().items() if k not in hidden}}

    def to_dict(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self)


_INTERNAL = ("per_device_batch_size",)
"""Resolved values that follow from the others and the machine, not from the request."""
PARENT_LORA_SETTINGS = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")
"""What a job continuing a fine-tuned adapter takes from it rather than from its request."""
LR_SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")


def _error(name: str, rule: str) -> InvalidHyperparameterError:
    return InvalidHyperparameterError(f"Invalid hyperparameter '{name}': {rule}", param=name)


def _integer(name: str, value: Any, low: int, high: int, *, auto: bool = False) -> int | None:
    rule = f"must be an integer between {low} and {high}" + (" or 'auto'" if auto else "")
    if auto and value == AUTO:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if type(value) is not int or not low <= value <= high:
        raise _error(name, rule)
    return value


def _number(name: str, value: Any, rule: str, ok: Any, *, auto: bool = False) -> float | None:
    if auto and value == AUTO:
        return None
    if type(value) not in (int, float) or not math.isfinite(value) or not ok(value):
        raise _error(name, rule + (" or 'auto'" if auto else ""))
    return value


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _error(name, "must be true or false")
    return value


def _scheduler(name: str, value: Any) -> str:
    if value not in LR_SCHEDULERS:
        raise _error(name, f"must be one of {', '.join(LR_SCHEDULERS)}")
    return value


def _target_modules(name: str, value: Any) -> str | list[str]:
    if value == "all-linear":
        return value
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(module, str) and module.isidentifier() for module in value)
    ):
        raise _error(name, "must be 'all-linear' or a non-empty list of module names, e.g. ['q_proj', 'v_proj']")
    return value


class _Checked(msgspec.Struct):
    """Type- and range-checked values; None where absent or "auto"."""

    n_epochs: int | None = None
    batch_size: int | None = None
    learning_rate_multiplier: float | None = None
    learning_rate: float | None = None
    gradient_accumulation_steps: int | None = None
    lora_r: int = 16
    lora_alpha: float = 32
    lora_dropout: float = 0.05
    max_seq_length: int = 512
    fp16: bool = False
    gradient_checkpointing: bool = False
    n_workers: int = 1
    warmup_ratio: float = 0.0
    lr_scheduler: str = "linear"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora_target_modules: str | list[str] = "all-linear"
    train_on_inputs: bool = False
    bf16: bool = False
    beta: float | None = None
    n_checkpoints: int | None = None


_CHECKS: dict[str, Any] = {
    "n_epochs": lambda n, v: _integer(n, v, 1, 50, auto=True),
    "num_epochs": lambda n, v: _integer(n, v, 1, 50, auto=True),
    "batch_size": lambda n, v: _integer(n, v, 1, 256, auto=True),
    "learning_rate_multiplier": lambda n, v: _number(
        n, v, "must be a number > 0 and <= 10", lambda x: 0 < x <= 10, auto=True
    ),
    "learning_rate": lambda n, v: _number(n, v, "must be a number > 0 and <= 1", lambda x: 0 < x <= 1),
    "gradient_accumulation_steps": lambda n, v: _integer(n, v, 1, 256),
    "lora_r": lambda n, v: _integer(n, v, 1, 256),
    "lora_alpha": lambda n, v: _number(n, v, "must be a number > 0", lambda x: x > 0),
    "lora_dropout": lambda n, v: _number(n, v, "must be a number >= 0 and < 1", lambda x: 0 <= x < 1),
    "max_seq_length": lambda n, v: _integer(n, v, 16, 32768),
    "fp16": _boolean,
    "gradient_checkpointing": _boolean,
    "n_workers": lambda n, v: _integer(n, v, 1, 64),
    "warmup_ratio": lambda n, v: _number(n, v, "must be a number >= 0 and < 1", lambda x: 0 <= x < 1),
    "lr_scheduler": _scheduler,
    "weight_decay": lambda n, v: _number(n, v, "must be a number >= 0 and <= 1", lambda x: 0 <= x <= 1),
    "max_grad_norm": lambda n, v: _number(n, v, "must be a number > 0", lambda x: x > 0),
    "lora_target_modules": _target_modules,
    "train_on_inputs": _boolean,
    "bf16": _boolean,
    "n_checkpoints": lambda n, v: _integer(n, v, 1, 100),
    "beta": lambda n, v: _number(n, v, "must be a number > 0 and <= 2", lambda x: 0 < x <= 2, auto=True),
}


def _check(raw: Any, max_lora_rank: int) -> _Checked:
    return _Checked(**_checked_values(raw, max_lora_rank))


def _checked_values(raw: Any, max_lora_rank: int) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidHyperparameterError("Invalid hyperparameters: must be an object", param="hyperparameters")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in _CHECKS:
            raise _error(name, f"unknown hyperparameter; expected one of {', '.join(sorted(_CHECKS))}")
        values[name] = _CHECKS[name](name, value)
    if "num_epochs" in raw:
        alias = values.pop("num_epochs")
        if "n_epochs" in raw and values["n_epochs"] != alias:
            raise _error("num_epochs", "is an alias of 'n_epochs' and differs from it")
        values["n_epochs"] = alias
    if values.get("lora_r", 0) > max_lora_rank:
        raise _error("lora_r", f"must be at most {max_lora_rank}, the serving engine's MAX_LORA_RANK")
    return values


def validate_hyperparameters(raw: Any, max_lora_rank: int = 64) -> dict[str, Any]:
    """Check types and ranges before the training file is read (at job creation); raises on the first error.
    Returns the values given, normalized (a whole-number 2.0 is 2, `num_epochs` is `n_epochs`, "auto" stays)."""
    values = _checked_values(raw, max_lora_rank)
    return {name: AUTO if value is None else value for name, value in values.items()}


def auto_epochs(n_examples: int) -> int:
    if n_examples * 3 < 100:
        return min(25, math.ceil(100 / n_examples))
    if n_examples * 3 > 25_000:
        return max(1, 25_000 // n_examples)
    return 3


def auto_batch_size(n_examples: int) -> int:
    return max(1, min(256, (n_examples + 250) // 500))  # 0.2% of n_examples, rounded half up


def resolve_hyperparameters(
    raw: Any,
    *,
    n_examples: int,
    max_lora_rank: int = 64,
    max_device_batch: int = 8,
    has_cuda: bool = False,
) -> tuple[ResolvedHyperparameters, list[str]]:
    """Validate and fill in every value; returns the resolved set and warnings for the job's events."""
    if n_examples < 1:
        raise ValueError("n_examples must be at least 1")
    checked = _check(raw, max_lora_rank)
    warnings: list[str] = []
    workers = checked.n_workers
    batch_size = checked.batch_size or math.ceil(auto_batch_size(n_examples) / workers) * workers
    if batch_size % workers:
        raise _error("n_workers", f"must divide batch_size ({batch_size}): each worker takes an equal share of a batch")
    share = batch_size // workers
    if checked.gradient_accumulation_steps is not None:
        accumulation = checked.gradient_accumulation_steps
    else:
        accumulation = math.ceil(share / max_device_batch)
    per_device = math.ceil(share / accumulation)
    if checked.learning_rate is not None:
        learning_rate = float(checked.learning_rate)
        if checked.learning_rate_multiplier is not None:
            warnings.append("learning_rate overrides learning_rate_multiplier")
        multiplier = learning_rate / BASE_LEARNING_RATE
    else:
        multiplier = float(checked.learning_rate_multiplier or 1.0)
        learning_rate = BASE_LEARNING_RATE * multiplier
    if checked.fp16 and checked.bf16:
        raise _error("bf16", "cannot be true together with fp16")
    fp16, bf16 = checked.fp16 and has_cuda, checked.bf16 and has_cuda
    for name, wanted in (("fp16", checked.fp16), ("bf16", checked.bf16)):
        if wanted and not has_cuda:
            warnings.append(f"{name} is not available on CPU; training in float32")
    n_epochs = checked.n_epochs or auto_epochs(n_examples)
    resolved = ResolvedHyperparameters(
        n_epochs=n_epochs,
        batch_size=batch_size,
        learning_rate_multiplier=multiplier,
        learning_rate=learning_rate,
        per_device_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        lora_r=checked.lora_r,
        lora_alpha=checked.lora_alpha,
        lora_dropout=checked.lora_dropout,
        max_seq_length=checked.max_seq_length,
        fp16=fp16,
        gradient_checkpointing=checked.gradient_checkpointing,
        n_workers=workers,
        warmup_ratio=float(checked.warmup_ratio),
        lr_scheduler=checked.lr_scheduler,
        weight_decay=float(checked.weight_decay),
        max_grad_norm=float(checked.max_grad_norm),
        lora_target_modules=checked.lora_target_modules,
        train_on_inputs=checked.train_on_inputs,
        bf16=bf16,
        beta=float(checked.beta or 0.1),
        n_checkpoints=checked.n_checkpoints or n_epochs,
    )
    return resolved, warnings


def inherit_lora(resolved: ResolvedHyperparameters, parent_config: dict[str, Any]) -> ResolvedHyperparameters:
    """The resolved values of a job continuing an adapter whose adapter_config.json is `parent_config`: its LoRA
    settings are the parent's, which its weights were trained with."""
    modules = parent_config.get("target_modules") or resolved.lora_target_modules
    return msgspec.structs.replace(
        resolved,
        lora_r=int(parent_config.get("r", resolved.lora_r)),
        lora_alpha=parent_config.get("lora_alpha", resolved.lora_alpha),
        lora_dropout=parent_config.get("lora_dropout", resolved.lora_dropout),
        lora_target_modules=modules if isinstance(modules, str) else sorted(modules),
    )
