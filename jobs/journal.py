"""What happens to a fine-tuning job, written down: its events, its progress (metrics and checkpoints) and its
final status. A final status is written in one transaction with the events that explain it, so a client that sees
`succeeded` also sees "The job has successfully completed"; and it is conditional on the status it replaces, so a
cancel answered by the API is never overturned."""

from __future__ import annotations

import time
from typing import Any

import structlog

from engines.adapters import Adapter
from jobs.files import FileService, new_id
from jobs.progress import CheckpointReport, MetricsReport
from jobs.records import (
    UNFINISHED_STATUSES,
    CheckpointMetrics,
    EventKind,
    EventLevel,
    FineTuningJob,
    JobCheckpoint,
    JobEvent,
    JobStatus,
)
from jobs.records import JobError as JobErrorRecord
from jobs.results import metrics_csv
from jobs.store import Store
from jobs.training_spec import TrainingResult
from jobs.training_state import StateManifest, delete_states

log = structlog.get_logger("jobs.journal")


def new_event(
    level: EventLevel, message: str, *, data: dict[str, Any] | None = None, kind: EventKind = "message"
) -> JobEvent:
    return JobEvent(id=new_id("ftevent"), created_at=int(time.time()), level=level, message=message, data=data, type=kind)


class JobJournal:
    def __init__(self, store: Store, files: FileService) -> None:
        self.store = store
        self.files = files
        self._last_metrics_step: dict[str, int] = {}

    def job(self, job_id: str) -> FineTuningJob:
        job = self.store.get_job(job_id)
        assert job is not None, job_id
        return job

    def event(
        self,
        job_id: str,
        level: EventLevel,
        message: str,
        *,
        data: dict[str, Any] | None = None,
        kind: EventKind = "message",
    ) -> None:
        self.store.add_event(job_id, new_event(level, message, data=data, kind=kind))
        log.info("job_event", job_id=job_id, level=level, message=message)

    def change(self, job: FineTuningJob, *, expect: tuple[JobStatus, ...], message: str, level: EventLevel = "info") -> bool:
        """Writes the job's new status with the event that says so, only while its stored status is one of `expect`."""
        if not self.store.save_job(job, expect=expect, events=[new_event(level, message)]):
            return False
        log.info("job_event", job_id=job.id, level=level, message=message, status=job.status)
        return True

    # --- progress ------------------------------------------------------------------------------------

    def metrics(self, job_id: str, report: MetricsReport, started: float) -> None:
        row, total = report.row, report.total_steps
        if row.step <= self._last_metrics_step.get(job_id, 0):
            return  # a resumed run going over steps a lost run already reported
        self._last_metrics_step[job_id] = row.step
        message = f"Step {row.step}/{total}: training loss={row.train_loss:.4f}"
        if row.valid_loss is not None:
            message += f", validation loss={row.valid_loss:.4f}"
        if row.full_valid_loss is not None:
            message += f", full validation loss={row.full_valid_loss:.4f}"
        self.event(job_id, "info", message, data=row.event_data(total), kind="metrics")
        if 0 < row.step < total:
            job = self.job(job_id)
            job.estimated_finish = int(started + (time.time() - started) * total / row.step)
            self.store.save_job(job, expect=("running",))

    def checkpoint(self, job_id: str, fine_tuned_model: str, report: CheckpointReport) -> None:
        if any(ckpt.step_number == report.step for ckpt, _, _ in self.store.checkpoint_adapters(job_id)):
            return  # a resumed run saving again a checkpoint a lost run had made
        metrics = report.metrics.checkpoint_metrics() if report.metrics else CheckpointMetrics(step=report.step)
        checkpoint = JobCheckpoint(
            id=new_id("ftckpt"),
            created_at=int(time.time()),
            fine_tuned_model_checkpoint=f"{fine_tuned_model}:ckpt-step-{report.step}",
            fine_tuning_job_id=job_id,
            metrics=metrics,
            step_number=report.step,
        )
        self.store.add_checkpoint(checkpoint, path=report.path, digest=report.digest)

    def resumed(self, job_id: str, fine_tuned_model: str, saved: StateManifest) -> None:
        """Before a run resumes from `saved`: records the checkpoints it knows of whose reports were lost with their
        trainer, notes the last step with metrics, so the steps the resumed run goes over again are not reported
        twice, and says so in the job's events."""
        for checkpoint in saved.checkpoints:
            report = CheckpointReport(
                checkpoint.step, checkpoint.epoch, checkpoint.path, checkpoint.metrics, checkpoint.digest
            )
            self.checkpoint(job_id, fine_tuned_model, report)
        recent = self.store.list_events(job_id, after=None, limit=1000).items  # newest first
        reported = next((event.data["step"] for event in recent if event.type == "metrics" and event.data), 0)
        self._last_metrics_step[job_id] = max(self._last_metrics_step.get(job_id, 0), saved.step, int(reported))
        self.event(job_id, "info", f"Fine-tuning job resumed from step {saved.step}")

    def forget(self, job_id: str) -> None:
        """Drops what was kept about a run that has ended."""
        self._last_metrics_step.pop(job_id, None)

    # --- final status --------------------------------------------------------------------------------

    def succeeded(self, job_id: str, *, owner: str, fine_tuned_model: str, result: TrainingResult) -> bool:
        """Publishes the model and its checkpoints with the succeeded job; False when a cancel came first."""
        job = self.job(job_id)
        results = self.files.store_result(owner=owner, filename="step_metrics.csv", content=metrics_csv(result.step_metrics))
        adapter = Adapter(
            name=fine_tuned_model,
            path=result.adapter_path,
            parent=job.model,
            owner=owner,
            created=int(time.time()),
            job_id=job_id,
            digest=result.adapter_digest,
        )
        checkpoints = [
            Adapter(
                name=ckpt.fine_tuned_model_checkpoint,
                path=path,
                parent=job.model,
                owner=owner,
                created=ckpt.created_at,
                job_id=job_id,
                digest=digest,
            )
            for ckpt, path, digest in self.store.checkpoint_adapters(job_id)
        ]
        job.fine_tuned_model = fine_tuned_model
        job.trained_tokens = result.trained_tokens
        job.result_files = [results.id]
        job.status = "succeeded"
        job.finished_at = int(time.time())
        job.estimated_finish = None
        speed = f"{result.trained_tokens} tokens in {result.steps} steps at {result.tokens_per_second:.1f} tokens/s"
        events = [
            new_event(
                "info",
                f"Trained {speed}",
                data={"trained_tokens": result.trained_tokens, "tokens_per_second": round(result.tokens_per_second, 2)},
            ),
            new_event("info", f"New fine-tuned model created: {fine_tuned_model}"),
            new_event("info", "The job has successfully completed"),
        ]
        if not self.store.publish_job(job, [adapter, *checkpoints], events):
            # Cancelled after the trainer's last check: the cancel was answered first, so it wins.
            self.files.delete(results.id, owner=owner)
            return False
        self.discard_states(job_id)
        log.info("job_succeeded", model=fine_tuned_model, tokens_per_second=round(result.tokens_per_second, 1))
        return True

    def failed(self, job_id: str, code: str, message: str, param: str | None = None) -> None:
        job = self.job(job_id)
        if job.status in ("succeeded", "cancelled"):
            return
        job.status = "failed"
        job.error = JobErrorRecord(code=code, message=message, param=param)
        job.finished_at = int(time.time())
        job.estimated_finish = None
        if self.change(job, expect=UNFINISHED_STATUSES, message=message, level="error"):
            self.discard_states(job_id)
            log.warning("job_failed", code=code, message=message)

    def cancelled(self, job_id: str) -> None:
        """Once the run of a cancelled job has stopped (or when a cancel came too late to stop it)."""
        message = "Training stopped; the job was cancelled and no model was published"
        job = self.job(job_id)
        if job.status == "cancelled":
            self.event(job_id, "info", message)
        else:
            job.status = "cancelled"
            job.finished_at = int(time.time())
            job.estimated_finish = None
            self.change(job, expect=UNFINISHED_STATUSES, message=message)
        self.discard_states(job_id)

    def discard_states(self, job_id: str) -> None:
        """Removes the training states of a job that has ended; a store that fails here only leaves garbage."""
        try:
            delete_states(self.files.artifacts, job_id)
        except Exception as exc:
            log.warning("training_states_not_deleted", job_id=job_id, error=str(exc))
