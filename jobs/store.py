"""The metadata store: files, fine-tuning jobs, events, checkpoints and served models, in SQLite or
PostgreSQL (jobs.database), so they outlive any process."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgspec
import structlog

from engines.adapters import Adapter
from jobs.database import Cursor, Database, open_database
from jobs.records import (
    ACTIVE_STATUSES,
    UNFINISHED_STATUSES,
    FileObject,
    FineTuningJob,
    Hyperparameters,
    JobCheckpoint,
    JobEvent,
    JobStatus,
)
from jobs.records import JobError as JobErrorRecord

T = TypeVar("T")
log = structlog.get_logger("jobs.store")


class Page(msgspec.Struct, frozen=True):
    items: list
    has_more: bool


class Store:
    """The platform's metadata: files, jobs, events, checkpoints and published models, in the database of
    `DATABASE_URL` (see jobs.database). Each object is kept as its JSON, beside the columns queries need."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._transaction = database.transaction
        self._rows = database.rows

    @classmethod
    def open(cls, url: str) -> Store:
        return cls(open_database(url))

    # --- files ---------------------------------------------------------------------------------------

    def add_file(self, file: FileObject, *, owner: str, key: str) -> None:
        """`key`: where the content is in the artifact store."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO files (id, owner, purpose, path, body) VALUES (?, ?, ?, ?, ?)",
                (file.id, owner, file.purpose, key, msgspec.json.encode(file)),
            )

    def get_file(self, file_id: str, *, owner: str) -> tuple[FileObject, str] | None:
        """The file and its content's key in the artifact store."""
        rows = self._rows("SELECT body, path FROM files WHERE id = ? AND owner = ?", (file_id, owner))
        if not rows:
            return None
        return msgspec.json.decode(rows[0][0], type=FileObject), rows[0][1]

    def list_files(self, *, owner: str, purpose: str | None, after: str | None, limit: int, ascending: bool) -> Page:
        where, args = ["owner = ?"], [owner]
        if purpose is not None:
            where.append("purpose = ?")
            args.append(purpose)
        return self._page("files", where, args, after=after, limit=limit, ascending=ascending, decode=_decoder(FileObject))

    def delete_file(self, file_id: str, *, owner: str) -> str | None:
        """Returns the deleted file's content key, or None when there was no such file."""
        with self._transaction() as db:
            found = db.rows("SELECT path FROM files WHERE id = ? AND owner = ?", (file_id, owner))
            if not found:
                return None
            row = found[0]
            db.execute("DELETE FROM files WHERE id = ?", (file_id,))
        return str(row[0])

    # --- jobs ----------------------------------------------------------------------------------------

    def add_job(self, job: FineTuningJob, *, owner: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, owner, status, body) VALUES (?, ?, ?, ?)",
                (job.id, owner, job.status, msgspec.json.encode(job)),
            )

    def save_job(self, job: FineTuningJob, *, expect: tuple[JobStatus, ...], events: Sequence[JobEvent] = ()) -> bool:
        """Writes `job` only while its stored status is one of `expect`, so a change made meanwhile by
        someone else (a cancel) is never overwritten. `events` are written with it, so a client that sees the
        new status also sees the events that explain it. Returns whether it was written."""
        with self._transaction() as db:
            if not _update_job(db, job, expect):
                return False
            _insert_events(db, job.id, events)
            return True

    def publish_job(self, job: FineTuningJob, models: list[Adapter], events: Sequence[JobEvent]) -> bool:
        """Writes the succeeded job, registers its models and adds its closing events in one transaction, only
        while the job is unfinished (a pause that came too late to stop the run does not hold it back): a cancel
        answered first wins, and nothing is published."""
        with self._transaction() as db:
            if not _update_job(db, job, UNFINISHED_STATUSES):
                return False
            for model in models:
                _insert_model(db, model)
            _insert_events(db, job.id, events)
            return True

    def get_job(self, job_id: str, *, owner: str | None = None) -> FineTuningJob | None:
        sql, args = "SELECT id, owner, body FROM jobs WHERE id = ?", [job_id]
        if owner is not None:
            sql, args = sql + " AND owner = ?", [job_id, owner]
        rows = self._rows(sql, tuple(args))
        return self._readable_job(rows[0]) if rows else None

    def list_jobs(self, *, owner: str, after: str | None, limit: int, metadata: dict[str, str]) -> Page:
        where, args = ["owner = ?"], [owner]
        for key, value in metadata.items():
            field, field_arg = self.database.json_text(key)
            where.append(f"{field} = ?")
            args.extend([field_arg, value])
        return self._page(
            "jobs",
            where,
            args,
            after=after,
            limit=limit,
            ascending=False,
            decode=self._readable_job,
            columns="id, owner, body",
        )

    def job_statistics(self) -> tuple[dict[str, int], list[tuple[str, float, int]]]:
        """Jobs by status, and (status, seconds from creation to end, trained tokens) of each finished job."""
        counts = {status: count for status, count in self._rows("SELECT status, COUNT(*) FROM jobs GROUP BY status")}
        marks = ",".join("?" * len(UNFINISHED_STATUSES))
        rows = self._rows(f"SELECT body FROM jobs WHERE status NOT IN ({marks})", UNFINISHED_STATUSES)
        finished = []
        for (body,) in rows:
            with contextlib.suppress(msgspec.DecodeError):  # an unreadable body is reported by the job routes
                job = msgspec.json.decode(body, type=_JobTimes)
                if job.finished_at is not None:
                    finished.append((job.status, float(job.finished_at - job.created_at), job.trained_tokens or 0))
        return counts, finished

    def active_jobs(self) -> list[FineTuningJob]:
        marks = ",".join("?" * len(ACTIVE_STATUSES))
        rows = self._rows(f"SELECT id, owner, body FROM jobs WHERE status IN ({marks}) ORDER BY seq", ACTIVE_STATUSES)
        return [job for job in map(self._readable_job, rows) if job.status in ACTIVE_STATUSES]

    def _readable_job(self, row: tuple) -> FineTuningJob:
        """A stored job as it can be served. A body written by an older release that decodes only loosely (a
        whole number stored as 2.0) is stored again in today's types; one that cannot be read at all is
        logged and stored as a failed job with a clear error, so it never stops a list or a start-up."""
        job_id, owner, body = row
        try:
            return msgspec.json.decode(body, type=FineTuningJob)
        except msgspec.DecodeError as exc:
            reason = str(exc)
        try:
            job = msgspec.convert(msgspec.json.decode(body), FineTuningJob, strict=False)
        except msgspec.DecodeError:
            job = _unreadable_job(job_id, owner, body, reason)
        log.warning("job_record_repaired", job_id=job_id, reason=reason, status=job.status)
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = ?, body = ? WHERE id = ? AND body = ?",
                (job.status, msgspec.json.encode(job), job_id, body),
            )
        return job

    def save_context(self, job_id: str, body: bytes) -> None:
        """What the scheduler needs to run a job again after a restart (owner, output, raw hyperparameters)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO job_contexts (job_id, body) VALUES (?, ?)"
                " ON CONFLICT (job_id) DO UPDATE SET body = excluded.body",
                (job_id, body),
            )

    def get_context(self, job_id: str) -> bytes | None:
        rows = self._rows("SELECT body FROM job_contexts WHERE job_id = ?", (job_id,))
        return rows[0][0] if rows else None

    # --- events and checkpoints ----------------------------------------------------------------------

    def add_event(self, job_id: str, event: JobEvent) -> None:
        with self._transaction() as db:
            _insert_events(db, job_id, [event])

    def list_events(self, job_id: str, *, after: str | None, limit: int) -> Page:
        return self._page(
            "events", ["job_id = ?"], [job_id], after=after, limit=limit, ascending=False, decode=_decoder(JobEvent)
        )

    def add_checkpoint(self, checkpoint: JobCheckpoint, *, path: str, digest: str | None) -> None:
        """`path`: the checkpoint's folder on the trainer's node; `digest`: its adapter in the artifact store."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO checkpoints (id, job_id, path, digest, body) VALUES (?, ?, ?, ?, ?)",
                (checkpoint.id, checkpoint.fine_tuning_job_id, path, digest, msgspec.json.encode(checkpoint)),
            )

    def list_checkpoints(self, job_id: str, *, after: str | None, limit: int) -> Page:
        where, args = ["job_id = ?"], [job_id]
        return self._page(
            "checkpoints", where, args, after=after, limit=limit, ascending=False, decode=_decoder(JobCheckpoint)
        )

    def checkpoint_adapters(self, job_id: str) -> list[tuple[JobCheckpoint, str, str | None]]:
        """Each checkpoint of the job, with its folder on the trainer's node and its digest in the artifact store."""
        rows = self._rows("SELECT body, path, digest FROM checkpoints WHERE job_id = ? ORDER BY seq", (job_id,))
        return [(msgspec.json.decode(body, type=JobCheckpoint), path, digest) for body, path, digest in rows]

    # --- served models -------------------------------------------------------------------------------

    def add_model(self, model: Adapter) -> None:
        with self._transaction() as db:
            _insert_model(db, model)

    def list_models(self) -> list[Adapter]:
        return [msgspec.json.decode(row[0], type=Adapter) for row in self._rows("SELECT body FROM models ORDER BY seq")]

    def delete_model(self, name: str, *, owner: str) -> Adapter | None:
        """Removes the caller's model `name` (not the job that made it); the removed model, or None where there was
        none of theirs."""
        with self._transaction() as db:
            rows = db.rows("SELECT body FROM models WHERE name = ? AND owner = ?", (name, owner))
            if not rows:
                return None
            db.execute("DELETE FROM models WHERE name = ? AND owner = ?", (name, owner))
        return msgspec.json.decode(rows[0][0], type=Adapter)

    # --- paging --------------------------------------------------------------------------------------

    def _page(
        self,
        table: str,
        where: list[str],
        args: list,
        *,
        after: str | None,
        limit: int,
        ascending: bool,
        decode: Callable[[tuple], Any],
        columns: str = "body",
    ) -> Page:
        if after is not None:
            where = [*where, f"seq {'>' if ascending else '<'} COALESCE((SELECT seq FROM {table} WHERE id = ?), -1)"]
            args = [*args, after]
        order = "ASC" if ascending else "DESC"
        sql = f"SELECT {columns} FROM {table} WHERE {' AND '.join(where)} ORDER BY seq {order} LIMIT ?"
        rows = self._rows(sql, (*args, limit + 1))
        items = [decode(row) for row in rows[:limit]]
        return Page(items=items, has_more=len(rows) > limit)


