from __future__ import annotations

import pickle
import re

import pytest

import engines.core.errors as tree
from engines.core.errors import PlatformError, RateLimitError, ServiceUnavailableError
from engines.errors import AdapterLoadError, EngineUnavailableError
from jobs.errors import InvalidHyperparameterError, InvalidTrainingFileError, TrainingCancelled

LEAVES = [AdapterLoadError, EngineUnavailableError, InvalidHyperparameterError, InvalidTrainingFileError, TrainingCancelled]


@pytest.mark.parametrize(
    "error",
    [
        PlatformError("boom", param="p", code="c"),
        InvalidHyperparameterError("bad n_epochs", param="n_epochs"),
        InvalidTrainingFileError("Line 1: bad", param="validation_file", code="invalid_training_file"),
        TrainingCancelled("cancelled at step 2"),
        RateLimitError("slow down", retry_after_s=None),
        ServiceUnavailableError("later", retry_after=5),
        EngineUnavailableError("The engine stopped"),
    ],
)
def test_pickles_by_value(error: PlatformError) -> None:
    """Errors cross Ray's process boundaries: the copy answers the client exactly as the original would."""
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == error.message
    seen = (copy.message, copy.param, copy.code, copy.headers, copy.status_code, copy.error_type)
    assert seen == (error.message, error.param, error.code, error.headers, error.status_code, error.error_type)


def test_the_docstring_draws_the_whole_tree() -> None:
    """Each class is drawn under its parent, so the drawing cannot drift from the code."""
    lines = (tree.__doc__ or "").splitlines()
    drawn = {}
    for line in lines:
        match = re.match(r"^\s*((?:│   |    )*)(?:├── |└── )?(\w+Error|\w+Cancelled)\b", line)
        if match:
            drawn[match.group(2)] = len(match.group(1)) // 4 + (1 if "──" in line else 0)
    classes = [cls for cls in vars(tree).values() if isinstance(cls, type) and issubclass(cls, PlatformError)]
    for cls in [*classes, *LEAVES]:
        assert cls.__name__ in drawn, f"{cls.__name__} is not drawn in engines.core.errors"
        depth = len([base for base in cls.__mro__ if issubclass(base, PlatformError)]) - 1
        assert drawn[cls.__name__] == depth, f"{cls.__name__} is drawn at depth {drawn[cls.__name__]}, is at {depth}"
