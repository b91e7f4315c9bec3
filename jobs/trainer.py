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
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
)
from transformers import TrainingArguments as Args
from trl import DPOTrainer, SFTConfig, SFTTrainer

from jobs.data import TokenizedExample, tokenize_examples
from jobs.dpo import dpo_config, preference_dataset, preference_tokens
from jobs.errors import TrainingCancelled, TrainingPaused
from jobs.results import StepMetrics
from jobs.training_spec import Reporter, TrainingResult, TrainingSpec
from jobs.training_state import SavedCheckpoint
from jobs.validation import Scores, Validation

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
    """Reports metrics, saves the training state at each epoch end and `n_checkpoints` checkpoints over the run (by
    default one per epoch end), and stops the run when it is cancelled (saving nothing) or paused (saving the state
    at the step it stopped).

    Every `metrics_every` steps, the last step of each epoch and the final step are metrics points; with validation
    data each point has the sampled validation metrics, and each epoch's last step the whole set's."""

    def __init__(self, spec: TrainingSpec, reporter: Reporter, validation: Validation | None) -> None:
        self.spec = spec
        self.reporter = reporter
        self.validation = validation
        self.scores: tuple[int, Scores, Scores | None] | None = None
        """The validation of the step about to be logged: its step, the sampled batch's and the whole set's scores."""
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
        epoch_end = state.global_step % steps_per_epoch == 0 or state.global_step >= state.max_steps
        if epoch_end:
            control.should_log = True
        cancel, pause = stop_requests(self.reporter)
        if cancel:
            self.cancelled = True
            control.should_training_stop = True
            return
        if pause and state.global_step < state.max_steps:
            self.paused = True
            control.should_save = True
            control.should_training_stop = True
        if state.global_step in self._checkpoint_steps(state.max_steps, math.ceil(args.num_train_epochs)):
            self.checkpoint_due = True
            control.should_save = control.should_save or not epoch_end  # an epoch's end saves once its count is in
        if self.validation is not None and control.should_log and state.is_world_process_zero:
            model = kwargs["model"]
            full = self.validation.full(model) if epoch_end else None
            self.scores = (state.global_step, self.validation.sampled(model, state.global_step), full)

    def on_log(
        self, args: Args, state: TrainerState, control: TrainerControl, logs: dict[str, float], **kwargs: Any
    ) -> None:
        if "loss" not in logs:
            return
        row = StepMetrics(step=state.global_step, train_loss=logs["loss"], train_accuracy=logs.get("mean_token_accuracy"))
        if self.scores is not None and self.scores[0] == state.global_step:
            _, sampled, full = self.scores
            row.valid_loss, row.valid_mean_token_accuracy = sampled.loss, sampled.mean_token_accuracy
            if full is not None:
                row.full_valid_loss, row.full_valid_mean_token_accuracy = full.loss, full.mean_token_accuracy
        self.rows.append(row)
        self.reporter.metrics(row, state.max_steps)

    def on_epoch_end(self, args: Args, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        # A pause mid-epoch also ends the epoch loop; only a whole epoch makes a checkpoint.
        if self.cancelled or state.epoch is None or abs(state.epoch - round(state.epoch)) > 1e-6:
            return
        self.epoch += 1
        control.should_save = True  # the training state, and the checkpoint where one is due

    def _checkpoint_steps(self, max_steps: int, epochs: int) -> set[int]:
        """`n_checkpoints` steps spread evenly over the run, the last one last; one per epoch end by default."""
        count = self.spec.hyperparameters.n_checkpoints or epochs
        return {math.ceil(index * max_steps / count) for index in range(1, count + 1)}

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


def _common_args(spec: TrainingSpec, has_cuda: bool) -> dict[str, Any]:
    """The TrainingArguments every method's run shares."""
    hp = spec.hyperparameters
    return {
        "output_dir": spec.output_dir,
        "use_cpu": not has_cuda,
        "bf16": hp.bf16 and has_cuda,
        "fp16": hp.fp16 and has_cuda,
        "report_to": "none",
        "save_strategy": "no",  # the progress callback asks for saves: at epoch ends and on a pause
        "save_total_limit": 1,  # each state is kept by the reporter; only the newest stays on this disk
        "logging_strategy": "steps",
        "logging_steps": spec.metrics_every,
        "eval_strategy": "no",  # the progress callback validates (jobs.validation)
        "num_train_epochs": hp.n_epochs,
        "per_device_train_batch_size": hp.per_device_batch_size,
        "gradient_accumulation_steps": hp.gradient_accumulation_steps,
        "learning_rate": hp.learning_rate,
        "lr_scheduler_type": hp.lr_scheduler,
        "warmup_steps": hp.warmup_ratio,  # a float below 1 is a ratio of the total steps
        "weight_decay": hp.weight_decay,
        "max_grad_norm": hp.max_grad_norm,
        "seed": spec.seed,
        "gradient_checkpointing": hp.gradient_checkpointing,
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": has_cuda,
        "disable_tqdm": True,
    }


def _trainer(
    spec: TrainingSpec, tokenizer: Any, model: Any, lora: LoraConfig | None, progress: _Progress, has_cuda: bool
) -> tuple[Trainer, int]:
    """The method's trainer, and the tokens one epoch reads."""
    hp = spec.hyperparameters
    common = _common_args(spec, has_cuda)
    if spec.method == "dpo":
        trainer: Trainer = DPOTrainer(
            model=model,
            args=dpo_config(common, beta=hp.beta, max_length=hp.max_seq_length),
            train_dataset=preference_dataset(spec.train_examples),
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[progress],
        )
        return trainer, preference_tokens(spec.train_examples, tokenizer, hp.max_seq_length)
    train = tokenize_examples(spec.train_examples, tokenizer, hp.max_seq_length, train_on_inputs=hp.train_on_inputs)
    dropped = len(spec.train_examples) - len(train)
    if dropped:
        progress.reporter.message("warning", f"{dropped} training examples have no token to learn within max_seq_length")
    config = SFTConfig(
        **common,
        max_length=hp.max_seq_length,
        dataset_kwargs={"skip_prepare_dataset": True},  # already tokenized, masked and truncated
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=_dataset(train),
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[progress],
    )
    return trainer, sum(len(example.input_ids) for example in train)


def run_training(
    spec: TrainingSpec, reporter: Reporter, resume_dir: str | None = None, *, init_adapter_dir: str | None = None
) -> TrainingResult:
    """Train a LoRA adapter, from the start or, with `resume_dir` (the downloaded `spec.resume_from`), from a saved
    state; with `init_adapter_dir` (the downloaded `spec.init_adapter`), that adapter's weights and settings are the
    start instead of a new adapter. Raises TrainingCancelled (and writes no final adapter) if cancelled,
    TrainingPaused once the state at the step it stopped is saved."""
    started = time.monotonic()
    if spec.threads:
        torch.set_num_threads(spec.threads)
    hp = spec.hyperparameters
    has_cuda = torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(spec.base_model_path)
    valid = tokenize_examples(
        spec.validation_examples,
        tokenizer,
        hp.max_seq_length,
        param="validation_file",
        train_on_inputs=hp.train_on_inputs,
    )
    cancel, pause = stop_requests(reporter)
    if cancel:
        raise TrainingCancelled("Training was cancelled before it started")
    if pause:
        raise TrainingPaused("Training was paused before it started")

    model = AutoModelForCausalLM.from_pretrained(spec.base_model_path, dtype=torch.float32)
    lora = None
    if init_adapter_dir is not None:
        model = PeftModel.from_pretrained(model, init_adapter_dir, is_trainable=True)
    else:
        lora = LoraConfig(
            r=hp.lora_r,
            lora_alpha=hp.lora_alpha,
            lora_dropout=hp.lora_dropout,
            target_modules=hp.lora_target_modules,
            task_type="CAUSAL_LM",
        )
    validation = None
    if valid:
        validation = Validation(
            valid,
            batch_size=hp.batch_size,
            device_batch=hp.per_device_batch_size,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            seed=spec.seed,
        )
    progress = _Progress(spec, reporter, validation)
    trainer, epoch_tokens = _trainer(spec, tokenizer, model, lora, progress, has_cuda)
    trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout; the reporter gets them instead
    log.info(
        "training_started", method=spec.method, examples=len(spec.train_examples), validation=len(valid), **hp.to_dict()
    )
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
    trained_tokens = epoch_tokens * hp.n_epochs
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
