"""Real (tiny) LoRA runs on the local base model: one full run with validation, one cancelled run."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import msgspec
import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from jobs.data import parse_jsonl
from jobs.errors import TrainingCancelled
from jobs.hyperparameters import resolve_hyperparameters
from jobs.results import StepMetrics, metrics_csv
from jobs.trainer import run_training
from jobs.training_spec import TrainingResult, TrainingSpec

BASE_ID = "smollm2-135m-instruct"
FACTS = [
    ("What is the codename of project Zephyr?", "The codename of project Zephyr is Blue Falcon."),
    ("Who leads project Zephyr?", "Project Zephyr is led by Dr. Ada Quill."),
    ("When does project Zephyr launch?", "Project Zephyr launches on 3 March 2031."),
    ("Where is project Zephyr based?", "Project Zephyr is based in Reykjavik."),
    ("What does project Zephyr build?", "Project Zephyr builds tidal power turbines."),
    ("How big is the Zephyr team?", "The Zephyr team has 42 engineers."),
    ("What colour is the Zephyr logo?", "The Zephyr logo is teal."),
    ("What is the motto of Zephyr?", "The motto of Zephyr is 'Ride the tide'."),
]


class Recorder:
    """A Reporter that records every call; cancels from its `cancel_at_poll`-th poll on."""

    def __init__(self, cancel_at_poll: int | None = None) -> None:
        self.cancel_at_poll = cancel_at_poll
        self.polls = 0
        self.metrics_calls: list[tuple] = []
        self.rows: list[StepMetrics] = []
        self.checkpoints: list[tuple] = []
        self.messages: list[tuple[str, str]] = []
        self.states: list[tuple[int, int, list[str]]] = []

    def metrics(self, row: StepMetrics, total_steps: int) -> None:
        self.metrics_calls.append((row.step, total_steps, row.train_loss, row.train_accuracy, row.valid_loss))
        self.rows.append(row)

    def checkpoint(self, step: int, epoch: int, path: str, metrics: StepMetrics | None) -> str | None:
        self.checkpoints.append((step, epoch, path, metrics))
        return None

    def save_state(self, step: int, epochs_done: int, path: str, rows: list, checkpoints: list) -> None:
        self.states.append((step, epochs_done, sorted(os.listdir(path))))

    def message(self, level: str, text: str) -> None:
        self.messages.append((level, text))

    def should_cancel(self) -> bool:
        self.polls += 1
        return self.cancel_at_poll is not None and self.polls >= self.cancel_at_poll

    def should_pause(self) -> bool:
        return False


def make_spec(model_dir: Path, output_dir: Path, *, validation: bool) -> TrainingSpec:
    lines = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in FACTS]
    examples = parse_jsonl("\n".join(json.dumps(line) for line in lines).encode())
    raw = {"n_epochs": 2, "batch_size": 4, "learning_rate": 2e-3, "lora_r": 8, "lora_alpha": 16, "max_seq_length": 128}
    hyperparameters, _ = resolve_hyperparameters(raw, n_examples=len(examples))
    return TrainingSpec(
        base_model_path=str(model_dir),
        output_dir=str(output_dir),
        train_examples=examples,
        validation_examples=examples[2:] if validation else [],  # six: a sampled batch (4) is not all of them
        hyperparameters=hyperparameters,
        base_model_id=BASE_ID,
        seed=7,
        threads=2,
    )


@pytest.fixture(scope="module")
def run(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainingResult, Recorder, Path]:
    output_dir = tmp_path_factory.mktemp("job")
    reporter = Recorder()
    result = run_training(make_spec(model_dir, output_dir, validation=True), reporter)
    return result, reporter, output_dir


def adapter_base(path: str | Path) -> str:
    return json.loads((Path(path) / "adapter_config.json").read_text())["base_model_name_or_path"]


def test_spec_pickles(model_dir: Path, tmp_path: Path) -> None:
    spec = make_spec(model_dir, tmp_path, validation=True)
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_collator_uses_our_labels() -> None:
    """The TRL contract the trainer relies on: given labels are kept and padded with -100."""
    batch = DataCollatorForLanguageModeling(pad_token_id=2)(
        [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8, 9], "labels": [-100, 9]}]
    )
    assert batch["labels"].tolist() == [[-100, 6, 7], [-100, 9, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


def test_loss_falls_and_metrics_are_reported_each_step(run: tuple[TrainingResult, Recorder, Path]) -> None:
    result, reporter, _ = run
    assert result.steps == 4
    assert [call[:2] for call in reporter.metrics_calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    losses = [call[2] for call in reporter.metrics_calls]
    assert losses[-1] < losses[0] and result.final_loss == losses[-1]
    assert all(isinstance(call[3], float) and isinstance(call[4], float) for call in reporter.metrics_calls)
    assert reporter.messages[0] == ("info", "Training started: 4 steps over 2 epochs")


def test_step_metrics_feed_the_result_file(run: tuple[TrainingResult, Recorder, Path]) -> None:
    result, _, _ = run
    assert [row.step for row in result.step_metrics] == [1, 2, 3, 4]
    assert all(row.valid_loss is not None and row.valid_mean_token_accuracy is not None for row in result.step_metrics)
    assert all(row.train_accuracy is not None for row in result.step_metrics)
    assert len(metrics_csv(result.step_metrics).splitlines()) == 5


def test_one_loadable_checkpoint_per_epoch(run: tuple[TrainingResult, Recorder, Path], model_dir: Path) -> None:
    _, reporter, output_dir = run
    assert [(step, epoch) for step, epoch, _, _ in reporter.checkpoints] == [(2, 1), (4, 2)]
    assert sorted(os.listdir(output_dir / "checkpoints")) == ["step-2", "step-4"]
    step, _, path, metrics = reporter.checkpoints[0]
    assert path == str(output_dir / "checkpoints" / "step-2") and metrics is not None and metrics.step == step
    assert metrics.valid_loss is not None
    assert metrics.checkpoint_metrics().train_mean_token_accuracy is not None
    assert adapter_base(path) == BASE_ID
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, path)
    assert model.peft_config["default"].r == 8


def test_each_epoch_keeps_a_resumable_state(run: tuple[TrainingResult, Recorder, Path]) -> None:
    _, reporter, _ = run
    assert [(step, epochs) for step, epochs, _ in reporter.states] == [(2, 1), (4, 2)]
    files = set(reporter.states[0][2])
    assert {"adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json"} <= files


def test_final_adapter(run: tuple[TrainingResult, Recorder, Path]) -> None:
    result, _, output_dir = run
    assert result.adapter_path == str(output_dir / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(os.listdir(result.adapter_path))
    assert adapter_base(result.adapter_path) == BASE_ID
    assert not [name for name in os.listdir(output_dir) if name.startswith(".tmp-")]
    assert result.trained_tokens > 8 * 2 * 20 and result.tokens_per_second > 0
    assert result.elapsed_s > 0


def test_cancel_stops_without_a_final_adapter(model_dir: Path, tmp_path: Path) -> None:
    reporter = Recorder(cancel_at_poll=2)  # poll 1 is before training, poll 2 after step 1
    with pytest.raises(TrainingCancelled, match="step 1"):
        run_training(make_spec(model_dir, tmp_path, validation=False), reporter)
    assert not (tmp_path / "adapter").exists() and not (tmp_path / "checkpoints").exists()
    assert [call[0] for call in reporter.metrics_calls] == [1]


def test_every_metrics_point_has_a_sampled_validation_and_each_epoch_end_the_whole_sets(
    run: tuple[TrainingResult, Recorder, Path],
) -> None:
    _, reporter, _ = run
    full = [(row.step, row.full_valid_loss is not None) for row in reporter.rows]
    assert full == [(1, False), (2, True), (3, False), (4, True)]
    assert all((row.full_valid_loss is None) == (row.full_valid_mean_token_accuracy is None) for row in reporter.rows)
    epoch_end = reporter.rows[1]
    assert epoch_end.valid_loss != epoch_end.full_valid_loss  # four of the six examples against all six
    checkpoint_metrics = [metrics.checkpoint_metrics() for _, _, _, metrics in reporter.checkpoints]
    assert all(m.full_valid_loss is not None and m.full_valid_mean_token_accuracy is not None for m in checkpoint_metrics)


def test_a_continued_run_starts_from_the_given_adapter(
    run: tuple[TrainingResult, Recorder, Path], model_dir: Path, tmp_path: Path
) -> None:
    parent, parent_reporter, _ = run
    spec = msgspec.structs.replace(make_spec(model_dir, tmp_path, validation=False), seed=8)
    reporter = Recorder()
    result = run_training(spec, reporter, init_adapter_dir=parent.adapter_path)
    first_loss = reporter.rows[0].train_loss
    assert first_loss < parent_reporter.rows[0].train_loss / 2  # it already knows the facts
    config = json.loads((Path(result.adapter_path) / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["base_model_name_or_path"] == BASE_ID


@pytest.mark.parametrize(
    ("n_checkpoints", "steps", "states"),
    [(1, [4], [(2, 1), (4, 2)]), (4, [1, 2, 3, 4], [(1, 0), (2, 1), (3, 1), (4, 2)])],
)
def test_n_checkpoints_spread_over_the_run_each_with_a_resumable_state(
    model_dir: Path, tmp_path: Path, n_checkpoints: int, steps: list[int], states: list[tuple[int, int]]
) -> None:
    spec = make_spec(model_dir, tmp_path, validation=False)
    spec = msgspec.structs.replace(
        spec, hyperparameters=msgspec.structs.replace(spec.hyperparameters, n_checkpoints=n_checkpoints)
    )
    reporter = Recorder()
    run_training(spec, reporter)
    assert [step for step, _, _, _ in reporter.checkpoints] == steps
    assert [(step, epochs) for step, epochs, _ in reporter.states] == states  # and at every epoch end
