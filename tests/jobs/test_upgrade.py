"""A DATA_DIR written by release 0.1 (tests/jobs/fixtures/release-0.1-data, made with that release's code)
opens with today's store and keeps every file, job, event, checkpoint and model."""

from __future__ import annotations

import shutil
from pathlib import Path

from engines.artifacts import LocalArtifactStore
from jobs.database import MIGRATIONS
from jobs.files import FileService
from jobs.store import Store

FIXTURE = Path(__file__).parent / "fixtures" / "release-0.1-data"
DONE, QUEUED = "ftjob-release01done", "ftjob-release01queued"
MODEL = f"ft:HuggingFaceTB/SmolLM2-135M-Instruct:alice:demo:{DONE}"


def test_release_0_1_store_opens_and_upgrades(tmp_path: Path) -> None:
    data = shutil.copytree(FIXTURE, tmp_path / "data")
    store = Store.open(f"sqlite:///{data}/platform.sqlite3")
    versions = [row[0] for row in store.database.rows("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [migration.version for migration in MIGRATIONS]

    files = store.list_files(owner="alice", purpose=None, after=None, limit=10, ascending=True).items
    assert [(f.filename, f.purpose, f.bytes) for f in files] == [
        ("train.jsonl", "fine-tune", 93),
        ("step_metrics.csv", "fine-tune-results", 81),
    ]
    # The files' contents, where release 0.1 left them, are now found through the artifact store.
    contents = FileService(store, LocalArtifactStore(data), max_bytes=1000)
    assert contents.content(files[0].id, owner="alice").startswith(b'{"messages": [{"role": "user"')
    assert contents.content(files[1].id, owner="alice").startswith(b"step,train_loss")
    done = store.get_job(DONE, owner="alice")
    assert done is not None and done.status == "succeeded" and done.fine_tuned_model == MODEL
    assert done.trained_tokens == 1234 and done.metadata == {"team": "a"} and done.result_files == [files[1].id]
    assert [job.id for job in store.active_jobs()] == [QUEUED]
    assert store.get_context(QUEUED) is not None
    events = store.list_events(DONE, after=None, limit=10).items
    assert len(events) == 4 and {event.type for event in events} == {"message", "metrics"}
    [checkpoint] = store.list_checkpoints(DONE, after=None, limit=10).items
    assert checkpoint.fine_tuned_model_checkpoint == f"{MODEL}:ckpt-step-1" and checkpoint.metrics.train_loss == 1.5
    models = {model.name: model for model in store.list_models()}
    assert set(models) == {MODEL, f"{MODEL}:ckpt-step-1"}
    assert models[MODEL].owner == "alice" and models[MODEL].job_id == DONE

    reopened = Store.open(f"sqlite:///{data}/platform.sqlite3")  # a second start migrates nothing more
    assert reopened.get_job(DONE) == done
