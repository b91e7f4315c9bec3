"""Uploads over the real store and a local artifact store: parts put together in order, checked, and cleaned up."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from engines.artifacts import LocalArtifactStore
from engines.core.errors import InvalidRequestError, NotFoundError, PayloadTooLargeError
from jobs.files import FileService
from jobs.store import Store
from jobs.uploads import UploadService

LINE = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})


@pytest.fixture
def service(tmp_path: Path) -> UploadService:
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    files = FileService(Store.open(f"sqlite:///{tmp_path}/s.sqlite3"), artifacts, max_bytes=10_000)
    return UploadService(artifacts, files)


def parts_of(content: bytes, size: int) -> list[bytes]:
    return [content[i : i + size] for i in range(0, len(content), size)]


def test_parts_become_one_file_in_the_order_named(service: UploadService) -> None:
    content = ("\n".join([LINE] * 40)).encode()
    upload = service.create(owner="alice", filename="train.jsonl", purpose="fine-tune", size=len(content))
    chunks = parts_of(content, 700)
    assert len(chunks) > 2
    second = service.add_part(upload.id, chunks[1], owner="alice")  # parts may arrive in any order
    first = service.add_part(upload.id, chunks[0], owner="alice")
    parts = [first, second, *(service.add_part(upload.id, chunk, owner="alice") for chunk in chunks[2:])]

    done = service.complete(upload.id, [part.id for part in parts], owner="alice", md5=hashlib.md5(content).hexdigest())

    assert done.status == "completed" and done.file is not None
    assert done.file.bytes == len(content) and done.file.status == "processed" and done.file.purpose == "fine-tune"
    assert service.files.content(done.file.id, owner="alice") == content
    assert service.artifacts.list(f"uploads/{upload.id}/parts") == []
    with pytest.raises(InvalidRequestError, match="completed"):
        service.add_part(upload.id, b"more", owner="alice")


def test_a_wrong_size_or_md5_completes_nothing(service: UploadService) -> None:
    content = LINE.encode()
    upload = service.create(owner="alice", filename="a.jsonl", purpose="fine-tune", size=len(content) + 1)
    part = service.add_part(upload.id, content, owner="alice")
    with pytest.raises(InvalidRequestError, match="bytes"):
        service.complete(upload.id, [part.id], owner="alice")
    upload = service.create(owner="alice", filename="a.jsonl", purpose="fine-tune", size=len(content))
    part = service.add_part(upload.id, content, owner="alice")
    with pytest.raises(InvalidRequestError, match="MD5") as wrong:
        service.complete(upload.id, [part.id], owner="alice", md5="0" * 32)
    assert wrong.value.param == "md5"
    assert service.complete(upload.id, [part.id], owner="alice").status == "completed"  # still pending after that


def test_an_unusable_training_file_says_why(service: UploadService) -> None:
    content = f"{LINE}\nnot json\n".encode()
    upload = service.create(owner="alice", filename="a.jsonl", purpose="fine-tune", size=len(content))
    part = service.add_part(upload.id, content, owner="alice")
    file = service.complete(upload.id, [part.id], owner="alice").file
    assert file is not None and file.status == "error" and (file.status_details or "").startswith("Line 2: ")


def test_cancel_expiry_ownership_and_limits(service: UploadService) -> None:
    upload = service.create(owner="alice", filename="a.jsonl", purpose="fine-tune", size=10)
    service.add_part(upload.id, b"0123456789", owner="alice")
    with pytest.raises(NotFoundError):
        service.add_part(upload.id, b"x", owner="bob")
    assert service.cancel(upload.id, owner="alice").status == "cancelled"
    assert service.artifacts.list(f"uploads/{upload.id}/parts") == []
    late = service.create(owner="alice", filename="a.jsonl", purpose="fine-tune", size=10)
    service.clock = lambda: late.expires_at + 1
    with pytest.raises(InvalidRequestError, match="expired"):
        service.add_part(late.id, b"x", owner="alice")
    with pytest.raises(PayloadTooLargeError):
        service.create(owner="alice", filename="a.jsonl", purpose="fine-tune", size=10_001)
    with pytest.raises(InvalidRequestError, match="purpose"):
        service.create(owner="alice", filename="a.jsonl", purpose="nonsense", size=1)
