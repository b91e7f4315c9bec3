"""The job's result file: OpenAI's per-step metrics CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

COLUMNS = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")


def metrics_csv(step_metrics: Iterable[Mapping[str, Any]]) -> bytes:
    """One row a metrics step; cells are empty where a value is absent (None or missing)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in step_metrics:
        writer.writerow(["" if row.get(name) is None else row[name] for name in COLUMNS])
    return out.getvalue().encode()
