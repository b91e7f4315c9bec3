"""`python -m jobs.admin add-adapter`: an operator's adapter, published to the artifact store and listed as a
model every engine replica can load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engines.adapters import SHARED_OWNER
from jobs.admin import main
from jobs.store import Store

REPO = Path(__file__).resolve().parents[2]


def adapter_dir(root: Path, rank: int = 8) -> Path:
    root.mkdir(parents=True)
    (root / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": rank}))
    (root / "adapter_model.safetensors").write_bytes(b"weights")
    return root


def test_add_adapter_publishes_and_registers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    assert main(["add-adapter", "support-bot", str(adapter_dir(tmp_path / "lora"))]) == 0
    [adapter] = Store.open(f"sqlite:///{tmp_path}/data/platform.sqlite3").list_models()
    assert adapter.name == "support-bot" and adapter.owner == SHARED_OWNER and adapter.digest
    assert (tmp_path / "data" / "adapters" / adapter.digest / "manifest.json").is_file()


def test_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    env = {"DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    too_big = adapter_dir(tmp_path / "big", rank=512)
    done = subprocess.run(
        [sys.executable, "-m", "jobs.admin", "add-adapter", "big", str(too_big)],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "MAX_LORA_RANK" in done.stderr
    assert main(["add-adapter", "ft:mine", str(adapter_dir(tmp_path / "ok"))]) == 2
