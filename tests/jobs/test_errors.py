from __future__ import annotations

import pickle

import pytest

from jobs.errors import InvalidHyperparameterError, InvalidTrainingFileError, JobError, TrainingCancelled


@pytest.mark.parametrize(
    "error",
    [
        JobError("boom"),
        JobError("boom", param="p", code="c"),
        InvalidHyperparameterError("bad n_epochs", param="n_epochs"),
        InvalidTrainingFileError("Line 3: bad", code="invalid_file_format"),
        InvalidTrainingFileError("Line 1: bad", param="validation_file", code="invalid_training_file"),
        TrainingCancelled("cancelled at step 2"),
    ],
)
def test_pickles_by_value(error: JobError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (copy.message, copy.param, copy.code) == (error.message, error.param, error.code)
    assert str(copy) == error.message


def test_tree_and_defaults() -> None:
    for cls in (InvalidHyperparameterError, InvalidTrainingFileError, TrainingCancelled):
        assert issubclass(cls, JobError)
    assert InvalidHyperparameterError("x", param="lora_r").code == "invalid_hyperparameter"
    assert InvalidTrainingFileError("x").param == "training_file"
    assert TrainingCancelled("x").param is None
