"""The embedded store: files, fine-tuning jobs, events, checkpoints and served models in SQLite under
DATA_DIR, so they survive restarts. Each object is kept as its JSON, beside the columns queries need."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import msgspec

from jobs.records import ACTIVE_STATUSES, FileObject, FineTuningJob, JobCheckpoint, JobEvent, ServedModel

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, owner TEXT NOT NULL,
    purpose TEXT NOT NULL, path TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, owner TEXT NOT NULL,
    status TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS job_contexts (job_id TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_job ON events (job_id, seq);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL,
    path TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE NOT NULL, owner TEXT NOT NULL,
    job_id TEXT NOT NULL, body BLOB NOT NULL);
"""


class Page(msgspec.Struct, frozen=True):
    items: list
    has_more: bool


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # --- files ---------------------------------------------------------------------------------------

    def add_file(self, file: FileObject, *, owner: str, path: Path) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO files (id, owner, purpose, path, body) VALUES (?, ?, ?, ?, ?)",
                (file.id, owner, file.purpose, str(path), msgspec.json.encode(file)),
            )

    def get_file(self, file_id: str, *, owner: str) -> tuple[FileObject, Path] | None:
        rows = self._rows("SELECT body, path FROM files WHERE id = ? AND owner = ?", (file_id, owner))
        if not rows:
            return None
        return msgspec.json.decode(rows[0][0], type=FileObject), Path(rows[0][1])

    def list_files(self, *, owner: str, purpose: str | None, after: str | None, limit: int, ascending: bool) -> Page:
        where, args = ["owner = ?"], [owner]
        if purpose is not None:
            where.append("purpose = ?")
            args.append(purpose)
        return self._page("files", where, args, after=after, limit=limit, ascending=ascending, kind=FileObject)

    def delete_file(self, file_id: str, *, owner: str) -> Path | None:
        with self._transaction() as db:
            row = db.execute("SELECT path FROM files WHERE id = ? AND owner = ?", (file_id, owner)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM files WHERE id = ?", (file_id,))
        return Path(row[0])

    # --- jobs ----------------------------------------------------------------------------------------

    def add_job(self, job: FineTuningJob, *, owner: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, owner, status, body) VALUES (?, ?, ?, ?)",
                (job.id, owner, job.status, msgspec.json.encode(job)),
            )

    def save_job(self, job: FineTuningJob) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET status = ?, body = ? WHERE id = ?", (job.status, msgspec.json.encode(job), job.id))

    def get_job(self, job_id: str, *, owner: str | None = None) -> FineTuningJob | None:
        sql, args = "SELECT body FROM jobs WHERE id = ?", (job_id,)
        if owner is not None:
            sql, args = sql + " AND owner = ?", (job_id, owner)
        rows = self._rows(sql, args)
        return msgspec.json.decode(rows[0][0], type=FineTuningJob) if rows else None

    def job_owner(self, job_id: str) -> str | None:
        rows = self._rows("SELECT owner FROM jobs WHERE id = ?", (job_id,))
        return rows[0][0] if rows else None

    def list_jobs(self, *, owner: str, after: str | None, limit: int, metadata: dict[str, str]) -> Page:
        where, args = ["owner = ?"], [owner]
        for key, value in metadata.items():
            where.append("json_extract(body, ?) = ?")
            args.extend([f'$.metadata."{key}"', value])
        return self._page("jobs", where, args, after=after, limit=limit, ascending=False, kind=FineTuningJob)

    def active_jobs(self) -> list[FineTuningJob]:
        marks = ",".join("?" * len(ACTIVE_STATUSES))
        rows = self._rows(f"SELECT body FROM jobs WHERE status IN ({marks}) ORDER BY seq", ACTIVE_STATUSES)
        return [msgspec.json.decode(row[0], type=FineTuningJob) for row in rows]

    def save_context(self, job_id: str, body: bytes) -> None:
        """What the scheduler needs to run a job again after a restart (owner, output, raw hyperparameters)."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO job_contexts (job_id, body) VALUES (?, ?)", (job_id, body))

    def get_context(self, job_id: str) -> bytes | None:
        rows = self._rows("SELECT body FROM job_contexts WHERE job_id = ?", (job_id,))
        return rows[0][0] if rows else None

    # --- events and checkpoints ----------------------------------------------------------------------

    def add_event(self, job_id: str, event: JobEvent) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO events (id, job_id, body) VALUES (?, ?, ?)", (event.id, job_id, msgspec.json.encode(event))
            )

    def list_events(self, job_id: str, *, after: str | None, limit: int) -> Page:
        return self._page("events", ["job_id = ?"], [job_id], after=after, limit=limit, ascending=False, kind=JobEvent)

    def add_checkpoint(self, checkpoint: JobCheckpoint, *, path: Path) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO checkpoints (id, job_id, path, body) VALUES (?, ?, ?, ?)",
                (checkpoint.id, checkpoint.fine_tuning_job_id, str(path), msgspec.json.encode(checkpoint)),
            )

    def list_checkpoints(self, job_id: str, *, after: str | None, limit: int) -> Page:
        where, args = ["job_id = ?"], [job_id]
        return self._page("checkpoints", where, args, after=after, limit=limit, ascending=False, kind=JobCheckpoint)

    def checkpoint_paths(self, job_id: str) -> list[tuple[JobCheckpoint, Path]]:
        rows = self._rows("SELECT body, path FROM checkpoints WHERE job_id = ? ORDER BY seq", (job_id,))
        return [(msgspec.json.decode(body, type=JobCheckpoint), Path(path)) for body, path in rows]

    # --- served models -------------------------------------------------------------------------------

    def add_model(self, model: ServedModel) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO models (name, owner, job_id, body) VALUES (?, ?, ?, ?)",
                (model.name, model.owner, model.job_id, msgspec.json.encode(model)),
            )

    def list_models(self) -> list[ServedModel]:
        return [msgspec.json.decode(row[0], type=ServedModel) for row in self._rows("SELECT body FROM models ORDER BY seq")]

    # --- paging --------------------------------------------------------------------------------------

    def _page(
        self, table: str, where: list[str], args: list, *, after: str | None, limit: int, ascending: bool, kind: type[T]
    ) -> Page:
        if after is not None:
            where = [*where, f"seq {'>' if ascending else '<'} COALESCE((SELECT seq FROM {table} WHERE id = ?), -1)"]
            args = [*args, after]
        order = "ASC" if ascending else "DESC"
        sql = f"SELECT body FROM {table} WHERE {' AND '.join(where)} ORDER BY seq {order} LIMIT ?"
        rows = self._rows(sql, (*args, limit + 1))
        items = [msgspec.json.decode(row[0], type=kind) for row in rows[:limit]]
        return Page(items=items, has_more=len(rows) > limit)
