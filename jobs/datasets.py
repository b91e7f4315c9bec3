"""Where a job's training data comes from: an uploaded file, or (as the seed allowed) a dataset name or a
local dataset directory, confined to the configured roots."""

from __future__ import annotations

import json
from pathlib import Path

from engines.core.errors import InvalidRequestError
from jobs.data import Example, parse_jsonl
from jobs.errors import InvalidTrainingFileError
from jobs.files import FileService


def confined_path(raw: str, roots: list[Path], *, param: str) -> Path:
    """`raw` as an absolute path inside one of `roots`; anything outside, or any `..`, is a 400."""
    if "\x00" in raw:
        raise InvalidRequestError(f"'{param}' may not contain a NUL character.", param=param, code="invalid_path")
    if ".." in Path(raw).parts:
        raise InvalidRequestError(f"'{param}' may not contain '..'.", param=param, code="invalid_path")
    path = Path(raw)
    candidates = [path] if path.is_absolute() else [root / path for root in roots]
    for candidate in candidates:
        resolved = candidate.resolve()
        if any(resolved == root or root in resolved.parents for root in roots):
            return resolved
    allowed = ", ".join(str(root) for root in roots)
    raise InvalidRequestError(f"'{param}' must be inside {allowed}.", param=param, code="invalid_path")


def is_file_id(reference: str) -> bool:
    return reference.startswith("file-")


def looks_local(reference: str) -> bool:
    """A path rather than a hub dataset name."""
    if reference.startswith((".", "/")) or "\x00" in reference:
        return True
    try:
        return Path(reference).exists()
    except OSError:  # a name too long for the OS to look up is no local path
        return False


def load_examples(reference: str, *, owner: str, files: FileService, roots: list[Path], param: str) -> list[Example]:
    """Parses and validates the examples; errors are InvalidTrainingFileError naming the line."""
    if is_file_id(reference):
        return parse_jsonl(files.content(reference, owner=owner), param=param)
    return parse_jsonl(_dataset_as_jsonl(reference, roots, param), param=param)


def _dataset_as_jsonl(reference: str, roots: list[Path], param: str) -> bytes:
    import datasets

    local = looks_local(reference)
    source = str(confined_path(reference, roots, param=param)) if local else reference
    try:
        rows = datasets.load_dataset(source, split="train")
    except Exception as exc:
        where = "the local dataset" if local else "the dataset hub (it may be unreachable from here)"
        raise InvalidTrainingFileError(
            f"The dataset '{reference}' could not be loaded from {where}: {exc}", param=param, code="invalid_training_file"
        ) from None
    return "\n".join(json.dumps(row) for row in rows).encode()
