"""A job trained data-parallel by two Ray Train workers (gloo on CPU) on a local Ray cluster, through the actor
the platform launches, against the same job trained by one process: the same steps and the same loss curve within
a stated tolerance, rank 0's progress relayed to the scheduler, and a cancel stopping every rank."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import ray

from engines.artifacts import LocalArtifactStore
from jobs.errors import TrainingCancelled
from jobs.hyperparameters import resolve_hyperparameters
from jobs.progress import CheckpointReport, MessageReport, MetricsReport
from jobs.runner import RayTrainerLauncher, TrainingPlacement
from jobs.trainer import run_training
from jobs.training_host import ArtifactLocation
from jobs.training_spec import TrainingSpec
from tests.jobs.test_trainer import Recorder, make_spec

LOSS_TOLERANCE, LEARNED = 0.05, 0.1
"""Per step, relative to the single worker's loss while it is above LEARNED; below, once the examples are learned,
the loss jumps between 0.0007 and 0.02 from step to step in either run, and both must only stay below LEARNED.
Measured above LEARNED: at most 0.9 % here, 1.4 % on the cluster's 18 steps. Both runs see the same examples at
each step (the distributed sampler deals the single run's shuffled batch out to the ranks), but each rank draws its
own dropout masks."""


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="test-data-parallel")
    yield
    ray.shutdown()


def spec_with(model_dir: Path, output_dir: Path, workers: int) -> TrainingSpec:
    spec = make_spec(model_dir, output_dir, validation=False)
    raw = {"n_epochs": 2, "batch_size": 4, "learning_rate": 2e-3, "lora_r": 8, "lora_alpha": 16, "max_seq_length": 128}
    resolved, _ = resolve_hyperparameters({**raw, "n_workers": workers}, n_examples=len(spec.train_examples))
    return msgspec.structs.replace(spec, hyperparameters=resolved, threads=1)


def launcher(root: Path) -> RayTrainerLauncher:
    placement = TrainingPlacement(cpus=1, gpus=0, threads=1)
    return RayTrainerLauncher(placement, "warning", ArtifactLocation(str(root / "store"), str(root)))


async def test_two_workers_train_the_job_one_worker_trains(model_dir: Path, tmp_path: Path, local_ray: None) -> None:
    alone = run_training(spec_with(model_dir, tmp_path / "alone", 1), Recorder())
    run = launcher(tmp_path).start("ftjob-dp", spec_with(model_dir, tmp_path / "two", 2))
    result = await run.result()
    reports = await run.drain()

    assert result.steps == alone.steps == 4 and result.trained_tokens == alone.trained_tokens
    pairs = list(zip(alone.step_metrics, result.step_metrics, strict=True))
    print("\nstep: one worker / two workers")
    for one, two in pairs:
        print(f"{one.step}: {one.train_loss:.4f} / {two.train_loss:.4f}")
    for one, two in pairs:
        assert one.step == two.step
        if one.train_loss >= LEARNED:
            assert abs(two.train_loss - one.train_loss) <= LOSS_TOLERANCE * one.train_loss, (one, two)
        else:
            assert two.train_loss < LEARNED, (one, two)
    assert result.step_metrics[-1].train_loss < result.step_metrics[0].train_loss * 0.7  # it learned

    started = [report.text for report in reports if isinstance(report, MessageReport)]
    assert "Training started: 4 steps over 2 epochs on 2 data-parallel workers" in started, started
    relayed_steps = [report.row.step for report in reports if isinstance(report, MetricsReport)]
    assert relayed_steps == [1, 2, 3, 4]  # rank 0's, once each
    checkpoints = [report for report in reports if isinstance(report, CheckpointReport)]
    assert [checkpoint.step for checkpoint in checkpoints] == [2, 4] and all(c.digest for c in checkpoints)
    store = LocalArtifactStore(tmp_path / "store")
    assert result.adapter_digest and store.exists(f"adapters/{result.adapter_digest}/manifest.json")


async def test_a_cancel_stops_every_rank(model_dir: Path, tmp_path: Path, local_ray: None) -> None:
    run = launcher(tmp_path).start("ftjob-dp-cancel", spec_with(model_dir, tmp_path / "cancelled", 2))
    result = asyncio.ensure_future(run.result())
    while not any(isinstance(report, MetricsReport) for report in await run.drain()):
        assert not result.done(), result
        await asyncio.sleep(0.5)
    run.cancel()
    with pytest.raises(TrainingCancelled):
        await asyncio.wait_for(result, timeout=120)
