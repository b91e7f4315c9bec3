"""The fine-tuning jobs' own errors; the tree they belong to is drawn in `engines.core.errors`. A job that
fails keeps its error's `message`, `param` and `code` as the job's `error` object."""

from __future__ import annotations

from engines.core.errors import InvalidRequestError, PlatformError


class InvalidHyperparameterError(InvalidRequestError):
    """A hyperparameter has a wrong type, is out of range or is unknown; `param` is its bare name ("n_epochs")."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = "invalid_hyperparameter") -> None:
        super().__init__(message, param=param, code=code)


class InvalidTrainingFileError(InvalidRequestError):
    """The training or validation file cannot be used; the message names the 1-based line when one is at fault.

    Codes: "invalid_file_format", "invalid_n_examples", "invalid_training_file"."""

    def __init__(self, message: str, *, param: str | None = "training_file", code: str | None = None) -> None:
        super().__init__(message, param=param, code=code)


class TrainingCancelled(PlatformError):
    """A training run stopped because its job was cancelled; no final adapter was written."""


class TrainingPaused(PlatformError):
    """A training run stopped because its job was paused, after saving its state at the step it stopped."""


class TrainerLost(PlatformError):
    """The process or node running a training run went away (killed, out of memory, node lost): not the job's
    fault, so the job resumes from its last saved state, up to a bounded number of tries."""
