"""Stored objects of the files and fine-tuning APIs. Their fields are OpenAI's (openai-python's
`FileObject`, `FineTuningJob`, `FineTuningJobEvent`, `FineTuningJobCheckpoint`), so the gateway
sends them as they are."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

JobStatus = Literal["validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled"]
ACTIVE_STATUSES: tuple[JobStatus, ...] = ("validating_files", "queued", "running")
"""The statuses of a job the scheduler is working on: after a restart, these jobs are taken up again."""
UNFINISHED_STATUSES: tuple[JobStatus, ...] = (*ACTIVE_STATUSES, "paused")
"""The statuses a job may still be cancelled, failed or published from."""


class FileObject(msgspec.Struct, kw_only=True):
    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    object: Literal["file"] = "file"
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None


class JobError(msgspec.Struct, kw_only=True):
    code: str
    message: str
    param: str | None = None


class Hyperparameters(msgspec.Struct, kw_only=True):
    batch_size: int | Literal["auto"] = "auto"
    learning_rate_multiplier: float | Literal["auto"] = "auto"
    n_epochs: int | Literal["auto"] = "auto"


class MethodSettings(msgspec.Struct, kw_only=True):
    hyperparameters: dict[str, Any] = {}


class Method(msgspec.Struct, kw_only=True):
    type: Literal["supervised", "dpo", "reinforcement"] = "supervised"
    supervised: MethodSettings | None = None
    dpo: MethodSettings | None = None

    @property
    def settings(self) -> MethodSettings | None:
        """The settings of the method the job uses."""
        return self.dpo if self.type == "dpo" else self.supervised


class FineTuningJob(msgspec.Struct, kw_only=True):
    id: str
    created_at: int
    model: str
    training_file: str
    hyperparameters: Hyperparameters
    seed: int
    status: JobStatus
    organization_id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    validation_file: str | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    trained_tokens: int | None = None
    result_files: list[str] = []
    error: JobError | None = None
    estimated_finish: int | None = None
    integrations: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    method: Method | None = None
    user_provided_suffix: str | None = None


EventLevel = Literal["info", "warn", "error"]
EventKind = Literal["message", "metrics"]


class JobEvent(msgspec.Struct, kw_only=True):
    id: str
    created_at: int
    level: EventLevel
    message: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    data: dict[str, Any] | None = None
    type: EventKind = "message"


class CheckpointMetrics(msgspec.Struct, kw_only=True, omit_defaults=True):
    step: float | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


class JobCheckpoint(msgspec.Struct, kw_only=True):
    id: str
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: CheckpointMetrics
    step_number: int
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"


class JobCreateRequest(msgspec.Struct, kw_only=True, frozen=True):
    """The body of `POST /v1/fine_tuning/jobs`."""

    model: str
    training_file: str
    hyperparameters: dict[str, Any] | None = None
    method: dict[str, Any] | None = None
    seed: int | None = None
    suffix: str | None = None
    validation_file: str | None = None
    metadata: dict[str, str] | None = None
    integrations: list[dict[str, Any]] | None = None
