from __future__ import annotations

import json
from pathlib import Path

import pytest

from engines.artifacts import LocalArtifactStore
from engines.core.errors import InvalidRequestError
from jobs.datasets import confined_path, load_examples, looks_local
from jobs.errors import InvalidTrainingFileError
from jobs.files import FileService
from jobs.store import Store

LINE = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}


@pytest.fixture
def files(tmp_path: Path) -> FileService:
    store = Store.open(f"sqlite:///{tmp_path}/s.sqlite3")
    return FileService(store, LocalArtifactStore(tmp_path / "artifacts"), max_bytes=10_000)


@pytest.mark.parametrize("raw", ["/etc/passwd", "../outside", "inside/../../outside", "nul\x00byte"])
def test_paths_outside_the_roots_are_refused(tmp_path: Path, raw: str) -> None:
    with pytest.raises(InvalidRequestError):
        confined_path(raw, [tmp_path / "data"], param="dataset_path")


def test_relative_and_absolute_paths_inside(tmp_path: Path) -> None:
    root = tmp_path / "data"
    assert confined_path("sets/a.jsonl", [root], param="p") == (root / "sets/a.jsonl").resolve()
    assert confined_path(str(root / "b"), [root], param="p") == (root / "b").resolve()


def test_uploaded_file_and_local_dataset_directory(tmp_path: Path, files: FileService) -> None:
    uploaded = files.create(owner="o", filename="t.jsonl", purpose="fine-tune", content=json.dumps(LINE).encode())
    assert len(load_examples(uploaded.id, owner="o", files=files, roots=[tmp_path], param="training_file")) == 1
    dataset = tmp_path / "my-dataset"
    dataset.mkdir()
    (dataset / "train.jsonl").write_text("\n".join(json.dumps(LINE) for _ in range(3)))
    examples = load_examples(str(dataset), owner="o", files=files, roots=[tmp_path], param="training_file")
    assert len(examples) == 3


def test_hub_dataset_offline_fails_clearly(tmp_path: Path, files: FileService) -> None:
    with pytest.raises(InvalidTrainingFileError, match="could not be loaded from the dataset hub"):
        load_examples("someone/some-dataset", owner="o", files=files, roots=[tmp_path], param="training_file")


def test_a_name_too_long_for_a_path_is_not_local() -> None:
    """The OS refuses to look it up (ENAMETOOLONG); it is a dataset name, which fails later with a clear error."""
    assert not looks_local("x" * 300)