def _decoder(kind: type[T]) -> Callable[[tuple], T]:
    return lambda row: msgspec.json.decode(row[-1], type=kind)


def _update_job(db: Cursor, job: FineTuningJob, expect: tuple[JobStatus, ...]) -> bool:
    marks = ",".join("?" * len(expect))
    changed = db.execute(
        f"UPDATE jobs SET status = ?, body = ? WHERE id = ? AND status IN ({marks})",
        (job.status, msgspec.json.encode(job), job.id, *expect),
    )
    return changed == 1


def _insert_events(db: Cursor, job_id: str, events: Sequence[JobEvent]) -> None:
    for event in events:
        db.execute("INSERT INTO events (id, job_id, body) VALUES (?, ?, ?)", (event.id, job_id, msgspec.json.encode(event)))


def _insert_model(db: Cursor, model: Adapter) -> None:
    db.execute(
        "INSERT INTO models (name, owner, job_id, body) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
        " owner = excluded.owner, job_id = excluded.job_id, body = excluded.body",
        (model.name, model.owner, model.job_id or "", msgspec.json.encode(model)),
    )


def _unreadable_job(job_id: str, owner: str, body: bytes, reason: str) -> FineTuningJob:
    """What can be kept of a job whose record cannot be read: its identity, and an error that says so."""
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raw = {}
    raw = raw if isinstance(raw, dict) else {}

    def kept(name: str, kind: type, default: Any) -> Any:
        value = raw.get(name)
        return value if isinstance(value, kind) and not isinstance(value, bool) else default

    now = int(time.time())
    return FineTuningJob(
        id=job_id,
        created_at=kept("created_at", int, now),
        model=kept("model", str, ""),
        training_file=kept("training_file", str, ""),
        validation_file=kept("validation_file", str, None),
        hyperparameters=Hyperparameters(),
        seed=kept("seed", int, 0),
        status="failed",
        organization_id=owner,
        finished_at=now,
        error=JobErrorRecord(
            code="unreadable_record",
            message=f"The platform could not read this job's stored record ({reason}); it was marked failed.",
        ),
    )


class _JobTimes(msgspec.Struct):
    """The part of a stored job its statistics read."""

    status: str
    created_at: int
    finished_at: int | None = None
    trained_tokens: int | None = None
