from __future__ import annotations

from pathlib import Path

from engines.adapters import Adapter
from jobs.records import FileObject, FineTuningJob, Hyperparameters, JobEvent, JobStatus
from jobs.store import Store


def job(job_id: str, status: JobStatus = "queued", metadata: dict[str, str] | None = None) -> FineTuningJob:
    return FineTuningJob(
        id=job_id,
        created_at=1,
        model="base",
        training_file="file-1",
        hyperparameters=Hyperparameters(),
        seed=1,
        status=status,
        organization_id="local",
        metadata=metadata,
    )


def test_everything_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    store = Store(path)
    file = FileObject(id="file-1", bytes=3, created_at=1, filename="a.jsonl", purpose="fine-tune")
    store.add_file(file, owner="local", path=tmp_path / "file-1")
    store.add_job(job("ftjob-1", "running"), owner="local")
    store.add_event("ftjob-1", JobEvent(id="ftevent-1", created_at=1, level="info", message="hello"))
    store.add_model(Adapter(name="ft:x", path="/a", parent="base", owner="local", created=1, job_id="ftjob-1"))
    reopened = Store(path)
    stored = reopened.get_file("file-1", owner="local")
    assert stored is not None and stored[0] == file
    reopened_job = reopened.get_job("ftjob-1")
    assert reopened_job is not None and reopened_job.status == "running"
    assert [j.id for j in reopened.active_jobs()] == ["ftjob-1"]
    assert reopened.list_events("ftjob-1", after=None, limit=10).items[0].message == "hello"
    assert [m.name for m in reopened.list_models()] == ["ft:x"]


def test_pages_are_newest_first_with_cursor(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    for index in range(5):
        store.add_job(job(f"ftjob-{index}", metadata={"even": str(index % 2 == 0)}), owner="local")
    first = store.list_jobs(owner="local", after=None, limit=2, metadata={})
    assert [j.id for j in first.items] == ["ftjob-4", "ftjob-3"] and first.has_more
    rest = store.list_jobs(owner="local", after="ftjob-3", limit=10, metadata={})
    assert [j.id for j in rest.items] == ["ftjob-2", "ftjob-1", "ftjob-0"] and not rest.has_more
    even = store.list_jobs(owner="local", after=None, limit=10, metadata={"even": "True"})
    assert [j.id for j in even.items] == ["ftjob-4", "ftjob-2", "ftjob-0"]


def test_owners_do_not_see_each_other(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    store.add_job(job("ftjob-a"), owner="alice")
    assert store.get_job("ftjob-a", owner="bob") is None
    assert store.list_jobs(owner="bob", after=None, limit=10, metadata={}).items == []
