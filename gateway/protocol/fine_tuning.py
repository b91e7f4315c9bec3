"""`/v1/fine_tuning/jobs` wire types: the stored records are OpenAI-shaped, lists are cursor pages."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from jobs.records import FineTuningJob, JobCheckpoint, JobCreateRequest, JobEvent

__all__ = ["CursorPage", "FineTuningJob", "JobCheckpoint", "JobCreateRequest", "JobEvent"]


class CursorPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Any]
    has_more: bool
    object: Literal["list"] = "list"
    first_id: str | None = None
    last_id: str | None = None

    @classmethod
    def of(cls, items: list[Any], has_more: bool) -> CursorPage:
        return cls(
            data=items,
            has_more=has_more,
            first_id=items[0].id if items else None,
            last_id=items[-1].id if items else None,
        )
