"""One LoRA fine-tuning run with TRL's SFTTrainer; no Ray here, so a Ray actor or a test can drive it.

The examples are tokenized here with the base model's tokenizer and passed pre-tokenized (`input_ids` + `labels`,
-100 where nothing is learned) with `skip_prepare_dataset`, so the loss covers exactly the labelled tokens."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from typing import Any

import structlog
import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PrinterCallback,
    TrainerCallback,
    TrainerControl,
    TrainerState,
)
from transformers import TrainingArguments as Args
from trl import SFTConfig, SFTTrainer

from jobs.data import TokenizedExample, tokenize_examples
from jobs.errors import TrainingCancelled, TrainingPaused
from jobs.results import StepMetrics
from jobs.training_spec import Reporter, TrainingResult, TrainingSpec
from jobs.training_state import SavedCheckpoint

log = structlog.get_logger("jobs.trainer")


def save_adapter(model: PeftModel, path: str, base_model_id: str) -> None:
    """Write the adapter into a temporary directory beside `path`, then rename it into place."""
    model.peft_config["default"].base_model_name_or_path = base_model_id
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        model.save_pretrained(tmp, save_embedding_layers=False)
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class _Progress(TrainerCallback):
    """Reports metrics, saves a checkpoint and the training state at each epoch end, and stops the run when it is
    cancelled (saving nothing) or paused (saving the state at the step it stopped).

    Every `metrics_every` steps, the last step of each epoch and the final step are metrics points; with validation
    data the trainer evaluates at the same points, and a row is reported once its validation metrics are in."""

    def __init__(self, spec: TrainingSpec, reporter: Reporter, has_validation: bool) -> None:
        self.spec = spec
        self.reporter = reporter
        self.has_validation = has_validation
        resumed = spec.resume_from
        self.rows: list[StepMetrics] = list(resumed.rows) if resumed else []
        self.checkpoints: list[SavedCheckpoint] = list(resumed.checkpoints) if resumed else []
        self.epoch = resumed.epochs_done if resumed else 0
        self.saved_step = resumed.step if resumed else 0
        self.cancelled = False
        self.paused = False
        self.checkpoint_due = False

    def on_train_begin(self, args: Args, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if state.global_step:
            self.reporter.message("info", f"Training resumed from step {state.global_step} of {state.max_steps}")
        else:
            workers = f" on {args.world_size} data-parallel workers" if args.world_size > 1 else ""
            self.reporter.message(
                "info", f"Training started: {state.max_steps} steps over {args.num_train_epochs:g} epochs{workers}"
            )

    def on_step_end(self, args: Args, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        steps_per_epoch = max(1, state.max_steps // math.ceil(args.num_train_epochs))
        if state.global_step % steps_per_epoch == 0 or state.global_step >= state.max_steps:
            control.should_log = True
            control.should_evaluate = control.should_evaluate or self.has_validation
        cancel, pause = stop_requests(self.reporter)
        if cancel:
            self.cancelled = True
            control.should_training_stop = True
        elif pause and state.global_step < state.max_steps:
            self.paused = True
            control.should_save = True
            control.should_training_stop = True

    def on_log(
        self, args: Args, state: TrainerState, control: TrainerControl, logs: dict[str, float], **kwargs: Any
    ) -> None:
        if "loss" in logs:
            row = StepMetrics(
                step=state.global_step, train_loss=logs["loss"], train_accuracy=logs.get("mean_token_accuracy")
            )
            self.rows.append(row)
            if not control.should_evaluate:
                self.reporter.metrics(row, state.max_steps)
        elif "eval_loss" in logs and self.rows and self.rows[-1].step == state.global_step:
            row = self.rows[-1]
            row.valid_loss = logs["eval_loss"]
            row.valid_mean_token_accuracy = logs.get("eval_mean_token_accuracy")
            self.reporter.metrics(row, state.max_steps)

    def on_epoch_end(self, args: Args, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        # A pause mid-epoch also ends the epoch loop; only a whole epoch makes a checkpoint.
        if self.cancelled or state.epoch is None or abs(state.epoch - round(state.epoch)) > 1e-6:
            return
        self.epoch += 1
        self.checkpoint_due = True
        control.should_save = True

    def on_save(self, args: Args, state: TrainerState, control: TrainerControl, model: PeftModel, **kwargs: Any) -> None:
        if self.cancelled or not state.is_world_process_zero:  # of a data-parallel run, rank 0 keeps what is saved
            return
        step = state.global_step
        if self.checkpoint_due:
            self.checkpoint_due = False
            path = os.path.join(self.spec.output_dir, "checkpoints", f"step-{step}")
            save_adapter(model, path, self.spec.base_model_id)
            row = self.rows[-1] if self.rows else None
            digest = self.reporter.checkpoint(step, self.epoch, path, row)
            self.checkpoints.append(SavedCheckpoint(step=step, epoch=self.epoch, path=path, digest=digest, metrics=row))
        if step != self.saved_step:  # a pause at an epoch's last step is saved once
            self.saved_step = step
            state_dir = os.path.join(args.output_dir, f"checkpoint-{step}")
            self.reporter.save_state(step, self.epoch, state_dir, self.rows, self.checkpoints)


def stop_requests(reporter: Reporter) -> tuple[bool, bool]:
    """Whether to cancel, and whether to pause. On a data-parallel run rank 0's reporter decides for every rank, so
    all stop at the same step: a rank that stopped alone would leave the others waiting in their next all-reduce."""
    requests = (reporter.should_cancel(), reporter.should_pause())
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return requests
    device = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
    shared = torch.tensor([int(flag) for flag in requests], device=device)
    torch.distributed.broadcast(shared, src=0)
    cancel, pause = (bool(flag) for flag in shared.tolist())
    return cancel, pause


def _dataset(examples: list[TokenizedExample]) -> Dataset:
    return Dataset.from_dict({"input_ids": [e.input_ids for e in examples], "labels": [e.labels for e in examples]})


def _config(spec: TrainingSpec, has_validation: bool, has_cuda: bool) -> SFTConfig:
    hp = spec.hyperparameters
    return SFTConfig(
        output_dir=spec.output_dir,
        use_cpu=not has_cuda,
        bf16=False,
        fp16=hp.fp16 and has_cuda,
        report_to="none",
        save_strategy="no",  # the progress callback asks for saves: at epoch ends and on a pause
        save_total_limit=1,  # each state is kept by the reporter; only the newest stays on this disk
        logging_strategy="steps",
        logging_steps=spec.metrics_every,
        eval_strategy="steps" if has_validation else "no",
        eval_steps=spec.metrics_every,
        per_device_eval_batch_size=hp.per_device_batch_size,
        num_train_epochs=hp.n_epochs,
        per_device_train_batch_size=hp.per_device_batch_size,
        gradient_accumulation_steps=hp.gradient_accumulation_steps,
        learning_rate=hp.learning_rate,
        seed=spec.seed,
        gradient_checkpointing=hp.gradient_checkpointing,
        dataloader_num_workers=0,
        dataloader_pin_memory=has_cuda,
        max_length=hp.max_seq_length,
        dataset_kwargs={"skip_prepare_dataset": True},  # already tokenized, masked and truncated
        disable_tqdm=True,
    )


def run_training(spec: TrainingSpec, reporter: Reporter, resume_dir: str | None = None) -> TrainingResult:
    """Train a LoRA adapter, from the start or, with `resume_dir` (the downloaded `spec.resume_from`), from a saved
    state. Raises TrainingCancelled (and writes no final adapter) if cancelled, TrainingPaused once the state at the
    step it stopped is saved."""
    started = time.monotonic()
    if spec.threads:
        torch.set_num_threads(spec.threads)
    hp = spec.hyperparameters
    has_cuda = torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(spec.base_model_path)
    train = tokenize_examples(spec.train_examples, tokenizer, hp.max_seq_length)
    valid = tokenize_examples(spec.validation_examples, tokenizer, hp.max_seq_length, param="validation_file")
    dropped = len(spec.train_examples) - len(train)
    if dropped:
        reporter.message("warning", f"{dropped} training examples have no token to learn within max_seq_length")
    cancel, pause = stop_requests(reporter)
    if cancel:
        raise TrainingCancelled("Training was cancelled before it started")
    if pause:
        raise TrainingPaused("Training was paused before it started")

    model = AutoModelForCausalLM.from_pretrained(spec.base_model_path, dtype=torch.float32)
    lora = LoraConfig(
        r=hp.lora_r,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    progress = _Progress(spec, reporter, has_validation=bool(valid))
    trainer = SFTTrainer(
        model=model,
        args=_config(spec, bool(valid), has_cuda),
        train_dataset=_dataset(train),
        eval_dataset=_dataset(valid) if valid else None,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[progress],
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout; the reporter gets them instead
    log.info("training_started", examples=len(train), validation=len(valid), **hp.to_dict())
    loop_started = time.monotonic()
    first_step = spec.resume_from.step if spec.resume_from else 0
    trainer.train(resume_from_checkpoint=resume_dir)
    loop_s = time.monotonic() - loop_started
    if progress.cancelled:
        log.info("training_cancelled", step=trainer.state.global_step)
        raise TrainingCancelled(f"Training was cancelled at step {trainer.state.global_step}")
    if progress.paused:
        log.info("training_paused", step=trainer.state.global_step)
        raise TrainingPaused(f"Training was paused at step {trainer.state.global_step}")

    adapter_path = os.path.join(spec.output_dir, "adapter")
    save_adapter(trainer.model, adapter_path, spec.base_model_id)
    trained_tokens = sum(len(e.input_ids) for e in train) * hp.n_epochs
    steps = trainer.state.global_step
    tokens_this_run = trained_tokens * (steps - first_step) / max(1, steps)
    result = TrainingResult(
        adapter_path=adapter_path,
        trained_tokens=trained_tokens,
        steps=steps,
        final_loss=progress.rows[-1].train_loss if progress.rows else None,
        tokens_per_second=tokens_this_run / loop_s if loop_s > 0 else 0.0,
        elapsed_s=time.monotonic() - started,
        step_metrics=progress.rows,
    )
    log.info("training_finished", steps=result.steps, final_loss=result.final_loss, elapsed_s=result.elapsed_s)
    return result
