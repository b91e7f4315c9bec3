"""A job's resumable training state in the artifact store, so a job outlives the trainer, node or platform that
ran it. A state is a Hugging Face Trainer checkpoint (the adapter's weights, the optimizer, the scheduler, the
random generators, the trainer's step counters) and the progress the platform reported up to it: its files go to
`training-state/<job>/step-<N>/files/...` and then, last, its manifest to `training-state/<job>/step-<N>/
manifest.json`. A state counts only once its manifest exists, so a trainer killed mid-upload leaves the previous
state as the latest."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Annotated

import msgspec
import structlog

from engines.adapter_cache import AdapterFile, file_hash, relative_files
from engines.artifacts import ArtifactStore
from engines.core.errors import NotFoundError, PlatformError
from jobs.results import StepMetrics

log = structlog.get_logger("jobs.training_state")

PREFIX = "training-state"
MANIFEST_NAME = "manifest.json"
_STEP_FOLDER = re.compile(r"^step-(\d+)$")


class SavedCheckpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A checkpoint the run published before the state was saved: the store records it again on resume if the
    report of it was lost with the trainer."""

    step: int
    epoch: int
    path: str
    digest: str | None
    metrics: StepMetrics | None


class StateManifest(msgspec.Struct, frozen=True, kw_only=True):
    step: Annotated[int, msgspec.Meta(ge=1)]
    """The optimizer steps done; training resumes with the next one."""
    epochs_done: int
    """Whole epochs done: the number of checkpoints a run saving one per epoch has made."""
    files: list[AdapterFile]
    rows: list[StepMetrics]
    """The metrics reported so far, for the result file."""
    checkpoints: list[SavedCheckpoint]


def _folder(job_id: str, step: int) -> str:
    return f"{PREFIX}/{job_id}/step-{step}"


def save_state(
    store: ArtifactStore,
    job_id: str,
    local_dir: Path,
    *,
    step: int,
    epochs_done: int,
    rows: list[StepMetrics],
    checkpoints: list[SavedCheckpoint],
) -> None:
    """Uploads the Trainer checkpoint folder `local_dir` as the job's state at `step`, its manifest last."""
    files = []
    for path in relative_files(local_dir):
        size, sha256 = file_hash(local_dir / path)
        files.append(AdapterFile(path=path, size=size, sha256=sha256))
        store.put_file(f"{_folder(job_id, step)}/files/{path}", local_dir / path)
    manifest = StateManifest(step=step, epochs_done=epochs_done, files=files, rows=rows, checkpoints=checkpoints)
    store.put_bytes(f"{_folder(job_id, step)}/{MANIFEST_NAME}", msgspec.json.encode(manifest))
    log.info("training_state_saved", job_id=job_id, step=step, bytes=sum(file.size for file in files))


def latest_state(store: ArtifactStore, job_id: str) -> StateManifest | None:
    """The job's complete state with the most steps, or None if it has none yet."""
    steps = set()
    for key in store.list(f"{PREFIX}/{job_id}"):
        parts = key.split("/")
        if len(parts) == 4 and parts[3] == MANIFEST_NAME and (match := _STEP_FOLDER.match(parts[2])):
            steps.add(int(match.group(1)))
    for step in sorted(steps, reverse=True):
        try:
            return msgspec.json.decode(store.get_bytes(f"{_folder(job_id, step)}/{MANIFEST_NAME}"), type=StateManifest)
        except (NotFoundError, msgspec.DecodeError) as exc:
            log.warning("training_state_unreadable", job_id=job_id, step=step, error=str(exc))
    return None


def download_state(store: ArtifactStore, job_id: str, manifest: StateManifest, target: Path) -> Path:
    """Downloads the state `manifest` describes into the folder `target` (replaced), checking every file."""
    shutil.rmtree(target, ignore_errors=True)
    for file in manifest.files:
        local = target / file.path
        store.get_file(f"{_folder(job_id, manifest.step)}/files/{file.path}", local)
        if file_hash(local) != (file.size, file.sha256):
            raise PlatformError(
                f"The training state of job {job_id} at step {manifest.step} is corrupt: {file.path} does not match "
                "its manifest.",
                code="training_state_corrupt",
            )
    return target


def delete_states(store: ArtifactStore, job_id: str) -> int:
    """Removes every saved state of the job; once it has ended they are of no use."""
    return store.delete_prefix(f"{PREFIX}/{job_id}")
