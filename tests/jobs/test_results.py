from __future__ import annotations

from jobs.results import metrics_csv


def test_header_and_empty_cells() -> None:
    rows = [
        {"step": 1, "train_loss": 1.5, "train_accuracy": 0.25, "valid_loss": None, "valid_mean_token_accuracy": None},
        {"step": 2, "train_loss": 0.5, "train_accuracy": None, "valid_loss": 0.75, "valid_mean_token_accuracy": 0.5},
        {"step": 3, "train_loss": 0.25},
    ]
    assert metrics_csv(rows).decode().splitlines() == [
        "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy",
        "1,1.5,0.25,,",
        "2,0.5,,0.75,0.5",
        "3,0.25,,,",
    ]


def test_no_rows() -> None:
    assert metrics_csv([]) == b"step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"
