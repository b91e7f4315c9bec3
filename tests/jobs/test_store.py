"""The store's contract, run against both databases: SQLite (embedded) and PostgreSQL (a real server)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engines.adapters import Adapter
from jobs.database import MIGRATIONS, open_database
from jobs.records import FileObject, FineTuningJob, Hyperparameters, JobEvent, JobStatus
from jobs.store import Store
from tests.servers import new_database

_names = itertools.count()
OpenStore = Callable[[], Store]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens the same store again each call, as a restarted process would."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/store.sqlite3"
    else:
        url = new_database(request.getfixturevalue("postgres"), f"store_{next(_names)}")
    opened: list[Store] = []

    def open_again() -> Store:
        opened.append(Store.open(url))
        return opened[-1]

    yield open_again
    for store in opened:
        store.database.close()


def event(event_id: str, message: str) -> JobEvent:
    return JobEvent(id=event_id, created_at=1, level="info", message=message)


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


def test_everything_survives_reopening(open_store: OpenStore, tmp_path: Path) -> None:
    store = open_store()
    file = FileObject(id="file-1", bytes=3, created_at=1, filename="a.jsonl", purpose="fine-tune")
    store.add_file(file, owner="local", key="files/file-1")
    store.add_job(job("ftjob-1", "running"), owner="local")
    store.save_context("ftjob-1", b'{"owner": "local"}')
    store.add_event("ftjob-1", JobEvent(id="ftevent-1", created_at=1, level="info", message="hello"))
    store.add_model(Adapter(name="ft:x", path="/a", parent="base", owner="local", created=1, job_id="ftjob-1"))
    reopened = open_store()
    found = reopened.get_file("file-1", owner="local")
    assert found == (file, "files/file-1")
    stored = reopened.get_job("ftjob-1")
    assert stored is not None and stored.status == "running"
    assert [j.id for j in reopened.active_jobs()] == ["ftjob-1"]
    assert reopened.get_context("ftjob-1") == b'{"owner": "local"}'
    assert reopened.list_events("ftjob-1", after=None, limit=10).items[0].message == "hello"
    assert [m.name for m in reopened.list_models()] == ["ft:x"]


def test_pages_are_newest_first_with_cursor(open_store: OpenStore) -> None:
    store = open_store()
    for index in range(5):
        store.add_job(job(f"ftjob-{index}", metadata={"even": str(index % 2 == 0)}), owner="local")
    first = store.list_jobs(owner="local", after=None, limit=2, metadata={})
    assert [j.id for j in first.items] == ["ftjob-4", "ftjob-3"] and first.has_more
    rest = store.list_jobs(owner="local", after="ftjob-3", limit=10, metadata={})
    assert [j.id for j in rest.items] == ["ftjob-2", "ftjob-1", "ftjob-0"] and not rest.has_more
    even = store.list_jobs(owner="local", after=None, limit=10, metadata={"even": "True"})
    assert [j.id for j in even.items] == ["ftjob-4", "ftjob-2", "ftjob-0"]


def test_owners_do_not_see_each_other(open_store: OpenStore, tmp_path: Path) -> None:
    store = open_store()
    store.add_job(job("ftjob-a"), owner="alice")
    store.add_file(
        FileObject(id="file-a", bytes=1, created_at=1, filename="a", purpose="fine-tune"), owner="alice", key="files/file-a"
    )
    assert store.get_job("ftjob-a", owner="bob") is None
    assert store.list_jobs(owner="bob", after=None, limit=10, metadata={}).items == []
    assert store.get_file("file-a", owner="bob") is None
    assert store.delete_file("file-a", owner="bob") is None
    assert store.delete_file("file-a", owner="alice") == "files/file-a"


def test_a_write_expecting_a_changed_status_is_refused(open_store: OpenStore) -> None:
    store = open_store()
    store.add_job(job("ftjob-1", "running"), owner="local")
    cancelled = job("ftjob-1", "cancelled")
    assert store.save_job(cancelled, expect=("running",))
    succeeded = job("ftjob-1", "succeeded")
    model = Adapter(name="ft:late", path="/a", parent="base", owner="local", created=1, job_id="ftjob-1")
    late = event("evt-late", "The job has successfully completed")
    assert not store.publish_job(succeeded, [model], [late])
    assert not store.save_job(job("ftjob-1", "failed"), expect=("running",), events=[event("evt-x", "failed")])
    stored = store.get_job("ftjob-1")
    assert stored is not None and stored.status == "cancelled"
    assert store.list_models() == []
    assert store.list_events("ftjob-1", after=None, limit=10).items == []


def test_a_final_status_and_its_events_are_written_together(open_store: OpenStore) -> None:
    """A client that sees `succeeded` sees the events that say so in the same read (they once came later)."""
    store = open_store()
    store.add_job(job("ftjob-1", "running"), owner="local")
    model = Adapter(name="ft:m", path="/a", parent="base", owner="local", created=1, job_id="ftjob-1")
    closing = [event("evt-1", "New fine-tuned model created: ft:m"), event("evt-2", "The job has successfully completed")]
    assert store.publish_job(job("ftjob-1", "succeeded"), [model], closing)
    reopened = open_store()
    assert [e.message for e in reopened.list_events("ftjob-1", after=None, limit=10).items] == [
        "The job has successfully completed",
        "New fine-tuned model created: ft:m",
    ]
    store.add_job(job("ftjob-2", "running"), owner="local")
    assert store.save_job(job("ftjob-2", "failed"), expect=("running",), events=[event("evt-3", "Training failed")])
    assert [e.message for e in reopened.list_events("ftjob-2", after=None, limit=10).items] == ["Training failed"]


def test_one_of_two_racing_writers_wins(open_store: OpenStore) -> None:
    """A cancel and a publication, from two processes' stores at once: exactly one takes effect."""
    first, second = open_store(), open_store()
    first.add_job(job("ftjob-1", "running"), owner="local")
    model = Adapter(name="ft:m", path="/a", parent="base", owner="local", created=1, job_id="ftjob-1")
    results: dict[str, bool] = {}
    barrier = threading.Barrier(2)

    def cancel() -> None:
        barrier.wait()
        results["cancel"] = first.save_job(job("ftjob-1", "cancelled"), expect=("running",))

    def publish() -> None:
        barrier.wait()
        results["publish"] = second.publish_job(job("ftjob-1", "succeeded"), [model], [])

    threads = [threading.Thread(target=cancel), threading.Thread(target=publish)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values()) == [False, True]
    stored = first.get_job("ftjob-1")
    assert stored is not None
    assert (stored.status == "succeeded") == results["publish"] == bool(first.list_models())


