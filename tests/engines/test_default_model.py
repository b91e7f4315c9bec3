"""The embedded default model on a node that lacks it: nodes share no disk, so each converts its own copy."""

from __future__ import annotations

from pathlib import Path

from engines.default_model import CONVERTED_NAME, on_this_node


def test_a_node_without_the_default_model_converts_it(tmp_path: Path) -> None:
    planned = tmp_path / "cache" / CONVERTED_NAME  # where the head's cache has it
    assert on_this_node(str(planned)) == str(planned)
    assert (planned / "config.json").is_file() and (planned / "model.safetensors").is_file()
    assert on_this_node(str(planned)) == str(planned)  # converted once: the second call finds it


def test_other_model_paths_are_left_to_the_operator(tmp_path: Path) -> None:
    assert on_this_node(str(tmp_path / "my-model")) == str(tmp_path / "my-model")
    assert not (tmp_path / "my-model").exists()
