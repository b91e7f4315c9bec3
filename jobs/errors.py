"""Errors of the fine-tuning jobs. They cross Ray process boundaries, so they pickle by value; the gateway turns
them into OpenAI's error envelope or a job's `error` object (`message`, `param`, `code`)."""

from __future__ import annotations

from engines.errors import PlatformError


class JobError(PlatformError):
    """Base of the jobs' errors."""


class InvalidHyperparameterError(JobError):
    """A hyperparameter has a wrong type, is out of range or is unknown; `param` is its bare name ("n_epochs")."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = "invalid_hyperparameter") -> None:
        super().__init__(message, param=param, code=code)


class InvalidTrainingFileError(JobError):
    """The training or validation file cannot be used; the message names the 1-based line when one is at fault.

    Codes: "invalid_file_format", "invalid_n_examples", "invalid_training_file"."""

    def __init__(self, message: str, *, param: str | None = "training_file", code: str | None = None) -> None:
        super().__init__(message, param=param, code=code)


class TrainingCancelled(JobError):
    """The run stopped because the job was cancelled; no final adapter was written."""


class InvalidRequestError(JobError):
    """A files or fine-tuning API request that cannot be accepted as sent (answered 400)."""


class NotFoundError(JobError):
    """No such file or job for this caller (answered 404)."""


class FileTooLargeError(JobError):
    """An upload over the size limit (answered 413)."""
