from __future__ import annotations

from jobs.records import CheckpointMetrics
from jobs.results import StepMetrics, metrics_csv


def test_header_and_empty_cells() -> None:
    rows = [
        StepMetrics(step=1, train_loss=1.5, train_accuracy=0.25),
        StepMetrics(step=2, train_loss=0.5, valid_loss=0.75, valid_mean_token_accuracy=0.5),
    ]
    assert metrics_csv(rows).decode().splitlines() == [
        "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy",
        "1,1.5,0.25,,",
        "2,0.5,,0.75,0.5",
    ]


def test_no_rows() -> None:
    assert metrics_csv([]) == b"step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"


def test_accuracy_keeps_its_value_under_openai_s_other_name() -> None:
    row = StepMetrics(step=3, train_loss=0.5, train_accuracy=0.75, valid_loss=0.6, valid_mean_token_accuracy=0.7)
    assert row.checkpoint_metrics() == CheckpointMetrics(
        step=3, train_loss=0.5, train_mean_token_accuracy=0.75, valid_loss=0.6, valid_mean_token_accuracy=0.7
    )
    data = row.event_data(total_steps=9)
    assert data["train_mean_token_accuracy"] == 0.75 and data["valid_mean_token_accuracy"] == 0.7
    assert data["total_steps"] == 9