def test_models_are_replaced_by_name(open_store: OpenStore) -> None:
    store = open_store()
    store.add_model(Adapter(name="ft:m", path="/old", parent="base", owner="local", created=1, job_id="ftjob-1"))
    store.add_model(Adapter(name="ft:m", path="/new", parent="base", owner="local", created=2, job_id="ftjob-1"))
    assert [(m.name, m.path) for m in store.list_models()] == [("ft:m", "/new")]


def test_a_model_is_deleted_by_its_owner_only(open_store: OpenStore) -> None:
    store = open_store()
    store.add_model(Adapter(name="ft:a", path="/a", parent="base", owner="alice", created=1, job_id="ftjob-1"))
    store.add_model(Adapter(name="ft:b", path="/b", parent="base", owner="alice", created=2, job_id="ftjob-1"))
    assert store.delete_model("ft:a", owner="bob") is None
    removed = store.delete_model("ft:a", owner="alice")
    assert removed is not None and removed.path == "/a"
    assert [m.name for m in open_store().list_models()] == ["ft:b"]
    assert store.delete_model("ft:a", owner="alice") is None


def test_migrations_are_applied_once(open_store: OpenStore) -> None:
    store = open_store()
    open_store()
    versions = store.database.rows("SELECT version FROM schema_migrations ORDER BY version")
    assert [row[0] for row in versions] == [migration.version for migration in MIGRATIONS]


def test_an_unknown_database_url_is_refused() -> None:
    with pytest.raises(ValueError, match="DATABASE_URL"):
        open_database("mysql://x")
