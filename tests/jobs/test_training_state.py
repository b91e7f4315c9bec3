"""Resumable training states: their place in the artifact store (both backends), and a real run paused mid-epoch
and resumed from its saved state ending where an uninterrupted run of the same job ends."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import torch
from safetensors.torch import load_file

from engines.artifacts import ArtifactStore, LocalArtifactStore
from engines.core.errors import PlatformError
from jobs.errors import TrainingPaused
from jobs.progress import CheckpointReport
from jobs.results import StepMetrics
from jobs.trainer import run_training
from jobs.training_host import PublishingReporter
from jobs.training_spec import TrainingResult
from jobs.training_state import (
    PREFIX,
    SavedCheckpoint,
    delete_states,
    download_state,
    latest_state,
    save_state,
)
from tests.jobs.test_trainer import make_spec


def state_folder(root: Path, step: int) -> Path:
    folder = root / f"checkpoint-{step}"
    (folder / "nested").mkdir(parents=True)
    (folder / "optimizer.pt").write_bytes(bytes([step]) * 100)
    (folder / "nested" / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
    return folder


def test_the_latest_complete_state_wins(store: ArtifactStore, tmp_path: Path) -> None:
    assert latest_state(store, "ftjob-a") is None
    rows = [StepMetrics(step=1, train_loss=1.5)]
    checkpoints = [SavedCheckpoint(step=1, epoch=1, path="/x/step-1", digest=None, metrics=rows[0])]
    for step in (1, 10):
        save_state(
            store, "ftjob-a", state_folder(tmp_path, step), step=step, epochs_done=1, rows=rows, checkpoints=checkpoints
        )
    store.put_bytes(f"{PREFIX}/ftjob-a/step-11/files/optimizer.pt", b"a state killed before its manifest")
    save_state(store, "ftjob-b", state_folder(tmp_path / "b", 12), step=12, epochs_done=3, rows=[], checkpoints=[])
    latest = latest_state(store, "ftjob-a")
    assert latest is not None and latest.step == 10  # 10 > 1 as numbers, and 11 is incomplete
    assert latest.rows == rows and latest.checkpoints == checkpoints and latest.epochs_done == 1
    target = download_state(store, "ftjob-a", latest, tmp_path / "downloaded")
    assert (target / "optimizer.pt").read_bytes() == bytes([10]) * 100
    assert (target / "nested" / "trainer_state.json").read_text() == '{"global_step": 10}'
    assert delete_states(store, "ftjob-a") == 7  # two states of three objects, and the incomplete one
    assert latest_state(store, "ftjob-a") is None and latest_state(store, "ftjob-b") is not None


def test_a_corrupt_state_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    save_state(store, "ftjob-c", state_folder(tmp_path, 3), step=3, epochs_done=0, rows=[], checkpoints=[])
    store.put_bytes(f"{PREFIX}/ftjob-c/step-3/files/optimizer.pt", b"flipped bits")
    latest = latest_state(store, "ftjob-c")
    assert latest is not None
    with pytest.raises(PlatformError) as caught:
        download_state(store, "ftjob-c", latest, tmp_path / "downloaded")
    assert caught.value.code == "training_state_corrupt"


class PausingReporter(PublishingReporter):
    """Keeps states in an artifact store and pauses the run from its `pause_after`-th poll on."""

    def __init__(self, artifacts: ArtifactStore, job_id: str, pause_after: int | None) -> None:
        super().__init__(artifacts, job_id)
        self.pause_after = pause_after
        self.steps = 0

    def should_pause(self) -> bool:
        self.steps += 1
        return self.pause_after is not None and self.steps >= self.pause_after


def adapter_weights(result: TrainingResult) -> dict[str, torch.Tensor]:
    return load_file(str(Path(result.adapter_path) / "adapter_model.safetensors"))


def test_a_paused_run_resumes_where_it_stopped_and_ends_like_an_uninterrupted_one(model_dir: Path, tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    spec = make_spec(model_dir, tmp_path / "whole", validation=False)
    whole = run_training(spec, PausingReporter(store, "ftjob-whole", pause_after=None))

    interrupted = msgspec.structs.replace(spec, output_dir=str(tmp_path / "paused"))
    first = PausingReporter(store, "ftjob-paused", pause_after=2)  # poll 1 is before training: pauses after step 1 of 2
    with pytest.raises(TrainingPaused, match="step 1"):
        run_training(interrupted, first)
    saved = latest_state(store, "ftjob-paused")
    assert saved is not None and saved.step == 1 and saved.epochs_done == 0 and saved.checkpoints == []
    assert [row.step for row in saved.rows] == [1]

    resumed_spec = msgspec.structs.replace(interrupted, resume_from=saved)
    local = download_state(store, "ftjob-paused", saved, tmp_path / "paused" / "resume")
    second = PausingReporter(store, "ftjob-paused", pause_after=None)
    resumed = run_training(resumed_spec, second, str(local))

    assert resumed.steps == whole.steps == 4
    assert [row.step for row in resumed.step_metrics] == [1, 2, 3, 4]
    reports = [(report.step, report.epoch) for report in second.drain() if isinstance(report, CheckpointReport)]
    assert reports == [(2, 1), (4, 2)]  # the epoch numbers continue across the pause
    assert [row.train_loss for row in resumed.step_metrics] == pytest.approx(
        [row.train_loss for row in whole.step_metrics], rel=1e-3
    )
    expected, actual = adapter_weights(whole), adapter_weights(resumed)
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, rtol=1e-3, atol=1e-5, msg=name)
